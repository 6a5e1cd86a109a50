import type { Client, WorkflowHandle } from '@temporalio/client';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/** The full history of every workflow a sweep started (its own and its children's, by the SweepId attribute). */
export async function* sweepHistories(
  client: Client,
  sweepId: string,
): AsyncGenerator<{ workflowId: string; history: History }> {
  for await (const wf of client.workflow.list({ query: `SweepId = "${sweepId}"` })) {
    yield {
      workflowId: wf.workflowId,
      history: await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory(),
    };
  }
}

/**
 * Every failed activity attempt in a sweep's workflows, one line each, for assertion messages: when a test
 * finds an extra Job or a retried step, this says which watcher failed and why, instead of only that it did.
 */
export async function activityFailures(client: Client, sweepId: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const { workflowId, history } of sweepHistories(client, sweepId)) {
      for (const e of history.events ?? []) {
        const f = e.activityTaskFailedEventAttributes?.failure ?? e.activityTaskTimedOutEventAttributes?.failure;
        if (!f) continue;
        const cause = f.cause?.message ? ` (cause: ${f.cause.message})` : '';
        out.push(`${workflowId} event ${String(e.eventId)}: ${f.message ?? ''}${cause}`);
      }
    }
  } catch (e) {
    out.push(`(could not read the histories: ${String(e)})`);
  }
  return out;
}

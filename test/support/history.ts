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

/**
 * How a sweep's attempts of one activity type went, from the histories. The server records only an
 * activity's last attempt (its start carries the attempt number and the previous attempt's failure), so
 * `retried` lists the activities that needed more than one attempt with the cause of the one before, and
 * `timedOut` those whose attempts timed out (heartbeat or start-to-close) on the way, or at the end.
 */
export async function activityAttempts(
  client: Client,
  sweepId: string,
  activityType: string,
): Promise<{ scheduled: number; timedOut: string[]; retried: string[] }> {
  const out = { scheduled: 0, timedOut: [] as string[], retried: [] as string[] };
  for await (const { workflowId, history } of sweepHistories(client, sweepId)) {
    const ours = new Set<string>();
    for (const e of history.events ?? []) {
      const at = `${workflowId} event ${String(e.eventId)}`;
      if (e.activityTaskScheduledEventAttributes?.activityType?.name === activityType) {
        ours.add(String(e.eventId));
        out.scheduled++;
      }
      const started = e.activityTaskStartedEventAttributes;
      if (started && ours.has(String(started.scheduledEventId)) && (started.attempt ?? 1) > 1) {
        const last = started.lastFailure;
        out.retried.push(`${at}: attempt ${started.attempt} after: ${last?.message ?? '?'}`);
        if (last?.timeoutFailureInfo) out.timedOut.push(`${at}: an earlier attempt timed out: ${last.message ?? ''}`);
      }
      const timedOut = e.activityTaskTimedOutEventAttributes;
      if (timedOut && ours.has(String(timedOut.scheduledEventId)))
        out.timedOut.push(`${at}: ${timedOut.failure?.message ?? 'timed out'}`);
    }
  }
  return out;
}

import { CancelledFailure, Context } from '@temporalio/activity';
import { ErrorType, PolyglotError } from '../common/errors';
import type { JobHandle, JobRunner, JobStatus } from '../jobs/runner';
import { JobResultSchema, JobSpecSchema, jobName, type JobResult, type JobSpecInput } from '../jobs/spec';
import { parseS3Uri, type StoreRegistry } from '../storage/s3';

export interface RunJobInput {
  runner: 'kubernetes' | 'local';
  spec: JobSpecInput;
  /** Status poll interval, milliseconds. Default 2000. */
  pollMs?: number;
}

export interface RunJobResult {
  jobName: string;
  attached: boolean;
  /** True when a succeeded result was already stored and no Job ran. */
  cached?: boolean;
  resultUri: string;
  result: JobResult;
  logsUri: string;
}

export interface JobDeps {
  stores: StoreRegistry;
  runners: Partial<Record<'kubernetes' | 'local', JobRunner>>;
}

/**
 * Launch a job (or re-attach to it) and follow it to the end, heartbeating its status. A worker
 * crash leaves the job running: the retried activity attaches to the same Job by its deterministic
 * name. A cancel deletes the job, in a step the cancellation itself cannot interrupt. A worker
 * shutdown leaves the job running, to be re-attached by the next worker.
 */
export function createJobActivities(deps: JobDeps) {
  async function runJob(input: RunJobInput): Promise<RunJobResult> {
    const ctx = Context.current();
    const parsed = JobSpecSchema.safeParse(input.spec);
    if (!parsed.success) {
      throw new PolyglotError(
        ErrorType.InvalidInput,
        `job spec: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    }
    const spec = parsed.data;
    const runner = deps.runners[input.runner];
    if (!runner)
      throw new PolyglotError(ErrorType.InvalidInput, `job runner "${input.runner}" is not configured on this worker`);
    const store = deps.stores.for(parseS3Uri(spec.outputUri).bucket);
    const outKey = parseS3Uri(spec.outputUri).key.replace(/\/+$/, '');

    // Outputs are keyed by their inputs: a succeeded result already there is this job done before
    // (a resumed sweep, an anchor another sweep evaluated). Nothing is launched again.
    const resultKey = `${outKey}/result.json`;
    const previous = JobResultSchema.safeParse(await store.getJson<unknown>(resultKey));
    if (previous.success && previous.data.status === 'succeeded') {
      return {
        jobName: jobName(spec.cellId, spec.attempt),
        attached: false,
        cached: true,
        resultUri: store.uri(resultKey),
        result: previous.data,
        logsUri: store.uri(`${outKey}/logs/`),
      };
    }

    const handle: JobHandle = await runner.submit(spec);
    ctx.heartbeat({ job: handle.name, attached: handle.attached, phase: 'submitted' });
    let status: JobStatus;
    try {
      for (;;) {
        status = await runner.status(handle);
        ctx.heartbeat({ job: handle.name, ...status });
        if (status.phase === 'succeeded' || status.phase === 'failed') break;
        await Promise.race([ctx.sleep(input.pollMs ?? 2000), ctx.cancelled]);
      }
    } catch (e) {
      if (e instanceof CancelledFailure) {
        // Worker shutdown is not a cancel: the job keeps running and the next attempt attaches to it.
        if (!ctx.cancellationDetails?.workerShutdown) await runner.cancel(handle);
      }
      throw e;
    }

    const logs = await runner.logs(handle).catch(() => ({}) as Record<string, string>);
    for (const [name, text] of Object.entries(logs)) await store.putText(`${outKey}/logs/${name}`, text, 'text/plain');
    const logsUri = store.uri(`${outKey}/logs/`);
    if (status.phase === 'failed') {
      const what = `job ${handle.name} failed: ${status.reason ?? 'unknown'}${status.exitCode !== undefined ? ` (exit ${status.exitCode})` : ''}${status.message ? `: ${status.message}` : ''}; logs at ${logsUri}`;
      throw new PolyglotError(status.retryable ? ErrorType.JobFailed : ErrorType.JobFailedPermanently, what);
    }
    const raw = await store.getJson<unknown>(resultKey);
    const result = JobResultSchema.safeParse(raw);
    if (!result.success) {
      throw new PolyglotError(
        ErrorType.JobResultInvalid,
        `job ${handle.name} succeeded but ${store.uri(resultKey)} is ${raw === undefined ? 'missing' : `invalid: ${result.error.issues[0]?.message}`}`,
      );
    }
    return {
      jobName: handle.name,
      attached: handle.attached,
      resultUri: store.uri(resultKey),
      result: result.data,
      logsUri,
    };
  }
  return { runJob };
}

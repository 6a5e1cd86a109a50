import { CancelledFailure, Context } from '@temporalio/activity';
import { ErrorType, PolyglotError } from '../common/errors';
import type { RunnerKind } from '../common/job-template';
import {
  PolicyViolationError,
  checkBucketUri,
  checkJob,
  checkJobConfig,
  readTrustPolicy,
  type TrustPolicy,
} from '../common/policy';
import type { JobHandle, JobRunner, JobStatus } from '../jobs/runner';
import {
  JOB_CONFIG_ENV,
  JobResultSchema,
  JobSpecSchema,
  jobName,
  type JobResult,
  type JobSpecInput,
} from '../jobs/spec';
import { digestBytes, digestMismatch, getSealed, putSealed, type Digest, type Repair } from '../storage/integrity';
import { keys } from '../storage/layout';
import { parseS3Uri, type S3Store, type StoreRegistry } from '../storage/s3';

export interface RunJobInput {
  runner: RunnerKind;
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
  /** A stored result that failed its integrity check, discarded before the job ran again. */
  repaired?: Repair[];
}

/**
 * The record beside result.json (`keys.jobResultRecord`): `{result: {size, sha256}, status: 'succeeded'}`,
 * sealed, written by the watcher for a succeeded result only (a failed one is never reused, and a retry
 * overwrites it).
 */
interface ResultRecord {
  result: Digest;
  status: 'succeeded';
}

const isSucceeded = (value: unknown): boolean => {
  const r = JobResultSchema.safeParse(value);
  return r.success && r.data.status === 'succeeded';
};

/**
 * A stored result.json, checked against the watcher's record of it. Damaged: the digest differs from the
 * record, it was deleted under its record, or it does not parse. Without a record it is unverified — written
 * before records existed, a failure (never recorded), or a success whose watcher stopped before recording
 * it: accepted when it matches the job result schema, and recorded now if it is a success.
 */
async function readResult(
  store: S3Store,
  resultKey: string,
  recordKey: string,
): Promise<{ state: 'missing' } | { state: 'ok'; value: unknown } | { state: 'damaged'; reason: string }> {
  const bytes = await store.getBytes(resultKey);
  const record = await getSealed<ResultRecord>(store, recordKey, (v) => typeof (v as ResultRecord).result === 'object');
  if (bytes === undefined)
    return record.state === 'ok'
      ? { state: 'damaged', reason: 'deleted (its digest record remains)' }
      : { state: 'missing' };
  if (record.state === 'ok') {
    const why = digestMismatch(bytes, record.value.result);
    if (why) return { state: 'damaged', reason: why };
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return { state: 'damaged', reason: `not valid JSON (${(e as Error).message})` };
  }
  if (record.state !== 'ok') {
    if (!JobResultSchema.safeParse(value).success)
      return { state: 'damaged', reason: 'does not match the job result schema' };
    if (isSucceeded(value)) await recordSuccess(store, recordKey, bytes);
  }
  return { state: 'ok', value };
}

function recordSuccess(store: S3Store, recordKey: string, bytes: Uint8Array): Promise<Digest> {
  return putSealed(store, recordKey, { result: digestBytes(bytes), status: 'succeeded' } satisfies ResultRecord);
}

export interface JobDeps {
  stores: StoreRegistry;
  runners: Partial<Record<RunnerKind, JobRunner>>;
  /** What a job may run and reference (commands, images, Secrets, buckets): checked before every launch. */
  policy?: TrustPolicy;
}

/**
 * Launch a job (or re-attach to it) and follow it to the end, heartbeating its status. A worker
 * crash leaves the job running: the retried activity attaches to the same Job by its deterministic
 * name. A cancel requested by the workflow deletes the job; a worker shutdown or a timed-out attempt
 * leaves it running, to be re-attached by the next attempt.
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
    // The job spec comes from the sweep spec (untrusted): refuse before anything is launched or read.
    const policy = deps.policy ?? readTrustPolicy(process.env);
    const problems = [
      // POLYGLOT_JOB_CONFIG is the contract's own variable, written by the student and anchor workflows —
      // or by whoever starts a jobWorkflow directly: the models and data it names are checked too.
      ...checkJob(policy, spec, input.runner, 'job', { allowEnv: [JOB_CONFIG_ENV] }),
      ...checkJobConfig(policy, spec.env[JOB_CONFIG_ENV], `job.env.${JOB_CONFIG_ENV}`),
      ...checkBucketUri(policy, spec.outputUri, 'job.outputUri'),
      ...Object.entries(spec.inputs).flatMap(([k, uri]) => checkBucketUri(policy, uri, `job.inputs.${k}`)),
    ];
    if (problems.length) throw new PolicyViolationError(problems);
    const runner = deps.runners[input.runner];
    if (!runner)
      throw new PolyglotError(ErrorType.InvalidInput, `job runner "${input.runner}" is not configured on this worker`);
    const store = deps.stores.for(parseS3Uri(spec.outputUri).bucket);
    const outKey = parseS3Uri(spec.outputUri).key.replace(/\/+$/, '');

    // Outputs are keyed by their inputs: a succeeded result already there is this job done before
    // (a resumed sweep, an anchor another sweep evaluated). Nothing is launched again — if it is intact.
    const resultKey = keys.jobResult(outKey);
    const recordKey = keys.jobResultRecord(outKey);
    const stored = await readResult(store, resultKey, recordKey);
    const repaired: Repair[] = [];
    if (stored.state === 'damaged') {
      // Discard the damaged result, and the finished Job that made it (it would only be re-attached): the
      // job then runs again under the same name. A runner that cannot forget a Job gets the next attempt.
      await store.delete(recordKey);
      await store.delete(resultKey);
      const what = `stored result ${store.uri(resultKey)} is damaged (${stored.reason}); discarded, the job runs again`;
      if (!runner.forget) throw new PolyglotError(ErrorType.JobFailed, what);
      await runner.forget(jobName(spec.cellId, spec.attempt), {
        signal: ctx.cancellationSignal,
        heartbeat: () => ctx.heartbeat({ forgetting: jobName(spec.cellId, spec.attempt) }),
      });
      repaired.push({ key: resultKey, reason: what });
      ctx.heartbeat({ repaired: resultKey });
    }
    const previous = stored.state === 'ok' ? JobResultSchema.safeParse(stored.value) : undefined;
    if (previous?.success && previous.data.status === 'succeeded') {
      return {
        jobName: jobName(spec.cellId, spec.attempt),
        attached: false,
        cached: true,
        resultUri: store.uri(resultKey),
        result: previous.data,
        logsUri: store.uri(keys.jobLogs(outKey)),
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
      // Only a cancel the workflow asked for, or a watch nobody will take over, deletes the job. A worker
      // shutdown, an operator's pause or reset, and above all a heartbeat timeout (Temporal has already
      // started the next attempt, attached to this same Job) leave the job running for the next attempt.
      if (e instanceof CancelledFailure && (await ownerIsGone(e))) await runner.cancel(handle);
      throw e;
    }

    const logs = await runner.logs(handle).catch(() => ({}) as Record<string, string>);
    for (const [name, text] of Object.entries(logs)) await store.putText(keys.jobLog(outKey, name), text, 'text/plain');
    const logsUri = store.uri(keys.jobLogs(outKey));
    if (status.phase === 'failed') {
      const what = `job ${handle.name} failed: ${status.reason ?? 'unknown'}${status.exitCode !== undefined ? ` (exit ${status.exitCode})` : ''}${status.message ? `: ${status.message}` : ''}; logs at ${logsUri}`;
      throw new PolyglotError(status.retryable ? ErrorType.JobFailed : ErrorType.JobFailedPermanently, what);
    }
    const bytes = await store.getBytes(resultKey);
    let raw: unknown;
    let problem = bytes === undefined ? 'missing' : undefined;
    if (bytes !== undefined) {
      try {
        raw = JSON.parse(new TextDecoder().decode(bytes));
      } catch (e) {
        problem = `not valid JSON (${(e as Error).message})`;
      }
    }
    const result = JobResultSchema.safeParse(raw);
    if (problem === 'missing' && handle.attached) {
      // Re-attached to a Job that had finished before, whose output has since been deleted: a new Job
      // (the next attempt) makes it again.
      throw new PolyglotError(
        ErrorType.JobFailed,
        `job ${handle.name} had finished but ${store.uri(resultKey)} is gone; the job runs again`,
      );
    }
    if (problem || !result.success) {
      throw new PolyglotError(
        ErrorType.JobResultInvalid,
        `job ${handle.name} succeeded but ${store.uri(resultKey)} is ${problem ?? `invalid: ${result.error?.issues[0]?.message}`}`,
      );
    }
    // The job wrote result.json; the watcher records a success's size and digest, so a later reuse can
    // trust it. A failed result is not recorded: nothing reuses it, and the next attempt overwrites it.
    if (result.data.status === 'succeeded') await recordSuccess(store, recordKey, bytes!);
    else await store.delete(recordKey);
    return {
      jobName: handle.name,
      attached: handle.attached,
      resultUri: store.uri(resultKey),
      result: result.data,
      logsUri,
      ...(repaired.length ? { repaired } : {}),
    };
  }
  /**
   * Whether the cancellation means nobody will watch this job again. The reason is the failure's message
   * (CANCELLED, NOT_FOUND, TIMED_OUT, WORKER_SHUTDOWN, PAUSED, RESET); the details' flags are not filled in
   * by every server. NOT_FOUND is ambiguous: this attempt was superseded after a heartbeat timeout (the
   * workflow is still open: keep the job), or the workflow closed (cancelled, terminated: delete it).
   */
  async function ownerIsGone(e: CancelledFailure): Promise<boolean> {
    const ctx = Context.current();
    if (ctx.cancellationDetails?.cancelRequested || e.message === 'CANCELLED') return true;
    if (e.message !== 'NOT_FOUND') return false;
    const run = ctx.info.workflowExecution;
    if (!run) return false; // a standalone activity: no workflow to ask
    try {
      const d = await ctx.client.workflow.getHandle(run.workflowId, run.runId).describe();
      return d.status.name !== 'RUNNING';
    } catch {
      return false; // cannot tell: leaving a job to its deadline beats killing one a live attempt watches
    }
  }
  return { runJob };
}

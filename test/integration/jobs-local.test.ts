import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CancelledFailure } from '@temporalio/activity';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createJobActivities } from '../../src/activities/jobs';
import type { JobHandle, JobRunner, JobStatus } from '../../src/jobs/runner';
import { jobName, type JobSpec, type JobSpecInput } from '../../src/jobs/spec';
import { StoreRegistry, makeS3Client } from '../../src/storage/s3';
import { FAKE_JOB_COMMAND, storeFor, uniqueName } from '../support/fixtures';
import { killHard, spawnWorker, until } from '../support/processes';
import { getStack } from '../support/stack';

/**
 * The job watcher with the local runner: the same contract as Kubernetes, run as processes. The
 * worker is a real process, so SIGKILL tests the re-attach path exactly as a crashed pod would.
 */
describe('GPU job watcher on the local runner', function () {
  this.timeout(120_000);
  let worker: ChildProcess | undefined;
  let jobsDir: string;
  let taskQueue: string;
  let bucket: string;
  beforeEach(async () => {
    jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-jobs-'));
    taskQueue = uniqueName('tq');
    bucket = uniqueName('jobs');
    await storeFor(bucket).ensureBucket();
    worker = await spawnWorker({ POLYGLOT_TASK_QUEUE: taskQueue, POLYGLOT_PROVIDERS: '', POLYGLOT_JOBS_DIR: jobsDir });
  });
  afterEach(async () => {
    if (worker) await killHard(worker);
  });

  function spec(env: Record<string, string>): JobSpecInput {
    const cellId = `sweep/${uniqueName('s')}/t=a/l=de/s=olmo/train`;
    return {
      cellId,
      sweepId: 's',
      image: 'local',
      command: FAKE_JOB_COMMAND,
      env,
      outputUri: `s3://${bucket}/students/${cellId.replace(/[/=]/g, '_')}/`,
    };
  }
  /** One folder per job (the runner's slot locks live in a dot-folder beside them). */
  const jobDirs = () => readdirSync(jobsDir).filter((d) => !d.startsWith('.'));
  const start = (s: JobSpecInput, wf = uniqueName('job')) =>
    getStack().env.client.workflow.start('jobWorkflow', {
      taskQueue,
      workflowId: wf,
      args: [{ runner: 'local', spec: s, pollMs: 200, heartbeatSeconds: 3 }],
    });

  it('runs a job to success, reads its result and saves its logs to S3', async () => {
    const h = await start(spec({ FAKE_JOB_SLEEP_MS: '300' }));
    const r = (await h.result()) as {
      result: { status: string; metrics: Record<string, number> };
      logsUri: string;
      attached: boolean;
    };
    assert.equal(r.result.status, 'succeeded');
    assert.equal(r.result.metrics.steps, 3);
    assert.equal(r.attached, false);
    const logs = await storeFor(bucket).list(r.logsUri.replace(`s3://${bucket}/`, ''));
    assert.equal(logs.length, 1);
    assert.match((await storeFor(bucket).getText(logs[0]!))!, /fake job for/);
  });

  it('fails non-retryably on a known non-retryable exit code, after one run', async () => {
    const h = await start(spec({ FAKE_JOB_EXIT: '2' }));
    const err = await h.result().catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    const root = (err.cause as { cause?: { type?: string; message: string } }).cause;
    assert.equal(root?.type, 'JobFailedPermanently');
    assert.match(root?.message ?? '', /exit 2/);
    assert.equal(jobDirs().length, 1, 'exactly one job');
  });

  it('replaces a Job that failed retryably with a new attempt, and stops after maxJobAttempts', async () => {
    // Attempt 0 exits 1 (retryable), attempt 1 succeeds: two jobs, each run once.
    const ok = await start(spec({ FAKE_JOB_FAIL_BEFORE_ATTEMPT: '1' }));
    const r = (await ok.result()) as { jobName: string; result: { status: string } };
    assert.equal(r.result.status, 'succeeded');
    assert.match(r.jobName, /-a1-/);
    assert.equal(jobDirs().length, 2, 'attempt 0 and attempt 1');
    for (const d of jobDirs()) {
      assert.equal(readFileSync(path.join(jobsDir, d, 'main.log'), 'utf8').match(/fake job for/g)?.length, 1);
    }
    // Always failing retryably: exactly maxJobAttempts (default 2) more jobs, then JobFailed.
    const bad = await start(spec({ FAKE_JOB_FAIL_BEFORE_ATTEMPT: '99' }));
    const err = await bad.result().catch((e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError);
    assert.equal((err.cause as { cause?: { type?: string } }).cause?.type, 'JobFailed');
    assert.equal(jobDirs().length, 4);
  });

  it('survives kill -9 of the worker while the job runs: one job, and the activity completes', async () => {
    // Long enough to outlast the worker's restart and the heartbeat timeout: the retry finds it running
    // (a job already finished would be found by its stored result instead, without attaching).
    const s = spec({ FAKE_JOB_SLEEP_MS: '20000' });
    const h = await start(s);
    await until(() => jobDirs().some((d) => existsSync(path.join(jobsDir, d, 'spec.json'))), 20_000, 'job submitted');
    await killHard(worker!);
    worker = await spawnWorker({ POLYGLOT_TASK_QUEUE: taskQueue, POLYGLOT_PROVIDERS: '', POLYGLOT_JOBS_DIR: jobsDir });
    const r = (await h.result()) as { attached: boolean; result: { status: string } };
    assert.equal(r.result.status, 'succeeded');
    assert.equal(r.attached, true, 'the retried watcher attached to the running job');
    const dirs = jobDirs();
    assert.equal(dirs.length, 1, 'exactly one job exists');
    const log = readFileSync(path.join(jobsDir, dirs[0]!, 'main.log'), 'utf8');
    assert.equal(log.match(/fake job for/g)?.length, 1, 'the job process ran once');
  });

  it('cancel kills the job', async () => {
    const h = await start(spec({ FAKE_JOB_SLEEP_MS: '30000' }));
    await until(
      () => jobDirs().length === 1 && existsSync(path.join(jobsDir, jobDirs()[0]!, 'pid')),
      20_000,
      'job started',
    );
    await new Promise((r) => setTimeout(r, 500));
    await h.cancel();
    await assert.rejects(h.result());
    const dir = path.join(jobsDir, jobDirs()[0]!);
    await until(() => existsSync(path.join(dir, 'cancelled')), 10_000, 'cancel marker');
    const pid = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    await until(
      () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      },
      10_000,
      'job process gone',
    );
  });
});

/**
 * Which cancellations of the watcher delete the job. Found by the whole-pipeline test under load: a
 * watcher attempt whose heartbeat timed out was cancelled after Temporal had started the next attempt,
 * and it deleted the Job that attempt was attached to — the Job "vanished", a second one was launched,
 * and two trainers wrote the same output.
 */
describe('runJob cancellation', () => {
  class RecordingRunner implements JobRunner {
    readonly kind = 'local' as const;
    readonly cancelled: string[] = [];
    submit(spec: JobSpec): Promise<JobHandle> {
      return Promise.resolve({ name: jobName(spec.cellId, spec.attempt), namespace: 'local', attached: false });
    }
    status(): Promise<JobStatus> {
      return Promise.resolve({ phase: 'running' });
    }
    cancel(handle: JobHandle): Promise<void> {
      this.cancelled.push(handle.name);
      return Promise.resolve();
    }
    logs(): Promise<Record<string, string>> {
      return Promise.resolve({});
    }
  }

  async function cancelWhileWatching(
    reason: 'CANCELLED' | 'NOT_FOUND' | 'TIMED_OUT' | 'WORKER_SHUTDOWN' | 'PAUSED',
    details: ConstructorParameters<typeof ActivityCancellationDetails>[0] = {},
    workflowExecution?: { workflowId: string; runId: string },
  ) {
    const bucket = uniqueName('jobs');
    await storeFor(bucket).ensureBucket();
    const runner = new RecordingRunner();
    const { runJob } = createJobActivities({
      stores: new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1')),
      runners: { local: runner },
    });
    const env = new MockActivityEnvironment(workflowExecution && { workflowExecution }, {
      client: getStack().env.client,
    });
    const watching = new Promise<void>((resolve) => env.once('heartbeat', () => resolve()));
    const run = env.run(runJob, {
      runner: 'local' as const,
      pollMs: 50,
      spec: {
        cellId: 'sweep/s/t=a/l=de/s=olmo/train',
        sweepId: 's',
        image: 'local',
        command: ['true'],
        outputUri: `s3://${bucket}/students/x/`,
      },
    });
    await watching;
    env.cancel(reason, new ActivityCancellationDetails(details));
    await assert.rejects(run, CancelledFailure);
    return runner.cancelled;
  }

  it('a cancel the workflow requested deletes the job', async () => {
    assert.equal((await cancelWhileWatching('CANCELLED', { cancelRequested: true })).length, 1);
    assert.equal((await cancelWhileWatching('CANCELLED')).length, 1, 'also when the server sends no details');
  });

  it('a timed-out, shut-down or paused attempt leaves the job to the next attempt', async () => {
    // NOT_FOUND: the heartbeat was rejected because the attempt had timed out and a new one exists.
    assert.deepEqual(await cancelWhileWatching('NOT_FOUND'), []);
    assert.deepEqual(await cancelWhileWatching('TIMED_OUT', { timedOut: true }), []);
    assert.deepEqual(await cancelWhileWatching('WORKER_SHUTDOWN', { workerShutdown: true }), []);
    assert.deepEqual(await cancelWhileWatching('PAUSED', { paused: true }), []);
  });

  it('NOT_FOUND deletes the job only when its workflow has closed (terminated), not while it runs', async () => {
    // Workflows on a task queue no worker polls: they stay open until terminated.
    const open = await getStack().env.client.workflow.start('jobWorkflow', {
      taskQueue: uniqueName('nobody'),
      workflowId: uniqueName('open'),
      args: [],
    });
    const closed = await getStack().env.client.workflow.start('jobWorkflow', {
      taskQueue: uniqueName('nobody'),
      workflowId: uniqueName('closed'),
      args: [],
    });
    await closed.terminate('test');
    const exec = (h: typeof open) => ({ workflowId: h.workflowId, runId: h.firstExecutionRunId });
    try {
      assert.deepEqual(await cancelWhileWatching('NOT_FOUND', {}, exec(open)), [], 'superseded attempt');
      assert.equal((await cancelWhileWatching('NOT_FOUND', {}, exec(closed))).length, 1, 'workflow gone');
    } finally {
      await open.terminate('test');
    }
  });
});

import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { sweepWorkflow } from '../../src/workflows';
import { importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { activityAttempts } from '../support/history';
import { killHard, spawnWorker, until } from '../support/processes';
import { getStack } from '../support/stack';

/**
 * The provider limiter under a rate far below the shards' demand (issue #16): shards queued behind it
 * must stay alive (heartbeat) rather than time out and queue again, and must leave at once when their
 * worker shuts down, so that another worker finishes the work without asking anything twice.
 */
describe('provider limiter: waits that live', function () {
  this.timeout(420_000);
  let llm: FakeLlmServer;
  let bucket: string;
  let seedPool: string;
  let worker: ChildProcess | undefined;
  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    bucket = uniqueName('limiter');
    seedPool = await importDemoSeeds(bucket);
  });
  afterEach(async () => {
    if (worker) await killHard(worker);
    worker = undefined;
  });
  after(async () => llm.stop());

  /** One teacher; one example per strategy and language, so each shard is exactly one call. */
  function rateLimitedSpec(languages: string[], requestsPerMinute: number): SweepSpecInput {
    const providerId = uniqueName('p');
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 1 });
    return {
      ...base,
      providers: [{ ...base.providers[0]!, id: providerId, requestsPerMinute }],
      teachers: [base.teachers[0]!],
      languages,
      shardSize: 1,
      // The default heartbeat timeout (120 s), which a shard waiting its turn behind 4+ others at 2 a minute outlasts.
      timeouts: undefined,
    };
  }

  const repeated = () => [...llm.stats().byPrompt.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);

  it('6 shards under requestsPerMinute 2: exactly 6 calls, every shard on its first attempt, no heartbeat timeout', async () => {
    const spec = rateLimitedSpec(['de', 'es'], 2);
    const plan = planSweep(parseSweepSpec(spec));
    assert.equal(
      plan.cells.flatMap((c) => c.strategies).reduce((n, s) => n + s.shards, 0),
      6,
      '6 shards',
    );
    assert.equal(parseSweepSpec(spec).timeouts.heartbeatSeconds, 120);
    llm.resetStats();
    const workers = await startWorkers([spec.providers[0]!.id]);
    try {
      await getStack().env.client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
    } finally {
      await workers.stop();
    }
    // The last shard waited 5 × 30 s, longer than its heartbeat timeout: only its heartbeats kept it.
    assert.equal(llm.stats().served, 6, 'one call per example');
    assert.equal(repeated(), 0);
    const shards = await activityAttempts(getStack().env.client, plan.sweepId, 'generateShard');
    assert.equal(shards.scheduled, 6);
    assert.deepEqual(shards.timedOut, [], 'no shard attempt timed out');
    assert.deepEqual(shards.retried, [], 'every shard finished on its first attempt');
  });

  it('a worker process with shards waiting in the limiter exits within seconds of SIGTERM; another finishes the work, no call repeated', async () => {
    const spec = rateLimitedSpec(['de'], 2);
    const plan = planSweep(parseSweepSpec(spec));
    const cell = plan.cells[0]!;
    const store = storeFor(bucket);
    const markers = async () => {
      let n = 0;
      for (const s of cell.strategies)
        for (let i = 0; i < s.shards; i++)
          if (await store.exists(keys.shardMarker(keys.dataset('polyglot', cell.datasetKey), s.strategy, i))) n++;
      return n;
    };
    const taskQueue = uniqueName('tq');
    const workerEnv = { POLYGLOT_TASK_QUEUE: taskQueue, POLYGLOT_PROVIDERS: spec.providers[0]!.id };
    llm.resetStats();
    worker = await spawnWorker(workerEnv);
    const handle = await getStack().env.client.workflow.start(sweepWorkflow, {
      taskQueue,
      workflowId: plan.workflowId,
      args: [spec],
    });
    // The first shard goes at once (a fresh bucket holds one request); the other two wait 30 s and 60 s.
    await until(async () => (await markers()) === 1, 60_000, 'the first shard');
    assert.equal(llm.stats().chatCompletions, 1, 'the other shards are waiting in the limiter, not calling');

    const exited = new Promise<number | null>((resolve) => worker!.once('exit', (code) => resolve(code)));
    const stopAt = Date.now();
    worker.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000))]);
    assert.notEqual(code, 'hung', 'the worker did not exit within 30 s of SIGTERM');
    console.log(`      worker exited ${String(code)} ${Date.now() - stopAt} ms after SIGTERM`);
    assert.equal(llm.stats().chatCompletions, 1, 'nothing was sent on the way out');

    worker = await spawnWorker(workerEnv);
    await handle.result();
    assert.equal(llm.stats().served, 3, 'one call per example over both workers');
    assert.equal(repeated(), 0);
    const shards = await activityAttempts(getStack().env.client, plan.sweepId, 'generateShard');
    assert.deepEqual(shards.timedOut, [], 'handed over by the shutdown, not found by a heartbeat timeout');
    assert.ok(shards.retried.length >= 1, 'the waiting shards moved to the new worker');
  });
});

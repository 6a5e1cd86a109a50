import assert from 'node:assert/strict';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep, type SweepPlan } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { importDemoSeeds, smallSpec, storeFor, uniqueName } from '../support/fixtures';
import { killHard, processEnv, runCommand, spawnWorker, temporalCliStart, until } from '../support/processes';
import { ROOT, getStack } from '../support/stack';

/** Every example id of every cell, read back from the shard files the manifests list. */
async function exampleIds(bucket: string, plan: SweepPlan): Promise<Map<string, string[]>> {
  const store = storeFor(bucket);
  const out = new Map<string, string[]>();
  for (const cell of plan.cells) {
    const manifest = await store.getJson<{ perStrategy: Record<string, { shards: string[] }> }>(
      keys.datasetManifest(keys.dataset('polyglot', cell.datasetKey)),
    );
    assert.ok(manifest, `no manifest for ${cell.cellId}`);
    const ids: string[] = [];
    for (const s of Object.values(manifest.perStrategy)) {
      for (const uri of s.shards) {
        const text = (await store.getText(uri.replace(`s3://${bucket}/`, ''))) ?? '';
        for (const line of text.split('\n')) if (line.trim()) ids.push((JSON.parse(line) as { id: string }).id);
      }
    }
    out.set(cell.cellId, ids);
  }
  return out;
}

function repeatedCalls(llm: FakeLlmServer): number {
  let n = 0;
  for (const count of llm.stats().byPrompt.values()) n += Math.max(0, count - 1);
  return n;
}

describe('durability: worker processes, SIGKILL, resume, Temporal CLI', function () {
  this.timeout(240_000);
  let llm: FakeLlmServer;
  let worker: ChildProcess | undefined;
  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
  });
  afterEach(async () => {
    if (worker) await killHard(worker);
    worker = undefined;
  });
  after(async () => llm.stop());

  it('survives SIGKILL of the worker mid-shard: exact counts, no duplicate ids, ≤ one checkpoint repeated; resume then makes no call', async () => {
    const bucket = uniqueName('kill');
    const providerId = uniqueName('p');
    const taskQueue = uniqueName('tq');
    const seedPool = await importDemoSeeds(bucket);
    const spec = {
      ...smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 6 }),
      shardSize: 6,
      checkpointEvery: 2,
    };
    spec.providers[0]!.concurrency = 2;
    const plan = planSweep(parseSweepSpec(spec));
    const workerEnv = { POLYGLOT_TASK_QUEUE: taskQueue, POLYGLOT_PROVIDERS: providerId, POLYGLOT_SHARD_SLOTS: '1' };
    llm.setLatency(150);
    llm.resetStats();
    worker = await spawnWorker(workerEnv);
    const client = getStack().env.client;
    const handle = await client.workflow.start('sweepWorkflow', {
      taskQueue,
      workflowId: plan.workflowId,
      args: [spec],
    });

    // Kill in the middle of a shard: 15 calls = 2 full shards of 6 + half of the third.
    await until(() => llm.stats().served >= 15, 60_000, '15 LLM calls');
    await killHard(worker);
    const servedAtKill = llm.stats().served;
    assert.ok(servedAtKill < plan.totalRequested, 'killed before the end');
    worker = await spawnWorker(workerEnv);
    await handle.result();

    const ids = await exampleIds(bucket, plan);
    for (const [cellId, list] of ids) {
      assert.equal(list.length, 18, `${cellId}: 3 strategies × 6`);
      assert.equal(new Set(list).size, list.length, `${cellId}: duplicate example ids`);
    }
    const repeated = repeatedCalls(llm);
    assert.ok(
      repeated <= spec.checkpointEvery,
      `repeated ${repeated} calls, more than one checkpoint (${spec.checkpointEvery})`,
    );
    assert.equal(llm.stats().served, plan.totalRequested + repeated);

    // `polyglot sweep resume` of the finished sweep, through the real CLI: zero LLM calls.
    llm.resetStats();
    const res = await runCommand(
      path.join(ROOT, 'bin/polyglot'),
      ['sweep', 'resume', plan.sweepId, '--wait'],
      processEnv(workerEnv),
    );
    assert.equal(res.code, 0, res.out);
    assert.match(res.out, /COMPLETED/);
    assert.equal(llm.stats().chatCompletions, 0, 'resume of a finished sweep called the LLM');
    const again = await exampleIds(bucket, plan);
    assert.deepEqual([...again.entries()], [...ids.entries()]);
  });

  it('runs a sweep started with the Temporal CLI and a single JSON argument (the Web UI path)', async () => {
    const bucket = uniqueName('cli');
    const providerId = uniqueName('p');
    const taskQueue = uniqueName('tq');
    const seedPool = await importDemoSeeds(bucket);
    const spec = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 2 });
    const plan = planSweep(parseSweepSpec(spec));
    worker = await spawnWorker({ POLYGLOT_TASK_QUEUE: taskQueue, POLYGLOT_PROVIDERS: providerId });
    await temporalCliStart({ workflowId: plan.workflowId, taskQueue, input: spec });
    const result = (await getStack().env.client.workflow.getHandle(plan.workflowId).result()) as {
      cells: { examples: number }[];
    };
    assert.deepEqual(
      result.cells.map((c) => c.examples),
      [6, 6, 6, 6],
    );
    // The CLI's status view reads the same sweep.
    const status = await runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'status', plan.sweepId], processEnv({}));
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, /COMPLETED/);
    assert.match(status.out, /teacher-a\s+done 3\/3 · 6 ex · \S+\s+done 3\/3 · 6 ex · \S+/);
  });
});

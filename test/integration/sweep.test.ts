import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { sweepWorkflow } from '../../src/workflows';
import { Worker } from '@temporalio/worker';
import { importDemoSeeds, sharedBundle, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { until } from '../support/processes';
import { getStack } from '../support/stack';

describe('sweep on a real Temporal server and a real S3 server', function () {
  this.timeout(120_000);
  let llm: FakeLlmServer;
  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
  });
  after(async () => llm.stop());

  it('generates every planned example once, writes manifests, and a re-run makes no LLM call', async () => {
    const bucket = uniqueName('sweep');
    const providerId = uniqueName('p');
    const seedPool = await importDemoSeeds(bucket);
    const spec = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId });
    const plan = planSweep(parseSweepSpec(spec));
    const workers = await startWorkers([providerId]);
    try {
      llm.resetStats();
      const client = getStack().env.client;
      const result = await client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      assert.equal(result.cells.length, 4);
      // 2 teachers × 2 languages × 3 strategies × 4 seeds, no faults → exactly 48 calls and rows.
      assert.equal(llm.stats().chatCompletions, 48);
      const store = storeFor(bucket);
      for (const cell of plan.cells) {
        const ds = keys.dataset('polyglot', cell.datasetKey);
        const manifest = await store.getJson<{
          produced: number;
          requested: number;
          perStrategy: Record<string, { shards: string[] }>;
        }>(keys.datasetManifest(ds));
        assert.ok(manifest, `manifest of ${cell.cellId}`);
        assert.equal(manifest.requested, 12);
        assert.equal(manifest.produced, 12);
        const ids = new Set<string>();
        for (const s of Object.values(manifest.perStrategy)) {
          for (const uri of s.shards) {
            const text = (await store.getText(uri.replace(`s3://${bucket}/`, '')))!;
            for (const line of text.trim().split('\n')) {
              const row = JSON.parse(line) as { id: string; language: string; model: string; messages: unknown[] };
              assert.equal(row.language, cell.language);
              assert.equal(row.model, cell.teacherId);
              assert.equal(row.messages.length, 2);
              ids.add(row.id);
            }
          }
        }
        assert.equal(ids.size, 12, 'unique example ids');
      }

      // Search attributes: the sweep and its cells are found by SweepId, Teacher, Language and Stage.
      const count = async (query: string) => {
        let n = 0;
        for await (const _ of client.workflow.list({ query })) n++;
        return n;
      };
      await until(async () => (await count(`SweepId = "${plan.sweepId}"`)) === 5, 10_000, 'visibility');
      assert.equal(await count(`SweepId = "${plan.sweepId}" AND Teacher = "teacher-a"`), 2);
      assert.equal(await count(`SweepId = "${plan.sweepId}" AND \`Language\` = "es" AND Stage = "done"`), 2);

      // Determinism: the recorded histories of the sweep and a cell replay against the current code.
      for (const id of [plan.workflowId, plan.cells[0]!.cellId]) {
        const history = await client.workflow.getHandle(id).fetchHistory();
        await Worker.runReplayHistory({ workflowBundle: await sharedBundle() }, history, id);
      }

      // Same spec again (a resume of a finished sweep): every cell is a cache hit, zero LLM calls.
      llm.resetStats();
      const again = await client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      assert.equal(llm.stats().chatCompletions, 0);
      assert.ok(again.cells.every((c) => c.cached));
      assert.deepEqual(
        again.cells.map((c) => c.examples),
        result.cells.map((c) => c.examples),
      );
    } finally {
      await workers.stop();
    }
  });

  it('fails a spec started directly (as from the Web UI) with a non-retryable InvalidSpec error', async () => {
    const workers = await startWorkers([]);
    try {
      const client = getStack().env.client;
      const err = await client.workflow
        .execute(sweepWorkflow, {
          taskQueue: workers.taskQueue,
          workflowId: uniqueName('bad'),
          args: [{ teachers: [] }],
        })
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      assert.ok(err instanceof WorkflowFailedError);
      const cause = err.cause as { type?: string; message: string };
      assert.equal(cause.type, 'InvalidSpec');
      assert.match(cause.message, /storage: /);
    } finally {
      await workers.stop();
    }
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { estimate, explainPlan } from '../../src/cli/sweep';
import { eligibleSeeds } from '../../src/generation/requests';
import { readSeedFile } from '../../src/seeds/pool';
import { STRATEGIES } from '../../src/spec/sweep';
import { FakeLlmServer } from '../support/fake-server';
import { parseSweepSpec } from '../../src/spec/sweep';
import { StoreRegistry, makeS3Client } from '../../src/storage/s3';
import { sweepWorkflow } from '../../src/workflows';
import { importDemoSeeds, smallSpec, startWorkers, uniqueName } from '../support/fixtures';
import { ROOT, getStack } from '../support/stack';

describe('sweep plan: cache hit or miss per cell, and why', function () {
  this.timeout(120_000);

  it('shows misses before a run, hits after, and the changed field when a teacher changes', async () => {
    const llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    const bucket = uniqueName('plan');
    const providerId = uniqueName('p');
    const seedPool = await importDemoSeeds(bucket);
    const input = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 2 });
    const stores = new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1'));
    const workers = await startWorkers([providerId]);
    try {
      const before = await explainPlan(parseSweepSpec(input), stores);
      assert.deepEqual(
        before.verdicts.map((v) => [v.hit, v.why[0]]),
        Array(4).fill([false, 'miss: no dataset with this key']),
      );
      // 2 per strategy, 3 strategies, 4 cells, and the demo pool has enough seeds for each.
      assert.equal(estimate(parseSweepSpec(input), before.verdicts).requests, 24);
      await getStack().env.client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: before.plan.workflowId,
        args: [input],
      });
      const after = await explainPlan(parseSweepSpec(input), stores);
      assert.ok(after.verdicts.every((v) => v.hit && /^hit: dataset complete \(6 examples\)/.test(v.why[0]!)));
      assert.deepEqual(
        after.verdicts.map((v) => v.requests),
        [0, 0, 0, 0],
      );
      assert.equal(estimate(parseSweepSpec(input), after.verdicts).requests, 0, 'a complete cell needs no request');

      const changed = structuredClone(input);
      changed.teachers[0]!.sampling = { temperature: 0.5, topP: 0.9, maxTokens: 128 };
      const third = await explainPlan(parseSweepSpec(changed), stores);
      const a = third.verdicts.filter((v) => v.cell.teacherId === 'teacher-a');
      const b = third.verdicts.filter((v) => v.cell.teacherId === 'teacher-b');
      assert.ok(
        b.every((v) => v.hit),
        'an unchanged teacher keeps its cache',
      );
      for (const v of a) {
        assert.equal(v.hit, false);
        assert.ok(v.why.includes('changed since last run: teacher.sampling.temperature: 0.8 → 0.5'), v.why.join('\n'));
      }
    } finally {
      await workers.stop();
      await llm.stop();
    }
  });

  it('warns when the seed pool cannot fill a strategy for a language', async () => {
    const bucket = uniqueName('plan');
    const seedPool = await importDemoSeeds(bucket);
    const input = smallSpec({ bucket, seedPool, llmUrl: 'http://127.0.0.1:9/v1', sweepId: 'x', counts: 40 });
    const stores = new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1'));
    const { warnings } = await explainPlan(parseSweepSpec(input), stores);
    assert.ok(warnings.includes('generate/de: 24 eligible seeds < count 40; capped at 24'), warnings.join('\n'));
    assert.ok(warnings.includes('translate/es: 30 eligible seeds < count 40; capped at 30'), warnings.join('\n'));
    // The estimate counts the seeds a cell can have, not the count asked for.
    const { verdicts } = await explainPlan(parseSweepSpec(input), stores);
    const file = path.join(ROOT, 'seeds/demo.jsonl');
    const pool = await readSeedFile(file, readFileSync(file));
    for (const v of verdicts) {
      const capped = STRATEGIES.reduce((n, s) => n + Math.min(40, eligibleSeeds(pool, s, v.cell.language).length), 0);
      assert.ok(capped < 3 * 40, 'the demo pool caps at least one strategy');
      assert.equal(v.requests, capped, `${v.cell.cellId}`);
    }
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { LocalJobRunner } from '../../src/jobs/local';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { sweepWorkflow } from '../../src/workflows';
import { sweepProgressQuery } from '../../src/workflows/shared';
import {
  FAKE_JOB_COMMAND,
  fakeMetrics,
  importDemoSeeds,
  smallSpec,
  startWorkers,
  uniqueName,
} from '../support/fixtures';
import { getStack } from '../support/stack';

const ORDER = ['plan', 'generate', 'students', 'metrics', 'score', 'done'];

/**
 * The sweep's stage (its `progress` query, its Stage search attribute, `sweep status`) follows its cells: the
 * least advanced stage among the unfinished cells, then the score, then done. It used to read "generate"
 * until the score, while the cells trained students and measured their data.
 */
describe('the sweep stage follows its cells', function () {
  this.timeout(180_000);

  it('goes generate → students → metrics → score → done, in the query and the Stage attribute', async () => {
    const llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    const bucket = uniqueName('stage');
    const providerId = uniqueName('p');
    const seedPool = await importDemoSeeds(bucket);
    // Jobs that take a while: the query below sees the students stage while they run.
    const job = { runner: 'local' as const, image: 'local', command: FAKE_JOB_COMMAND, gpus: 1, heartbeatSeconds: 5 };
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 1 });
    const spec = {
      ...base,
      metrics: fakeMetrics(providerId, 2),
      students: [{ id: 'olmo', model: 'org/olmo', family: 'olmo' }],
      training: { ...job, env: { FAKE_JOB_SLEEP_MS: '1500' } },
      evaluation: { ...job, dataUri: `s3://${bucket}/benchmarks/` },
    };
    const plan = planSweep(parseSweepSpec(spec));
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-stage-'));
    const workers = await startWorkers([providerId], undefined, { runners: { local: new LocalJobRunner(jobsDir) } });
    const client = getStack().env.client;
    try {
      const handle = await client.workflow.start(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      const seen: string[] = [];
      const result = handle.result();
      let finished = false;
      void result.finally(() => (finished = true)).catch(() => undefined);
      while (!finished) {
        const p = await handle.query(sweepProgressQuery).catch(() => undefined);
        if (p && seen[seen.length - 1] !== p.stage) seen.push(p.stage);
        await new Promise((r) => setTimeout(r, 100));
      }
      await result;
      const last = await handle.query(sweepProgressQuery);
      if (seen[seen.length - 1] !== last.stage) seen.push(last.stage);

      // What the query showed, in order, never going back; the students' stage lasts seconds, so it is seen.
      const ranks = seen.map((s) => ORDER.indexOf(s));
      assert.ok(!ranks.includes(-1), `known stages only: ${seen.join(' → ')}`);
      assert.deepEqual(
        ranks,
        [...ranks].sort((a, b) => a - b),
        `in order: ${seen.join(' → ')}`,
      );
      assert.ok(seen.includes('students'), `the query showed the students' stage: ${seen.join(' → ')}`);
      assert.equal(last.stage, 'done');

      // Every change of the Stage search attribute, from the sweep's history: each stage once, in order.
      const history = await handle.fetchHistory();
      const stages = (history.events ?? []).flatMap((e) => {
        const field = e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.Stage;
        return field ? [defaultPayloadConverter.fromPayload<string>(field)] : [];
      });
      assert.deepEqual(stages, ['generate', 'students', 'metrics', 'score', 'done']);
    } finally {
      await workers.stop();
      await llm.stop();
    }
  });
});

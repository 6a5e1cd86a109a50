/**
 * Records the fixtures of test/integration/replay.test.ts: one small sweep with every kind of workflow
 * (sweep, dataset cell, metrics, anchor, student, train and eval job), run on the real servers, its histories
 * saved as proto JSON under test/fixtures/histories/. Run it by hand, once, before a change to workflow code
 * that must keep running sweeps replayable, never as part of the suite:
 *
 *   npx mocha --exit --require lib/test/support/hooks.js lib/test/support/record-histories.js
 *
 * A recording taken after the change would prove nothing: replaying it checks the new code against itself.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { LocalJobRunner } from '../../src/jobs/local';
import { FakeLlmServer } from './fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { sweepWorkflow } from '../../src/workflows';
import { FAKE_JOB_COMMAND, fakeMetrics, importDemoSeeds, smallSpec, startWorkers, uniqueName } from './fixtures';
import { sweepHistories } from './history';
import { until } from './processes';
import { ROOT, getStack } from './stack';

const OUT = path.join(ROOT, 'test/fixtures/histories');
const KEEP = [
  '/t=teacher-a/l=de/dataset',
  '/t=teacher-a/l=de/metrics',
  '/t=teacher-a/l=de/s=olmo/',
  '/anchors/f=olmo/l=de',
];

/** The kind of a workflow, from its type: the fixture's file name starts with it. */
function kindOf(workflowType: string): string {
  return workflowType.replace(/Workflow$/, '');
}

describe('record workflow histories for the replay test', function () {
  this.timeout(300_000);

  it('runs a sweep with every kind of child and saves each history', async () => {
    const llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-record-'));
    const bucket = uniqueName('record');
    const providerId = 'fake';
    const seedPool = await importDemoSeeds(bucket);
    const job = { runner: 'local' as const, image: 'local', command: FAKE_JOB_COMMAND, gpus: 1, heartbeatSeconds: 5 };
    const base = smallSpec({
      bucket,
      seedPool,
      llmUrl: llm.url,
      sweepId: 'replay-fixture' /* a fresh server per run: no collision */,
      providerId,
      counts: 1,
    });
    const spec = {
      ...base,
      metrics: fakeMetrics(providerId, 2),
      students: [
        {
          id: 'olmo',
          model: 'org/olmo',
          family: 'olmo',
          anchors: { base: 'org/olmo-base', reference: 'org/olmo-ref' },
        },
        { id: 'gemma', model: 'org/gemma', family: 'gemma', languages: ['de'] },
      ],
      training: { ...job, env: { FAKE_JOB_SLEEP_MS: '50' } },
      evaluation: { ...job, dataUri: `s3://${bucket}/benchmarks/` },
    };
    const plan = planSweep(parseSweepSpec(spec));
    const workers = await startWorkers([providerId], undefined, { runners: { local: new LocalJobRunner(jobsDir) } });
    const client = getStack().env.client;
    try {
      const r = await client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      assert.equal(r.students.length, 6, 'olmo on de and es, gemma on de, for both teachers');
      assert.ok(r.report, 'scored');
      // 1 sweep + 4 cells + 4 metrics + 6 students + 2 anchors + 6 × 2 student jobs + 2 × 2 anchor jobs.
      const expected = 1 + 4 + 4 + 6 + 2 + 12 + 4;
      const count = async () => {
        let n = 0;
        for await (const _ of client.workflow.list({ query: `SweepId = "${plan.sweepId}"` })) n++;
        return n;
      };
      await until(async () => (await count()) === expected, 20_000, 'visibility of every workflow');
      mkdirSync(OUT, { recursive: true });
      const index: { file: string; workflowId: string; workflowType: string }[] = [];
      for await (const { workflowId, history } of sweepHistories(client, plan.sweepId)) {
        // One of each kind is enough (the others differ in names only): the sweep and teacher-a's German
        // cell with its metrics, olmo student, train and eval jobs, and the German anchors with their jobs.
        if (workflowId !== plan.workflowId && !KEEP.some((k) => workflowId.includes(k))) continue;
        const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
        const workflowType = started?.workflowType?.name ?? 'unknown';
        const file = `${kindOf(workflowType)}-${workflowId.replace(/[^A-Za-z0-9=.-]+/g, '_')}.json`;
        writeFileSync(path.join(OUT, file), historyToJSON(history) + '\n');
        index.push({ file, workflowId, workflowType });
      }
      index.sort((a, b) => (a.file < b.file ? -1 : 1));
      writeFileSync(path.join(OUT, 'index.json'), JSON.stringify(index, null, 2) + '\n');
    } finally {
      await workers.stop();
      await llm.stop();
    }
  });
});

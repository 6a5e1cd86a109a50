import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { LocalJobRunner } from '../../src/jobs/local';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { sweepWorkflow } from '../../src/workflows';
import { FAKE_JOB_COMMAND, importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { getStack } from '../support/stack';

/** The student stage: per dataset × student, a training job then an evaluation job, through the job runner. */
describe('student stage through the job runner', function () {
  this.timeout(120_000);

  it('runs one job per dataset × student and records each result', async () => {
    const llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-students-'));
    const bucket = uniqueName('students');
    const providerId = uniqueName('p');
    const seedPool = await importDemoSeeds(bucket);
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 1 });
    const spec = {
      ...base,
      teachers: [base.teachers[0]!],
      students: [
        { id: 'olmo', model: 'allenai/Olmo-3-1025-7B', family: 'olmo' },
        // Paper: the other families train on a subset of the languages.
        { id: 'gemma', model: 'google/gemma-3-4b-pt', family: 'gemma', languages: ['de'] },
      ],
      training: {
        runner: 'local' as const,
        image: 'local',
        command: FAKE_JOB_COMMAND,
        env: { FAKE_JOB_SLEEP_MS: '100' },
        gpus: 1,
        heartbeatSeconds: 5,
      },
      evaluation: {
        env: { FAKE_JOB_SCORE: '0.42' },
        runner: 'local' as const,
        image: 'local',
        command: FAKE_JOB_COMMAND,
        dataUri: `s3://${bucket}/benchmarks/`,
        gpus: 1,
        heartbeatSeconds: 5,
      },
    };
    const plan = planSweep(parseSweepSpec(spec));
    const workers = await startWorkers([providerId], undefined, { runners: { local: new LocalJobRunner(jobsDir) } });
    try {
      const r = await getStack().env.client.workflow.execute(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      assert.equal(r.students.length, 3, 'olmo on de and es, gemma on de only');
      assert.deepEqual(
        new Set(r.students.map((s) => `${s.language}/${s.student}`)),
        new Set(['de/olmo', 'de/gemma', 'es/olmo']),
      );
      for (const s of r.students) {
        const train = (await storeFor(bucket).getJson(s.resultUri.replace(`s3://${bucket}/`, ''))) as {
          metrics: Record<string, number>;
        };
        assert.equal(train.metrics.steps, 3, 'the training result, read from its file');
        assert.equal(s.score, 0.42, "the evaluator's S for the cell's language");
      }
      const jobs = readdirSync(jobsDir).filter((d) => !d.startsWith('.'));
      assert.equal(jobs.length, 6, 'one training and one evaluation job per student');
    } finally {
      await workers.stop();
      await llm.stop();
    }
  });
});

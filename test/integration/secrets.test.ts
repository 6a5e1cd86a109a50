import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { renderJob } from '../../src/jobs/manifest';
import { JobSpecSchema } from '../../src/jobs/spec';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { FAKE_JOB_COMMAND, importDemoSeeds, smallSpec, storeFor, uniqueName } from '../support/fixtures';
import { sweepHistories } from '../support/history';
import { killHard, spawnWorker } from '../support/processes';
import { getStack } from '../support/stack';

/**
 * A sweep that uses an API key, S3 credentials and an HF token: none of the secret values may appear
 * in workflow histories, worker logs or any stored artifact. The spec names variables, never values.
 */
describe('secrets stay out of history, logs and artifacts', function () {
  this.timeout(120_000);
  const SECRETS = {
    API: 'sk-polyglot-test-9f8e7d6c5b4a',
    S3_SECRET: 'moto-secret-4c7a1e9b2d',
    HF: 'hf_polyglotTestToken1234567',
  };
  let llm: FakeLlmServer;
  let worker: ChildProcess | undefined;
  after(async () => {
    if (worker) await killHard(worker);
    await llm?.stop();
  });

  it('scans every history event, log line and S3 object of a finished sweep', async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'], requireApiKey: SECRETS.API });
    await llm.start();
    const bucket = uniqueName('secrets');
    const providerId = uniqueName('p');
    const taskQueue = uniqueName('tq');
    const seedPool = await importDemoSeeds(bucket);
    const spec = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId, counts: 2 });
    spec.providers[0]!.apiKeyEnv = 'POLYGLOT_PROVIDER_KEY_TEST';
    // The student side too: jobs get the HF token and S3 key by reference only (Kubernetes Secret name
    // and key; under the local runner, the worker variable the operator maps it to).
    const job = {
      runner: 'local' as const,
      image: 'local',
      command: FAKE_JOB_COMMAND,
      gpus: 1,
      heartbeatSeconds: 5,
      secretEnv: [
        { name: 'HF_TOKEN', secretName: 'polyglot-hf', key: 'token' },
        { name: 'AWS_SECRET_ACCESS_KEY', secretName: 'polyglot-s3', key: 'secret-access-key' },
      ],
    };
    Object.assign(spec, {
      teachers: [spec.teachers[0]!],
      students: [{ id: 'stu', model: 'org/student', anchors: { base: 'org/base', reference: 'org/ref' } }],
      training: job,
      evaluation: { ...job, dataUri: `s3://${bucket}/benchmarks/` },
    });
    const plan = planSweep(parseSweepSpec(spec));
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-secrets-jobs-'));

    let logs = '';
    worker = await spawnWorker({
      POLYGLOT_TASK_QUEUE: taskQueue,
      POLYGLOT_PROVIDERS: providerId,
      POLYGLOT_PROVIDER_KEY_TEST: SECRETS.API,
      AWS_SECRET_ACCESS_KEY: SECRETS.S3_SECRET,
      HF_TOKEN: SECRETS.HF,
      POLYGLOT_LOCAL_SECRETS: 'polyglot-hf/token=HF_TOKEN,polyglot-s3/secret-access-key=AWS_SECRET_ACCESS_KEY',
      POLYGLOT_JOBS_DIR: jobsDir,
    });
    worker.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    const client = getStack().env.client;
    await client.workflow.execute('sweepWorkflow', { taskQueue, workflowId: plan.workflowId, args: [spec] });
    assert.equal(llm.stats().served, plan.totalRequested, 'the key was sent: every call was served');
    const jobFiles = readdirSync(jobsDir, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    assert.ok(jobFiles.length >= 8, 'the student jobs ran');

    // Histories of the sweep and every cell.
    const haystacks: [string, string][] = [];
    for await (const { workflowId, history } of sweepHistories(client, plan.sweepId)) {
      haystacks.push([`history ${workflowId}`, JSON.stringify(historyToJSON(history))]);
    }
    assert.ok(haystacks.length >= 5, `found ${haystacks.length} histories`);
    haystacks.push(['worker log', logs]);
    // Every object in the sweep's bucket.
    const store = storeFor(bucket);
    for (const key of await store.list('')) haystacks.push([`s3 ${key}`, (await store.getText(key)) ?? '']);
    // The local runner's job records (spec, pid, exit code, log) and the Kubernetes manifest each job
    // spec in history would render to.
    for (const f of jobFiles) {
      const file = path.join(f.parentPath, f.name);
      haystacks.push([`job file ${file}`, readFileSync(file, 'utf8')]);
      if (f.name === 'spec.json') {
        const rendered = renderJob(JobSpecSchema.parse(JSON.parse(readFileSync(file, 'utf8'))), 'polyglot');
        haystacks.push([`manifest of ${file}`, JSON.stringify(rendered)]);
        assert.ok(JSON.stringify(rendered).includes('"secretKeyRef":{"name":"polyglot-hf","key":"token"}'));
      }
    }
    assert.ok(
      haystacks.some(([, text]) => text.includes('POLYGLOT_PROVIDER_KEY_TEST')),
      'the variable name is recorded (as intended)',
    );
    for (const [where, text] of haystacks) {
      for (const [name, secret] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(secret), `${name} secret found in ${where}`);
      }
    }
  });
});

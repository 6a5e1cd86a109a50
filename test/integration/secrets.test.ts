import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { FakeLlmServer } from '../../src/llm/fake-server';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec } from '../../src/spec/sweep';
import { importDemoSeeds, smallSpec, storeFor, uniqueName } from '../support/fixtures';
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
    spec.providers[0]!.apiKeyEnv = 'POLYGLOT_TEST_API_KEY';
    const plan = planSweep(parseSweepSpec(spec));

    let logs = '';
    worker = await spawnWorker({
      POLYGLOT_TASK_QUEUE: taskQueue,
      POLYGLOT_PROVIDERS: providerId,
      POLYGLOT_TEST_API_KEY: SECRETS.API,
      AWS_SECRET_ACCESS_KEY: SECRETS.S3_SECRET,
      HF_TOKEN: SECRETS.HF,
    });
    worker.stdout!.on('data', (d: Buffer) => (logs += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (logs += d.toString()));
    const client = getStack().env.client;
    await client.workflow.execute('sweepWorkflow', { taskQueue, workflowId: plan.workflowId, args: [spec] });
    assert.equal(llm.stats().served, plan.totalRequested, 'the key was sent: every call was served');

    // Histories of the sweep and every cell.
    const haystacks: [string, string][] = [];
    for await (const wf of client.workflow.list({ query: `SweepId = "${plan.sweepId}"` })) {
      const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      haystacks.push([`history ${wf.workflowId}`, JSON.stringify(historyToJSON(history))]);
    }
    assert.ok(haystacks.length >= 5, `found ${haystacks.length} histories`);
    haystacks.push(['worker log', logs]);
    // Every object in the sweep's bucket.
    const store = storeFor(bucket);
    for (const key of await store.list('')) haystacks.push([`s3 ${key}`, (await store.getText(key)) ?? '']);
    assert.ok(
      haystacks.some(([, text]) => text.includes('POLYGLOT_TEST_API_KEY')),
      'the variable name is recorded (as intended)',
    );
    for (const [where, text] of haystacks) {
      for (const [name, secret] of Object.entries(SECRETS)) {
        assert.ok(!text.includes(secret), `${name} secret found in ${where}`);
      }
    }
  });
});

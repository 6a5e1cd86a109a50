import assert from 'node:assert/strict';
import { WorkflowFailedError } from '@temporalio/client';
import { FakeLlmServer, type FakeFault } from '../support/fake-server';
import type { DatasetManifest } from '../../src/activities/types';
import { sha256Hex } from '../../src/common/hash';
import { planSweep } from '../../src/spec/plan';
import { templateHashOf } from '../../src/spec/templates';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { sweepWorkflow } from '../../src/workflows';
import type { SweepProgress } from '../../src/workflows/shared';
import { importDemoSeeds, smallSpec, startWorkers, storeFor, uniqueName } from '../support/fixtures';
import { until } from '../support/processes';
import { getStack } from '../support/stack';

describe('LLM server failures, budget, pause and cancel', function () {
  this.timeout(120_000);
  let llm: FakeLlmServer;
  let bucket: string;
  let seedPool: string;
  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    bucket = uniqueName('faults');
    seedPool = await importDemoSeeds(bucket);
  });
  after(async () => llm.stop());
  beforeEach(() => {
    llm.resetStats();
    llm.setLatency(0);
  });

  /** One teacher, one language, `n` respond seeds: each fault hits a known request. */
  function tinySpec(n: number, providerId: string, extra: Partial<SweepSpecInput> = {}): SweepSpecInput {
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId });
    return {
      ...base,
      teachers: [base.teachers[0]!],
      languages: ['de'],
      strategies: { respond: { count: n } },
      ...extra,
    };
  }

  async function runSweep(spec: SweepSpecInput) {
    const providerId = spec.providers[0]!.id;
    const workers = await startWorkers([providerId]);
    const plan = planSweep(parseSweepSpec(spec));
    const started = Date.now();
    try {
      const result = await getStack()
        .env.client.workflow.execute(sweepWorkflow, {
          taskQueue: workers.taskQueue,
          workflowId: plan.workflowId,
          args: [spec],
        })
        .then(
          (r) => ({ ok: true as const, r }),
          (e: unknown) => ({ ok: false as const, e }),
        );
      const manifest = await storeFor(bucket).getJson<DatasetManifest>(
        keys.datasetManifest(keys.dataset('polyglot', plan.cells[0]!.datasetKey)),
      );
      return { result, manifest, elapsedMs: Date.now() - started, plan };
    } finally {
      await workers.stop();
    }
  }

  const retried: [string, FakeFault[]][] = [
    ['HTTP 500 bursts', [{ kind: '500' }, { kind: '500' }, { kind: '500' }]],
    ['a body that is not JSON', [{ kind: 'garbage' }]],
    ['a request that never answers (client timeout)', [{ kind: 'timeout' }]],
  ];
  for (const [name, faults] of retried) {
    it(`retries ${name} through Temporal and completes with every example`, async () => {
      llm.injectFaults(faults);
      const spec = tinySpec(4, uniqueName('p'));
      spec.providers[0]!.timeoutSeconds = 1;
      const { result, manifest } = await runSweep(spec);
      assert.ok(result.ok, String(!result.ok && result.e));
      assert.equal(manifest?.produced, 4);
      assert.equal(llm.stats().served, 4 + repeats(llm));
      assert.equal(llm.stats().faulted, faults.length);
    });
  }

  it('waits out 429 Retry-After before the next attempt', async () => {
    llm.injectFaults([{ kind: '429', retryAfterSeconds: 3 }]);
    const { result, manifest, elapsedMs } = await runSweep(tinySpec(1, uniqueName('p')));
    assert.ok(result.ok);
    assert.equal(manifest?.produced, 1);
    // The spec's own backoff is 0.2 s; only honouring Retry-After makes the sweep take ≥ 3 s.
    assert.ok(elapsedMs >= 3000, `finished after ${elapsedMs} ms, before Retry-After`);
    assert.equal(llm.stats().chatCompletions, 2);
  });

  it('counts truncated JSON and empty answers as failures instead of crashing or retrying', async () => {
    llm.injectFaults([{ kind: 'truncated' }, { kind: 'empty' }]);
    const spec = tinySpec(0, uniqueName('p'), { strategies: { generate: { count: 4 } }, checkpointEvery: 1 });
    const { result, manifest } = await runSweep(spec);
    assert.ok(result.ok);
    assert.deepEqual(
      {
        requested: manifest?.requested,
        produced: manifest?.produced,
        parse: manifest?.parseFailures,
        empty: manifest?.emptyResponses,
        truncated: manifest?.truncated,
        truncatedDropped: manifest?.truncatedDropped,
      },
      // The cut JSON answer is a parse failure and, apart, a truncation: the manifest says why it failed.
      { requested: 4, produced: 2, parse: 1, empty: 1, truncated: 1, truncatedDropped: 1 },
    );
    assert.deepEqual(
      {
        truncated: manifest?.perStrategy.generate?.truncated,
        dropped: manifest?.perStrategy.generate?.truncatedDropped,
      },
      { truncated: 1, dropped: 1 },
    );
    assert.equal(llm.stats().chatCompletions, 4, 'no retries for bad model output');
  });

  it('counts a cut free-text answer as truncated but keeps it (respond), per strategy', async () => {
    llm.injectFaults([{ kind: 'truncated' }]);
    const spec = tinySpec(0, uniqueName('p'), { strategies: { respond: { count: 3 } }, checkpointEvery: 1 });
    const { result, manifest } = await runSweep(spec);
    assert.ok(result.ok);
    assert.deepEqual(
      {
        produced: manifest?.produced,
        parse: manifest?.parseFailures,
        truncated: manifest?.truncated,
        truncatedDropped: manifest?.truncatedDropped,
        respond: manifest?.perStrategy.respond?.truncated,
      },
      { produced: 3, parse: 0, truncated: 1, truncatedDropped: 0, respond: 1 },
    );
    const progress = (result.ok ? result.r : undefined) as { cells?: { truncated?: number }[] } | undefined;
    assert.equal(progress?.cells?.[0]?.truncated, 1, 'the sweep result carries the count to status and report');
  });

  for (const kind of ['401', '400'] as const) {
    it(`fails the cell without retrying on HTTP ${kind}`, async () => {
      llm.injectFaults([{ kind }]);
      const spec = tinySpec(1, uniqueName('p'));
      const { result, manifest } = await runSweep(spec);
      assert.ok(!result.ok && result.e instanceof WorkflowFailedError);
      assert.match(
        String((result.e as WorkflowFailedError).cause?.message),
        kind === '401' ? /LlmAuth: 401 authentication/ : /LlmBadRequest: 400 bad request/,
      );
      assert.equal(manifest, undefined, 'no manifest for a failed cell');
      assert.equal(llm.stats().chatCompletions, 1);
    });
  }

  it('fails fast, with no call, when the API key variable is missing on the worker', async () => {
    const spec = tinySpec(1, uniqueName('p'));
    spec.providers[0]!.apiKeyEnv = 'POLYGLOT_PROVIDER_KEY_NOT_SET';
    const { result } = await runSweep(spec);
    assert.ok(!result.ok);
    assert.match(
      String((result.e as WorkflowFailedError).cause?.message),
      /MissingSecret: environment variable POLYGLOT_PROVIDER_KEY_NOT_SET .* is not set on the worker/,
    );
    assert.equal(llm.stats().chatCompletions, 0);
  });

  it('pauses on the budget cap and continues when resumed with a higher cap', async () => {
    const providerId = uniqueName('p');
    llm.setLatency(200);
    const spec = tinySpec(20, providerId, { shardSize: 1, checkpointEvery: 1, budget: { maxTokens: 1 } });
    const workers = await startWorkers([providerId]);
    try {
      const plan = planSweep(parseSweepSpec(spec));
      const handle = await getStack().env.client.workflow.start(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      let progress: SweepProgress | undefined;
      await until(
        async () => {
          progress = await handle.query<SweepProgress>('progress');
          return progress.paused;
        },
        30_000,
        'budget pause',
      );
      assert.match(progress!.pauseReason ?? '', /budget reached: \d+ tokens ≥ maxTokens 1/);
      const callsWhenPaused = llm.stats().chatCompletions;
      assert.ok(callsWhenPaused < 20, 'paused before finishing');
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(
        llm.stats().chatCompletions <= callsWhenPaused + 8,
        'only shards already in flight finish while paused',
      );
      await handle.signal('resume', { maxTokens: 1_000_000 });
      const r = await handle.result();
      assert.equal(r.totals.examples, 20);
    } finally {
      await workers.stop();
    }
  });

  it('cancels a running sweep: cells cancelled, no manifest presented as complete', async () => {
    const providerId = uniqueName('p');
    llm.setLatency(300);
    const spec = tinySpec(8, providerId, { shardSize: 2, checkpointEvery: 1 });
    const workers = await startWorkers([providerId]);
    try {
      const plan = planSweep(parseSweepSpec(spec));
      const client = getStack().env.client;
      const handle = await client.workflow.start(sweepWorkflow, {
        taskQueue: workers.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
      });
      await until(() => llm.stats().served >= 2, 30_000, 'first calls');
      await handle.cancel();
      await assert.rejects(handle.result(), WorkflowFailedError);
      assert.equal((await handle.describe()).status.name, 'CANCELLED');
      const child = await client.workflow.getHandle(plan.cells[0]!.cellId).describe();
      assert.equal(child.status.name, 'CANCELLED');
      const store = storeFor(bucket);
      assert.equal(
        await store.exists(keys.datasetManifest(keys.dataset('polyglot', plan.cells[0]!.datasetKey))),
        false,
      );
      const after = llm.stats().chatCompletions;
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(llm.stats().chatCompletions, after, 'calls continued after cancel');
    } finally {
      await workers.stop();
    }
  });
  it("sends a spec's own prompt file, records its hash on every row, and refuses a stored file without its placeholder", async () => {
    const store = storeFor(bucket);
    const text = 'EIGENE VORLAGE ({{language}}): {{prompt}}';
    const key = keys.template('polyglot', sha256Hex(text));
    await store.putText(key, text);
    const spec = tinySpec(2, uniqueName('p'), { templates: { respond: `s3://${bucket}/${key}` } });
    const { result, manifest, plan } = await runSweep(spec);
    assert.ok(result.ok, String(!result.ok && result.e));
    assert.equal(manifest?.produced, 2);
    const shard = await store.getText(
      keys.shardData(keys.dataset('polyglot', plan.cells[0]!.datasetKey), 'respond', 0),
    );
    const rows = shard!
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { synth_prompt: string; template_hash: string });
    const hash = templateHashOf('v1', { respond: `s3://${bucket}/${key}` });
    assert.equal(plan.cells[0]!.keyManifest.templateHash, hash);
    for (const r of rows) {
      assert.match(r.synth_prompt, /^EIGENE VORLAGE \(German\): /);
      assert.equal(r.template_hash, hash);
    }

    // Started without the CLI, a stored file that lacks {{prompt}} fails the cell at once, naming the field.
    const bad = 'Antworte auf {{language}}.';
    const badKey = keys.template('polyglot', sha256Hex(bad));
    await store.putText(badKey, bad);
    const failed = await runSweep(tinySpec(1, uniqueName('p'), { templates: { respond: `s3://${bucket}/${badKey}` } }));
    assert.ok(!failed.result.ok);
    assert.match(
      String((failed.result.e as WorkflowFailedError).cause?.message ?? failed.result.e),
      /templates\.respond: .*lacks \{\{prompt\}\}/,
    );
  });
});

function repeats(llm: FakeLlmServer): number {
  let n = 0;
  for (const c of llm.stats().byPrompt.values()) n += Math.max(0, c - 1);
  return n;
}

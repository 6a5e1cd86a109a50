import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { explainPlan, renderGrid } from '../../src/cli/sweep';
import { LocalJobRunner } from '../../src/jobs/local';
import { FakeLlmServer } from '../support/fake-server';
import { planSweep, type SweepPlan } from '../../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { digestBytes, getSealed, type Digest } from '../../src/storage/integrity';
import { StoreRegistry, makeS3Client, parseS3Uri, type S3Store } from '../../src/storage/s3';
import { sweepWorkflow } from '../../src/workflows';
import { trainJobId } from '../../src/common/workflow-ids';
import type { SweepProgress } from '../../src/workflows/shared';
import type { SweepResult } from '../../src/workflows/sweep';
import {
  FAKE_JOB_COMMAND,
  fakeMetrics,
  importDemoSeeds,
  smallSpec,
  startWorkers,
  storeFor,
  uniqueName,
} from '../support/fixtures';
import { getStack } from '../support/stack';

/**
 * Integrity (issue #16): damage one kind of stored artifact of a finished sweep — truncate it, flip a
 * byte, delete it — resume, and check that the final artifacts equal the undamaged run's, that the
 * number of repeated calls (LLM requests counted at the fake server, jobs counted in the runner's
 * folder) is exactly what the damage implies, and that the repair shows in `sweep status`.
 */

interface Print {
  shards: Record<string, string>;
  manifest: unknown;
  metrics: Record<string, unknown>;
  intrinsic: unknown;
  students: Record<string, number | undefined>;
}

/** The artifacts that matter, without their timestamps and run ids. */
async function print(store: S3Store, plan: SweepPlan, r: SweepResult): Promise<Print> {
  const cell = plan.cells[0]!;
  const ds = keys.dataset('polyglot', cell.datasetKey);
  const shards: Record<string, string> = {};
  for (const k of await store.list(`${ds}/shards/`)) if (k.endsWith('.jsonl')) shards[k] = (await store.getText(k))!;
  const m = (await store.getJson<Record<string, unknown>>(keys.datasetManifest(ds)))!;
  const { createdAt: _a, createdBy: _b, integrity: _c, ...manifest } = m;
  const metrics: Record<string, unknown> = {};
  for (const k of await store.list(`polyglot/metrics/${cell.datasetKey}/`)) {
    if (!/\/(diversity|judge|perplexity|lengths|language)-[0-9a-f]+\.json$/.test(k)) continue;
    const doc = (await store.getJson<{ values: unknown; detail?: unknown }>(k))!;
    metrics[k] = { values: doc.values, detail: doc.detail };
  }
  const summary = (await store.getJson<{ intrinsic: { intrinsicUri: string }[] }>(parseS3Uri(r.summaryUri).key))!;
  const intrinsic = (await store.getJson<{ intrinsic: unknown }>(parseS3Uri(summary.intrinsic[0]!.intrinsicUri).key))!
    .intrinsic;
  const students = Object.fromEntries(r.students.map((s) => [`${s.teacher}/${s.language}/${s.student}`, s.score]));
  return { shards, manifest, metrics, intrinsic, students };
}

async function truncate(store: S3Store, key: string, keep: (text: string) => number): Promise<void> {
  const text = (await store.getText(key))!;
  assert.ok(text.length > 4, `${key} exists`);
  await store.putText(key, text.slice(0, keep(text)));
}

/** Change one character in the middle for another of the same size: still valid JSON most of the time. */
async function flip(store: S3Store, key: string, at?: (text: string) => number): Promise<void> {
  const text = (await store.getText(key))!;
  let i = at ? at(text) : Math.floor(text.length / 2);
  while (!/[a-z0-9]/i.test(text[i]!)) i++;
  const c = text[i] === 'x' ? 'y' : text[i] === '0' ? '1' : /[0-9]/.test(text[i]!) ? '0' : 'x';
  await store.putText(key, text.slice(0, i) + c + text.slice(i + 1));
}

describe('integrity: damaged artifacts are discarded and rebuilt, costing only what they held', function () {
  this.timeout(300_000);
  let llm: FakeLlmServer;
  let workers: Awaited<ReturnType<typeof startWorkers>>;
  let store: S3Store;
  let spec: SweepSpecInput;
  let plan: SweepPlan;
  let jobsDir: string;
  let ref: Print;
  let ds: string;
  let result: SweepResult;

  // The fake server's metric-call counts are not reset with its other stats: count from a mark.
  let metricMark: Record<string, number> = {};
  const reset = () => {
    llm.resetStats();
    metricMark = llm.metricCallCounts();
  };
  const metricCalls = () =>
    Object.fromEntries(
      Object.entries(llm.metricCallCounts())
        .map(([k, v]) => [k, v - (metricMark[k] ?? 0)] as const)
        .filter(([, v]) => v > 0),
    );
  const calls = () => llm.stats().chatCompletions + Object.values(metricCalls()).reduce((a, b) => a + b, 0);
  /** Each job's folder and when it was started: a job run again under its own name starts anew. */
  const jobStarts = () =>
    new Map(
      readdirSync(jobsDir)
        .filter((d) => !d.startsWith('.'))
        .map((d) => [d, statSync(path.join(jobsDir, d, 'spec.json')).mtimeMs] as const),
    );
  const jobs = () => jobStarts().size;
  const jobsRunSince = (before: Map<string, number>) => [...jobStarts()].filter(([d, t]) => before.get(d) !== t).length;
  const run = async () =>
    (result = await getStack().env.client.workflow.execute(sweepWorkflow, {
      taskQueue: workers.taskQueue,
      workflowId: plan.workflowId,
      args: [spec],
    }));
  const listed = async (prefix: string, re: RegExp) => (await store.list(prefix)).filter((k) => re.test(k));

  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-integrity-jobs-'));
    const bucket = uniqueName('integrity');
    const providerId = uniqueName('p');
    const seedPool = await importDemoSeeds(bucket);
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('sw'), providerId });
    const job = { runner: 'local' as const, image: 'local', command: FAKE_JOB_COMMAND, gpus: 1, heartbeatSeconds: 5 };
    spec = {
      ...base,
      teachers: [base.teachers[0]!],
      languages: ['de'],
      strategies: { generate: { count: 4 }, respond: { count: 4 } },
      // Two lines per part-file: a torn last line leaves a good first line to keep.
      shardSize: 2,
      checkpointEvery: 2,
      metrics: fakeMetrics(providerId, 4, 2),
      students: [{ id: 'stu', family: 'stu', model: 'org/student' }],
      training: { ...job, env: { FAKE_JOB_SLEEP_MS: '50' } },
      evaluation: { ...job, env: { FAKE_JOB_SCORE: '0.42' }, dataUri: `s3://${bucket}/benchmarks/` },
    };
    plan = planSweep(parseSweepSpec(spec));
    store = storeFor(bucket);
    ds = keys.dataset('polyglot', plan.cells[0]!.datasetKey);
    workers = await startWorkers([providerId], undefined, { runners: { local: new LocalJobRunner(jobsDir) } });
    reset();
    await run();
    ref = await print(store, plan, result);
    assert.equal(Object.keys(ref.shards).length, 4, '2 strategies × 2 shards');
    assert.equal(jobs(), 2, 'one training and one evaluation job');
  });
  after(async () => {
    await workers?.stop();
    await llm?.stop();
  });

  /**
   * Damage, resume, compare. `calls`: requests the damage implies; `repaired`: the key that `sweep status`
   * must name as repaired.
   */
  async function scenario(damage: () => Promise<string>, want: { calls: number; jobs?: number; miss?: boolean }) {
    const key = await damage();
    if (want.miss) {
      // `sweep plan` must not call a dataset with a damaged manifest or shard a hit.
      const stores = new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1'));
      const { verdicts } = await explainPlan(parseSweepSpec(spec), stores);
      assert.equal(verdicts[0]!.hit, false, verdicts[0]!.why.join('; '));
      assert.match(verdicts[0]!.why.join('\n'), /damaged|miss/);
    }
    reset();
    const jobsBefore = jobStarts();
    await run();
    assert.deepEqual(await print(store, plan, result), ref, 'the same artifacts as the undamaged run');
    assert.equal(calls(), want.calls, 'repeated calls');
    assert.equal(jobsRunSince(jobsBefore), want.jobs ?? 0, 'jobs run again');
    const progress = await getStack().env.client.workflow.getHandle(plan.workflowId).query<SweepProgress>('progress');
    const status = renderGrid(progress);
    assert.ok(status.includes(`repaired ${plan.cells[0]!.cellId}: ${key}:`), `status names ${key}:\n${status}`);
    return status;
  }

  const firstShard = () => keys.shardData(ds, 'generate', 0);
  const firstMarker = () => keys.shardMarker(ds, 'generate', 0);
  const manifestKey = () => keys.datasetManifest(ds);

  it('shard file truncated: plan says miss; rebuilt from its part-files with no call', async () => {
    await scenario(
      async () => {
        await truncate(store, firstShard(), (t) => t.length - 7);
        return firstShard();
      },
      { calls: 0, miss: true },
    );
  });

  it('shard file corrupted (one byte) and shard file deleted: rebuilt with no call', async () => {
    // One byte changed keeps the size: `sweep plan` (seal and sizes only, no downloads) cannot tell; the
    // resume verifies the digest and rebuilds.
    await scenario(
      async () => {
        await flip(store, firstShard());
        return firstShard();
      },
      { calls: 0 },
    );
    await scenario(
      async () => {
        await store.delete(keys.shardData(ds, 'respond', 1));
        return keys.shardData(ds, 'respond', 1);
      },
      { calls: 0, miss: true },
    );
  });

  it('shard marker truncated, corrupted, deleted: rewritten from the sealed manifest, no call, even without part-files', async () => {
    const original = (await store.getJson<Record<string, unknown>>(firstMarker()))!;
    const partsPrefix = keys.shardPartsPrefix(ds, 'generate', 0);
    const parts = new Map<string, string>();
    for (const k of await store.list(partsPrefix)) parts.set(k, (await store.getText(k))!);
    assert.ok(parts.size > 0, 'the shard has part-files');
    for (const damage of [
      () => truncate(store, firstMarker(), (t) => t.length / 2),
      () => flip(store, firstMarker(), (t) => t.indexOf('"produced"') + 12),
      async () => {
        // Without part-files a rebuild from them would have to call again: the manifest is what vouches.
        await store.delete(firstMarker());
        for (const k of parts.keys()) await store.delete(k);
      },
    ]) {
      await scenario(
        async () => {
          await damage();
          return firstMarker();
        },
        // The sealed manifest vouches for the shard: `sweep plan` calls the cell a hit.
        { calls: 0 },
      );
      const back = (await store.getJson<Record<string, unknown>>(firstMarker()))!;
      const { integrity: _a, costUsd: costBack, ...rest } = back;
      const { integrity: _b, costUsd: costWas, ...was } = original;
      assert.deepEqual(rest, was, 'the marker has its own counts again (the only marker of its strategy lost)');
      assert.ok(Math.abs((costBack as number) - (costWas as number)) < 1e-9);
    }
    for (const [k, text] of parts) await store.putText(k, text);
  });

  it('dataset manifest truncated, corrupted, deleted: rebuilt from the verified markers with no call', async () => {
    for (const damage of [
      () => truncate(store, manifestKey(), (t) => t.length - 40),
      () => flip(store, manifestKey(), (t) => t.indexOf('"produced"') + 12),
    ]) {
      await scenario(
        async () => {
          await damage();
          return manifestKey();
        },
        { calls: 0, miss: true },
      );
    }
    // A deleted manifest is simply missing: rebuilt, nothing to report as repaired.
    await store.delete(manifestKey());
    reset();
    await run();
    assert.deepEqual(await print(store, plan, result), ref);
    assert.equal(calls(), 0);
  });

  it('part-files (a shard being rebuilt): a torn last line costs one call, a corrupted line one, a deleted part-file two', async () => {
    // The shard is re-made from its parts only when its marker is gone (a crash before the marker).
    const part = `${keys.shardPartsPrefix(ds, 'generate', 1)}part-00000.jsonl`;
    const lose = async () => {
      await store.delete(keys.shardMarker(ds, 'generate', 1));
      await store.delete(keys.shardData(ds, 'generate', 1));
      await store.delete(manifestKey());
    };
    const torn = await scenario(
      async () => {
        await truncate(store, part, (t) => t.length - 10);
        await lose();
        return part;
      },
      { calls: 1 },
    );
    assert.match(torn, /dropped line 2: torn or not JSON/);
    // The part-file was rewritten whole: its good first line, and the re-made item in a new part-file.
    assert.equal((await store.getText(part))!.trim().split('\n').length, 1);
    const corrupt = await scenario(
      async () => {
        await flip(store, part, (t) => t.indexOf('"content"') + 12);
        await lose();
        return part;
      },
      { calls: 1 },
    );
    assert.match(corrupt, /dropped line 1: checksum mismatch/);
    // Deleted: nothing to report (a missing part is work not done yet); both its items are asked again.
    for (const k of await store.list(keys.shardPartsPrefix(ds, 'generate', 1))) await store.delete(k);
    await lose();
    reset();
    await run();
    assert.deepEqual(await print(store, plan, result), ref);
    assert.equal(calls(), 2);
  });

  it('metric results: a truncated one is recomputed from its part-files (no call), a deleted one alone', async () => {
    const judge = (await listed(`polyglot/metrics/${plan.cells[0]!.datasetKey}/`, /\/judge-[0-9a-f]+\.json$/))[0]!;
    await scenario(
      async () => {
        await truncate(store, judge, (t) => t.length / 3);
        return judge;
      },
      { calls: 0 },
    );
    // The judge's per-item part-files damaged too: one torn line, one judge call.
    const parts = await listed(judge.replace(/\.json$/, '/parts/'), /\.jsonl$/);
    await scenario(
      async () => {
        await flip(store, judge);
        await truncate(store, parts[parts.length - 1]!, (t) => t.length - 5);
        return judge;
      },
      { calls: 1 },
    );
    // Diversity keeps no part-files: its embeddings (prompts and responses, one batch each) are asked again.
    const diversity = (
      await listed(`polyglot/metrics/${plan.cells[0]!.datasetKey}/`, /\/diversity-[0-9a-f]+\.json$/)
    )[0]!;
    await flip(store, diversity, (t) => t.indexOf('"values"') + 20);
    reset();
    await run();
    assert.deepEqual(await print(store, plan, result), ref);
    assert.deepEqual(metricCalls(), { '/v1/embeddings': 2 });
    assert.equal(llm.stats().chatCompletions, 0);
  });

  it('intrinsic record truncated or corrupted: rewritten, no call', async () => {
    const summary = (await store.getJson<{ intrinsic: { intrinsicUri: string }[] }>(
      parseS3Uri(result.summaryUri).key,
    ))!;
    const key = parseS3Uri(summary.intrinsic[0]!.intrinsicUri).key;
    await scenario(
      async () => {
        await truncate(store, key, (t) => t.length - 3);
        return key;
      },
      { calls: 0 },
    );
    await scenario(
      async () => {
        await flip(store, key, (t) => t.indexOf('"intrinsic"') + 20);
        return key;
      },
      { calls: 0 },
    );
    // Rewritten from cached metric results, it still records each result's size and digest, and they hold.
    const record = (await store.getJson<{ metrics: ({ uri: string } & Partial<Digest>)[] }>(key))!;
    assert.ok(record.metrics.length > 0);
    for (const m of record.metrics) {
      assert.ok(m.sha256 && m.size, `${m.uri} has its digest in the intrinsic record`);
      assert.deepEqual(digestBytes((await store.getBytes(parseS3Uri(m.uri).key))!), { size: m.size, sha256: m.sha256 });
    }
  });

  it('job result truncated, corrupted or deleted: that job alone runs again', async () => {
    const resultKey = parseS3Uri(result.students[0]!.resultUri).key;
    for (const damage of [
      () => truncate(store, resultKey, (t) => t.length / 2),
      () => flip(store, resultKey, (t) => t.indexOf('"metrics"') + 14),
      () => store.delete(resultKey),
    ]) {
      await damage();
      reset();
      const before = jobStarts();
      await run();
      assert.deepEqual(await print(store, plan, result), ref);
      assert.equal(calls(), 0);
      assert.equal(jobsRunSince(before), 1, 'the training job ran again, the evaluation was reused');
      const progress = await getStack().env.client.workflow.getHandle(plan.workflowId).query<SweepProgress>('progress');
      assert.match(renderGrid(progress), new RegExp(`repaired ${plan.cells[0]!.cellId}: ${resultKey}: stored result`));
      // The discard is in the job workflow's history: the watcher's result names the damaged result.
      const trainWf = trainJobId(
        { sweepId: plan.sweepId, teacherId: plan.cells[0]!.teacherId, language: plan.cells[0]!.language },
        'stu',
      );
      const history = await getStack().env.client.workflow.getHandle(trainWf).fetchHistory();
      const results = (history.events ?? []).flatMap((e) =>
        (e.activityTaskCompletedEventAttributes?.result?.payloads ?? []).map((p) =>
          Buffer.from(p.data ?? new Uint8Array()).toString('utf8'),
        ),
      );
      const completed = results.join('\n');
      assert.match(
        completed,
        new RegExp(`"repaired".*${resultKey.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*is damaged`),
      );
    }
  });

  it('a succeeded result whose watcher stopped before recording it is accepted and recorded: the job does not run again', async () => {
    // Failures are never recorded, so a retry's success can sit without a record when its watcher died
    // after the job wrote it and before the record: it is unverified, valid, and kept.
    const resultKey = parseS3Uri(result.students[0]!.resultUri).key;
    const recordKey = resultKey.replace(/result\.json$/, 'result.integrity.json');
    const good = (await store.getText(resultKey))!;
    await store.delete(recordKey);
    reset();
    const before = jobStarts();
    await run();
    assert.deepEqual(await print(store, plan, result), ref);
    assert.equal(jobsRunSince(before), 0, 'no job ran again');
    assert.equal(await store.getText(resultKey), good);
    const record = await getSealed<{ result: Digest; status?: string }>(store, recordKey);
    assert.ok(record.state === 'ok' && record.verified);
    assert.deepEqual(record.value, { result: digestBytes(good), status: 'succeeded' }, 'recorded as a success now');
  });

  it('a dataset written before integrity (unsealed, no digests, no line checks) is a plan hit and resumes with 0 calls', async () => {
    const saved = new Map<string, string>();
    const keep = async (k: string) => saved.set(k, (await store.getText(k))!);
    // The manifest without its seal and without `files`.
    await keep(manifestKey());
    const { integrity: _m, ...manifest } = (await store.getJson<Record<string, unknown>>(manifestKey()))!;
    const perStrategy = manifest.perStrategy as Record<string, Record<string, unknown>>;
    for (const s of Object.values(perStrategy)) delete s.files;
    await store.putText(manifestKey(), JSON.stringify(manifest, null, 2));
    // Markers without their seal and without `file`; part-file lines without `check`.
    for (const k of await listed(`${ds}/shards/`, /\.done\.json$/)) {
      await keep(k);
      const { integrity: _s, file: _f, ...marker } = (await store.getJson<Record<string, unknown>>(k))!;
      await store.putText(k, JSON.stringify(marker));
    }
    for (const k of await listed(`${ds}/parts/`, /\.jsonl$/)) {
      await keep(k);
      const lines = (await store.getText(k))!.split('\n').filter((l) => l.trim());
      const bare = lines.map((l) => {
        const { check: _c, ...line } = JSON.parse(l) as Record<string, unknown>;
        return JSON.stringify(line);
      });
      await store.putText(k, bare.join('\n') + '\n');
    }
    const stores = new StoreRegistry(makeS3Client(getStack().s3Endpoint, 'us-east-1'));
    const { verdicts } = await explainPlan(parseSweepSpec(spec), stores);
    assert.equal(verdicts[0]!.hit, true, verdicts[0]!.why.join('; '));
    reset();
    const before = jobStarts();
    await run();
    assert.equal(calls(), 0, 'no call');
    assert.equal(jobsRunSince(before), 0, 'no job');
    const now = await print(store, plan, result);
    assert.deepEqual(now.shards, ref.shards);
    assert.deepEqual(now.metrics, ref.metrics);
    assert.deepEqual(now.students, ref.students);
    const progress = await getStack().env.client.workflow.getHandle(plan.workflowId).query<SweepProgress>('progress');
    assert.doesNotMatch(renderGrid(progress), /repaired/, 'nothing older is taken for damage');
    for (const [k, text] of saved) await store.putText(k, text);
  });

  it('a parse error names the object and the line', async () => {
    const key = `${ds}/broken.jsonl`;
    await store.putText(key, '{"a":1}\n{"b":\n');
    await assert.rejects(store.getJson(key), (e: Error) => {
      assert.match(e.message, new RegExp(`s3://[^ ]+/${key} line 2: not valid JSON`));
      assert.equal(e.name, 'CorruptArtifact');
      return true;
    });
  });
});

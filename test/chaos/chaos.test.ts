import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CancelledFailure, Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { BatchV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { loadKubeConfig } from '../../src/jobs/kubernetes';
import { LABELS } from '../../src/jobs/manifest';
import { FakeLlmServer, type FakeFault } from '../support/fake-server';
import { planSweep, type SweepPlan } from '../../src/spec/plan';
import { rng } from '../../src/common/random';
import { parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { keys } from '../../src/storage/layout';
import { S3Store, makeS3Client } from '../../src/storage/s3';
import { SEARCH_ATTRIBUTES } from '../../src/workflows/shared';
import type { SweepResult } from '../../src/workflows/sweep';
import { FAKE_JOB_COMMAND, fakeMetrics, importDemoSeeds, smallSpec, uniqueName } from '../support/fixtures';
import { activityAttempts, activityFailures } from '../support/history';
import { createNamespace } from '../support/kube';
import { POD_EXEC_LABEL, PodExecutor } from '../support/pod-executor';
import { killHard, processEnv, runCommand, spawnTracked, spawnWorker, until } from '../support/processes';
import { ROOT, TOOLS, freePort, getStack, startKube } from '../support/stack';

/**
 * Fault injection (issue #6). Each scenario runs a small but complete sweep — generation, intrinsic
 * metrics, anchors, one student per cell (train → eval jobs under the local runner), score — with a
 * worker as a real process and a deterministic fake LLM server, injects a fault, and compares the final
 * artifacts with an undisturbed run's: the same example ids and counts, intrinsic metrics, student
 * scores and PG-Scores. Work is counted where it happens: LLM calls at the server, jobs in the runner's
 * folder (one per cell and attempt).
 */

const FAKE_JOB = FAKE_JOB_COMMAND;

interface Fingerprint {
  examples: Record<string, string[]>;
  intrinsic: Record<string, Record<string, number>>;
  students: Record<string, number | undefined>;
  pg: Record<string, number | null>;
}

async function fingerprint(store: S3Store, plan: SweepPlan, r: SweepResult): Promise<Fingerprint> {
  const examples: Fingerprint['examples'] = {};
  for (const cell of plan.cells) {
    const manifest = await store.getJson<{ produced: number; perStrategy: Record<string, { shards: string[] }> }>(
      keys.datasetManifest(keys.dataset('polyglot', cell.datasetKey)),
    );
    assert.ok(manifest, `no manifest for ${cell.cellId}`);
    const ids: string[] = [];
    for (const s of Object.values(manifest.perStrategy)) {
      for (const uri of s.shards) {
        const text = (await store.getText(uri.replace(/^s3:\/\/[^/]+\//, ''))) ?? '';
        for (const line of text.split('\n')) if (line.trim()) ids.push((JSON.parse(line) as { id: string }).id);
      }
    }
    assert.equal(ids.length, manifest.produced, `${cell.cellId}: the manifest counts what the shards hold`);
    assert.equal(new Set(ids).size, ids.length, `${cell.cellId}: no duplicate example`);
    examples[`${cell.teacherId}/${cell.language}`] = ids.sort();
  }
  const summary = (await store.getJson(r.summaryUri.replace(/^s3:\/\/[^/]+\//, ''))) as {
    intrinsic: { teacher: string; language: string; intrinsicUri: string }[];
  };
  const intrinsic: Fingerprint['intrinsic'] = {};
  for (const c of summary.intrinsic) {
    const doc = (await store.getJson(c.intrinsicUri.replace(/^s3:\/\/[^/]+\//, ''))) as {
      intrinsic: Record<string, number>;
    };
    intrinsic[`${c.teacher}/${c.language}`] = doc.intrinsic;
  }
  const students = Object.fromEntries(r.students.map((s) => [`${s.teacher}/${s.language}/${s.student}`, s.score]));
  const { scores } = (await store.getJson(`${r.report!.reportPrefix.replace(/^s3:\/\/[^/]+\//, '')}/scores.json`)) as {
    scores: { cells: { teacher: string; language: string; family?: string; pg_score?: number }[] };
  };
  const pg = Object.fromEntries(
    scores.cells.map((c) => [
      `${c.teacher}/${c.language}/${c.family}`,
      c.pg_score === undefined ? null : +c.pg_score.toFixed(12),
    ]),
  );
  return { examples, intrinsic, students, pg };
}

/** rclone's S3 server over a folder: unlike moto it keeps its objects when it is stopped and started. */
class RcloneS3 {
  child?: ChildProcess;
  constructor(
    readonly dir: string,
    readonly port: number,
  ) {}
  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    this.child = spawnTracked(
      path.join(TOOLS, 'rclone'),
      ['serve', 's3', '--addr', `127.0.0.1:${this.port}`, '--auth-key', 'test,test', this.dir],
      { env: { ...process.env, RCLONE_CONFIG: '/dev/null' }, stdio: 'ignore' },
    );
    await until(
      () =>
        fetch(this.endpoint).then(
          () => true,
          () => false,
        ),
      20_000,
      'rclone S3',
    );
  }
  async stop(): Promise<void> {
    if (this.child) await killHard(this.child);
    this.child = undefined;
  }
}

/** A Temporal dev server of the chaos suite's own, on a database file that outlives a kill. */
class TemporalDevServer {
  child?: ChildProcess;
  constructor(
    readonly dbFile: string,
    readonly port: number,
  ) {}
  get address(): string {
    return `127.0.0.1:${this.port}`;
  }
  async start(): Promise<void> {
    const attrs = SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
    this.child = spawnTracked(
      path.join(TOOLS, 'temporal'),
      ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(this.port), '--headless',
        '--db-filename', this.dbFile, '--log-level', 'error', ...attrs], // prettier-ignore
      { stdio: 'ignore' },
    );
    await until(
      async () => {
        try {
          const c = await Connection.connect({ address: this.address, connectTimeout: 1000 });
          await c.workflowService.getSystemInfo({});
          await c.close();
          return true;
        } catch {
          return false;
        }
      },
      60_000,
      'Temporal dev server',
    );
  }
  async stop(): Promise<void> {
    if (this.child) await killHard(this.child);
    this.child = undefined;
  }
}

describe('chaos: faults injected into a whole sweep', function () {
  this.timeout(900_000);
  let llm: FakeLlmServer;
  let s3: RcloneS3;
  let worker: ChildProcess | undefined;
  let baseline: Fingerprint | undefined;
  let baselineJobs = 0;
  let baselineCalls = 0;
  /** The reference run's setup and result: the damaged-artifacts scenario damages what it wrote. */
  let baselineRun: { s: Awaited<ReturnType<typeof setup>>; r: SweepResult } | undefined;

  before(async () => {
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
    s3 = new RcloneS3(mkdtempSync(path.join(tmpdir(), 'pg-chaos-s3-')), await freePort());
    await s3.start();
  });
  afterEach(async () => {
    if (worker) await killHard(worker);
    worker = undefined;
    llm.clearFaults();
    llm.setLatency(0);
  });
  after(async () => {
    await s3.stop();
    await llm.stop();
  });

  /** A fresh bucket, sweep and job folder; the same spec otherwise, so every run computes the same keys. */
  async function setup() {
    const bucket = uniqueName('chaos');
    mkdirSync(path.join(s3.dir, bucket));
    const store = new S3Store(makeS3Client(s3.endpoint, 'us-east-1'), bucket);
    const taskQueue = uniqueName('tq');
    const providerId = 'fake';
    // Seeds are imported into the chaos bucket through the harness store of that bucket.
    const seedPool = await importDemoSeeds(bucket, 'polyglot', store);
    const base = smallSpec({ bucket, seedPool, llmUrl: llm.url, sweepId: uniqueName('chaos'), providerId, counts: 3 });
    const job = { runner: 'local' as const, image: 'local', command: FAKE_JOB, gpus: 1, heartbeatSeconds: 3 };
    const spec: SweepSpecInput = {
      ...base,
      shardSize: 3,
      checkpointEvery: 1,
      // The defaults (20 attempts, 1 s doubling to 60 s) ride out ~15 min of outage; this keeps the same
      // 20 attempts with shorter waits (~80 s of outage), so the suite stays quick.
      retry: { maximumAttempts: 20, initialIntervalSeconds: 0.2, maximumIntervalSeconds: 5 },
      metrics: fakeMetrics(providerId, 6, 2),
      students: [
        { id: 'stu', family: 'stu', model: 'org/student', anchors: { base: 'org/base', reference: 'org/reference' } },
      ],
      training: { ...job, env: { FAKE_JOB_SLEEP_MS: '1500' } },
      evaluation: { ...job, env: { FAKE_JOB_SLEEP_MS: '500' }, dataUri: `s3://${bucket}/benchmarks/` },
    };
    const plan = planSweep(parseSweepSpec(spec));
    const jobsDir = mkdtempSync(path.join(tmpdir(), 'pg-chaos-jobs-'));
    const workerEnv = {
      POLYGLOT_TASK_QUEUE: taskQueue,
      POLYGLOT_PROVIDERS: providerId,
      POLYGLOT_JOBS_DIR: jobsDir,
      POLYGLOT_LOCAL_JOB_SLOTS: '4',
      S3_ENDPOINT: s3.endpoint,
    };
    return { bucket, store, taskQueue, spec, plan, jobsDir, workerEnv };
  }

  const jobCount = (dir: string) => readdirSync(dir).filter((d) => !d.startsWith('.')).length;
  const repeatedCalls = () => [...llm.stats().byPrompt.values()].reduce((n, c) => n + Math.max(0, c - 1), 0);

  async function start(s: Awaited<ReturnType<typeof setup>>) {
    return getStack().env.client.workflow.start('sweepWorkflow', {
      taskQueue: s.taskQueue,
      workflowId: s.plan.workflowId,
      args: [s.spec],
    });
  }

  async function undisturbed(): Promise<Fingerprint> {
    if (baseline) return baseline;
    const s = await setup();
    llm.resetStats();
    worker = await spawnWorker(s.workerEnv);
    const r = (await (await start(s)).result()) as SweepResult;
    baselineRun = { s, r };
    baseline = await fingerprint(s.store, s.plan, r);
    baselineJobs = jobCount(s.jobsDir);
    baselineCalls = llm.stats().served;
    assert.equal(repeatedCalls(), 0, 'an undisturbed sweep asks nothing twice');
    assert.equal(baselineJobs, 12, '4 train + 4 eval + 2 × 2 anchor evals');
    return baseline;
  }

  it('undisturbed run (the reference for every scenario)', async () => {
    const fp = await undisturbed();
    assert.equal(Object.keys(fp.examples).length, 4);
    assert.equal(Object.keys(fp.students).length, 4);
  });

  it('SIGKILL of the worker at 10 random points across all stages: same artifacts, nothing redone', async () => {
    const ref = await undisturbed();
    const s = await setup();
    llm.setLatency(40);
    llm.resetStats();
    worker = await spawnWorker(s.workerEnv);
    const handle = await start(s);
    const random = rng(20261128);
    const stagesHit = new Set<string>();
    let done = false;
    void handle.result().then(
      () => (done = true),
      () => (done = true),
    );
    // The first kill lands in generation for certain (a fast run, or a query lost to a restarting worker, could
    // otherwise leave every recorded kill in one stage); the other nine at seeded-random times.
    await until(
      async () => {
        const p = await handle.query<{ cells: { status: string }[] }>('progress').catch(() => undefined);
        return done || !!p?.cells.some((c) => c.status === 'running');
      },
      120_000,
      'a cell generating',
    );
    for (let kill = 0; kill < 10 && !done; kill++) {
      if (kill > 0) await new Promise((r) => setTimeout(r, 500 + random() * 2500));
      if (done) break;
      const progress = await handle.query<{ cells: { status: string }[] }>('progress').catch(() => undefined);
      for (const c of progress?.cells ?? []) stagesHit.add(c.status);
      await killHard(worker);
      worker = await spawnWorker(s.workerEnv);
    }
    const r = (await handle.result()) as SweepResult;
    const fp = await fingerprint(s.store, s.plan, r);
    assert.deepEqual(fp, ref, 'the same examples, metrics, student scores and PG-Scores');
    assert.equal(jobCount(s.jobsDir), baselineJobs, 'every job ran once: attached after each kill, never relaunched');
    // A request in flight at a kill is asked again (its answer never reached storage); nothing stored is.
    const repeated = repeatedCalls();
    assert.ok(repeated <= 10 * 4, `${repeated} repeated calls for 10 kills × concurrency 4`);
    assert.ok(stagesHit.size >= 2, `kills landed in several stages: ${[...stagesHit].join(', ')}`);
    console.log(`      kills landed while cells were: ${[...stagesHit].join(', ')}; ${repeated} calls repeated`);
  });

  it('LLM bursts of 429 and 500 and slow answers: same artifacts after retries', async () => {
    const ref = await undisturbed();
    const s = await setup();
    llm.resetStats();
    llm.setLatency(30);
    llm.setPeriodicFault(3, { kind: '429', retryAfterSeconds: 0 });
    worker = await spawnWorker(s.workerEnv);
    const handle = await start(s);
    await until(() => llm.stats().faulted >= 5, 60_000, 'a burst of 429s');
    llm.setPeriodicFault(2, { kind: '500' });
    await until(() => llm.stats().faulted >= 15, 60_000, 'a burst of 500s');
    llm.setPeriodicFault(0, null);
    llm.setLatency(300);
    const r = (await handle.result()) as SweepResult;
    assert.deepEqual(await fingerprint(s.store, s.plan, r), ref);
    assert.equal(llm.stats().served, baselineCalls, 'each answer was served exactly once');
  });

  it('LLM content faults (truncated JSON, empty content, garbage): counted, never crash the sweep', async () => {
    const s = await setup();
    llm.resetStats();
    llm.injectFaults(['truncated', 'empty', 'garbage', 'truncated', 'empty'].map((kind) => ({ kind }) as FakeFault));
    worker = await spawnWorker(s.workerEnv);
    const r = (await (await start(s)).result()) as SweepResult;
    const manifests = await Promise.all(
      s.plan.cells.map((c) =>
        s.store.getJson<{ parseFailures: number; emptyResponses: number; requested: number; produced: number }>(
          keys.datasetManifest(keys.dataset('polyglot', c.datasetKey)),
        ),
      ),
    );
    const failures = manifests.reduce((n, m) => n + m!.parseFailures + m!.emptyResponses, 0);
    const lost = manifests.reduce((n, m) => n + m!.requested - m!.produced, 0);
    assert.ok(failures >= 1, 'bad answers are counted in the manifests');
    assert.equal(lost, failures, 'every missing example is accounted for as a parse failure or empty answer');
    assert.ok(r.report, 'the sweep still scored and reported');
    // The fake teacher writes English words: the language-conformance metric says so, for every cell.
    const summary = (await s.store.getJson(r.summaryUri.replace(/^s3:\/\/[^/]+\//, ''))) as {
      intrinsic: { intrinsicUri: string }[];
    };
    for (const c of summary.intrinsic) {
      const doc = (await s.store.getJson(c.intrinsicUri.replace(/^s3:\/\/[^/]+\//, ''))) as {
        intrinsic: { responses_language_conformance?: number };
      };
      assert.ok((doc.intrinsic.responses_language_conformance ?? 1) < 0.5, 'wrong-language text is measured');
    }
  });

  it('worker restarted gracefully (SIGTERM, new worker) twice while checkpoint windows are in flight and queued in the limiter: same artifacts', async () => {
    const ref = await undisturbed();
    const s = await setup();
    // Whole shards as one window (3 requests at once), 4 in flight per worker and the rest queued in the
    // limiter: a restart lands mid-window, with requests both in flight and waiting.
    const spec: SweepSpecInput = { ...s.spec, checkpointEvery: 3 };
    llm.resetStats();
    llm.setLatency(300);
    worker = await spawnWorker(s.workerEnv);
    const handle = await getStack().env.client.workflow.start('sweepWorkflow', {
      taskQueue: s.taskQueue,
      workflowId: s.plan.workflowId,
      args: [spec],
    });
    const restarts: string[] = [];
    for (const at of [6, 24]) {
      await until(() => llm.stats().chatCompletions >= at, 120_000, `${at} LLM calls`);
      const exited = new Promise<void>((resolve) => worker!.once('exit', () => resolve()));
      const stopAt = Date.now();
      worker!.kill('SIGTERM');
      const hung = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), 30_000)),
      ]);
      assert.ok(!hung, `the worker did not exit within 30 s of SIGTERM (restart at ${at} calls)`);
      restarts.push(`${Date.now() - stopAt} ms`);
      worker = await spawnWorker(s.workerEnv);
    }
    const r = (await handle.result()) as SweepResult;
    assert.deepEqual(
      await fingerprint(s.store, s.plan, r),
      ref,
      'the same examples, metrics, student scores and PG-Scores',
    );
    assert.equal(jobCount(s.jobsDir), baselineJobs, 'every job ran once');
    // Only a request in flight at a restart is asked again (the shutdown aborted it); queued ones never left.
    const repeated = repeatedCalls();
    assert.ok(repeated <= 2 * 4, `${repeated} repeated calls for 2 restarts × concurrency 4`);
    const shards = await activityAttempts(getStack().env.client, s.plan.sweepId, 'generateShard');
    assert.deepEqual(shards.timedOut, [], 'shards moved on at the shutdown, not after a heartbeat timeout');
    console.log(`      workers exited ${restarts.join(' and ')} after SIGTERM; ${repeated} calls repeated`);
  });

  it('limiter starvation: 12 shards behind 30 requests/min, 5 s heartbeat timeout: same artifacts, one call per example', async () => {
    const ref = await undisturbed();
    const s = await setup();
    // Generation only is throttled: at 30 a minute a shard waits its turn behind the 7 others running (~16 s),
    // three times its heartbeat timeout. The metrics' provider is the same server, unthrottled, under another
    // id (metric values do not depend on it), so the scenario stays short.
    const fake = s.spec.providers[0]!;
    const metricsProvider = { ...fake, id: 'fake-metrics' };
    const metricsOn = <M extends { provider: string }>(m: M): M => ({ ...m, provider: metricsProvider.id });
    const metrics = s.spec.metrics!;
    const spec: SweepSpecInput = {
      ...s.spec,
      providers: [{ ...fake, requestsPerMinute: 30 }, metricsProvider],
      metrics: {
        ...metrics,
        embeddings: metricsOn(metrics.embeddings!),
        judge: metricsOn(metrics.judge!),
        perplexity: metricsOn(metrics.perplexity!),
        tokenizer: metricsOn(metrics.tokenizer!),
      },
    };
    assert.equal(parseSweepSpec(spec).timeouts.heartbeatSeconds, 5);
    const shardCount = s.plan.cells.flatMap((c) => c.strategies).reduce((n, st) => n + st.shards, 0);
    assert.equal(shardCount, 12);
    llm.resetStats();
    worker = await spawnWorker({ ...s.workerEnv, POLYGLOT_PROVIDERS: `${fake.id},${metricsProvider.id}` });
    const r = (await getStack().env.client.workflow.execute('sweepWorkflow', {
      taskQueue: s.taskQueue,
      workflowId: s.plan.workflowId,
      args: [spec],
    })) as SweepResult;
    assert.deepEqual(
      await fingerprint(s.store, s.plan, r),
      ref,
      'the same examples, metrics, student scores and PG-Scores',
    );
    assert.equal(llm.stats().served, baselineCalls, 'each answer was served exactly once');
    assert.equal(repeatedCalls(), 0);
    const shards = await activityAttempts(getStack().env.client, s.plan.sweepId, 'generateShard');
    assert.equal(shards.scheduled, 12);
    assert.deepEqual(shards.timedOut, [], 'no shard attempt timed out while it waited');
    assert.deepEqual(shards.retried, [], 'every shard finished on its first attempt');
  });

  it('S3 server down for 30 s mid-sweep: same artifacts once it is back', async () => {
    const ref = await undisturbed();
    const s = await setup();
    llm.resetStats();
    llm.setLatency(40);
    worker = await spawnWorker(s.workerEnv);
    const handle = await start(s);
    await until(() => llm.stats().served >= 10, 60_000, 'generation under way');
    await s3.stop();
    const downAt = Date.now();
    await new Promise((r) => setTimeout(r, 30_000));
    await s3.start();
    const r = (await handle.result()) as SweepResult;
    assert.ok(Date.now() - downAt >= 30_000);
    assert.deepEqual(await fingerprint(s.store, s.plan, r), ref);
    // A job that could not write its output while S3 was down exits non-zero and is replaced by its next
    // attempt (a trainer would resume from its checkpoint); each job succeeds exactly once.
    const attempts = jobAttempts(s.jobsDir);
    assert.equal(attempts.size, baselineJobs, 'the same jobs as an undisturbed run');
    for (const [cell, runs] of attempts) {
      assert.equal(runs.filter((x) => x.exit === 0).length, 1, `${cell} succeeded once`);
      assert.ok(runs.every((x) => x.exit === 0 || runs.some((y) => y.exit === 0 && y.attempt > x.attempt)));
    }
  });

  it('damaged artifacts of the finished reference run: resume rebuilds exactly them, repeating only what they held', async () => {
    const ref = await undisturbed();
    const { s, r } = baselineRun!;
    const ds = s.plan.cells.map((c) => keys.dataset('polyglot', c.datasetKey));
    const text = async (key: string) => (await s.store.getText(key))!;
    const metricsOf = (i: number) => `polyglot/metrics/${s.plan.cells[i]!.datasetKey}/`;
    const summary = (await s.store.getJson<{ intrinsic: { intrinsicUri: string }[] }>(
      r.summaryUri.replace(/^s3:\/\/[^/]+\//, ''),
    ))!;
    const damaged: string[] = [];
    // Cell 0: a shard file cut short (rebuilt from its part-files: no call).
    const shard = keys.shardData(ds[0]!, 'generate', 0);
    await s.store.putText(shard, (await text(shard)).slice(0, -9));
    damaged.push(shard);
    // Cell 1: one byte of the dataset manifest changed (rebuilt from the verified markers: no call).
    const manifest = keys.datasetManifest(ds[1]!);
    const m = await text(manifest);
    const at = m.indexOf('"produced": ') + 12;
    await s.store.putText(manifest, m.slice(0, at) + (m[at] === '1' ? '2' : '1') + m.slice(at + 1));
    damaged.push(manifest);
    // Cell 2: a shard marker deleted, and another shard caught mid-write (its marker and shard file gone),
    // its part-file torn in its last line (one call).
    await s.store.delete(keys.shardMarker(ds[2]!, 'respond', 0));
    const part = `${keys.shardPartsPrefix(ds[2]!, 'translate', 0)}part-00001.jsonl`;
    await s.store.putText(part, (await text(part)).slice(0, -6));
    for (const k of [keys.shardMarker(ds[2]!, 'translate', 0), keys.shardData(ds[2]!, 'translate', 0)])
      await s.store.delete(k);
    damaged.push(part);
    // Cell 3: the judge's result deleted (recomputed from its part-files: no call), and its intrinsic
    // record cut short (rewritten).
    const judge = (await s.store.list(metricsOf(3))).find((k) => /\/judge-[0-9a-f]+\.json$/.test(k))!;
    await s.store.delete(judge);
    const intrinsic = summary.intrinsic
      .map((c) => c.intrinsicUri.replace(/^s3:\/\/[^/]+\//, ''))
      .find((k) => k.startsWith(metricsOf(3)))!;
    await s.store.putText(intrinsic, (await text(intrinsic)).slice(0, -20));
    damaged.push(intrinsic);
    // A student's training result cut short: that job alone runs again.
    const trained = r.students[0]!.resultUri.replace(/^s3:\/\/[^/]+\//, '');
    await s.store.putText(trained, (await text(trained)).slice(0, 10));
    damaged.push(trained);
    const started = () =>
      new Map(
        readdirSync(s.jobsDir)
          .filter((d) => !d.startsWith('.'))
          .map((d) => [d, readFileSync(path.join(s.jobsDir, d, 'spec.json'), 'utf8') + statMtime(s.jobsDir, d)]),
      );
    const jobsBefore = started();

    llm.resetStats();
    worker = await spawnWorker(s.workerEnv);
    const handle = await start(s);
    const again = (await handle.result()) as SweepResult;
    assert.deepEqual(await fingerprint(s.store, s.plan, again), ref, 'the same artifacts as the undisturbed run');
    assert.equal(llm.stats().chatCompletions, 1, 'one call: the torn part-file line');
    assert.equal(repeatedCalls(), 0);
    const rerun = [...started()].filter(([d, v]) => jobsBefore.get(d) !== v);
    assert.equal(rerun.length, 1, 'one job ran again: the training job whose result was damaged');
    const progress = await handle.query<{ cells: { repaired?: { key: string; reason: string }[] }[] }>('progress');
    const shown = progress.cells.flatMap((c) => c.repaired ?? []).map((x) => x.key);
    for (const k of damaged) assert.ok(shown.includes(k), `sweep status names ${k}: ${shown.join(', ')}`);
  });

  it('Temporal server killed and restarted mid-sweep (persistent database): same artifacts', async () => {
    const ref = await undisturbed();
    const s = await setup();
    const server = new TemporalDevServer(
      path.join(mkdtempSync(path.join(tmpdir(), 'pg-chaos-tdb-')), 'temporal.db'),
      await freePort(),
    );
    await server.start();
    const connection = await Connection.connect({ address: server.address });
    try {
      const client = new Client({ connection });
      llm.resetStats();
      llm.setLatency(40);
      worker = await spawnWorker({ ...s.workerEnv, TEMPORAL_ADDRESS: server.address });
      const handle = await client.workflow.start('sweepWorkflow', {
        taskQueue: s.taskQueue,
        workflowId: s.plan.workflowId,
        args: [s.spec],
      });
      await until(() => llm.stats().served >= 10, 60_000, 'generation under way');
      await server.stop(); // SIGKILL: no graceful shutdown
      await new Promise((r) => setTimeout(r, 5_000));
      await server.start();
      // The worker and the client reconnect on their own; the history is whole in the database.
      let r: SweepResult | undefined;
      for (let i = 0; i < 60 && !r; i++) {
        r = (await handle.result().catch(async (e: unknown) => {
          if (e instanceof WorkflowFailedError) throw e;
          await new Promise((res) => setTimeout(res, 2_000));
          return undefined;
        })) as SweepResult | undefined;
      }
      assert.ok(r, 'the sweep finished after the restart');
      assert.deepEqual(await fingerprint(s.store, s.plan, r), ref);
      assert.equal(jobCount(s.jobsDir), baselineJobs, 'every job ran once');
    } finally {
      if (worker) await killHard(worker);
      worker = undefined;
      await connection.close();
      await server.stop();
    }
  });

  it('duplicate start: concurrent starts of one spec make one run; another spec under the id is refused', async () => {
    const ref = await undisturbed();
    const s = await setup();
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-chaos-dup-'));
    const same = path.join(dir, 'same.json');
    const other = path.join(dir, 'other.json');
    writeFileSync(same, JSON.stringify(s.spec));
    const changed = structuredClone(s.spec);
    changed.teachers[1]!.sampling = { temperature: 0.5, topP: 0.9, maxTokens: 128 };
    writeFileSync(other, JSON.stringify(changed));
    const env = processEnv({ POLYGLOT_TASK_QUEUE: s.taskQueue, S3_ENDPOINT: s3.endpoint });
    const start = (file: string) => runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'start', file], env);
    llm.resetStats();
    llm.setLatency(40);
    worker = await spawnWorker(s.workerEnv);
    // Several at once before any run exists: the id's first start wins, the others attach to it.
    const first = await Promise.all([start(same), start(same), start(same), start(same)]);
    for (const r of first) assert.equal(r.code, 0, r.out);
    assert.equal(first.filter((r) => /started: sweep/.test(r.out)).length, 1, first.map((r) => r.out).join('\n'));
    assert.equal(first.filter((r) => /already running with this spec; attached/.test(r.out)).length, 3);
    // Mid-sweep, the same spec again and another spec, all at once.
    await until(() => llm.stats().served >= 10, 60_000, 'generation under way');
    const mid = await Promise.all([start(same), start(other), start(same), start(other)]);
    for (const r of [mid[0]!, mid[2]!]) assert.match(r.out, /already running with this spec; attached/);
    for (const r of [mid[1]!, mid[3]!]) {
      assert.equal(r.code, 2, r.out);
      assert.match(r.out, /is running with a different spec/);
      assert.match(r.out, /teachers\[1\]\.sampling\.temperature: 0\.3 → 0\.5/);
    }
    const r = (await getStack().env.client.workflow.getHandle(s.plan.workflowId).result()) as SweepResult;
    assert.deepEqual(await fingerprint(s.store, s.plan, r), ref, 'the same artifacts as the undisturbed run');
    assert.equal(repeatedCalls(), 0, 'no LLM call made twice');
    assert.equal(llm.stats().served, baselineCalls, 'the calls of one sweep, no more');
    assert.equal(jobCount(s.jobsDir), baselineJobs, 'every job ran once');
    const runs = async () => {
      const ids: string[] = [];
      const query = `WorkflowId = "${s.plan.workflowId}" AND ExecutionStatus != "Running"`;
      for await (const w of getStack().env.client.workflow.list({ query })) ids.push(w.runId);
      return ids;
    };
    await until(async () => (await runs()).length >= 1, 10_000, 'the finished run in visibility');
    assert.equal((await runs()).length, 1, 'exactly one workflow run under the id');
  });

  it('cancel mid-sweep: no job left running, no partial object presented as complete', async () => {
    const s = await setup();
    llm.resetStats();
    worker = await spawnWorker(s.workerEnv);
    const handle = await start(s);
    // Cancel while students train (their jobs sleep 1.5 s each).
    await until(() => jobCount(s.jobsDir) >= 6, 120_000, 'student jobs running');
    await handle.cancel();
    await assert.rejects(
      handle.result(),
      (e: unknown) => e instanceof WorkflowFailedError && e.cause instanceof CancelledFailure,
      'the sweep ends cancelled',
    );
    await until(
      () => readdirSync(s.jobsDir).every((d) => d.startsWith('.') || jobFinished(path.join(s.jobsDir, d))),
      30_000,
      'every job process ended',
    );
    // Every manifest that exists is complete: its shards exist and hold exactly what it counts.
    for (const c of s.plan.cells) {
      const m = await s.store.getJson<{ produced: number; perStrategy: Record<string, { shards: string[] }> }>(
        keys.datasetManifest(keys.dataset('polyglot', c.datasetKey)),
      );
      if (!m) continue;
      let n = 0;
      for (const st of Object.values(m.perStrategy))
        for (const uri of st.shards) {
          const text = await s.store.getText(uri.replace(/^s3:\/\/[^/]+\//, ''));
          assert.ok(text !== undefined, `${uri} is listed but missing`);
          n += text.split('\n').filter((l) => l.trim()).length;
        }
      assert.equal(n, m.produced);
    }
  });
});

/**
 * A TCP proxy in front of the API server that fails connections: every `resetEvery`-th new connection
 * is reset at once, and every `dropMs` all open connections (keep-alive, long requests) are cut, as a
 * load balancer or an API server restart does. TLS passes through untouched.
 */
class FlakyProxy {
  private server?: net.Server;
  private readonly open = new Set<net.Socket>();
  private timer?: NodeJS.Timeout;
  resets = 0;
  drops = 0;
  private n = 0;
  constructor(
    private readonly upstream: { host: string; port: number },
    private readonly opts: { resetEvery: number; dropMs: number },
  ) {}
  async start(): Promise<number> {
    this.server = net.createServer((client) => {
      if (++this.n % this.opts.resetEvery === 0) {
        this.resets++;
        client.resetAndDestroy();
        return;
      }
      const up = net.connect(this.upstream.port, this.upstream.host);
      this.open.add(client);
      client.pipe(up).pipe(client);
      const close = () => {
        this.open.delete(client);
        client.destroy();
        up.destroy();
      };
      client.on('error', close).on('close', close);
      up.on('error', close).on('close', close);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.timer = setInterval(() => {
      for (const c of this.open) {
        this.drops++;
        c.destroy();
      }
    }, this.opts.dropMs);
    return (this.server.address() as net.AddressInfo).port;
  }
  async stop(): Promise<void> {
    clearInterval(this.timer);
    for (const c of this.open) c.destroy();
    await new Promise((r) => this.server?.close(r));
  }
}

/**
 * An HTTP proxy in front of the API server that answers every `failEvery`-th request with a 500
 * (`InternalError` Status), as an overloaded API server or a failing admission webhook does. The request
 * is still forwarded first, so a create that "failed" may in fact exist: the client must find it (409 →
 * attach) rather than create a second Job. It speaks plain HTTP to the runner and TLS, with the test
 * kubeconfig's credentials, to the API server.
 */
class ServerErrorProxy {
  private server?: http.Server;
  errors = 0;
  private n = 0;
  constructor(
    private readonly upstream: KubeConfig,
    private readonly failEvery: number,
  ) {}
  async start(): Promise<number> {
    const target = new URL(this.upstream.getCurrentCluster()!.server);
    const tls: https.RequestOptions = {};
    await this.upstream.applyToHTTPSOptions(tls);
    this.server = http.createServer((req, res) => {
      const fail = ++this.n % this.failEvery === 0;
      const up = https.request(
        {
          ...tls,
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: target.host, ...(tls.headers ?? {}) },
        },
        (upRes) => {
          if (!fail) {
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            upRes.pipe(res);
            return;
          }
          upRes.resume();
          this.errors++;
          res.writeHead(500, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              kind: 'Status',
              apiVersion: 'v1',
              status: 'Failure',
              reason: 'InternalError',
              code: 500,
              message: 'injected',
            }),
          );
        },
      );
      up.on('error', () => res.destroy());
      req.pipe(up);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    return (this.server.address() as net.AddressInfo).port;
  }
  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}

describe('chaos: Kubernetes API faults', function () {
  this.timeout(600_000);
  let kubeconfig: string | undefined;
  let llm: FakeLlmServer;
  let worker: ChildProcess | undefined;

  before(async function () {
    this.timeout(180_000);
    kubeconfig = await startKube();
    if (!kubeconfig) this.skip(); // .tools/kube/bin missing: scripts/test.sh builds it
    llm = new FakeLlmServer({ modelIds: ['fake-model'] });
    await llm.start();
  });
  after(async () => {
    if (worker) await killHard(worker);
    await llm?.stop();
  });

  /** The worker's kubeconfig goes through the proxy; the test's own (and the pod executor's) does not. */
  interface Faults {
    kubeconfig: string;
    stop: () => Promise<void>;
    describe: () => { injected: number; text: string };
  }

  async function tcpFaults(kc: KubeConfig): Promise<Faults> {
    const server = new URL(kc.getCurrentCluster()!.server);
    const proxy = new FlakyProxy({ host: server.hostname, port: Number(server.port) }, { resetEvery: 4, dropMs: 1500 });
    const port = await proxy.start();
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pg-chaos-kube-')), 'kubeconfig');
    writeFileSync(file, readFileSync(kubeconfig!, 'utf8').replace(server.origin, `https://127.0.0.1:${port}`));
    return {
      kubeconfig: file,
      stop: () => proxy.stop(),
      describe: () => ({
        injected: proxy.resets + proxy.drops,
        text: `${proxy.resets} connections reset, ${proxy.drops} dropped on the way to the API server`,
      }),
    };
  }

  async function serverErrors(kc: KubeConfig): Promise<Faults> {
    const proxy = new ServerErrorProxy(kc, 4);
    const port = await proxy.start();
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'pg-chaos-kube-')), 'kubeconfig');
    // The Kubernetes client refuses plain HTTP unless TLS verification is declared off (there is no TLS).
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: faulty, cluster: {server: "http://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]`,
        'users: [{name: proxy, user: {}}]',
        'contexts: [{name: faulty, context: {cluster: faulty, user: proxy}}]',
        'current-context: faulty',
      ].join('\n'),
    );
    return {
      kubeconfig: file,
      stop: () => proxy.stop(),
      describe: () => ({
        injected: proxy.errors,
        text: `${proxy.errors} API requests answered 500 (after forwarding)`,
      }),
    };
  }

  for (const [what, makeFaults] of [
    ['connections reset and dropped on the way to the API server', tcpFaults],
    ['every 4th API request answered 500 (after it reached the server)', serverErrors],
  ] as const) {
    it(`${what}: every Job created once, sweep completes`, async () => {
      const kc = loadKubeConfig(kubeconfig!);
      const core = kc.makeApiClient(CoreV1Api);
      const ns = await createNamespace(core, 'pgchaos');
      const faults = await makeFaults(kc);
      const flakyConfig = faults.kubeconfig;
      const executor = new PodExecutor(kc, ns, {
        pathPrefix: [],
        extraEnv: {
          S3_ENDPOINT: getStack().s3Endpoint,
          AWS_ACCESS_KEY_ID: 'test',
          AWS_SECRET_ACCESS_KEY: 'test',
          AWS_REGION: 'us-east-1',
        },
        log: (line) => console.log(`      ${line}`),
      });
      executor.start();
      const bucket = uniqueName('chaosk8s');
      const seedPool = await importDemoSeeds(bucket);
      const base = smallSpec({
        bucket,
        seedPool,
        llmUrl: llm.url,
        sweepId: uniqueName('chaosk'),
        providerId: 'fake',
        counts: 1,
      });
      const job = {
        runner: 'kubernetes' as const,
        image: 'polyglot/fake-job:test',
        command: FAKE_JOB,
        gpus: 1,
        heartbeatSeconds: 5,
        podLabels: { [POD_EXEC_LABEL]: 'true' },
      };
      const spec: SweepSpecInput = {
        ...base,
        teachers: [base.teachers[0]!],
        students: [{ id: 'stu', model: 'org/student', anchors: { base: 'org/base', reference: 'org/reference' } }],
        // Jobs long enough for dozens of status polls, so every-4th-request faults land several times.
        training: { ...job, env: { FAKE_JOB_SLEEP_MS: '4000' } },
        evaluation: { ...job, env: { FAKE_JOB_SLEEP_MS: '500' }, dataUri: `s3://${bucket}/benchmarks/` },
      };
      const plan = planSweep(parseSweepSpec(spec));
      const taskQueue = uniqueName('tq');
      try {
        worker = await spawnWorker({
          POLYGLOT_TASK_QUEUE: taskQueue,
          POLYGLOT_PROVIDERS: 'fake',
          POLYGLOT_KUBECONFIG: flakyConfig,
          POLYGLOT_K8S_NAMESPACE: ns,
          // Short polls: enough API requests for every 4th to fail several times however fast the Jobs end.
          POLYGLOT_K8S_POLL_MS: '150',
        });
        const r = (await getStack().env.client.workflow.execute('sweepWorkflow', {
          taskQueue,
          workflowId: plan.workflowId,
          args: [spec],
        })) as SweepResult;
        assert.equal(r.students.length, 2, '1 teacher × 2 languages × 1 student');
        assert.ok(r.students.every((st) => typeof st.score === 'number'));
        const jobs = (
          await kc
            .makeApiClient(BatchV1Api)
            .listNamespacedJob({ namespace: ns, labelSelector: `${LABELS.sweep}=${plan.sweepId}` })
        ).items;
        // 2 train + 2 eval + 2 languages × (base + reference): each created once, attempt 0 only.
        if (jobs.length !== 8) {
          const failures = await activityFailures(getStack().env.client, plan.sweepId);
          assert.fail(
            `expected 8 Jobs, found ${jobs.length}: ${jobs.map((j) => j.metadata?.name).join(', ')}\nfailed watcher attempts:\n${failures.join('\n')}`,
          );
        }
        assert.ok(
          jobs.every((j) => j.metadata?.labels?.[LABELS.attempt] === '0'),
          'no job needed a second attempt',
        );
        assert.equal(executor.ran.length, 8, 'each pod ran its command once');
        const { injected, text } = faults.describe();
        assert.ok(injected >= 5, `faults injected: ${text}`);
        console.log(`      ${text}`);
      } finally {
        // Each scenario of this loop starts its own worker: stop it here, or the next one overwrites
        // `worker` and this one outlives the run, polling a Temporal server that is gone.
        if (worker) await killHard(worker);
        worker = undefined;
        await executor.stop();
        await faults.stop();
        await core.deleteNamespace({ name: ns }).catch(() => undefined);
      }
    });
  }
});

/** Every local job's attempts by cell id, with their exit codes (the runner's own records). */
function jobAttempts(dir: string): Map<string, { attempt: number; exit?: number }[]> {
  const out = new Map<string, { attempt: number; exit?: number }[]>();
  for (const d of readdirSync(dir)) {
    if (d.startsWith('.')) continue;
    const spec = JSON.parse(readFileSync(path.join(dir, d, 'spec.json'), 'utf8')) as {
      cellId: string;
      attempt: number;
    };
    const exitFile = path.join(dir, d, 'exit');
    const exit = existsSync(exitFile) ? Number(readFileSync(exitFile, 'utf8').trim()) : undefined;
    out.set(spec.cellId, [...(out.get(spec.cellId) ?? []), { attempt: spec.attempt, exit }]);
  }
  return out;
}

/** When a job's folder was (re)made: a job run again under its own name gets a new one. */
function statMtime(dir: string, job: string): string {
  return String(statSync(path.join(dir, job, 'spec.json')).mtimeMs);
}

/** A local job is over when its exit code is recorded or its process is gone. */
function jobFinished(dir: string): boolean {
  if (existsSync(path.join(dir, 'exit'))) return true;
  try {
    const pid = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    process.kill(pid, 0);
    return false;
  } catch {
    return true;
  }
}

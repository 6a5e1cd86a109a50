/**
 * Paper-scale orchestration load test: the paper's grid — 10 teachers × 6 languages × 3 strategies
 * (60 cells) — then 10× the teachers (600 cells), against an instant fake LLM (no latency), so what is
 * measured is Polyglot + Temporal + S3 overhead. Prints wall time, per-cell overhead, the largest
 * workflow history (events, bytes) against Temporal's limits, and the worker's peak RSS.
 * With `--students` (default on) the paper's four student families join: OLMo on all six languages,
 * Gemma, Qwen and Llama on ar, de and id (150 students, each a train job then an eval job), and each
 * family's anchors per language (15 × base + reference), run by the local job runner with the test
 * suite's fake job (a real process that writes the contract's result.json at once).
 *   node lib/bench/paper-scale.js [--per-strategy 10] [--scales 1,10] [--students 1|0]
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { FakeLlmServer } from '../test/support/fake-server';
import { importSeedPool, type SeedRow } from '../src/seeds/pool';
import { planSweep } from '../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../src/spec/sweep';
import { FAKE_JOB_COMMAND, storeFor, uniqueName } from '../test/support/fixtures';
import { killHard, spawnWorker } from '../test/support/processes';
import { getStack, startStack, stopStack } from '../test/support/stack';

const LANGS = ['ar', 'cs', 'de', 'es', 'id', 'ja'];

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1]! : dflt;
}

function seeds(perLanguage: number): SeedRow[] {
  const rows: SeedRow[] = [];
  for (const lang of [...LANGS, 'en']) {
    for (let i = 0; i < perLanguage; i++) {
      rows.push({
        id: `${lang}-${i}`,
        source: 'bench',
        language: lang,
        strategy: lang === 'en' ? ['translate'] : ['generate', 'respond'],
        source_id: String(i),
        prompt: `Seed prompt ${i} (${lang})`,
        response: `Seed response ${i} (${lang})`,
      });
    }
  }
  return rows;
}

function vmHwmMb(pid: number): number {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/**
 * The paper's student families (docs/method.md, "Teachers, languages and students"): OLMo everywhere,
 * the others on ar, de and id.
 */
function students(bucket: string): Pick<SweepSpecInput, 'students' | 'training' | 'evaluation'> {
  const anchors = { base: 'allenai/Olmo-3-1025-7B', reference: 'allenai/Olmo-3-7B-Instruct-SFT' };
  const job = {
    runner: 'local' as const,
    image: 'bench',
    command: FAKE_JOB_COMMAND,
    gpus: 1,
    heartbeatSeconds: 30,
  };
  return {
    students: [
      { id: 'olmo-3-7b', family: 'olmo', model: 'allenai/Olmo-3-1025-7B', anchors },
      ...['gemma-3-4b', 'qwen-3-8b', 'llama-3-8b'].map((id) => ({
        id,
        family: id,
        model: `org/${id}`,
        languages: ['ar', 'de', 'id'],
        anchors: { base: `org/${id}`, reference: `org/${id}-instruct` },
      })),
    ],
    training: job,
    evaluation: { ...job, dataUri: `s3://${bucket}/benchmarks/` },
  };
}

async function run(scale: number, perStrategy: number, withStudents: boolean) {
  const stack = getStack();
  const llm = new FakeLlmServer({ modelIds: ['fake-model'] });
  await llm.start();
  const bucket = uniqueName('scale');
  const store = storeFor(bucket);
  await store.ensureBucket();
  const pool = await importSeedPool(store, 'polyglot', seeds(perStrategy), 'bench');
  const providerId = uniqueName('p');
  const taskQueue = uniqueName('tq');
  const teachers = Array.from({ length: 10 * scale }, (_, i) => ({
    id: `teacher-${i}`,
    provider: providerId,
    model: 'fake-model',
  }));
  const spec: SweepSpecInput = {
    sweepId: uniqueName('scale'),
    storage: { bucket, prefix: 'polyglot' },
    providers: [{ id: providerId, baseUrl: llm.url, concurrency: 64 }],
    teachers,
    languages: LANGS,
    strategies: {
      generate: { count: perStrategy },
      translate: { count: perStrategy },
      respond: { count: perStrategy },
    },
    seedPool: pool.uri,
    shardSize: perStrategy,
    checkpointEvery: perStrategy,
    ...(withStudents ? students(bucket) : {}),
  };
  const plan = planSweep(parseSweepSpec(spec));
  const worker = await spawnWorker({
    POLYGLOT_TASK_QUEUE: taskQueue,
    POLYGLOT_PROVIDERS: providerId,
    POLYGLOT_SHARD_SLOTS: '32',
    POLYGLOT_JOBS_DIR: mkdtempSync(path.join(tmpdir(), 'pg-scale-jobs-')),
    POLYGLOT_LOCAL_JOB_SLOTS: '16',
    POLYGLOT_K8S_POLL_MS: '200',
  });
  const t0 = performance.now();
  const handle = await stack.env.client.workflow.start('sweepWorkflow', {
    taskQueue,
    workflowId: plan.workflowId,
    args: [spec],
  });
  const result = (await handle.result()) as { students: unknown[] };
  const seconds = (performance.now() - t0) / 1000;
  const rss = vmHwmMb(worker.pid!);
  await killHard(worker);
  const history = await handle.fetchHistory();
  const bytes = temporal.api.history.v1.History.encode(history).finish().length;
  // Temporal also caps each payload (2 MiB by default, warning from 512 KiB): the largest event shows how
  // close any single input or result comes to it.
  let biggest = { type: '', bytes: 0 };
  for (const e of history.events ?? []) {
    const b = temporal.api.history.v1.HistoryEvent.encode(e).finish().length;
    if (b > biggest.bytes) biggest = { type: String(temporal.api.enums.v1.EventType[e.eventType ?? 0]), bytes: b };
  }
  // Every child (cells, datasets, metrics, students, anchors, jobs) carries the SweepId search attribute.
  let children = 0;
  let largest = { id: '', events: 0, bytes: 0 };
  for await (const w of stack.env.client.workflow.list({ query: `SweepId = '${plan.sweepId}'` })) {
    children++;
    if (w.workflowId === plan.workflowId) continue;
    const h = await stack.env.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
    const b = temporal.api.history.v1.History.encode(h).finish().length;
    if (b > largest.bytes) largest = { id: w.workflowId, events: h.events?.length ?? 0, bytes: b };
  }
  await llm.stop();
  console.log(
    `${String(plan.cells.length).padStart(4)} cells, ${plan.totalShards} shards, ${llm.stats().served} requests, ` +
      `${result.students.length} students: ` +
      `${seconds.toFixed(1)} s wall, ${((1000 * seconds) / plan.cells.length).toFixed(0)} ms/cell, ` +
      `sweep history ${history.events?.length ?? 0} events / ${(bytes / 1024).toFixed(0)} KiB ` +
      `(limits: 51,200 events / 50 MiB; warn 10,240), largest event ${(biggest.bytes / 1024).toFixed(0)} KiB ` +
      `${biggest.type} (payload limit 2 MiB); ${children} workflows, largest child history ` +
      `${largest.events} events / ${(largest.bytes / 1024).toFixed(0)} KiB (${largest.id}), ` +
      `worker peak RSS ${rss.toFixed(0)} MB`,
  );
}

async function main() {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const perStrategy = Number(arg('--per-strategy', '10'));
  const scales = arg('--scales', '1,10').split(',').map(Number);
  const withStudents = arg('--students', '1') !== '0';
  await startStack();
  try {
    console.log(
      `paper-scale grid: teachers × 6 languages × 3 strategies, ${perStrategy} seeds per strategy, instant fake LLM`,
    );
    for (const s of scales) await run(s, perStrategy, withStudents);
  } finally {
    await stopStack();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

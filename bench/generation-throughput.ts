/**
 * Generation throughput benchmark: a real sweep (Temporal dev server, moto S3, the worker as its own
 * process) against the deterministic fake OpenAI-compatible server with a fixed latency.
 * Prints requests/s achieved vs. the ceiling min(concurrency / latency, requestsPerMinute / 60),
 * and the worker's peak RSS. Usage:
 *   node lib/bench/generation-throughput.js [--latency-ms 100] [--requests 1200]
 */
import { readFileSync } from 'node:fs';
import { FakeLlmServer } from '../test/support/fake-server';
import { importSeedPool, type SeedRow } from '../src/seeds/pool';
import { planSweep } from '../src/spec/plan';
import { parseSweepSpec, type SweepSpecInput } from '../src/spec/sweep';
import { storeFor, uniqueName } from '../test/support/fixtures';
import { killHard, spawnWorker } from '../test/support/processes';
import { getStack, startStack, stopStack } from '../test/support/stack';

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : dflt;
}

/** A synthetic seed pool large enough for the run (the demo pool has 30 rows a language). */
function syntheticSeeds(perLanguage: number): SeedRow[] {
  const rows: SeedRow[] = [];
  for (const [lang, strategy] of [
    ['de', ['generate', 'respond']],
    ['en', ['translate']],
  ] as const) {
    for (let i = 0; i < perLanguage; i++) {
      rows.push({
        id: `${lang}-${i}`,
        source: 'bench',
        language: lang,
        strategy: [...strategy],
        source_id: String(i),
        prompt: `Prompt ${i} in ${lang}: explain something useful in a few sentences.`,
        response: `Response ${i} in ${lang}.`,
      });
    }
  }
  return rows;
}

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024;
}

async function scenario(opts: {
  name: string;
  latencyMs: number;
  concurrency: number;
  rpm?: number;
  requests: number;
}) {
  const stack = getStack();
  const llm = new FakeLlmServer({ latencyMs: opts.latencyMs, modelIds: ['fake-model'] });
  await llm.start();
  const bucket = uniqueName('bench');
  const store = storeFor(bucket);
  await store.ensureBucket();
  const perStrategy = Math.ceil(opts.requests / 3);
  const pool = await importSeedPool(store, 'polyglot', syntheticSeeds(perStrategy * 2), 'bench');
  const providerId = uniqueName('p');
  const taskQueue = uniqueName('tq');
  const spec: SweepSpecInput = {
    sweepId: uniqueName('bench'),
    storage: { bucket, prefix: 'polyglot' },
    providers: [{ id: providerId, baseUrl: llm.url, concurrency: opts.concurrency, requestsPerMinute: opts.rpm }],
    teachers: [{ id: 't', provider: providerId, model: 'fake-model', sampling: { maxTokens: 64 } }],
    languages: ['de'],
    strategies: {
      generate: { count: perStrategy },
      translate: { count: perStrategy },
      respond: { count: perStrategy },
    },
    seedPool: pool.uri,
    shardSize: 50,
    checkpointEvery: 10,
  };
  const plan = planSweep(parseSweepSpec(spec));
  const worker = await spawnWorker({
    POLYGLOT_TASK_QUEUE: taskQueue,
    POLYGLOT_PROVIDERS: providerId,
    POLYGLOT_SHARD_SLOTS: '16',
  });
  const handle = await stack.env.client.workflow.start('sweepWorkflow', {
    taskQueue,
    workflowId: plan.workflowId,
    args: [spec],
  });
  // Time the generation phase as the server sees it: first request to last answer.
  let first = 0;
  const poll = setInterval(() => {
    if (!first && llm.stats().chatCompletions > 0) first = performance.now();
  }, 5);
  await handle.result();
  const end = performance.now();
  clearInterval(poll);
  const rss = peakRssMb(worker.pid!);
  await killHard(worker);
  const served = llm.stats().served;
  const peak = llm.stats().concurrentPeak;
  await llm.stop();
  const seconds = (end - first) / 1000;
  const achieved = served / seconds;
  const concCeiling = opts.concurrency / (opts.latencyMs / 1000);
  const ceiling = Math.min(concCeiling, opts.rpm ? opts.rpm / 60 : Infinity);
  console.log(
    `${opts.name.padEnd(34)} requests ${served}  time ${seconds.toFixed(1)} s  achieved ${achieved.toFixed(1)} req/s  ` +
      `ceiling ${ceiling.toFixed(1)} req/s  → ${((100 * achieved) / ceiling).toFixed(1)}%  in-flight peak ${peak}  worker peak RSS ${rss.toFixed(0)} MB`,
  );
}

async function main() {
  const latencyMs = arg('--latency-ms', 100);
  const requests = arg('--requests', 1200);
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  await startStack();
  try {
    console.log(`generation throughput, fake server latency ${latencyMs} ms, ${requests} requests a scenario`);
    await scenario({ name: 'concurrency 8, no rate limit', latencyMs, concurrency: 8, requests });
    await scenario({ name: 'concurrency 32, no rate limit', latencyMs, concurrency: 32, requests: requests * 2 });
    await scenario({
      name: 'concurrency 32, 1800 req/min limit',
      latencyMs,
      concurrency: 32,
      rpm: 1800,
      requests: requests / 2,
    });
  } finally {
    await stopStack();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

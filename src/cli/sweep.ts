import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { readEnv, llmTaskQueue } from '../common/env';
import { eligibleSeeds } from '../generation/requests';
import { loadSeedPool } from '../seeds/pool';
import {
  diffManifests,
  planSweep,
  sweepWorkflowId,
  type CellPlan,
  type DatasetKeyManifest,
  type SweepPlan,
} from '../spec/plan';
import type { SweepSpec } from '../spec/sweep';
import { dataConverterFromEnv } from '../common/codec';
import { checkDataset } from '../activities/dataset';
import { keys } from '../storage/layout';
import { parseS3Uri, type StoreRegistry } from '../storage/s3';
import type { SweepProgress } from '../workflows/shared';
import { StageKey, SweepIdKey } from '../workflows/shared';

/** The `polyglot sweep …` commands. Each talks to Temporal and S3 only through their clients. */

export async function temporalClient(): Promise<Client> {
  const env = readEnv();
  let connection: Connection;
  try {
    connection = await Connection.connect({ address: env.temporalAddress, connectTimeout: '5s' });
  } catch (e) {
    throw new Error(
      `cannot reach Temporal at ${env.temporalAddress} (${(e as Error).message}); start the local stack with \`polyglot dev up\` or set TEMPORAL_ADDRESS`,
    );
  }
  // With POLYGLOT_CODEC_KEY set, what the CLI sends and reads is encrypted like the workers' payloads.
  return new Client({ connection, namespace: env.temporalNamespace, dataConverter: dataConverterFromEnv() });
}

export interface CellVerdict {
  cell: CellPlan;
  hit: boolean;
  why: string[];
}

/** For each cell: will it hit the cache or recompute, and why. Reads S3, writes nothing. */
export async function explainPlan(
  spec: SweepSpec,
  stores: StoreRegistry,
): Promise<{ plan: SweepPlan; verdicts: CellVerdict[]; warnings: string[] }> {
  const plan = planSweep(spec);
  const store = stores.for(spec.storage.bucket);
  const prefix = spec.storage.prefix;
  const warnings: string[] = [];
  const poolKey = parseS3Uri(spec.seedPool).key;
  const poolThere = await store.exists(keys.seedManifest(poolKey));
  if (poolThere) {
    const pool = await loadSeedPool(store, poolKey);
    for (const lang of spec.languages) {
      for (const s of plan.cells[0]!.strategies) {
        const n = eligibleSeeds(pool, s.strategy, lang).length;
        if (n === 0)
          warnings.push(
            `${s.strategy}/${lang}: the seed pool has no eligible seeds; this strategy will produce nothing for ${lang}`,
          );
        else if (n < s.count)
          warnings.push(`${s.strategy}/${lang}: ${n} eligible seeds < count ${s.count}; capped at ${n}`);
      }
    }
  } else {
    warnings.push(`seed pool ${spec.seedPool} is not imported yet (\`sweep start\` imports a local seedPool file)`);
  }
  const verdicts: CellVerdict[] = [];
  for (const cell of plan.cells) {
    const ds = keys.dataset(prefix, cell.datasetKey);
    // A hit only when the manifest and every shard it lists pass their integrity checks.
    const checked = await checkDataset(store, ds);
    if (checked.state === 'ok') {
      verdicts.push({
        cell,
        hit: true,
        why: [`hit: dataset complete (${checked.manifest.produced} examples) at ${store.uri(ds)}`],
      });
      continue;
    }
    if (checked.state === 'damaged') {
      verdicts.push({
        cell,
        hit: false,
        why: [
          ...checked.problems.map((p) => `damaged: ${store.uri(p.key)}: ${p.reason}`),
          'resume discards the damaged artifacts and rebuilds them from part-files (calls only for lost items)',
        ],
      });
      continue;
    }
    const markers = (await store.list(`${ds}/shards/`)).filter((k) => k.endsWith('.done.json')).length;
    const total = cell.strategies.reduce((n, s) => n + s.shards, 0);
    if (markers > 0) {
      verdicts.push({ cell, hit: false, why: [`partial: ${markers}/${total} shards done; resumes from there`] });
      continue;
    }
    const others = (await store.list(keys.cellIndexPrefix(prefix, cell.teacherId, cell.language))).filter(
      (k) => !k.endsWith(`${cell.datasetKey.split('/').pop()}.json`),
    );
    const why = ['miss: no dataset with this key'];
    for (const k of others.slice(-1)) {
      const prev = await store.getJson<{ keyManifest: DatasetKeyManifest }>(k);
      if (prev)
        why.push(...diffManifests(prev.keyManifest, cell.keyManifest).map((d) => `changed since last run: ${d}`));
    }
    verdicts.push({ cell, hit: false, why });
  }
  return { plan, verdicts, warnings };
}

export function estimate(
  spec: SweepSpec,
  verdicts: CellVerdict[],
): { requests: number; maxTokens: number; maxCostUsd: number } {
  let requests = 0;
  let maxTokens = 0;
  let maxCostUsd = 0;
  for (const v of verdicts) {
    if (v.hit) continue;
    const teacher = spec.teachers.find((t) => t.id === v.cell.teacherId)!;
    const provider = spec.providers.find((p) => p.id === teacher.provider)!;
    const n = v.cell.strategies.reduce((s, x) => s + x.count, 0);
    // Prompt side: templates + seeds are ~600 tokens at most for typical seeds; completion at the cap.
    const promptTok = n * 600;
    const complTok = n * teacher.sampling.maxTokens;
    requests += n;
    maxTokens += promptTok + complTok;
    maxCostUsd += (promptTok * provider.pricePerMTok.input + complTok * provider.pricePerMTok.output) / 1e6;
  }
  return { requests, maxTokens, maxCostUsd };
}

/** Warn when nobody polls a provider's queue: the sweep would wait forever without saying why. */
export async function missingPollers(client: Client, spec: SweepSpec): Promise<string[]> {
  const env = readEnv();
  const queues = [env.taskQueue, ...new Set(spec.providers.map((p) => llmTaskQueue(p.id)))];
  const missing: string[] = [];
  for (const q of queues) {
    try {
      const res = await client.workflowService.describeTaskQueue({
        namespace: env.temporalNamespace,
        taskQueue: { name: q },
        taskQueueType: q === env.taskQueue ? 1 : 2,
      });
      if (!res.pollers?.length) missing.push(q);
    } catch {
      missing.push(q);
    }
  }
  return missing;
}

export async function startSweep(
  client: Client,
  spec: SweepSpec,
): Promise<{ workflowId: string; runId: string; alreadyRunning: boolean }> {
  const plan = planSweep(spec);
  const env = readEnv();
  const handle = client.workflow.getHandle(plan.workflowId);
  try {
    const d = await handle.describe();
    if (d.status.name === 'RUNNING') return { workflowId: plan.workflowId, runId: d.runId, alreadyRunning: true };
  } catch (e) {
    if (!(e instanceof WorkflowNotFoundError)) throw e;
  }
  const h = await client.workflow.start('sweepWorkflow', {
    taskQueue: env.taskQueue,
    workflowId: plan.workflowId,
    args: [spec],
    typedSearchAttributes: [
      { key: SweepIdKey, value: plan.sweepId },
      { key: StageKey, value: 'plan' },
    ],
  });
  return { workflowId: h.workflowId, runId: h.firstExecutionRunId, alreadyRunning: false };
}

/** The spec a sweep was started with, read back from its first history event. */
export async function specOfSweep(client: Client, sweepId: string): Promise<SweepSpec> {
  const handle = client.workflow.getHandle(sweepWorkflowId(sweepId));
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`sweep ${sweepId}: no start input in history`);
  // History comes back as stored: decrypt it first when a codec is configured.
  let decoded = [payload];
  for (const codec of [...(dataConverterFromEnv()?.payloadCodecs ?? [])].reverse())
    decoded = await codec.decode(decoded);
  return defaultPayloadConverter.fromPayload(decoded[0]!) as SweepSpec;
}

export async function sweepProgress(
  client: Client,
  sweepId: string,
): Promise<{ status: string; progress?: SweepProgress; failure?: string }> {
  const handle = client.workflow.getHandle(sweepWorkflowId(sweepId));
  const d = await handle.describe();
  let progress: SweepProgress | undefined;
  try {
    progress = await handle.query<SweepProgress>('progress');
  } catch {
    // A closed sweep whose worker is gone cannot answer queries; show what describe knows.
  }
  let failure: string | undefined;
  if (d.status.name === 'FAILED') {
    try {
      await handle.result();
    } catch (e) {
      const err = e as Error & { cause?: Error };
      failure = err.cause?.message ?? err.message;
    }
  }
  return { status: d.status.name, progress, failure };
}

export function renderGrid(progress: SweepProgress): string {
  const teachers = [...new Set(progress.cells.map((c) => c.teacherId))];
  const langs = [...new Set(progress.cells.map((c) => c.language))];
  const cellText = (t: string, l: string) => {
    const c = progress.cells.find((x) => x.teacherId === t && x.language === l);
    if (!c) return '-';
    return `${c.status} ${c.shardsDone}/${c.shardsTotal} (${c.examples} ex)`;
  };
  const w0 = Math.max(8, ...teachers.map((t) => t.length));
  const widths = langs.map((l) => Math.max(l.length, ...teachers.map((t) => cellText(t, l).length)));
  const line = (cols: string[]) => cols.map((c, i) => (i === 0 ? c.padEnd(w0) : c.padEnd(widths[i - 1]!))).join('  ');
  const rows = [line(['teacher', ...langs]), ...teachers.map((t) => line([t, ...langs.map((l) => cellText(t, l))]))];
  const tot = progress.totals;
  rows.push(
    '',
    `stage ${progress.stage}${progress.paused ? ` — PAUSED: ${progress.pauseReason ?? ''}` : ''}; ${tot.examples} examples, ${tot.tokens} tokens, $${tot.costUsd.toFixed(4)}`,
  );
  for (const c of progress.cells) if (c.error) rows.push(`failed ${c.cellId}: ${c.error}`);
  for (const c of progress.cells)
    for (const r of c.repaired ?? []) rows.push(`repaired ${c.cellId}: ${r.key}: ${r.reason}`);
  return rows.join('\n');
}

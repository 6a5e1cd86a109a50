import { Client, Connection, WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { readEnv, llmTaskQueue } from '../common/env';
import { eligibleSeeds } from '../generation/requests';
import { loadSeedPool } from '../seeds/pool';
import {
  diffManifests,
  planSweep,
  type CellPlan,
  type DatasetKeyManifest,
  type SweepPlan,
  fidelityWarnings,
} from '../spec/plan';
import { formatPath, PAPER_TEACHER_MAX_TOKENS, parseSweepSpec, type SweepSpec } from '../spec/sweep';
import { canonicalJson, digestOf } from '../common/hash';
import { sweepWorkflowId } from '../common/workflow-ids';
import { ErrorType, PolyglotError } from '../common/errors';
import { dataConverterFromEnv } from '../common/codec';
import { checkDataset } from '../activities/dataset';
import { readLatestVersion, readRecordedSpec } from '../activities/sweep';
import { keys } from '../storage/layout';
import { parseS3Uri, type StoreRegistry } from '../storage/s3';
import { INTRINSIC_ONLY } from '../report/render';
import { fmtCost, fmtScore, formatGrid, MISSING, paint, primaryFamily, type Cell, type Tone } from '../report/terminal';
import type { CohortScores } from '../scoring/types';
import type { CellStatus, SweepProgress } from '../workflows/shared';
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
  /** Requests the cell still needs: none when complete, only the unfinished shards' when partial. */
  requests: number;
}

/** For each cell: will it hit the cache or recompute, and why. Reads S3, writes nothing. */
export async function explainPlan(
  spec: SweepSpec,
  stores: StoreRegistry,
): Promise<{ plan: SweepPlan; verdicts: CellVerdict[]; warnings: string[] }> {
  const plan = planSweep(spec);
  const store = stores.for(spec.storage.bucket);
  const prefix = spec.storage.prefix;
  // Budgets below the paper's first: they change what the sweep measures, not just what it costs.
  const warnings: string[] = fidelityWarnings(spec);
  const poolKey = parseS3Uri(spec.seedPool).key;
  const poolThere = await store.exists(keys.seedManifest(poolKey));
  /** Seeds each strategy × language can have: the count, capped by the pool's eligible seeds when known. */
  const selected = new Map<string, number>();
  if (poolThere) {
    const pool = await loadSeedPool(store, poolKey);
    for (const lang of spec.languages) {
      for (const s of plan.cells[0]!.strategies) {
        const n = eligibleSeeds(pool, s.strategy, lang).length;
        selected.set(`${s.strategy}/${lang}`, Math.min(n, s.count));
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
    // A hit when the manifest's seal holds and every shard it lists is there with its recorded size: one
    // LIST per cell, no downloads. The digests are checked in full by the activities on resume.
    const checked = await checkDataset(store, ds, 'sizes');
    if (checked.state === 'ok') {
      verdicts.push({
        cell,
        hit: true,
        why: [`hit: dataset complete (${checked.manifest.produced} examples) at ${store.uri(ds)}`],
        requests: 0,
      });
      continue;
    }
    // A damaged cell is planned like a partial one: its estimate counts the shards without a marker.
    const damage =
      checked.state === 'damaged'
        ? [
            ...checked.problems.map((p) => `damaged: ${store.uri(p.key)}: ${p.reason}`),
            'resume discards the damaged artifacts and rebuilds them from part-files (calls only for lost items)',
          ]
        : [];
    const listed = new Set(await store.list(keys.shardsPrefix(ds)));
    // Requests of the shards without a done marker: the selected seeds, shard by shard.
    let requests = 0;
    let markers = 0;
    for (const s of cell.strategies) {
      const n = selected.get(`${s.strategy}/${cell.language}`) ?? s.count;
      for (let shard = 0; shard * spec.shardSize < n; shard++) {
        if (listed.has(keys.shardMarker(ds, s.strategy, shard))) markers++;
        else requests += Math.min(spec.shardSize, n - shard * spec.shardSize);
      }
    }
    const total = cell.strategies.reduce((n, s) => n + s.shards, 0);
    if (markers > 0) {
      verdicts.push({
        cell,
        hit: false,
        why: [...damage, `partial: ${markers}/${total} shards done; resumes from there`],
        requests,
      });
      continue;
    }
    const own = keys.cellIndexEntry(prefix, cell.teacherId, cell.language, keys.datasetDigest(cell.keyManifest));
    const others = (await store.list(keys.cellIndexPrefix(prefix, cell.teacherId, cell.language))).filter(
      (k) => k !== own,
    );
    const why = [...damage, 'miss: no dataset with this key'];
    for (const k of others.slice(-1)) {
      const prev = await store.getJson<{ keyManifest: DatasetKeyManifest }>(k);
      if (prev)
        why.push(...diffManifests(prev.keyManifest, cell.keyManifest).map((d) => `changed since last run: ${d}`));
    }
    verdicts.push({ cell, hit: false, why, requests });
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
    const teacher = spec.teachers.find((t) => t.id === v.cell.teacherId)!;
    const provider = spec.providers.find((p) => p.id === teacher.provider)!;
    const n = v.requests;
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

/** What `sweep start` did: started a run, attached to the running one, or found this spec already run. */
export type StartOutcome =
  | { kind: 'started' | 'attached'; workflowId: string; runId: string }
  | { kind: 'finished'; workflowId: string; runId: string; status: string };

/** The newest run of a sweep id as Temporal knows it, with its spec (undefined when it does not parse). */
async function currentRun(
  client: Client,
  workflowId: string,
): Promise<{ status: string; runId: string; spec?: SweepSpec } | undefined> {
  const handle = client.workflow.getHandle(workflowId);
  let d;
  try {
    d = await handle.describe();
  } catch (e) {
    if (e instanceof WorkflowNotFoundError) return undefined;
    throw e;
  }
  let spec: SweepSpec | undefined;
  try {
    spec = parseSweepSpec(await startInput(client, workflowId, d.runId));
  } catch {
    // A run started (Web UI) with a spec that fails validation failed at once: nothing to protect.
  }
  return { status: d.status.name, runId: d.runId, spec };
}

/** The leaves where two specs differ, as `path: old → new` lines; lists are compared item by item. */
function diffValues(before: unknown, after: unknown, at: (string | number)[]): string[] {
  if (canonicalJson(before) === canonicalJson(after)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return fields.flatMap((k) => diffValues(before[k], after[k], [...at, k]));
  }
  if (Array.isArray(before) && Array.isArray(after) && before.length === after.length)
    return before.flatMap((v, i) => diffValues(v, after[i], [...at, i]));
  const show = (v: unknown) => (v === undefined ? '(not set)' : JSON.stringify(v));
  return [`${formatPath(at)}: ${show(before)} → ${show(after)}`];
}

/** Stands for the run id of a run known only from S3 (`latest.json`), which Temporal no longer holds. */
const RECORDED = '(no longer in Temporal)';

/** The latest version a sweep id recorded in the spec's bucket, as a closed run. */
async function recordedRun(
  stores: StoreRegistry,
  spec: SweepSpec,
  sweepId: string,
): Promise<{ status: string; runId: string; spec?: SweepSpec } | undefined> {
  const store = stores.for(spec.storage.bucket);
  // Both checked against their seals: a damaged record is an error that says so, not a spec to compare with.
  const latest = await readLatestVersion(store, spec.storage.prefix, sweepId);
  if (!latest) return undefined;
  const recorded = await readRecordedSpec(store, spec.storage.prefix, sweepId, latest);
  let parsed: SweepSpec | undefined;
  try {
    parsed = parseSweepSpec(recorded?.spec);
  } catch {
    // Unreadable: nothing to compare with.
  }
  return { status: 'ENDED', runId: RECORDED, spec: parsed };
}

/** Why a spec may not run under this id: what differs from the spec it has, and the ways out. */
function conflict(sweepId: string, before: SweepSpec, after: SweepSpec, status: string, newRun: boolean): Error {
  const diff = diffValues(before, after, []);
  const shown = diff.slice(0, 10).map((d) => `  ${d}`);
  if (diff.length > shown.length) shown.push(`  … and ${diff.length - shown.length} more`);
  const running = status === 'RUNNING';
  const ways = running
    ? `wait for it to finish or cancel it (\`polyglot sweep cancel ${sweepId}\`), or give this spec another sweepId`
    : `give this spec another sweepId, or start a new version of this sweep with \`polyglot sweep start <spec> --new-run\` (the earlier version's spec, summary and report are kept)`;
  return new PolyglotError(
    ErrorType.InvalidInput,
    `sweep ${sweepId} ${running ? 'is running' : `already ran (${status})`} with a different spec${running && newRun ? ' (--new-run waits for no running sweep)' : ''}; what differs (recorded → this spec):\n${shown.join('\n')}\n${ways}`,
  );
}

/**
 * Start a sweep, one id one spec. The spec is compared with the newest run under its id: the same spec
 * attaches to a running sweep and reports a finished one (`resume` runs it again); another spec is refused
 * unless `newRun`, which starts a new version once the old one has ended. Temporal's policies back this
 * up when two starts race: a first start must be the first run (REJECT_DUPLICATE), a resume or new
 * version may follow closed runs (ALLOW_DUPLICATE), and neither ever joins or ends a running one
 * (conflict policy FAIL); the loser sees the winner's run and is answered as above.
 */
export async function startSweep(
  client: Client,
  spec: SweepSpec,
  opts: { resume?: boolean; newRun?: boolean; stores?: StoreRegistry } = {},
): Promise<StartOutcome> {
  const plan = planSweep(spec);
  const env = readEnv();
  const digest = digestOf(spec);
  for (let attempt = 0; ; attempt++) {
    // Temporal forgets closed runs after its retention period; the spec the sweep recorded in S3 remains.
    const current =
      (await currentRun(client, plan.workflowId)) ??
      (opts.stores ? await recordedRun(opts.stores, spec, plan.sweepId) : undefined);
    if (current) {
      if (current.spec === undefined && (current.status === 'RUNNING' || !(opts.newRun || opts.resume)))
        // Nothing to compare with (started by an older Polyglot, or not a valid spec now): never take it for ours.
        throw new PolyglotError(
          ErrorType.InvalidInput,
          `sweep ${plan.sweepId} ${current.status === 'RUNNING' ? 'is running' : `already ran (${current.status})`} with a spec this version cannot read, so it cannot tell whether it is this one; ${current.status === 'RUNNING' ? `wait for it to finish or cancel it (\`polyglot sweep cancel ${plan.sweepId}\`), or give this spec another sweepId` : 'give this spec another sweepId, or start it as a new version with `--new-run`'}`,
        );
      const same = current.spec !== undefined && digestOf(current.spec) === digest;
      if (current.spec && !same && (current.status === 'RUNNING' || !opts.newRun))
        throw conflict(plan.sweepId, current.spec, spec, current.status, !!opts.newRun);
      if (current.status === 'RUNNING') return { kind: 'attached', workflowId: plan.workflowId, runId: current.runId };
      if (same && !opts.resume && !opts.newRun)
        return { kind: 'finished', workflowId: plan.workflowId, runId: current.runId, status: current.status };
    }
    try {
      const h = await client.workflow.start('sweepWorkflow', {
        taskQueue: env.taskQueue,
        workflowId: plan.workflowId,
        args: [spec],
        workflowIdReusePolicy: current && current.runId !== RECORDED ? 'ALLOW_DUPLICATE' : 'REJECT_DUPLICATE',
        workflowIdConflictPolicy: 'FAIL',
        typedSearchAttributes: [
          { key: SweepIdKey, value: plan.sweepId },
          { key: StageKey, value: 'plan' },
        ],
      });
      return { kind: 'started', workflowId: h.workflowId, runId: h.firstExecutionRunId };
    } catch (e) {
      // Another start won the race: look again at what now runs under the id.
      if (!(e instanceof WorkflowExecutionAlreadyStartedError) || attempt >= 5) throw e;
    }
  }
}

/** A run's start input as stored (decrypted when a codec is configured), before any validation. */
async function startInput(client: Client, workflowId: string, runId?: string): Promise<unknown> {
  // The first event only: a long sweep's whole history is large, and `status --watch` asks every 5 s.
  const page = await client.workflowService.getWorkflowExecutionHistory({
    namespace: client.options.namespace,
    execution: { workflowId, runId },
    maximumPageSize: 1,
  });
  const payload = page.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`workflow ${workflowId}: no start input in history`);
  let decoded = [payload];
  for (const codec of [...(dataConverterFromEnv()?.payloadCodecs ?? [])].reverse())
    decoded = await codec.decode(decoded);
  return defaultPayloadConverter.fromPayload(decoded[0]!);
}

/** The spec a sweep was started with, read back from its first history event (of `runId`, else the newest run). */
export async function specOfSweep(client: Client, sweepId: string, runId?: string): Promise<SweepSpec> {
  // History comes back as stored; parsing fills the defaults a Web UI start may have left out.
  return parseSweepSpec(await startInput(client, sweepWorkflowId(sweepId), runId));
}

export async function sweepProgress(
  client: Client,
  sweepId: string,
  runId?: string,
): Promise<{ status: string; runId: string; progress?: SweepProgress; failure?: string }> {
  const handle = client.workflow.getHandle(sweepWorkflowId(sweepId), runId);
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
  return { status: d.status.name, runId: d.runId, progress, failure };
}

const STATUS_TONE: Partial<Record<CellStatus, Tone>> = {
  done: 'green',
  cached: 'green',
  failed: 'red',
  cancelled: 'red',
  paused: 'yellow',
  pending: 'dim',
};

/**
 * The teacher × language grid of `sweep status`: per cell its stage, shards, examples and, once scored,
 * its score (PG-Score of the leaderboard's first student family, else mean intrinsic z), before that its
 * cost. Then the totals and what went wrong. No links: the report files have them.
 */
export function renderGrid(progress: SweepProgress, opts: { scores?: CohortScores; color?: boolean } = {}): string {
  const teachers = [...new Set(progress.cells.map((c) => c.teacherId))];
  const langs = [...new Set(progress.cells.map((c) => c.language))];
  const family = opts.scores ? primaryFamily(opts.scores) : undefined;
  const scoreOf = (t: string, l: string): string | undefined => {
    const scored = opts.scores?.cells.filter((c) => c.teacher === t && c.language === l) ?? [];
    const pg = fmtScore(scored.find((c) => c.family === family && c.pg_score !== undefined)?.pg_score);
    if (pg !== undefined) return `PG ${pg}`;
    const z = fmtScore(scored[0]?.z_score);
    return z === undefined ? undefined : `z ${z}`;
  };
  const cell = (t: string, l: string): Cell => {
    const c = progress.cells.find((x) => x.teacherId === t && x.language === l);
    if (!c) return undefined;
    // Answers cut at the teacher's maxTokens: a sign the limit is too low for the wording (see `sweep plan`).
    const parts = [`${c.status} ${c.shardsDone}/${c.shardsTotal}`, `${c.examples} ex`];
    if (c.truncated) parts.push(`${c.truncated} cut`);
    parts.push(scoreOf(t, l) ?? fmtCost(c.costUsd) ?? MISSING);
    return { text: parts.join(' · '), tone: STATUS_TONE[c.status] };
  };
  const color = opts.color ?? false;
  const rows = formatGrid({ rowHeader: 'teacher', rows: teachers, cols: langs, cell }, { color });
  const tot = progress.totals;
  rows.push(
    '',
    `stage ${progress.stage}${progress.paused ? ` — ${paint('PAUSED', 'yellow', color)}: ${progress.pauseReason ?? ''}` : ''}; ${tot.examples} examples, ${tot.tokens} tokens, ${fmtCost(tot.costUsd) ?? MISSING}`,
  );
  if (opts.scores)
    rows.push(
      family === INTRINSIC_ONLY || family === undefined
        ? 'scores: mean intrinsic z per cell (no student results)'
        : `scores: PG-Score per cell for student family ${family}`,
    );
  const cut = progress.cells.reduce((n, c) => n + (c.truncated ?? 0), 0);
  if (cut)
    rows.push(
      `${cut} teacher answers were cut at the length limit (finish_reason length); raise teachers[].sampling.maxTokens (the paper allowed ${PAPER_TEACHER_MAX_TOKENS})`,
    );
  for (const c of progress.cells) if (c.error) rows.push(`${paint('failed', 'red', color)} ${c.cellId}: ${c.error}`);
  for (const c of progress.cells)
    for (const r of c.repaired ?? []) rows.push(`repaired ${c.cellId}: ${r.key}: ${r.reason}`);
  return rows.join('\n');
}

/**
 * An error as a sentence: gRPC errors arrive as `5 NOT_FOUND: workflow not found for ID: …`, which tells a
 * user the transport's status code rather than what is missing.
 */
export function cliMessage(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  // Some client calls raise WorkflowNotFoundError, others the bare gRPC NOT_FOUND: both mean the same.
  const missing =
    e instanceof WorkflowNotFoundError ? e.workflowId : /workflow not found for ID: (\S+)/i.exec(message)?.[1];
  if (missing !== undefined)
    return `no sweep workflow ${missing} on this Temporal server (namespace ${readEnv().temporalNamespace}); check the sweep id (\`polyglot sweep start\` prints it) and TEMPORAL_ADDRESS`;
  const grpc = /^(\d+) ([A-Z_]+): ([\s\S]*)$/.exec(message);
  // The client's "Failed to start Workflow" keeps the reason in its cause.
  if (!grpc) return e instanceof Error && e.cause ? `${message}: ${cliMessage(e.cause)}` : message;
  // NOT_FOUND and ALREADY_EXISTS details say so themselves ("namespace x is not found").
  const what: Record<string, string> = {
    INVALID_ARGUMENT: 'refused by Temporal as invalid',
    PERMISSION_DENIED: 'permission denied by Temporal',
    UNAVAILABLE: 'Temporal is unavailable: start it with `polyglot dev up` or check TEMPORAL_ADDRESS',
    DEADLINE_EXCEEDED: 'Temporal did not answer in time',
  };
  const detail = grpc[3]!.trim();
  const capital = detail.charAt(0).toUpperCase() + detail.slice(1);
  return `${capital}${what[grpc[2]!] ? ` (${what[grpc[2]!]})` : ''}.`.replace(/\.\.$/, '.');
}

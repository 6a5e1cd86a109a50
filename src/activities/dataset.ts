import { Context } from '@temporalio/activity';
import { ErrorType, PolyglotError } from '../common/errors';
import type { TrustPolicy } from '../common/policy';
import {
  buildChatRequest,
  eligibleSeeds,
  interpretResult,
  type GenerationContext,
  type SyntheticRow,
} from '../generation/requests';
import { LENGTH_LIMIT_REASON, type ChatResult } from '../llm/client';
import type { LimiterRegistry } from '../llm/limiter';
import { decodeUtf8, loadSeedPool, type SeedRow } from '../seeds/pool';
import {
  TEMPLATE_PARTS,
  templateHashOf,
  templateProblems,
  type TemplateFiles,
  type TemplatePart,
} from '../spec/templates';
import { GENERATION_CODE_VERSION } from '../spec/plan';
import { seededShuffle } from '../common/random';
import { keys, storedTemplateDigestOf } from '../storage/layout';
import { runCheckpointed } from './checkpoint';
import { clientFor } from './provider';
import { parseS3Uri, type S3Store, type StoreRegistry } from '../storage/s3';
import {
  checkShard,
  sha256OfBytes,
  digestBytes,
  getSealed,
  getVerified,
  parseJsonAt,
  putSealed,
  putVerified,
  type Repair,
} from '../storage/integrity';
import type {
  DatasetManifest,
  FinalizeDatasetInput,
  FinalizeDatasetResult,
  GenerateShardInput,
  GenerateShardResult,
  PrepareDatasetInput,
  PrepareDatasetResult,
  ShardStats,
} from './types';
import type { Digest } from '../storage/integrity';

export interface DatasetDeps {
  stores: StoreRegistry;
  limiters: LimiterRegistry;
  /** Environment to read API keys from (by the name the spec gives). */
  env: NodeJS.ProcessEnv;
  fetchImpl?: typeof fetch;
  /** The operator's trust policy (key variables, hosts…); read from `env` when not given. */
  policy?: TrustPolicy;
}

/** The checkpointed outcome for one seed, with the tokens it cost. */
interface PartLine {
  ok: boolean;
  finishReason: string;
  reason?: string;
  row?: SyntheticRow;
  promptTokens: number;
  completionTokens: number;
}

type ShardMarker = Omit<GenerateShardResult, 'cached' | 'calls' | 'repaired'>;

const isMarker = (v: unknown): boolean =>
  typeof (v as ShardMarker).shardUri === 'string' && typeof (v as ShardMarker).produced === 'number';
const isManifest = (v: unknown): boolean =>
  typeof (v as DatasetManifest).produced === 'number' &&
  typeof (v as DatasetManifest).perStrategy === 'object' &&
  (v as DatasetManifest).perStrategy !== null;

/** A marker lost from a dataset whose sealed manifest vouches for the shard: written again from it. */
export interface MarkerRewrite {
  key: string;
  marker: ShardMarker;
  reason: string;
}

type DatasetCheck =
  | { state: 'missing' }
  | { state: 'ok'; manifest: DatasetManifest; rewrites: MarkerRewrite[] }
  | { state: 'damaged'; problems: (Repair & { marker?: string })[]; rewrites: MarkerRewrite[] };

/**
 * A finished dataset checked: its manifest's seal, then each shard it lists.
 * - 'full' (prepareDataset): every shard file against the digest the manifest recorded (older manifests:
 *   every line parses and the count matches the shard's marker), and every marker. A marker that is
 *   missing or damaged while a sealed manifest's digest vouches for its shard is not damage: it comes
 *   back in `rewrites`, rebuilt from the manifest (the caller writes it; no part-file or call needed).
 * - 'sizes' (`sweep plan`): one LIST of the shards/ folder; each shard must be there with the size the
 *   manifest recorded. Nothing is downloaded: full verification is the activities' job on resume.
 */
export async function checkDataset(
  store: S3Store,
  ds: string,
  depth: 'full' | 'sizes' = 'full',
): Promise<DatasetCheck> {
  const manifestKey = keys.datasetManifest(ds);
  const read = await getSealed<DatasetManifest>(store, manifestKey, isManifest);
  if (read.state === 'missing') return read;
  if (read.state === 'damaged')
    return { state: 'damaged', problems: [{ key: manifestKey, reason: read.reason }], rewrites: [] };
  const problems: (Repair & { marker?: string })[] = [];
  const rewrites: MarkerRewrite[] = [];
  const listed = depth === 'sizes' ? await store.listSizes(keys.shardsPrefix(ds)) : undefined;
  for (const [strategy, s] of Object.entries(read.value.perStrategy)) {
    const intact: ShardMarker[] = [];
    const lost: { key: string; shard: number; rows: number; reason: string }[] = [];
    for (let i = 0; i < s.shards.length; i++) {
      const key = parseS3Uri(s.shards[i]!).key;
      const marker = keys.shardMarker(ds, strategy, i);
      const file = s.files?.[i];
      // A sealed manifest's digest is the shard's warrant; its marker matters only to a later rebuild.
      const vouched = read.verified && file !== undefined;
      if (listed) {
        const size = listed.get(key);
        if (size === undefined) problems.push({ key, reason: 'shard file missing', marker });
        else if (file && size !== file.size)
          problems.push({ key, reason: `shard file size ${size} bytes, expected ${file.size}`, marker });
        if (!vouched && !listed.has(marker)) problems.push({ key: marker, reason: 'shard marker missing' });
        continue;
      }
      const m = await getSealed<ShardMarker>(store, marker, isMarker);
      const rows = !file && m.state === 'ok' ? m.value.produced : undefined;
      const why = await checkShard(store, { key, file, rows });
      if (why) problems.push({ key, reason: `shard file ${why}`, marker });
      if (m.state === 'ok') intact.push(m.value);
      else {
        const reason = `shard marker ${m.state === 'missing' ? 'missing' : m.reason}`;
        // The markers are checked too: a later rebuild of the manifest reads them. A damaged one is
        // discarded alone; generateShard writes it again from the shard's part-files (no call).
        if (vouched && !why) lost.push({ key: marker, shard: i, rows: await rowsOf(store, key), reason });
        else problems.push({ key: marker, reason });
      }
    }
    rewrites.push(...markersFromManifest(store, s, intact, lost, ds, strategy));
  }
  return problems.length ? { state: 'damaged', problems, rewrites } : { state: 'ok', manifest: read.value, rewrites };
}

async function rowsOf(store: S3Store, key: string): Promise<number> {
  const text = (await store.getText(key)) ?? '';
  return text.split('\n').filter((l) => l.trim()).length;
}

/**
 * Markers for lost ones, from the manifest's per-strategy counts less those of the intact markers. One
 * lost marker gets exactly its own counts; several share the remainder (rows exact, the other counts split
 * evenly), so a manifest rebuilt from them has the same totals.
 */
function markersFromManifest(
  store: S3Store,
  s: DatasetManifest['perStrategy'][string],
  intact: ShardMarker[],
  lost: { key: string; shard: number; rows: number; reason: string }[],
  ds: string,
  strategy: string,
): MarkerRewrite[] {
  if (!lost.length) return [];
  const fields = [
    'requested',
    'parseFailures',
    'emptyResponses',
    'truncated',
    'truncatedDropped',
    'promptTokens',
    'completionTokens',
  ] as const;
  const rest = Object.fromEntries(
    fields.map((f) => [f, (s[f] ?? 0) - intact.reduce((n, m) => n + (m[f] ?? 0), 0)]),
  ) as Record<(typeof fields)[number], number>;
  const restCost = s.costUsd - intact.reduce((n, m) => n + m.costUsd, 0);
  return lost.map((l, j) => {
    const last = j === lost.length - 1;
    const share = (n: number) =>
      last ? n - Math.floor(n / lost.length) * (lost.length - 1) : Math.floor(n / lost.length);
    const counts = Object.fromEntries(fields.map((f) => [f, share(Math.max(0, rest[f]))]));
    const marker: ShardMarker = {
      ...emptyStats(),
      ...counts,
      produced: l.rows,
      costUsd: Math.max(0, restCost) / lost.length,
      shardUri: store.uri(keys.shardData(ds, strategy, l.shard)),
      file: s.files![l.shard]!,
    };
    return { key: l.key, marker, reason: `${l.reason}; rewritten from the sealed manifest` };
  });
}

const emptyStats = (): ShardStats => ({
  requested: 0,
  produced: 0,
  parseFailures: 0,
  emptyResponses: 0,
  truncated: 0,
  truncatedDropped: 0,
  promptTokens: 0,
  completionTokens: 0,
  costUsd: 0,
});

function addStats(into: ShardStats, s: ShardStats): void {
  into.requested += s.requested;
  into.produced += s.produced;
  into.parseFailures += s.parseFailures;
  into.emptyResponses += s.emptyResponses;
  // Records from before the length count have none: they add 0 (the count is then a lower bound).
  into.truncated = (into.truncated ?? 0) + (s.truncated ?? 0);
  into.truncatedDropped = (into.truncatedDropped ?? 0) + (s.truncatedDropped ?? 0);
  into.promptTokens += s.promptTokens;
  into.completionTokens += s.completionTokens;
  into.costUsd += s.costUsd;
}

/** Seed pools are read by every shard of a cell; keep the last few in memory. */
class SeedPoolCache {
  private readonly pools = new Map<string, Promise<SeedRow[]>>();
  load(store: S3Store, poolKey: string): Promise<SeedRow[]> {
    const id = `${store.bucket}/${poolKey}`;
    let p = this.pools.get(id);
    if (!p) {
      p = loadSeedPool(store, poolKey);
      p.catch(() => this.pools.delete(id));
      this.pools.set(id, p);
      if (this.pools.size > 4) this.pools.delete(this.pools.keys().next().value!);
    }
    return p;
  }
}

/** Whether a stored selection holds exactly `ids` (a torn or edited one does not). */
function sameIds(stored: string, ids: string[]): boolean {
  try {
    return JSON.stringify(JSON.parse(stored)) === JSON.stringify(ids);
  } catch {
    return false;
  }
}

function selectionSeed(seed: number, strategy: string, language: string): string {
  // Same seed → same selection for every teacher of a language: teachers are compared on equal inputs.
  return `${seed}|${strategy}|${strategy === 'translate' ? 'en' : language}`;
}

export function createDatasetActivities(deps: DatasetDeps) {
  const pools = new SeedPoolCache();

  async function prepareDataset(input: PrepareDatasetInput): Promise<PrepareDatasetResult> {
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const repaired: Repair[] = [];
    const checked = await checkDataset(store, ds);
    // Markers the sealed manifest vouches for: written again (a later manifest rebuild reads them).
    if (checked.state !== 'missing')
      for (const r of checked.rewrites) {
        await putSealed(store, r.key, r.marker);
        repaired.push({ key: r.key, reason: r.reason });
      }
    if (checked.state === 'ok') {
      const existing = checked.manifest;
      return {
        repaired,
        manifestUri: store.uri(keys.datasetManifest(ds)),
        examples: existing.produced,
        ...(existing.truncated !== undefined ? { truncated: existing.truncated } : {}),
        strategies: Object.entries(existing.perStrategy).map(([strategy, s]) => ({
          strategy: strategy as PrepareDatasetResult['strategies'][number]['strategy'],
          selected: s.requested,
          shards: s.shards.length,
          shardsDone: s.shards.length,
        })),
      };
    }
    if (checked.state === 'damaged') {
      // Discard exactly what failed: a damaged shard file with its marker (generateShard rebuilds it from
      // its part-files), and the manifest, whose counts no longer stand (finalizeDataset rebuilds it from
      // the markers, each verified again on the way). The manifest goes first: a reader (another sweep's
      // metrics) then sees "no manifest yet" and retries, never a manifest whose shard is gone.
      const manifestKey = keys.datasetManifest(ds);
      await store.delete(manifestKey);
      if (!checked.problems.some((p) => p.key === manifestKey))
        repaired.push({ key: manifestKey, reason: 'lists a damaged shard; rebuilt from the shard markers' });
      for (const p of checked.problems) {
        await store.delete(p.key);
        if (p.marker) await store.delete(p.marker);
        repaired.push({ key: p.key, reason: p.reason });
      }
    }
    await store.ensureBucket();
    await store.putJson(keys.datasetKeyManifest(ds), input.keyManifest);
    await store.putJson(
      keys.cellIndexEntry(
        input.storage.prefix,
        input.keyManifest.teacher.id,
        input.language,
        keys.datasetDigest(input.keyManifest),
      ),
      { datasetKey: input.datasetKey, keyManifest: input.keyManifest },
    );
    const pool = await pools.load(store, parseS3Uri(input.seedPool).key);
    const out: PrepareDatasetResult['strategies'] = [];
    for (const { strategy, count } of input.strategies) {
      const selKey = keys.selection(ds, strategy);
      // The selection is a pure function of the pool, seed, strategy and language (all in the dataset key):
      // recomputing it is cheap, and a stored copy that differs from it is damaged and rewritten.
      const eligible = eligibleSeeds(pool, strategy, input.language).sort((a, b) => (a.id < b.id ? -1 : 1));
      const ids = seededShuffle(eligible, selectionSeed(input.seed, strategy, input.language))
        .slice(0, count)
        .map((r) => r.id);
      const body = JSON.stringify(ids, null, 2) + '\n';
      const stored = await store.getText(selKey);
      let selection: Digest;
      if (stored !== undefined && sameIds(stored, ids)) selection = digestBytes(stored);
      else {
        if (stored !== undefined)
          repaired.push({ key: selKey, reason: 'selection differs from its recomputation; rewritten' });
        selection = await putVerified(store, selKey, body, 'application/json');
      }
      const shards = Math.ceil(ids.length / input.shardSize);
      let shardsDone = 0;
      for (let s = 0; s < shards; s++) if (await store.exists(keys.shardMarker(ds, strategy, s))) shardsDone++;
      out.push({ strategy, selected: ids.length, shards, shardsDone, selection });
    }
    return { strategies: out, repaired };
  }

  /**
   * The spec's own prompt files: read by their content-addressed URIs, each checked against the SHA-256 its URI
   * names and for the placeholders its part needs (a spec started without the CLI was never checked).
   */
  async function templateTexts(files: TemplateFiles | undefined): Promise<Partial<Record<TemplatePart, string>>> {
    const out: Partial<Record<TemplatePart, string>> = {};
    for (const part of TEMPLATE_PARTS) {
      const uri = files?.[part];
      if (!uri) continue;
      const field = `templates.${part}`;
      const want = storedTemplateDigestOf(uri);
      if (!want) throw new PolyglotError(ErrorType.InvalidInput, `${field}: ${uri} is not a stored prompt file`);
      const { bucket, key } = parseS3Uri(uri);
      const bytes = await deps.stores.for(bucket).getBytes(key);
      if (bytes === undefined)
        throw new PolyglotError(
          ErrorType.StorageError,
          `${field}: ${uri} is missing; store it again with \`polyglot sweep start\` from the spec file`,
        );
      if (sha256OfBytes(bytes) !== want)
        throw new PolyglotError(
          ErrorType.CorruptArtifact,
          `${field}: ${uri} does not match the SHA-256 in its name; store the file again with \`polyglot sweep start\``,
        );
      const text = decodeUtf8(bytes, uri);
      const problems = templateProblems(part, text);
      if (problems.length) throw new PolyglotError(ErrorType.InvalidInput, `${field}: ${uri}: ${problems.join('; ')}`);
      out[part] = text;
    }
    return out;
  }

  async function generateShard(input: GenerateShardInput): Promise<GenerateShardResult> {
    const actx = Context.current();
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const markerKey = keys.shardMarker(ds, input.strategy, input.shard);
    const shardKey = keys.shardData(ds, input.strategy, input.shard);
    const repaired: Repair[] = [];
    const read = await getSealed<ShardMarker>(store, markerKey, isMarker);
    if (read.state === 'ok') {
      const marker = read.value;
      const why = await checkShard(store, {
        key: parseS3Uri(marker.shardUri).key,
        file: marker.file,
        rows: marker.produced,
      });
      if (!why) return { ...marker, cached: true, calls: 0, repaired };
      repaired.push({ key: shardKey, reason: `shard file ${why}; rebuilt from its part-files` });
    } else if (read.state === 'damaged') {
      repaired.push({ key: markerKey, reason: `shard marker ${read.reason}; shard rebuilt from its part-files` });
    }
    if (repaired.length) {
      // Marker first: a crash in between leaves a shard without a marker, which is "not done".
      await store.delete(markerKey);
      await store.delete(shardKey);
    }

    const pool = await pools.load(store, parseS3Uri(input.seedPool).key);
    const selKey = keys.selection(ds, input.strategy);
    const sel = await getVerified(store, selKey, input.selection);
    if (sel.state === 'missing')
      throw new PolyglotError(
        ErrorType.StorageError,
        `selection for ${ds}/${input.strategy} is missing; prepareDataset must run first`,
      );
    if (sel.state === 'damaged')
      throw new PolyglotError(
        ErrorType.CorruptArtifact,
        `${store.uri(selKey)} is damaged (${sel.reason}); resume the sweep: prepareDataset rewrites it`,
      );
    const selectionIds = parseJsonAt<string[]>(new TextDecoder().decode(sel.value), store.uri(selKey));
    const byId = new Map(pool.map((r) => [r.id, r]));
    const selection = selectionIds.map((id) => {
      const row = byId.get(id);
      if (!row)
        throw new PolyglotError(
          ErrorType.InvalidInput,
          `seed ${id} of the selection is not in the pool ${input.seedPool}`,
        );
      return row;
    });
    const shardRows = selection.slice(input.shard * input.shardSize, (input.shard + 1) * input.shardSize);

    const { client, limiter } = clientFor(deps, input.provider);
    const gctx: GenerationContext = {
      datasetKey: input.datasetKey,
      strategy: input.strategy,
      language: input.language,
      teacher: input.teacher,
      templateVersion: input.templateVersion,
      ...(input.templateFiles
        ? {
            customTemplates: await templateTexts(input.templateFiles),
            templateHash: templateHashOf(input.templateVersion, input.templateFiles),
          }
        : {}),
      seed: input.seed,
      selection,
    };

    const {
      outcomes: lines,
      processed: calls,
      repaired: partRepairs,
    } = await runCheckpointed<SeedRow, PartLine>({
      store,
      partsPrefix: keys.shardPartsPrefix(ds, input.strategy, input.shard),
      items: shardRows,
      idOf: (row) => row.id,
      checkpointEvery: input.checkpointEvery,
      progress: (done, total) => actx.heartbeat({ done, total }),
      process: async (row) => {
        const { request, synthPrompt } = buildChatRequest(gctx, row);
        const result = await limiter.run(
          () => client.chat(request, actx.cancellationSignal),
          (r: ChatResult) => r.promptTokens + r.completionTokens,
        );
        const outcome = interpretResult(gctx, row, synthPrompt, result);
        return {
          ok: outcome.ok,
          finishReason: result.finishReason,
          promptTokens: result.promptTokens,
          completionTokens: result.completionTokens,
          ...(outcome.ok ? { row: outcome.row } : { reason: outcome.reason }),
        };
      },
    });

    // Assemble in selection order; the shard file and then its marker are written whole.
    const stats = emptyStats();
    const rows: SyntheticRow[] = [];
    for (const r of shardRows) {
      const l = lines.get(r.id)!;
      stats.requested++;
      stats.promptTokens += l.promptTokens;
      stats.completionTokens += l.completionTokens;
      if (l.ok && l.row) rows.push(l.row);
      else if (l.reason === 'empty') stats.emptyResponses++;
      else stats.parseFailures++;
      if (l.finishReason === LENGTH_LIMIT_REASON) {
        stats.truncated!++;
        if (!(l.ok && l.row)) stats.truncatedDropped!++;
      }
    }
    stats.produced = rows.length;
    const price = input.provider.pricePerMTok;
    stats.costUsd = (stats.promptTokens * price.input + stats.completionTokens * price.output) / 1e6;
    const file = await putVerified(
      store,
      shardKey,
      rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''),
      'application/x-ndjson',
    );
    // The marker records the shard file's size and digest: a later reader trusts nothing else.
    const result: ShardMarker = { ...stats, shardUri: store.uri(shardKey), file };
    await putSealed(store, markerKey, result);
    return { ...result, cached: false, calls, repaired: [...repaired, ...partRepairs] };
  }

  async function finalizeDataset(input: FinalizeDatasetInput): Promise<FinalizeDatasetResult> {
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const manifestKey = keys.datasetManifest(ds);
    const repaired: Repair[] = [];
    const read = await getSealed<DatasetManifest>(store, manifestKey, isManifest);
    let manifest = read.state === 'ok' ? read.value : undefined;
    if (read.state === 'damaged') repaired.push({ key: manifestKey, reason: `manifest ${read.reason}; rebuilt` });
    if (!manifest) {
      const total = emptyStats();
      const perStrategy: DatasetManifest['perStrategy'] = {};
      for (const { strategy, shards } of input.strategies) {
        const s = { ...emptyStats(), shards: [] as string[], files: [] as Digest[] };
        for (let i = 0; i < shards; i++) {
          const markerKey = keys.shardMarker(ds, strategy, i);
          const r = await getSealed<ShardMarker>(store, markerKey, isMarker);
          if (r.state === 'missing')
            throw new PolyglotError(ErrorType.StorageError, `shard ${strategy}-${i} of ${ds} has no completion marker`);
          if (r.state === 'damaged')
            throw new PolyglotError(
              ErrorType.CorruptArtifact,
              `${store.uri(markerKey)} is damaged (${r.reason}); resume the sweep to rebuild the shard`,
            );
          const m = r.value;
          const { file: _file, ...counts } = m;
          addStats(s, counts);
          s.shards.push(m.shardUri);
          // A marker from before digests: digest the shard file as it is (generateShard has just checked it).
          s.files.push(m.file ?? digestBytes((await store.getBytes(parseS3Uri(m.shardUri).key)) ?? new Uint8Array()));
        }
        perStrategy[strategy] = s;
        addStats(total, s);
      }
      manifest = {
        ...total,
        datasetKey: input.datasetKey,
        uri: store.uri(ds),
        keyManifest: input.keyManifest,
        perStrategy,
        createdBy: { sweepId: input.sweepId, workflowId: input.workflowId, runId: input.runId },
        codeVersion: GENERATION_CODE_VERSION,
        createdAt: new Date().toISOString(),
      };
      // Last write of the cell: its presence means "complete" to every later run. Sealed, and it records
      // every shard file's size and digest: readers verify both before use.
      await putSealed(store, manifestKey, manifest);
    }
    return {
      repaired,
      manifestUri: store.uri(manifestKey),
      examples: manifest.produced,
      promptTokens: manifest.promptTokens,
      completionTokens: manifest.completionTokens,
      costUsd: manifest.costUsd,
      parseFailures: manifest.parseFailures,
      truncated: manifest.truncated,
    };
  }

  return { prepareDataset, generateShard, finalizeDataset };
}

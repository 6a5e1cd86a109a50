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
import type { ChatResult } from '../llm/client';
import type { LimiterRegistry } from '../llm/limiter';
import { loadSeedPool, type SeedRow } from '../seeds/pool';
import { GENERATION_CODE_VERSION } from '../spec/plan';
import { seededShuffle } from '../spec/random';
import { keys } from '../storage/layout';
import { runCheckpointed } from './checkpoint';
import { clientFor } from './provider';
import { parseS3Uri, type S3Store, type StoreRegistry } from '../storage/s3';
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

type ShardMarker = Omit<GenerateShardResult, 'cached' | 'calls'>;

const emptyStats = (): ShardStats => ({
  requested: 0,
  produced: 0,
  parseFailures: 0,
  emptyResponses: 0,
  promptTokens: 0,
  completionTokens: 0,
  costUsd: 0,
});

function addStats(into: ShardStats, s: ShardStats): void {
  into.requested += s.requested;
  into.produced += s.produced;
  into.parseFailures += s.parseFailures;
  into.emptyResponses += s.emptyResponses;
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

function selectionSeed(seed: number, strategy: string, language: string): string {
  // Same seed → same selection for every teacher of a language: teachers are compared on equal inputs.
  return `${seed}|${strategy}|${strategy === 'translate' ? 'en' : language}`;
}

export function createDatasetActivities(deps: DatasetDeps) {
  const pools = new SeedPoolCache();

  async function prepareDataset(input: PrepareDatasetInput): Promise<PrepareDatasetResult> {
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const existing = await store.getJson<DatasetManifest>(keys.datasetManifest(ds));
    if (existing) {
      return {
        manifestUri: store.uri(keys.datasetManifest(ds)),
        examples: existing.produced,
        strategies: Object.entries(existing.perStrategy).map(([strategy, s]) => ({
          strategy: strategy as PrepareDatasetResult['strategies'][number]['strategy'],
          selected: s.requested,
          shards: s.shards.length,
          shardsDone: s.shards.length,
        })),
      };
    }
    await store.ensureBucket();
    await store.putJson(keys.datasetKeyManifest(ds), input.keyManifest);
    const digest = input.datasetKey.split('/').pop()!;
    await store.putJson(
      keys.cellIndexEntry(input.storage.prefix, input.keyManifest.teacher.id, input.language, digest),
      { datasetKey: input.datasetKey, keyManifest: input.keyManifest },
    );
    const pool = await pools.load(store, parseS3Uri(input.seedPool).key);
    const out: PrepareDatasetResult['strategies'] = [];
    for (const { strategy, count } of input.strategies) {
      const selKey = keys.selection(ds, strategy);
      let ids = await store.getJson<string[]>(selKey);
      if (!ids) {
        const eligible = eligibleSeeds(pool, strategy, input.language).sort((a, b) => (a.id < b.id ? -1 : 1));
        ids = seededShuffle(eligible, selectionSeed(input.seed, strategy, input.language))
          .slice(0, count)
          .map((r) => r.id);
        await store.putJson(selKey, ids);
      }
      const shards = Math.ceil(ids.length / input.shardSize);
      let shardsDone = 0;
      for (let s = 0; s < shards; s++) if (await store.exists(keys.shardMarker(ds, strategy, s))) shardsDone++;
      out.push({ strategy, selected: ids.length, shards, shardsDone });
    }
    return { strategies: out };
  }

  async function generateShard(input: GenerateShardInput): Promise<GenerateShardResult> {
    const actx = Context.current();
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const markerKey = keys.shardMarker(ds, input.strategy, input.shard);
    const marker = await store.getJson<ShardMarker>(markerKey);
    if (marker) return { ...marker, cached: true, calls: 0 };

    const pool = await pools.load(store, parseS3Uri(input.seedPool).key);
    const selectionIds = await store.getJson<string[]>(keys.selection(ds, input.strategy));
    if (!selectionIds)
      throw new PolyglotError(
        ErrorType.StorageError,
        `selection for ${ds}/${input.strategy} is missing; prepareDataset must run first`,
      );
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
      seed: input.seed,
      selection,
    };

    const { outcomes: lines, processed: calls } = await runCheckpointed<SeedRow, PartLine>({
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
    }
    stats.produced = rows.length;
    const price = input.provider.pricePerMTok;
    stats.costUsd = (stats.promptTokens * price.input + stats.completionTokens * price.output) / 1e6;
    const shardKey = keys.shardData(ds, input.strategy, input.shard);
    await store.putText(
      shardKey,
      rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : ''),
      'application/x-ndjson',
    );
    const result: ShardMarker = { ...stats, shardUri: store.uri(shardKey) };
    await store.putJson(markerKey, result);
    return { ...result, cached: false, calls };
  }

  async function finalizeDataset(input: FinalizeDatasetInput): Promise<FinalizeDatasetResult> {
    const store = deps.stores.for(input.storage.bucket);
    const ds = keys.dataset(input.storage.prefix, input.datasetKey);
    const manifestKey = keys.datasetManifest(ds);
    let manifest = await store.getJson<DatasetManifest>(manifestKey);
    if (!manifest) {
      const total = emptyStats();
      const perStrategy: DatasetManifest['perStrategy'] = {};
      for (const { strategy, shards } of input.strategies) {
        const s = { ...emptyStats(), shards: [] as string[] };
        for (let i = 0; i < shards; i++) {
          const m = await store.getJson<ShardMarker>(keys.shardMarker(ds, strategy, i));
          if (!m)
            throw new PolyglotError(ErrorType.StorageError, `shard ${strategy}-${i} of ${ds} has no completion marker`);
          addStats(s, m);
          s.shards.push(m.shardUri);
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
      // Last write of the cell: its presence means "complete" to every later run.
      await store.putJson(manifestKey, manifest);
    }
    return {
      manifestUri: store.uri(manifestKey),
      examples: manifest.produced,
      promptTokens: manifest.promptTokens,
      completionTokens: manifest.completionTokens,
      costUsd: manifest.costUsd,
      parseFailures: manifest.parseFailures,
    };
  }

  return { prepareDataset, generateShard, finalizeDataset };
}

import { Context } from '@temporalio/activity';
import { ErrorType, PolyglotError } from '../common/errors';
import type { SyntheticRow } from '../generation/requests';
import type { LimiterRegistry } from '../llm/limiter';
import type { MetricOptions, PerplexityOptions } from '../metrics/definition';
import { COMPUTE, type ComputeFn, type MetricContext } from './measure';
import { METRICS, type MetricActivity, type MetricDefinition } from '../metrics/registry';
import { balancedSubsample, SUBSAMPLE_METHOD } from '../metrics/subsample';
import { digestOf } from '../common/hash';
import type { Provider } from '../spec/sweep';
import { keys } from '../storage/layout';
import { parseS3Uri, type S3Store, type StoreRegistry } from '../storage/s3';
import {
  getSealed,
  getVerified,
  mustBeIntact,
  parseJsonLines,
  putSealed,
  type Digest,
  type Repair,
} from '../storage/integrity';
import { runCheckpointed } from './checkpoint';
import type { TrustPolicy } from '../common/policy';
import { clientFor } from './provider';
import type { DatasetManifest, StorageRef } from './types';

/**
 * Intrinsic metrics of one dataset (docs/method.md, "Intrinsic metrics"), each its own cached S3 artifact keyed by the
 * dataset key and the metric's config: a finished metric is never recomputed, and per-item metrics
 * checkpoint part-files so a retry continues where it stopped. One activity per metric of the registry
 * (src/metrics/registry.ts), computed by its entry in src/activities/measure.
 */

export interface SubsampleInput {
  storage: StorageRef;
  datasetKey: string;
  size: number;
  seed: number;
}

/** A metric activity's input: the common fields, then its metric's options (src/metrics/definition.ts). */
export interface MetricInput extends MetricOptions {
  storage: StorageRef;
  datasetKey: string;
  language: string;
  subsampleUri: string;
  /** Model and provider of the metric's endpoint (absent for local metrics). */
  model?: string;
  provider?: Provider;
  checkpointEvery: number;
}

export type { PerplexityOptions };

export interface MetricResult {
  metric: string;
  uri: string;
  values: Record<string, number>;
  cached: boolean;
  /** Size and digest of the stored result (absent when it was written before digests). */
  file?: Digest;
  /** Artifacts that failed their integrity check and were discarded (part-files, the result itself). */
  repaired?: Repair[];
}

export interface CombineInput {
  storage: StorageRef;
  datasetKey: string;
  metrics: MetricResult[];
  subsampleUri: string;
  workflowId: string;
  runId: string;
}

interface Subsample {
  datasetKey: string;
  size: number;
  seed: number;
  ids: string[];
  perStrategy: Record<string, number>;
  /** The sampling algorithm (absent in records written before it was named). */
  method?: string;
}

export interface SubsampleResult {
  uri: string;
  n: number;
  /** Size and SHA-256 of the stored record (absent from results of older histories). */
  file?: Digest;
  repaired?: Repair[];
}

export interface MetricsDeps {
  stores: StoreRegistry;
  limiters: LimiterRegistry;
  env: NodeJS.ProcessEnv;
  fetchImpl?: typeof fetch;
  policy?: TrustPolicy;
}

const isValues = (v: unknown) => typeof (v as { values?: unknown }).values === 'object';
const isSubsample = (v: unknown) => Array.isArray((v as Subsample).ids);

/** A subsample record, verified; damaged: a clear error (subsampleDataset, run first, recomputes it). */
async function readSubsample(store: S3Store, uri: string): Promise<Subsample | undefined> {
  return mustBeIntact(
    await getSealed<Subsample>(store, parseS3Uri(uri).key, isSubsample),
    uri,
    'resume the sweep: its metrics stage recomputes it',
  );
}

async function datasetRows(
  store: S3Store,
  storage: StorageRef,
  datasetKey: string,
): Promise<{ manifest: DatasetManifest; rows: SyntheticRow[] }> {
  const ds = keys.dataset(storage.prefix, datasetKey);
  const manifestKey = keys.datasetManifest(ds);
  // This stage cannot regenerate data: a damaged dataset fails clearly, and a resume of the sweep runs the
  // dataset stage first, which discards and rebuilds what failed (from part-files: no call when they hold).
  const fix = 'resume the sweep: its dataset stage rebuilds the damaged artifact';
  const manifest = mustBeIntact(
    await getSealed<DatasetManifest>(store, manifestKey, (v) => typeof (v as DatasetManifest).perStrategy === 'object'),
    store.uri(manifestKey),
    fix,
  );
  // Missing: not generated yet, or being repaired by another sweep's dataset stage (which removes the manifest
  // first and writes it last). Retryable: the repair finishes, or the retries run out with this message.
  if (!manifest)
    throw new PolyglotError(
      ErrorType.StorageError,
      `dataset ${store.uri(ds)} has no manifest (not generated yet, or being repaired by another run); retried`,
    );
  const rows: SyntheticRow[] = [];
  for (const s of Object.values(manifest.perStrategy)) {
    for (let i = 0; i < s.shards.length; i++) {
      const uri = s.shards[i]!;
      const got = await getVerified(store, parseS3Uri(uri).key, s.files?.[i]);
      if (got.state !== 'ok')
        throw new PolyglotError(
          ErrorType.CorruptArtifact,
          `${uri} is ${got.state === 'missing' ? 'missing' : `damaged (${got.reason})`}; ${fix}`,
        );
      rows.push(...parseJsonLines<SyntheticRow>(new TextDecoder().decode(got.value), uri));
    }
  }
  return { manifest, rows };
}

export function createMetricsActivities(deps: MetricsDeps) {
  /** The subsample's rows, in subsample order. */
  async function subsampleRows(input: MetricInput): Promise<SyntheticRow[]> {
    const store = deps.stores.for(input.storage.bucket);
    const sub = await readSubsample(store, input.subsampleUri);
    if (!sub) throw new PolyglotError(ErrorType.StorageError, `subsample ${input.subsampleUri} is missing`);
    const { rows } = await datasetRows(store, input.storage, input.datasetKey);
    const byId = new Map(rows.map((r) => [r.id, r]));
    return sub.ids.map((id) => {
      const r = byId.get(id);
      if (!r)
        throw new PolyglotError(ErrorType.StorageError, `subsample id ${id} is not in dataset ${input.datasetKey}`);
      return r;
    });
  }

  /** Return the stored result when present; else compute, store (whole object) and return it. */
  async function cached(
    input: MetricInput,
    metric: string,
    config: unknown,
    compute: (
      partsPrefix: string,
    ) => Promise<{ values: Record<string, number>; detail?: unknown; repaired?: Repair[] }>,
  ): Promise<MetricResult> {
    const store = deps.stores.for(input.storage.bucket);
    const digest = digestOf({ metric, config, subsample: input.subsampleUri }).slice(0, 16);
    const key = keys.metricResult(input.storage.prefix, input.datasetKey, metric, digest);
    const read = await getSealed<{ values: Record<string, number> }>(store, key, (v) => isValues(v));
    // A cached result's own digest too: the intrinsic record lists every result's size and digest.
    if (read.state === 'ok')
      return { metric, uri: store.uri(key), values: read.value.values, cached: true, file: read.file };
    const repaired: Repair[] = [];
    // A damaged result is recomputed alone; its part-files, if any, still hold (checked line by line).
    if (read.state === 'damaged') repaired.push({ key, reason: `metric result ${read.reason}; recomputed` });
    const parts = keys.metricParts(input.storage.prefix, input.datasetKey, metric, digest);
    const { values, detail, repaired: partRepairs } = await compute(parts);
    repaired.push(...(partRepairs ?? []));
    const file = await putSealed(store, key, {
      metric,
      config,
      datasetKey: input.datasetKey,
      subsample: input.subsampleUri,
      values,
      detail,
      createdAt: new Date().toISOString(),
    });
    return { metric, uri: store.uri(key), values, cached: false, file, repaired };
  }

  function endpoint(input: MetricInput) {
    if (!input.provider || !input.model)
      throw new PolyglotError(ErrorType.InvalidInput, 'metric needs a provider and a model');
    return { ...clientFor(deps, input.provider), model: input.model };
  }

  /** Run `process` over every subsample row, checkpointed in part-files (a retry resumes), heartbeating. */
  async function perSubsampleItem<O>(
    input: MetricInput,
    partsPrefix: string,
    process: (row: SyntheticRow) => Promise<O>,
  ): Promise<{ rows: SyntheticRow[]; outcomes: Map<string, O>; repaired: Repair[] }> {
    const rows = await subsampleRows(input);
    const { outcomes, repaired } = await runCheckpointed<SyntheticRow, O>({
      store: deps.stores.for(input.storage.bucket),
      partsPrefix,
      items: rows,
      idOf: (r) => r.id,
      checkpointEvery: input.checkpointEvery,
      progress: (done, total) => Context.current().heartbeat({ done, total }),
      process,
    });
    return { rows, outcomes, repaired };
  }

  /** What metric `def`'s compute function may use; its fresh values may hold only `def`'s declared outputs. */
  function contextFor(def: MetricDefinition, input: MetricInput): MetricContext<MetricDefinition> {
    const declared = new Set(def.outputs.map((o) => o.name));
    return {
      input,
      env: deps.env,
      cached: (config, compute) =>
        cached(input, def.name, config, async (parts) => {
          const fresh = await compute(parts);
          const undeclared = Object.keys(fresh.values).filter((k) => !declared.has(k));
          if (undeclared.length)
            throw new PolyglotError(
              ErrorType.InvalidInput,
              `metric ${def.name} computed ${undeclared.join(', ')}, not among its outputs (src/metrics/defs)`,
            );
          return fresh as { values: Record<string, number>; detail?: unknown; repaired?: Repair[] };
        }),
      endpoint: () => endpoint(input),
      subsampleRows: () => subsampleRows(input),
      perSubsampleItem: (parts, process) => perSubsampleItem(input, parts, process),
      heartbeat: (details) => Context.current().heartbeat(details),
      signal: () => Context.current().cancellationSignal,
    };
  }

  /**
   * The balanced subsample's ids, stored once per dataset, size and seed; metrics and student training read the
   * same record. `file` is the stored bytes' size and SHA-256: a job that reads the file verifies it.
   */
  async function subsampleDataset(input: SubsampleInput): Promise<SubsampleResult> {
    const store = deps.stores.for(input.storage.bucket);
    const key = keys.subsample(input.storage.prefix, input.datasetKey, SUBSAMPLE_METHOD, input.size, input.seed);
    const read = await getSealed<Subsample>(store, key, isSubsample);
    if (read.state === 'ok') return { uri: store.uri(key), n: read.value.ids.length, file: read.file };
    // The subsample is a pure function of the dataset, size and seed: a damaged one is recomputed as it was.
    const repaired: Repair[] =
      read.state === 'damaged' ? [{ key, reason: `subsample ${read.reason}; recomputed` }] : [];
    const { rows } = await datasetRows(store, input.storage, input.datasetKey);
    const order: string[] = [];
    const byStrategy = new Map<string, string[]>();
    for (const r of rows) {
      if (!byStrategy.has(r.strategy)) {
        order.push(r.strategy);
        byStrategy.set(r.strategy, []);
      }
      byStrategy.get(r.strategy)!.push(r.id);
    }
    const chosen = balancedSubsample(
      order.map((strategy) => ({ strategy, ids: byStrategy.get(strategy)! })),
      input.size,
      input.seed,
    );
    const sub: Subsample = {
      datasetKey: input.datasetKey,
      size: input.size,
      seed: input.seed,
      ids: order.flatMap((s) => chosen.get(s) ?? []),
      perStrategy: Object.fromEntries(order.map((s) => [s, chosen.get(s)?.length ?? 0])),
      method: SUBSAMPLE_METHOD,
    };
    const file = await putSealed(store, key, sub);
    return { uri: store.uri(key), n: sub.ids.length, file, repaired };
  }

  async function combineIntrinsic(
    input: CombineInput,
  ): Promise<{ uri: string; values: Record<string, number>; repaired?: Repair[] }> {
    const store = deps.stores.for(input.storage.bucket);
    const values: Record<string, number> = {};
    for (const m of input.metrics) Object.assign(values, m.values);
    const sub = await readSubsample(store, input.subsampleUri);
    values.subsample_size = sub?.ids.length ?? NaN;
    // How many teacher answers the length limit cut (docs/method.md, "Generation strategies"): shown beside the
    // metrics, since a cut answer is either dropped (JSON) or kept unfinished (respond), and both bias them.
    const manifest = await getSealed<DatasetManifest>(
      store,
      keys.datasetManifest(keys.dataset(input.storage.prefix, input.datasetKey)),
      (v) => typeof (v as DatasetManifest).perStrategy === 'object',
    );
    if (manifest.state === 'ok' && manifest.value.truncated !== undefined) {
      values.generation_truncated = manifest.value.truncated;
      values.generation_truncated_dropped = manifest.value.truncatedDropped ?? NaN;
    }
    const key = keys.intrinsic(
      input.storage.prefix,
      input.datasetKey,
      input.metrics.map((m) => m.uri),
    );
    const read = await getSealed(store, key, (v) => typeof (v as { intrinsic?: unknown }).intrinsic === 'object');
    const repaired: Repair[] =
      read.state === 'damaged' ? [{ key, reason: `intrinsic record ${read.reason}; rewritten` }] : [];
    if (read.state !== 'ok') {
      // Sealed, and it records each metric result's size and digest (when the result was written with one).
      await putSealed(store, key, {
        datasetKey: input.datasetKey,
        intrinsic: values,
        metrics: input.metrics.map((m) => ({ metric: m.metric, uri: m.uri, ...m.file })),
        subsample: input.subsampleUri,
        createdBy: { workflowId: input.workflowId, runId: input.runId },
        createdAt: new Date().toISOString(),
      });
    }
    return { uri: store.uri(key), values, repaired };
  }

  /** One activity per registered metric, named by its definition, computed by its `COMPUTE` entry. */
  const measures = Object.fromEntries(
    METRICS.map((def) => [
      def.activity,
      (input: MetricInput) => (COMPUTE[def.name] as ComputeFn<MetricDefinition>)(contextFor(def, input)),
    ]),
  ) as Record<MetricActivity, (input: MetricInput) => Promise<MetricResult>>;

  return { subsampleDataset, ...measures, combineIntrinsic };
}

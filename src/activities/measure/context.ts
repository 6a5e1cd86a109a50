/**
 * What a metric's compute function is handed (the activity half of a metric; the pure half is its
 * `src/metrics/defs/<name>.ts`). Adding a metric: docs/extending-metrics.md.
 */
import type { MetricInput, MetricResult } from '../metrics';
import type { SyntheticRow } from '../../generation/requests';
import type { ChatClient } from '../../llm/client';
import type { ActivityLimiter } from '../waits';
import type { Repair } from '../../storage/integrity';
import type { METRICS, MetricDefinition } from '../../metrics/registry';

/** A fresh result: its values may hold only the metric's declared outputs (checked when it is stored). */
export interface Computed<D extends MetricDefinition> {
  values: { [K in D['outputs'][number]['name']]?: number };
  /** Per-item detail stored beside the values (not in the intrinsic record). */
  detail?: unknown;
  repaired?: Repair[];
}

export interface MetricContext<D extends MetricDefinition> {
  input: MetricInput;
  /** The worker's environment (e.g. the judge's rendered protocol texts). */
  env: NodeJS.ProcessEnv;
  /**
   * The stored result for `config` when present (a finished metric is never recomputed); else `compute`'s,
   * stored. `config` keys the result: change it when a change of method changes the numbers.
   */
  cached(config: unknown, compute: (partsPrefix: string) => Promise<Computed<D>>): Promise<MetricResult>;
  /** Client, limiter and model of the metric's endpoint (provider-queue metrics). */
  endpoint(): { client: ChatClient; limiter: ActivityLimiter; model: string };
  /** The subsample's rows, in subsample order. */
  subsampleRows(): Promise<SyntheticRow[]>;
  /** Run `process` over every subsample row, checkpointed in part-files under `partsPrefix` (a retry resumes). */
  perSubsampleItem<O>(
    partsPrefix: string,
    process: (row: SyntheticRow) => Promise<O>,
  ): Promise<{ rows: SyntheticRow[]; outcomes: Map<string, O>; repaired: Repair[] }>;
  heartbeat(details?: unknown): void;
  /** The activity's cancellation signal. */
  signal(): AbortSignal;
}

/** The compute half of metric `D` (declared `ComputeFn<typeof myMetric>`). */
export type ComputeFn<D extends MetricDefinition> = (ctx: MetricContext<D>) => Promise<MetricResult>;

/** One compute function per registered metric, keyed by name: a metric without one does not compile. */
export type ComputeRegistry = { [D in (typeof METRICS)[number] as D['name']]: ComputeFn<D> };

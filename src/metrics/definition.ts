/**
 * What a metric declares (the pure half of a metric: name, spec schema, queue, outputs). The registry of all
 * metrics is `src/metrics/registry.ts`; adding one: docs/extending-metrics.md.
 *
 * Pure (zod and type imports only): workflows import it.
 */
import { z } from 'zod';
import type { JudgeTemplate } from './judge';
import type { PadSide } from './perplexity';

/**
 * Options a metric's activity input may carry besides the common fields (`MetricInput` in
 * src/activities/metrics.ts extends this). A new metric's option is added here, optional.
 */
export interface MetricOptions {
  maxTokens?: number;
  /**
   * Judge template version (docs/method.md, "Rubric judge"). Absent only in runs begun before versions
   * were selectable: those keep the template they began with.
   */
  judgeTemplate?: JudgeTemplate;
  /** Perplexity's options (absent from inputs of earlier versions: per-item). */
  perplexity?: PerplexityOptions;
}

export interface PerplexityOptions {
  mode: 'per-item' | 'paper';
  batchSize: number;
  padSide: PadSide;
}

/**
 * Where a metric's activity runs. `provider`: it calls a model, so it runs on its endpoint's provider queue
 * (`llm-<provider>`) under that provider's limits; its spec entry names `{ provider, model }`. `main`: local
 * work on the main queue, heartbeated by the worker while it runs (short heartbeat timeout).
 */
export type MetricQueue = 'provider' | 'main';

/**
 * A number a metric writes into its result's `values`. Every value lands in the intrinsic record's `intrinsic`
 * object and in the report's intrinsic table and `intrinsic.csv`. `record` says where it also goes in the scored
 * `IntrinsicRecord`: `core`, one of the paper's six features every cohort cell needs (the paper fixes these; a new
 * metric is not core); `extra`, optional, carried into the scores and accepted as a `polyglot score` column.
 */
export interface OutputField {
  readonly name: string;
  readonly record?: 'core' | 'extra';
  readonly doc: string;
}

/** An OpenAI-compatible endpoint used by a metric: a provider id from `providers` and a model name. */
export const MetricModel = z.strictObject({ provider: z.string(), model: z.string().min(1).max(256) });
export type MetricEndpoint = z.infer<typeof MetricModel>;

interface DefinitionBase<K extends string, N extends string, A extends string, O extends readonly OutputField[]> {
  /** Key under `metrics:` in the spec. */
  readonly specKey: K;
  /** Stored results are `<dataset>/metrics/<name>-<digest>.json`; the compute record is keyed by it. */
  readonly name: N;
  /** The Temporal activity type: it is in workflow histories, so never rename it. */
  readonly activity: A;
  readonly outputs: O;
}

/** A metric calling a model: its spec entry is `{ provider, model, …options }`, absent = off. */
export interface ProviderMetric<
  K extends string = string,
  N extends string = string,
  A extends string = string,
  S extends z.ZodType<MetricEndpoint> = z.ZodType<MetricEndpoint>,
  O extends readonly OutputField[] = readonly OutputField[],
> extends DefinitionBase<K, N, A, O> {
  readonly queue: 'provider';
  /** The spec entry's schema, without `.optional()` (the registry adds it). */
  readonly schema: S;
  /** Fields the activity's input gets besides the common ones (method syntax: the registry holds all kinds). */
  activityInput?(config: z.output<S>): MetricOptions;
}

/** A local metric on the main queue: its spec entry is a switch with a default. */
export interface MainMetric<
  K extends string = string,
  N extends string = string,
  A extends string = string,
  S extends z.ZodType = z.ZodType,
  O extends readonly OutputField[] = readonly OutputField[],
> extends DefinitionBase<K, N, A, O> {
  readonly queue: 'main';
  /** The spec entry's schema, complete (with its default). */
  readonly schema: S;
  enabled(config: z.output<S>): boolean;
  activityInput?(config: z.output<S>): MetricOptions;
}

export type MetricDefinition = ProviderMetric | MainMetric;

/** Declares a metric, keeping its literal names so the registry's derived types stay exact. */
export function defineMetric<
  const K extends string,
  const N extends string,
  const A extends string,
  S extends z.ZodType<MetricEndpoint>,
  const O extends readonly OutputField[],
>(d: ProviderMetric<K, N, A, S, O>): ProviderMetric<K, N, A, S, O>;
export function defineMetric<
  const K extends string,
  const N extends string,
  const A extends string,
  S extends z.ZodType,
  const O extends readonly OutputField[],
>(d: MainMetric<K, N, A, S, O>): MainMetric<K, N, A, S, O>;
export function defineMetric(d: MetricDefinition): MetricDefinition {
  return d;
}

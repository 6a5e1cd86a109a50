/**
 * The metric registry: each intrinsic metric (docs/method.md, "Intrinsic metrics") is declared once, in
 * `src/metrics/defs/<name>.ts`, and listed in `METRICS` below. The spec's `metrics` block, the metrics workflow,
 * the workers' queues, the intrinsic record and `polyglot score`'s columns are all derived from this list. The
 * compute side lives in `src/activities/measure/<name>.ts`, keyed by name in `COMPUTE`
 * (`src/activities/measure/index.ts`), a record the compiler checks for completeness.
 * Step by step: docs/extending-metrics.md.
 *
 * Pure (zod and type imports only): workflows import it, so nothing here may touch I/O, the clock or Node.
 */
import type { z } from 'zod';
import {
  type MetricDefinition,
  type MetricEndpoint,
  type MetricOptions,
  type MetricQueue,
  type OutputField,
  type ProviderMetric,
} from './definition';
import { diversity } from './defs/diversity';
import { judge } from './defs/judge';
import { language } from './defs/language';
import { lengths } from './defs/lengths';
import { perplexity } from './defs/perplexity';

export * from './definition';

/**
 * Every metric, in the order the metrics workflow schedules them. The order is in running workflows' histories
 * (activity ids follow it): append new metrics at the end, never reorder.
 */
export const METRICS = [diversity, judge, perplexity, lengths, language] as const;

type Metrics = (typeof METRICS)[number];
export type MetricName = Metrics['name'];
export type MetricActivity = Metrics['activity'];

type FieldsWhere<R> = Metrics['outputs'][number] extends infer F
  ? F extends { name: infer Name; record: R }
    ? Name
    : never
  : never;

/** Numbers the intrinsic record holds besides the metrics' own, written by `combineIntrinsic`. */
export const COMBINED_OUTPUTS = [
  { name: 'subsample_size', record: 'extra', doc: 'Rows in the balanced subsample the metrics read.' },
  {
    name: 'generation_truncated',
    doc: "Teacher answers the length limit cut (from the dataset's manifest, where it recorded them).",
  },
  { name: 'generation_truncated_dropped', doc: 'Of those, the ones dropped (unreadable JSON).' },
] as const satisfies readonly OutputField[];

type Combined = (typeof COMBINED_OUTPUTS)[number];
export type CoreIntrinsicField = FieldsWhere<'core'>;
export type ExtraIntrinsicField = FieldsWhere<'extra'> | Extract<Combined, { record: 'extra' }>['name'];

/** Output fields of `defs` with their `record` placement, in declaration order. */
export function recordFields(defs: readonly MetricDefinition[], record: 'core' | 'extra'): string[] {
  return defs.flatMap((d) => d.outputs.filter((o) => o.record === record).map((o) => o.name));
}

/** Every output field of `defs`, then the combined ones: each value an intrinsic record may hold. */
export function allOutputs(defs: readonly MetricDefinition[]): OutputField[] {
  return [...defs.flatMap((d) => d.outputs), ...COMBINED_OUTPUTS];
}

/** The six core intrinsic fields, in the reference's table order (the registry's order gives it). */
export const CORE_INTRINSIC = recordFields(METRICS, 'core') as readonly CoreIntrinsicField[];
/** The optional intrinsic fields the scores carry and `polyglot score` accepts. */
export const EXTRA_INTRINSIC = [
  ...recordFields(METRICS, 'extra'),
  ...COMBINED_OUTPUTS.filter((o) => 'record' in o).map((o) => o.name),
] as readonly ExtraIntrinsicField[];

type SpecShape<D extends MetricDefinition> = {
  [M in D as M['specKey']]: M extends ProviderMetric ? z.ZodOptional<M['schema']> : M['schema'];
};

/** The spec's per-metric entries (`metrics.<specKey>`), in registry order. */
export function metricSpecShape<const D extends readonly MetricDefinition[]>(defs: D): SpecShape<D[number]> {
  return Object.fromEntries(
    defs.map((d) => [d.specKey, d.queue === 'provider' ? d.schema.optional() : d.schema]),
  ) as SpecShape<D[number]>;
}

/**
 * The configured entry of `def` in a parsed `metrics` block; undefined when the metric is off. An absent entry is
 * always off, defaults or not: a workflow begun before the metric existed has none, and on replay must schedule
 * what it scheduled then.
 */
export function configOf(def: MetricDefinition, metrics: Record<string, unknown>): unknown {
  const config = metrics[def.specKey];
  if (config === undefined || def.queue === 'provider') return config;
  return def.enabled(config) ? config : undefined;
}

/** Provider ids the enabled model-backed metrics of a parsed `metrics` block name (its workflow needs these). */
export function metricProviders(metrics: Record<string, unknown>, defs: readonly MetricDefinition[] = METRICS) {
  return defs.flatMap((d) => {
    const c = d.queue === 'provider' ? (configOf(d, metrics) as MetricEndpoint | undefined) : undefined;
    return c ? [c.provider] : [];
  });
}

/** Activity types of the metrics on `queue`: the LLM workers register the `provider` ones. */
export function metricActivities(queue: MetricQueue, defs: readonly MetricDefinition[] = METRICS): string[] {
  return defs.filter((d) => d.queue === queue).map((d) => d.activity);
}

/** One metric activity the metrics workflow schedules: on `providerId`'s queue, or on the main queue. */
export interface MetricCall<I> {
  activity: MetricActivity;
  providerId?: string;
  input: I;
}

/**
 * The metric activities of a parsed `metrics` block, in schedule order, with their inputs: `base`, then for a
 * model-backed metric its endpoint's model and provider (the provider's whole entry: the activity builds its
 * client from it), then the metric's own options. Pure and deterministic: the metrics workflow schedules exactly
 * these.
 */
export function metricCalls<B extends object, P extends { id: string }>(
  metrics: Record<string, unknown>,
  base: B,
  providers: readonly P[],
  defs: readonly MetricDefinition[] = METRICS,
): MetricCall<B & { model?: string; provider?: P } & MetricOptions>[] {
  return defs.flatMap((def) => {
    const config = configOf(def, metrics);
    if (config === undefined) return [];
    // Method syntax: each definition's `activityInput` takes its own config, which `configOf` returned.
    const extra = def.activityInput?.(config as never);
    const activity = def.activity as MetricActivity;
    if (def.queue === 'main') return [{ activity, input: { ...base, ...extra } }];
    const ref = config as MetricEndpoint;
    const provider = providers.find((p) => p.id === ref.provider)!;
    return [{ activity, providerId: ref.provider, input: { ...base, model: ref.model, provider, ...extra } }];
  });
}

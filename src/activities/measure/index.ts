/**
 * The compute half of every metric, keyed by its registered name (src/metrics/registry.ts). The activities
 * run these; workflows never import this module. Typed as `ComputeRegistry`, so a metric registered without a
 * compute function here does not compile (docs/extending-metrics.md).
 */
import type { ComputeRegistry } from './context';
import { computeDiversity } from './diversity';
import { computeJudge } from './judge';
import { computeLanguage } from './language';
import { computeLengths } from './lengths';
import { computePerplexity } from './perplexity';

export const COMPUTE: ComputeRegistry = {
  diversity: computeDiversity,
  judge: computeJudge,
  perplexity: computePerplexity,
  lengths: computeLengths,
  language: computeLanguage,
};
export type { ComputeFn, ComputeRegistry, Computed, MetricContext } from './context';

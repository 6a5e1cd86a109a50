import { pandasSample } from './legacy-random';

/**
 * The balanced subsample (docs/method.md, "Balanced subsample"), picking exactly the rows the paper's pandas code
 * picks for the same rows in the same order:
 * - strategies in order of first appearance; each takes `min(⌊total/k⌋, its rows)` with
 *   `sample(random_state=seed)` over its rows in dataset order;
 * - the remainder goes to strategies with rows left, the largest spare pool first (ties: first appearance,
 *   as a stable sort keeps them), each drawing `min(remainder, spare)` with `sample(random_state=seed + 1)`
 *   from its rows not yet taken, still in dataset order.
 * Each strategy's ids are its first draw followed by its extra draw, as the reference concatenates them.
 * One implementation serves the metrics and student training (both read the stored ids).
 */
/** The sampling algorithm's name in the subsample's key: change it whenever the ids chosen could change. */
export const SUBSAMPLE_METHOD = 'pandas-mt19937';

export interface StrategyRows {
  strategy: string;
  ids: string[];
}

export function balancedSubsample(groups: StrategyRows[], total: number, seed: number): Map<string, string[]> {
  const present = groups.filter((g) => g.ids.length > 0);
  const out = new Map<string, string[]>();
  if (!present.length) return out;
  const share = Math.floor(total / present.length);
  // Positions within each strategy's rows, as pandas' index labels: a repeated id is still its own row.
  const picked = new Map<string, number[]>();
  for (const g of present) {
    const positions = g.ids.map((_, i) => i);
    picked.set(g.strategy, pandasSample(positions, Math.min(share, g.ids.length), seed));
  }
  let remainder = total - [...picked.values()].reduce((n, p) => n + p.length, 0);
  const spare = present
    .map((g) => ({ g, left: g.ids.length - picked.get(g.strategy)!.length }))
    .filter((s) => s.left > 0)
    .sort((a, b) => b.left - a.left);
  for (const { g } of spare) {
    if (remainder <= 0) break;
    const taken = new Set(picked.get(g.strategy));
    const pool = g.ids.map((_, i) => i).filter((i) => !taken.has(i));
    const extra = pandasSample(pool, Math.min(remainder, pool.length), seed + 1);
    picked.get(g.strategy)!.push(...extra);
    remainder -= extra.length;
  }
  for (const g of present)
    out.set(
      g.strategy,
      picked.get(g.strategy)!.map((i) => g.ids[i]!),
    );
  return out;
}

import { seededShuffle } from '../spec/random';

/**
 * The balanced subsample (docs/method.md, "Balanced subsample"): each of the k strategies present
 * gets ⌊total/k⌋ rows
 * (a short strategy gives all it has); the remainder goes to strategies with spare rows, largest
 * spare pool first. Strategies are visited in order of first appearance. The reference samples with
 * pandas random_state 42 / 43; Polyglot uses its own seeded shuffle with `seed` and `seed + 1`, and
 * stores the chosen ids so every metric is computed on exactly the same rows.
 */
export interface StrategyRows {
  strategy: string;
  ids: string[];
}

export function balancedSubsample(groups: StrategyRows[], total: number, seed: number): Map<string, string[]> {
  const present = groups.filter((g) => g.ids.length > 0);
  const out = new Map<string, string[]>();
  if (!present.length) return out;
  const share = Math.floor(total / present.length);
  const spare = new Map<string, string[]>();
  for (const g of present) {
    const shuffled = seededShuffle(g.ids, `${seed}|${g.strategy}`);
    out.set(g.strategy, shuffled.slice(0, share));
    spare.set(g.strategy, shuffled.slice(share));
  }
  let remainder = total - [...out.values()].reduce((n, ids) => n + ids.length, 0);
  // Largest spare pool first; ties keep first-appearance order (stable sort).
  const order = present.map((g) => g.strategy).sort((a, b) => spare.get(b)!.length - spare.get(a)!.length);
  for (const strategy of order) {
    if (remainder <= 0) break;
    const extra = seededShuffle(spare.get(strategy)!, `${seed + 1}|${strategy}`).slice(0, remainder);
    out.get(strategy)!.push(...extra);
    remainder -= extra.length;
  }
  return out;
}

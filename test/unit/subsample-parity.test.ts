import assert from 'node:assert/strict';
import { LegacyRandomState, pandasSample } from '../../src/metrics/legacy-random';
import { balancedSubsample } from '../../src/metrics/subsample';
import { rng } from '../../src/common/random';
import { runMlPython } from '../support/reference';

/**
 * Parity with the installed numpy and pandas (the jobs' venv): the generator's raw outputs, its bounded draws
 * and permutations, pandas' `sample`, and the paper's per-strategy subsample run with pandas itself.
 */

const RAW_PY = `
import json, sys
import numpy as np
cfg = json.load(open(sys.argv[1]))
out = {"raw": {}, "perm": {}, "choice": {}}
for seed in cfg["seeds"]:
    # randint over the full 32-bit range returns the generator's raw outputs unmasked.
    out["raw"][str(seed)] = np.random.RandomState(seed).randint(0, 2**32, size=cfg["raw"], dtype=np.uint32).tolist()
    out["perm"][str(seed)] = {str(n): np.random.RandomState(seed).permutation(n).tolist() for n in cfg["perm"]}
    out["choice"][str(seed)] = [np.random.RandomState(seed).choice(n, size=k, replace=False).tolist() for n, k in cfg["choice"]]
print(json.dumps(out))
`;

/**
 * The paper's per-strategy subsample, run with pandas on the same rows: strategies in order of first appearance,
 * \`sample(n, random_state=seed)\` each, then the remainder from the spare pools (largest first, \`seed + 1\`),
 * drawn from the rows not taken; the chosen ids in concatenation order.
 */
const SUBSAMPLE_PY = `
import json, sys
import pandas as pd
out = []
for case in json.load(open(sys.argv[1])):
    df = pd.DataFrame({"id": case["ids"], "strategy": case["strategies"]})
    total, seed = case["total"], case["seed"]
    strategies = list(df["strategy"].unique())
    share = total // len(strategies)
    parts, taken = [], {}
    for s in strategies:
        rows = df[df["strategy"] == s]
        parts.append(rows.sample(n=min(share, len(rows)), random_state=seed))
        taken[s] = len(parts[-1])
    remaining = total - sum(taken.values())
    if remaining > 0:
        spare = [(s, int((df["strategy"] == s).sum()) - taken[s]) for s in strategies]
        spare = [x for x in spare if x[1] > 0]
        spare.sort(key=lambda x: x[1], reverse=True)
        for s, left in spare:
            if remaining == 0:
                break
            extra = min(remaining, left)
            i = strategies.index(s)
            pool = df[df["strategy"] == s].drop(parts[i].index)
            parts[i] = pd.concat([parts[i], pool.sample(n=extra, random_state=seed + 1)])
            remaining -= extra
    out.append(pd.concat(parts).reset_index(drop=True)["id"].tolist())
print(json.dumps(out))
`;

describe('LegacyRandomState: parity with numpy RandomState (MT19937)', () => {
  const seeds = [0, 1, 42, 43, 2024, 2 ** 31 - 1, 2 ** 32 - 1];
  const permSizes = [1, 2, 3, 10, 255, 256, 257, 1000, 65_537, 100_000];
  const choices: [number, number][] = [
    [10, 0],
    [10, 10],
    [5000, 3333],
    [40_000, 3500],
    [7, 3],
  ];
  let ref: {
    raw: Record<string, number[]>;
    perm: Record<string, Record<string, number[]>>;
    choice: Record<string, number[][]>;
  };
  before(function () {
    this.timeout(120_000);
    ref = runMlPython(RAW_PY, { seeds, raw: 2000, perm: permSizes, choice: choices });
  });

  it('gives numpy’s first 2,000 raw 32-bit outputs for 7 seeds (crossing three state refills)', () => {
    let compared = 0;
    for (const seed of seeds) {
      const rs = new LegacyRandomState(seed);
      const ours = Array.from({ length: 2000 }, () => rs.nextUint32());
      assert.deepEqual(ours, ref.raw[String(seed)], `seed ${seed}`);
      compared += ours.length;
    }
    assert.equal(compared, 14_000);
  });

  it('gives numpy’s permutation(n) for 10 sizes (powers of two and their neighbours: the rejection path) × 7 seeds', () => {
    for (const seed of seeds)
      for (const n of permSizes)
        assert.deepEqual(
          new LegacyRandomState(seed).permutation(n),
          ref.perm[String(seed)]![String(n)],
          `seed ${seed}, n ${n}`,
        );
  });

  it('gives numpy’s choice(n, size, replace=False)', () => {
    for (const seed of seeds)
      choices.forEach(([n, k], i) =>
        assert.deepEqual(
          new LegacyRandomState(seed).choiceWithoutReplacement(n, k),
          ref.choice[String(seed)]![i],
          `seed ${seed}, ${k} of ${n}`,
        ),
      );
  });

  it('refuses seeds numpy refuses', () => {
    for (const bad of [-1, 2 ** 32, 1.5]) assert.throws(() => new LegacyRandomState(bad), /seed/);
    assert.throws(() => pandasSample([1, 2], 3, 42), /without replacement/);
  });
});

interface Shape {
  name: string;
  sizes: [string, number][];
  /** Rows interleaved at random (first appearance then differs from the order of `sizes`) or in blocks. */
  interleave: boolean;
  total: number;
}

function rowsOf(shape: Shape): { ids: string[]; strategies: string[] } {
  const strategies = shape.sizes.flatMap(([s, n]) => Array.from({ length: n }, () => s));
  if (shape.interleave) {
    const next = rng(`parity-${shape.name}`);
    for (let i = strategies.length - 1; i > 0; i--) {
      const j = Math.floor(next() * (i + 1));
      [strategies[i], strategies[j]] = [strategies[j]!, strategies[i]!];
    }
  }
  return { ids: strategies.map((s, i) => `${s}-${i.toString(36)}`), strategies };
}

describe('balancedSubsample: the same ids as the paper’s pandas sampling', () => {
  const shapes: Shape[] = [
    {
      name: 'balanced',
      sizes: [
        ['generate', 5000],
        ['translate', 5000],
        ['respond', 5000],
      ],
      interleave: false,
      total: 10_000,
    },
    {
      name: 'one short strategy',
      sizes: [
        ['generate', 6000],
        ['translate', 1200],
        ['respond', 7000],
      ],
      interleave: true,
      total: 10_000,
    },
    {
      name: 'very uneven',
      sizes: [
        ['respond', 150],
        ['translate', 2500],
        ['generate', 40_000],
      ],
      interleave: true,
      total: 10_500,
    },
  ];
  const seeds = [42, 7, 2024];

  it('matches pandas for 3 seeds × 3 pool shapes, id for id and in order', function () {
    this.timeout(180_000);
    const cases = shapes.flatMap((shape) => seeds.map((seed) => ({ shape, seed, ...rowsOf(shape) })));
    const expected = runMlPython<string[][]>(
      SUBSAMPLE_PY,
      cases.map((c) => ({ ids: c.ids, strategies: c.strategies, total: c.shape.total, seed: c.seed })),
    );
    let compared = 0;
    cases.forEach((c, i) => {
      const order: string[] = [];
      const groups = new Map<string, string[]>();
      c.ids.forEach((id, j) => {
        const s = c.strategies[j]!;
        if (!groups.has(s)) {
          order.push(s);
          groups.set(s, []);
        }
        groups.get(s)!.push(id);
      });
      const chosen = balancedSubsample(
        order.map((strategy) => ({ strategy, ids: groups.get(strategy)! })),
        c.shape.total,
        c.seed,
      );
      const ours = order.flatMap((s) => chosen.get(s) ?? []);
      const label = `${c.shape.name}, seed ${c.seed}`;
      assert.equal(ours.length, Math.min(c.shape.total, c.ids.length), label);
      assert.deepEqual(ours, expected[i], label);
      compared += ours.length;
    });
    // 9 cases; every id compared in place.
    assert.equal(cases.length, 9);
    assert.equal(compared, 3 * (10_000 + 10_000 + 10_500));
  });
});

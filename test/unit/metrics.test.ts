import assert from 'node:assert/strict';
import { DistinctAccumulator, distinctRI } from '../../src/metrics/diversity';
import { parseJudgement } from '../../src/metrics/judge';
import { conformance, detectLanguage, duplicateRate } from '../../src/metrics/language';
import { meanIgnoringNaN, responsePerplexity } from '../../src/metrics/perplexity';
import { balancedSubsample, type StrategyRows } from '../../src/metrics/subsample';
import { rng, seededShuffle } from '../../src/common/random';
import { numpyDistinct } from '../support/reference';

const TOL = 1e-9;

/** Standard normal from a uniform stream (Box–Muller). */
function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
}

interface DistinctFixture {
  name: string;
  vectors: number[][];
  batch: number;
}

/** ≥ 60 varied sets: Gaussian, badly scaled, clustered, all-positive, with zero vectors, duplicates, negations. */
function distinctFixtures(): DistinctFixture[] {
  const next = rng('distinct-fixtures-v1');
  const pick = <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)]!;
  const out: DistinctFixture[] = [];
  const kinds = ['gaussian', 'scaled', 'clustered', 'positive', 'zeros', 'dup-neg'] as const;
  for (let i = 0; i < 66; i++) {
    const kind = kinds[i % kinds.length]!;
    const d = pick([1, 2, 3, 8, 16, 64, 384]);
    const n = pick([2, 3, 4, 7, 20, 64, 150]);
    const base = Array.from({ length: d }, () => gaussian(next));
    const vectors: number[][] = [];
    for (let j = 0; j < n; j++) {
      let v: number[];
      switch (kind) {
        case 'gaussian':
          v = base.map(() => gaussian(next));
          break;
        case 'scaled': {
          const s = 10 ** (6 * next() - 3);
          v = base.map(() => s * gaussian(next));
          break;
        }
        case 'clustered':
          v = base.map((b) => b + 0.05 * gaussian(next));
          break;
        case 'positive':
          v = base.map(() => next());
          break;
        case 'zeros':
          v = j % 3 === 1 ? new Array<number>(d).fill(0) : base.map(() => (0.5 + 4 * next()) * gaussian(next));
          break;
        case 'dup-neg': {
          // Half the vectors repeat an earlier one, negated or scaled.
          const earlier = j > 0 && next() < 0.5 ? vectors[Math.floor(next() * j)]! : undefined;
          const flip = next() < 0.5 ? -1 : 2;
          v = earlier ? earlier.map((x) => flip * x) : base.map(() => gaussian(next));
          break;
        }
      }
      vectors.push(v);
    }
    out.push({ name: `${kind} n=${n} d=${d}`, vectors, batch: pick([1, 2, 5, 32, 256]) });
  }
  const unit = (k: number, d: number) => Array.from({ length: d }, (_, i) => (i === k ? 1 : 0));
  out.push({
    name: 'N=2 opposite',
    vectors: [
      [1, 2, 3],
      [-2, -4, -6],
    ],
    batch: 1,
  });
  out.push({
    name: 'N=2 identical direction',
    vectors: [
      [3, 4],
      [0.3, 0.4],
    ],
    batch: 2,
  });
  out.push({ name: 'N=2 orthogonal', vectors: [unit(0, 5), unit(3, 5)], batch: 1 });
  out.push({
    name: 'N=2 one zero',
    vectors: [
      [0, 0, 0],
      [1, 1, 1],
    ],
    batch: 1,
  });
  out.push({
    name: 'all zero',
    vectors: [
      [0, 0],
      [0, 0],
      [0, 0],
    ],
    batch: 2,
  });
  out.push({
    name: 'two equal + a zero vector',
    vectors: [
      [2, 0],
      [0, 0],
      [5, 0],
    ],
    batch: 1,
  });
  const big: number[][] = [];
  const r = rng('distinct-1000x384');
  for (let j = 0; j < 1000; j++) big.push(Array.from({ length: 384 }, () => gaussian(r) + 0.3));
  out.push({ name: '1000×384', vectors: big, batch: 256 });
  return out;
}

function streamed(vectors: number[][], batch: number): DistinctAccumulator {
  const acc = new DistinctAccumulator();
  for (let i = 0; i < vectors.length; i += batch) acc.add(vectors.slice(i, i + batch));
  return acc;
}

describe('distinct-RI: streaming accumulator vs the N×N definition in numpy', function () {
  this.timeout(60_000);
  const fixtures = distinctFixtures();
  let ref: number[];
  before(() => {
    ref = numpyDistinct(fixtures.map((f) => f.vectors));
  });

  it(`agrees to ${TOL} on ${fixtures.length} fixtures, streamed in batches`, () => {
    assert.ok(fixtures.length >= 60);
    assert.equal(ref.length, fixtures.length);
    fixtures.forEach((f, i) => {
      const acc = streamed(f.vectors, f.batch);
      assert.equal(acc.n, f.vectors.length, `${f.name}: n`);
      const v = acc.value();
      assert.ok(Number.isFinite(ref[i]!), `${f.name}: numpy gave ${ref[i]}`);
      assert.ok(Math.abs(v - ref[i]!) <= TOL, `${f.name} (batch ${f.batch}): ${v} vs numpy ${ref[i]}`);
      // Batching must not matter: one batch gives the same value to rounding.
      assert.ok(Math.abs(distinctRI(f.vectors) - v) <= 1e-12, `${f.name}: batch-size dependence`);
    });
  });

  it('closed forms: opposite 2, parallel 0, orthogonal 1, zero vectors count in N but add no similarity', () => {
    const by = (name: string) => streamed(fixtures.find((f) => f.name === name)!.vectors, 1).value();
    assert.ok(Math.abs(by('N=2 opposite') - 2) <= 1e-15);
    assert.ok(Math.abs(by('N=2 identical direction')) <= 1e-15);
    assert.ok(Math.abs(by('N=2 orthogonal') - 1) <= 1e-15);
    assert.ok(Math.abs(by('N=2 one zero') - 1) <= 1e-15);
    assert.equal(by('all zero'), 1);
    // N = 3 (the zero vector counts), one similar pair counted twice: 1 − 2/(3·2) = 2/3.
    const acc = streamed(fixtures.find((f) => f.name === 'two equal + a zero vector')!.vectors, 1);
    assert.equal(acc.n, 3);
    assert.equal(acc.nonZero, 2);
    assert.ok(Math.abs(acc.value() - 2 / 3) <= 1e-15);
  });

  it('is NaN with fewer than two vectors and rejects mixed dimensions', () => {
    assert.ok(Number.isNaN(new DistinctAccumulator().value()));
    assert.ok(Number.isNaN(distinctRI([[1, 2, 3]])));
    assert.throws(
      () =>
        distinctRI([
          [1, 2],
          [1, 2, 3],
        ]),
      /length 3 differs from 2/,
    );
  });
});

/**
 * Paper §5's rule written out independently: ⌊total/k⌋ each (k = strategies with rows), a short strategy
 * gives all it has, the remainder one pool at a time, largest spare pool first, ties in first-appearance order.
 */
function referenceCounts(sizes: [string, number][], total: number): [string, number][] {
  const present = sizes.filter(([, n]) => n > 0);
  if (present.length === 0) return [];
  const share = Math.floor(total / present.length);
  const taken = present.map(([, n]) => (n < share ? n : share));
  let remainder = total;
  for (const t of taken) remainder -= t;
  const visited = new Set<number>();
  while (remainder > 0) {
    let best = -1;
    for (let i = 0; i < present.length; i++) {
      if (visited.has(i)) continue;
      if (best < 0 || present[i]![1] - taken[i]! > present[best]![1] - taken[best]!) best = i;
    }
    if (best < 0) break;
    visited.add(best);
    const give = Math.min(present[best]![1] - taken[best]!, remainder);
    taken[best]! += give;
    remainder -= give;
  }
  return present.map(([s], i) => [s, taken[i]!]);
}

const groupsOf = (sizes: [string, number][]): StrategyRows[] =>
  sizes.map(([strategy, n]) => ({ strategy, ids: Array.from({ length: n }, (_, j) => `${strategy}#${j}`) }));

const countsOf = (m: Map<string, string[]>): [string, number][] => [...m].map(([s, ids]) => [s, ids.length]);

/** Every returned id is one of its own strategy's ids, and no id is returned twice. */
function checkIds(groups: StrategyRows[], chosen: Map<string, string[]>): void {
  const all = new Set<string>();
  for (const [strategy, ids] of chosen) {
    const own = new Set(groups.find((g) => g.strategy === strategy)!.ids);
    for (const id of ids) {
      assert.ok(own.has(id), `${id} is not an id of ${strategy}`);
      assert.ok(!all.has(id), `${id} chosen twice`);
      all.add(id);
    }
  }
}

describe('balancedSubsample: paper §5 counts', () => {
  it('matches the hand-written rule on 80 random group-size configurations', () => {
    const next = rng('subsample-configs-v1');
    const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1));
    const names = ['generate', 'translate', 'respond', 'extra-a', 'extra-b'];
    for (let c = 0; c < 80; c++) {
      const k = int(1, 5);
      const order = seededShuffle(names, `order-${c}`);
      const sizes: [string, number][] = order.slice(0, k).map((s) => {
        const band = int(0, 4);
        return [s, band === 0 ? 0 : band === 1 ? int(1, 5) : band === 2 ? int(5, 40) : int(40, 300)];
      });
      const total = int(2, 400);
      const groups = groupsOf(sizes);
      const chosen = balancedSubsample(groups, total, int(0, 1000));
      const label = `config ${c}: sizes ${JSON.stringify(sizes)}, total ${total}`;
      assert.deepEqual(countsOf(chosen), referenceCounts(sizes, total), label);
      const available = sizes.reduce((a, [, n]) => a + n, 0);
      assert.equal(
        countsOf(chosen).reduce((a, [, n]) => a + n, 0),
        Math.min(total, available),
        label,
      );
      checkIds(groups, chosen);
    }
  });

  it('handles the paper-sized cases exactly', () => {
    const cases: [[string, number][], number, number[]][] = [
      // 10,000 over three full strategies: 3,333 each, the one left over to the first (equal spare pools).
      [
        [
          ['generate', 5000],
          ['translate', 5000],
          ['respond', 5000],
        ],
        10_000,
        [3334, 3333, 3333],
      ],
      // A short strategy gives all it has; the whole remainder fits in the largest spare pool.
      [
        [
          ['generate', 100],
          ['translate', 5000],
          ['respond', 8000],
        ],
        10_000,
        [100, 3333, 6567],
      ],
      // The remainder overflows the largest spare pool into the next one: everything is taken.
      [
        [
          ['generate', 100],
          ['translate', 3400],
          ['respond', 3500],
        ],
        10_000,
        [100, 3400, 3500],
      ],
      // Largest spare pool first, not first appearance.
      [
        [
          ['generate', 10],
          ['translate', 12],
          ['respond', 11],
        ],
        10,
        [3, 4, 3],
      ],
      // Ties in spare go to the earlier strategy.
      [
        [
          ['respond', 10],
          ['generate', 10],
          ['translate', 10],
        ],
        11,
        [5, 3, 3],
      ],
      // total < k: nobody gets a share, the remainder goes by spare pool.
      [
        [
          ['generate', 3],
          ['translate', 9],
          ['respond', 5],
        ],
        2,
        [0, 2, 0],
      ],
      // A strategy without rows is not "present": k = 2.
      [
        [
          ['generate', 0],
          ['translate', 9],
          ['respond', 9],
        ],
        6,
        [3, 3],
      ],
    ];
    for (const [sizes, total, expected] of cases) {
      const chosen = balancedSubsample(groupsOf(sizes), total, 42);
      assert.deepEqual(
        countsOf(chosen).map(([, n]) => n),
        expected,
        JSON.stringify(sizes),
      );
      assert.deepEqual(
        referenceCounts(sizes, total).map(([, n]) => n),
        expected,
        `reference ${JSON.stringify(sizes)}`,
      );
    }
  });

  it('is deterministic by seed, and a different seed picks different rows', () => {
    const groups = groupsOf([
      ['generate', 50],
      ['translate', 7],
      ['respond', 80],
    ]);
    const a = balancedSubsample(groups, 60, 42);
    const b = balancedSubsample(groups, 60, 42);
    assert.deepEqual([...a], [...b]);
    const c = balancedSubsample(groups, 60, 43);
    assert.deepEqual(countsOf(c), countsOf(a));
    assert.notDeepEqual([...c], [...a]);
    checkIds(groups, a);
    checkIds(groups, c);
    // The input is not modified.
    assert.deepEqual(groups[0]!.ids.slice(0, 3), ['generate#0', 'generate#1', 'generate#2']);
    assert.equal(balancedSubsample([], 10, 42).size, 0);
  });
});

describe('responsePerplexity', () => {
  it('is exp of the mean NLL over the response tokens only (closed form)', () => {
    // Prompt: 3 tokens (first without a log-probability); response tokens with p = 1/2 and 1/8:
    // exp(−(ln ½ + ln ⅛)/2) = exp(ln 16 / 2) = 4.
    const lp = [null, Math.log(0.9), Math.log(0.1), Math.log(0.5), Math.log(0.125)];
    assert.ok(Math.abs(responsePerplexity(lp, 3) - 4) <= 1e-12);
    // With no prompt, the null first position is skipped: the geometric mean of 1/p over four tokens.
    const all = Math.exp(-(Math.log(0.9) + Math.log(0.1) + Math.log(0.5) + Math.log(0.125)) / 4);
    assert.ok(Math.abs(responsePerplexity(lp, 0) - all) <= 1e-12);
    assert.equal(responsePerplexity([null, 0, 0], 1), 1);
    assert.ok(Number.isNaN(responsePerplexity(lp, 5)));
    assert.ok(Number.isNaN(responsePerplexity([], 0)));
  });

  it('averages items ignoring NaN and infinities', () => {
    assert.equal(meanIgnoringNaN([1, NaN, 3, Infinity]), 2);
    assert.ok(Number.isNaN(meanIgnoringNaN([NaN])));
  });
});

describe('parseJudgement (judge template rubric-v2)', () => {
  it('reads the structured JSON score', () => {
    assert.equal(parseJudgement('{"feedback": "Fluent and helpful.", "score": 4}'), 4);
    assert.equal(parseJudgement('\n  {\n "feedback": "feedback","score": 1\n}\n'), 1);
    assert.equal(parseJudgement('{"score": 5, "feedback": "A score of 2 would be unfair."}'), 5);
    assert.equal(parseJudgement('```json\n{"feedback": "Good.", "score": 3}\n```'), 3);
    // JSON with trailing text or a string score: read by its own key.
    assert.equal(parseJudgement('{"feedback": "Good.", "score": 2} Hope this helps!'), 2);
    assert.equal(parseJudgement('{"feedback": "Good.", "score": "4"}'), 4);
  });

  it('falls back to the textual forms', () => {
    assert.equal(parseJudgement('Feedback: minor grammar slips.\nScore: 4'), 4);
    assert.equal(parseJudgement('The answer is adequate. [RESULT] 3'), 3);
    // The verdict, not a number the feedback mentions: [RESULT] wins, else the last "Score".
    assert.equal(parseJudgement('Feedback: it would score 2 at most on grammar, but... [RESULT] 4'), 4);
    assert.equal(parseJudgement('A score of 2 seemed likely at first.\nScore: 5'), 5);
  });

  it('does not read a score out of the feedback of cut-off JSON', () => {
    assert.equal(parseJudgement('{"feedback": "cut off before the sc'), undefined);
    assert.equal(
      parseJudgement('{\n  "feedback": "I would score this 4, but the task is very easy, and the task'),
      undefined,
    );
  });

  it('returns undefined for garbage and out-of-range scores', () => {
    assert.equal(parseJudgement(''), undefined);
    assert.equal(parseJudgement('lorem ipsum dolor sit amet'), undefined);
    assert.equal(parseJudgement('{"feedback": "x", "score": 9}'), undefined);
    assert.equal(parseJudgement('Score: 7'), undefined);
  });
});

describe('duplicate rate and language conformance (fastText lid.176)', function () {
  this.timeout(60_000);
  const de = [
    'Der Hund schläft im Garten.',
    'Ich trinke jeden Morgen einen Kaffee.',
    'Wie spät ist es jetzt?',
    'Das Wetter ist heute sehr schön.',
  ];
  const es = ['El perro duerme en el jardín.', '¿Dónde está la biblioteca?', 'Me gusta mucho la comida española.'];
  const en = ['The dog is sleeping in the garden.', 'Where is the train station?'];

  it('counts repeats of a (prompt, response) pair, ignoring case and whitespace', () => {
    const pairs = [
      { prompt: 'Wie spät ist es?', response: 'Es ist drei Uhr.' },
      { prompt: 'wie  spät ist es?', response: 'Es ist drei Uhr. ' },
      { prompt: 'Wie spät ist es?', response: 'Es ist vier Uhr.' },
      { prompt: 'WIE SPÄT\nIST ES?', response: 'es ist drei uhr.' },
      { prompt: 'Es ist drei Uhr.', response: 'Wie spät ist es?' },
    ];
    assert.equal(duplicateRate(pairs), 2 / 5);
    assert.equal(duplicateRate(pairs.slice(1)), 1 / 4);
    assert.equal(duplicateRate([pairs[0]!]), 0);
    assert.ok(Number.isNaN(duplicateRate([])));
  });

  it('detects each sentence as its language, also across newlines', async () => {
    for (const t of de) assert.equal(await detectLanguage(t), 'de', t);
    for (const t of es) assert.equal(await detectLanguage(t), 'es', t);
    for (const t of en) assert.equal(await detectLanguage(t), 'en', t);
    assert.equal(await detectLanguage('Der Hund schläft\nim Garten.'), 'de');
  });

  it('gives the exact share of texts in the target language', async () => {
    const texts = [...de, ...es, ...en];
    assert.equal(await conformance(texts, 'de'), 4 / 9);
    assert.equal(await conformance(texts, 'es'), 3 / 9);
    assert.equal(await conformance(texts, 'en'), 2 / 9);
    assert.equal(await conformance(texts, 'fr'), 0);
    assert.equal(await conformance(de, 'de'), 1);
    assert.ok(Number.isNaN(await conformance([], 'de')));
  });
});

/**
 * Descriptive statistics and rank correlation for scoring (docs/method.md, "PG-Score" and "Analyses").
 * Pure math, no I/O, no
 * Node built-ins, so workflows can import it. Conventions follow numpy/scipy/scikit-learn, which
 * produced the reference numbers: population std (ddof 0), average ranks for ties, and Spearman
 * p-values from Student's t with n − 2 degrees of freedom (as `scipy.stats.spearmanr`).
 */

const EPS = 2.220446049250313e-16;

function assertFinite(xs: readonly number[], what: string): void {
  for (let i = 0; i < xs.length; i++) {
    if (!Number.isFinite(xs[i])) throw new Error(`${what}: value ${i} is not a finite number (${String(xs[i])})`);
  }
}

/** Arithmetic mean; NaN for an empty list. */
export function mean(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  let s = 0;
  for (const x of xs) s += x;
  return s / xs.length;
}

/** Population standard deviation (ddof 0, as `numpy.std` and `StandardScaler`). */
export function popStd(xs: readonly number[]): number {
  const m = mean(xs);
  let ss = 0;
  for (const x of xs) ss += (x - m) * (x - m);
  return Math.sqrt(ss / xs.length);
}

export interface Standardized {
  /** rows × columns, each non-constant column with mean 0 and population std 1. */
  scaled: number[][];
  mean: number[];
  /** Population std per column; 1 where the column is constant (as sklearn stores `scale_`). */
  scale: number[];
  /** Columns treated as constant: their scaled values are all 0. */
  constant: boolean[];
}

/**
 * Column-wise standardization like `sklearn.preprocessing.StandardScaler` (with_mean, with_std).
 * A column counts as constant when its variance is within the rounding error that computing it could
 * carry (sklearn's own bound: var ≤ n·ε·var + (n·mean·ε)²); such a column scales to 0 instead of
 * amplifying noise into ±1 values.
 */
export function standardizeColumns(rows: readonly (readonly number[])[]): Standardized {
  const n = rows.length;
  if (n === 0) throw new Error('standardizeColumns: no rows');
  const width = rows[0]!.length;
  const means: number[] = [];
  const scales: number[] = [];
  const constant: boolean[] = [];
  for (let j = 0; j < width; j++) {
    const col = rows.map((r, i) => {
      if (r.length !== width)
        throw new Error(`standardizeColumns: row ${i} has ${r.length} columns, expected ${width}`);
      return r[j]!;
    });
    assertFinite(col, `standardizeColumns column ${j}`);
    const m = mean(col);
    const sd = popStd(col);
    const variance = sd * sd;
    const isConstant = variance <= n * EPS * variance + (n * m * EPS) ** 2;
    means.push(m);
    scales.push(isConstant ? 1 : sd);
    constant.push(isConstant);
  }
  const scaled = rows.map((r) => r.map((x, j) => (constant[j] ? 0 : (x - means[j]!) / scales[j]!)));
  return { scaled, mean: means, scale: scales, constant };
}

/** 1-based ranks; tied values share the average of the ranks they span (`scipy.stats.rankdata`). */
export function ranks(xs: readonly number[]): number[] {
  assertFinite(xs, 'ranks');
  const order = xs.map((_, i) => i).sort((a, b) => xs[a]! - xs[b]! || a - b);
  const out = new Array<number>(xs.length);
  let start = 0;
  while (start < order.length) {
    let end = start;
    while (end + 1 < order.length && xs[order[end + 1]!] === xs[order[start]!]) end++;
    // Positions start..end (0-based) hold equal values: ranks start+1..end+1, averaged.
    const avg = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) out[order[k]!] = avg;
    start = end + 1;
  }
  return out;
}

/** Pearson product-moment correlation, clipped to [−1, 1]; NaN when either input is constant. */
export function pearson(x: readonly number[], y: readonly number[]): number {
  if (x.length !== y.length) throw new Error(`pearson: lengths differ (${x.length} vs ${y.length})`);
  assertFinite(x, 'pearson x');
  assertFinite(y, 'pearson y');
  const mx = mean(x);
  const my = mean(y);
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < x.length; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

export interface Correlation {
  rho: number;
  /** Two-sided p-value. */
  p: number;
  n: number;
}

/**
 * Spearman rank correlation with the two-sided p-value `scipy.stats.spearmanr` reports:
 * t = ρ·√((n−2)/(1−ρ²)) against Student's t with n − 2 df. Since (n−2)/((n−2)+t²) = 1 − ρ², the
 * p-value is the regularized incomplete beta I_{1−ρ²}((n−2)/2, 1/2) and needs no t at all.
 * ρ and p are NaN when an input is constant or n < 3 (scipy gives NaN there as well).
 */
export function spearman(x: readonly number[], y: readonly number[]): Correlation {
  if (x.length !== y.length) throw new Error(`spearman: lengths differ (${x.length} vs ${y.length})`);
  const n = x.length;
  if (n < 3) return { rho: NaN, p: NaN, n };
  const rho = pearson(ranks(x), ranks(y));
  if (Number.isNaN(rho)) return { rho, p: NaN, n };
  // (1 − ρ)(1 + ρ) keeps precision when |ρ| is close to 1.
  const p = regularizedIncompleteBeta((1 - rho) * (1 + rho), (n - 2) / 2, 0.5);
  return { rho, p, n };
}

// Lanczos approximation (g = 7, 9 terms): ~1e-15 relative accuracy for the positive arguments
// used here; the reflection formula covers x < 0.5.
const LANCZOS_G = 7;
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new Error(`logGamma: argument must be positive (got ${x})`);
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const xm = x - 1;
  let a = LANCZOS[0]!;
  const t = xm + LANCZOS_G + 0.5;
  for (let i = 1; i < LANCZOS.length; i++) a += LANCZOS[i]! / (xm + i);
  return 0.5 * Math.log(2 * Math.PI) + (xm + 0.5) * Math.log(t) - t + Math.log(a);
}

/**
 * Regularized incomplete beta I_x(a, b) = B(x; a, b) / B(a, b), for a, b > 0 and 0 ≤ x ≤ 1.
 * Uses the standard continued fraction, evaluated with the modified Lentz method; it converges fast
 * for x < (a+1)/(a+b+2), and the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) covers the other side.
 */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0) || !(b > 0)) throw new Error(`regularizedIncompleteBeta: a and b must be positive (a=${a}, b=${b})`);
  if (Number.isNaN(x) || x < 0 || x > 1) throw new Error(`regularizedIncompleteBeta: x must be in [0, 1] (x=${x})`);
  if (x === 0) return 0;
  if (x === 1) return 1;
  if (x > (a + 1) / (a + b + 2)) return 1 - regularizedIncompleteBeta(1 - x, b, a);
  // Prefactor x^a (1−x)^b / (a·B(a,b)), in logs to avoid overflow for large a, b.
  const logFront = a * Math.log(x) + b * Math.log1p(-x) - (logGamma(a) + logGamma(b) - logGamma(a + b)) - Math.log(a);
  return Math.exp(logFront) * betaContinuedFraction(x, a, b);
}

function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  // Lentz: f = 1/(1+ d1/(1+ d2/(1+ …))) with d_{2m+1} = −(a+m)(a+b+m)x/((a+2m)(a+2m+1)),
  // d_{2m} = m(b−m)x/((a+2m−1)(a+2m)).
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let f = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    const even = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + even * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + even / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    f *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + odd * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + odd / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) return f;
  }
  throw new Error(`regularizedIncompleteBeta: continued fraction did not converge (x=${x}, a=${a}, b=${b})`);
}

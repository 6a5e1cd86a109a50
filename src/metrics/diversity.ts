/**
 * distinct-RI = 1 − (1/(N(N−1))) Σ_{i≠j} cos(e_i, e_j), without the N×N matrix: for unit vectors
 * Σ_{i≠j} ê_i·ê_j = ‖Σ ê_i‖² − N′, where N′ counts non-zero vectors (a zero vector's similarities are
 * NaN in the reference and set to 0, so it adds nothing). Streaming: vectors are added in batches and
 * only the running sum (d numbers) is kept. Sums use Kahan compensation so 10⁴+ vectors stay exact
 * to ~1e-12 of the pairwise definition.
 */
export class DistinctAccumulator {
  private sum: Float64Array | undefined;
  private comp: Float64Array | undefined;
  n = 0;
  nonZero = 0;

  add(vectors: ArrayLike<number>[]): void {
    for (const v of vectors) {
      if (!this.sum) {
        this.sum = new Float64Array(v.length);
        this.comp = new Float64Array(v.length);
      }
      if (v.length !== this.sum.length) throw new Error(`embedding length ${v.length} differs from ${this.sum.length}`);
      this.n++;
      let norm = 0;
      for (let k = 0; k < v.length; k++) norm += v[k]! * v[k]!;
      norm = Math.sqrt(norm);
      if (!(norm > 0) || !Number.isFinite(norm)) continue;
      this.nonZero++;
      const s = this.sum;
      const c = this.comp!;
      for (let k = 0; k < v.length; k++) {
        const y = v[k]! / norm - c[k]!;
        const t = s[k]! + y;
        c[k] = t - s[k]! - y;
        s[k] = t;
      }
    }
  }

  /** NaN for fewer than 2 vectors (no pairs). */
  value(): number {
    if (this.n < 2 || !this.sum) return NaN;
    let sq = 0;
    for (let k = 0; k < this.sum.length; k++) sq += this.sum[k]! * this.sum[k]!;
    return 1 - (sq - this.nonZero) / (this.n * (this.n - 1));
  }
}

export function distinctRI(vectors: ArrayLike<number>[]): number {
  const acc = new DistinctAccumulator();
  acc.add(vectors);
  return acc.value();
}

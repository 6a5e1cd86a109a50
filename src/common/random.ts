import { sha256Hex } from './hash';

/**
 * Seeded pseudo-random numbers (mulberry32) from a string seed. Every random choice Polyglot makes —
 * seed shuffles, in-context example draws — goes through this, so a run is reproducible from its
 * recorded seed and runs identically inside and outside workflows.
 */
export function rng(seed: string | number): () => number {
  let state = parseInt(sha256Hex(String(seed)).slice(0, 8), 16) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher–Yates shuffle into a new array. */
export function seededShuffle<T>(items: readonly T[], seed: string | number): T[] {
  const out = items.slice();
  const next = rng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** k distinct indices from [0, n), excluding `exclude`, in draw order. */
export function sampleIndices(n: number, k: number, seed: string | number, exclude?: number): number[] {
  const pool: number[] = [];
  for (let i = 0; i < n; i++) if (i !== exclude) pool.push(i);
  return seededShuffle(pool, seed).slice(0, Math.min(k, pool.length));
}

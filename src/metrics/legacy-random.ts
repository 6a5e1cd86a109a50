/**
 * numpy's legacy `RandomState` (MT19937), as far as the balanced subsample needs it: the paper drew its
 * subsample with pandas `DataFrame.sample(n, random_state=seed)`, and reproducing its row choice means
 * reproducing this generator bit for bit. Only what that call path uses is here:
 * - seeding from an integer in [0, 2^32): Matsumoto–Nishimura `init_genrand` (numpy's `mt19937_seed`);
 * - 32-bit outputs (`genrand_int32`, the generator's raw draw);
 * - `random_interval(max)`: a value in [0, max] by masked rejection — draw, keep the bits under the smallest
 *   all-ones mask ≥ max, retry while above max (numpy uses 32-bit draws when max < 2^32; larger pools are refused);
 * - `shuffle` / `permutation(n)`: Fisher–Yates from the last position down, j = random_interval(i);
 * - `choice(n, size, replace=False)` without weights: the first `size` entries of `permutation(n)`, which is
 *   what pandas' `sample` calls for a fresh RandomState built from an integer `random_state`.
 * The parity test (test/unit/subsample-parity.test.ts) checks each of these against the installed numpy and pandas.
 */
const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER_MASK = 0x80000000;
const LOWER_MASK = 0x7fffffff;
const MAX_SEED = 0xffffffff;

export class LegacyRandomState {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED)
      throw new RangeError(`seed ${seed}: numpy's RandomState takes an integer seed in [0, 2^32 - 1]`);
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = mt[i - 1]!;
      // 1812433253 * (prev ^ (prev >> 30)) + i, modulo 2^32 (Math.imul keeps the low 32 bits exactly).
      mt[i] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + i) >>> 0;
    }
  }

  /** Refill the 624-word state (the generator's "twist"). */
  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i]! & UPPER_MASK) | (mt[(i + 1) % N]! & LOWER_MASK);
      mt[i] = (mt[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? MATRIX_A : 0)) >>> 0;
    }
    this.index = 0;
  }

  /** The next 32-bit output, tempered. */
  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** A value in [0, max], uniform, by masked rejection on 32-bit draws (max < 2^32). */
  randomInterval(max: number): number {
    if (!Number.isInteger(max) || max < 0 || max > MAX_SEED)
      throw new RangeError(`random_interval(${max}): only 0 ≤ max < 2^32 is implemented`);
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    let value: number;
    do value = (this.nextUint32() & mask) >>> 0;
    while (value > max);
    return value;
  }

  /** Shuffle in place, from the last position down (numpy's order of draws). */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.randomInterval(i);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** `permutation(n)`: 0..n-1 shuffled. */
  permutation(n: number): number[] {
    return this.shuffle(Array.from({ length: n }, (_, i) => i));
  }

  /** `choice(n, size, replace=False)` with no weights: positions in draw order. */
  choiceWithoutReplacement(n: number, size: number): number[] {
    if (size > n) throw new RangeError(`cannot take ${size} of ${n} without replacement`);
    return this.permutation(n).slice(0, size);
  }
}

/**
 * pandas `sample(n=size, random_state=seed)` on `items` (in their current order): a fresh RandomState per
 * call, as pandas builds one from an integer `random_state`; the result is in draw order.
 */
export function pandasSample<T>(items: readonly T[], size: number, seed: number): T[] {
  return new LegacyRandomState(seed).choiceWithoutReplacement(items.length, size).map((i) => items[i]!);
}

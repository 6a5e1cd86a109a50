/**
 * Client-side flow control for one inference provider inside one worker process: a concurrency
 * semaphore, a requests-per-minute token bucket and a tokens-per-minute bucket. Shared by every
 * shard running on the worker, so the provider sees one well-behaved client, not N.
 */
export interface LimiterOptions {
  concurrency: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Injected for tests and benchmarks. */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

class Bucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number,
  ) {
    // Start with one second's worth rather than a full minute's, so a fresh worker does not burst
    // a whole minute of requests into the provider at once.
    this.tokens = Math.max(1, perMinute / 60);
    this.last = now();
  }
  private refill(): void {
    const t = this.now();
    const capacity = Math.max(1, this.perMinute / 60);
    this.tokens = Math.min(capacity, this.tokens + ((t - this.last) * this.perMinute) / 60_000);
    this.last = t;
  }
  /** Milliseconds until `amount` may be taken (0 = now). */
  waitFor(amount: number): number {
    this.refill();
    if (this.tokens >= amount || this.tokens >= Math.max(1, this.perMinute / 60)) return 0;
    return Math.ceil(((amount - this.tokens) * 60_000) / this.perMinute);
  }
  take(amount: number): void {
    this.refill();
    this.tokens -= amount;
  }
}

export class ProviderLimiter {
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private readonly rpm?: Bucket;
  private readonly tpm?: Bucket;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  /** Serialises bucket waits so that requests leave in arrival order. */
  private gate: Promise<void> = Promise.resolve();

  constructor(readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    if (options.requestsPerMinute) this.rpm = new Bucket(options.requestsPerMinute, this.now);
    if (options.tokensPerMinute) this.tpm = new Bucket(options.tokensPerMinute, this.now);
  }

  get inFlight(): number {
    return this.active;
  }

  /** Run `fn` under the limits; `fn` returns the tokens it used, charged to the TPM bucket afterwards. */
  async run<T>(fn: () => Promise<T>, tokensUsed: (result: T) => number): Promise<T> {
    await this.acquireSlot();
    try {
      await this.passBuckets();
      const result = await fn();
      this.tpm?.take(tokensUsed(result));
      return result;
    } finally {
      this.releaseSlot();
    }
  }

  private acquireSlot(): Promise<void> {
    if (this.active < this.options.concurrency) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.waiters.shift();
    if (next) next();
    else this.active--;
  }

  private passBuckets(): Promise<void> {
    const turn = this.gate.then(async () => {
      for (;;) {
        // TPM is charged after the fact (usage is only known then); wait while the bucket is in debt.
        const wait = Math.max(this.rpm?.waitFor(1) ?? 0, this.tpm?.waitFor(1) ?? 0);
        if (wait <= 0) break;
        await this.sleep(wait);
      }
      this.rpm?.take(1);
    });
    this.gate = turn.catch(() => undefined);
    return turn;
  }
}

/** One limiter per provider per process, created on first use with the spec's limits. */
export class LimiterRegistry {
  private readonly limiters = new Map<string, ProviderLimiter>();
  get(providerId: string, opts: LimiterOptions): ProviderLimiter {
    const key = `${providerId}|${opts.concurrency}|${opts.requestsPerMinute ?? ''}|${opts.tokensPerMinute ?? ''}`;
    let l = this.limiters.get(key);
    if (!l) {
      l = new ProviderLimiter(opts);
      this.limiters.set(key, l);
    }
    return l;
  }
}

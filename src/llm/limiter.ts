/**
 * Client-side flow control for one inference provider inside one worker process: a concurrency
 * semaphore, a requests-per-minute token bucket and a tokens-per-minute bucket. Shared by every
 * shard running on the worker, so the provider sees one well-behaved client, not N.
 *
 * Every wait is alive: a caller that passes `WaitOptions` is heartbeated while it waits (and while its
 * call runs), and its abort signal takes it out of the queue at once — it holds no slot and no place
 * in line afterwards. Requests still leave in arrival order, and no single sleep is longer than
 * `MAX_SLEEP_MS`, whatever the rates (a bucket refilling at 1e-9 per minute wakes once a minute, never
 * overflows a timer into a busy loop).
 */
export interface LimiterOptions {
  concurrency: number;
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  /** Injected for tests and benchmarks. */
  now?: () => number;
  /** Resolves after `ms`, or early once `signal` aborts (it never rejects). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** What a caller's wait is tied to: usually the running activity (src/activities/provider.ts). */
export interface WaitOptions {
  /** Aborting it ends the wait (or the call) with the signal's reason and gives up the caller's place. */
  signal?: AbortSignal;
  /** Called every `heartbeatMs` while the caller waits for its turn or its call runs. */
  heartbeat?: () => void;
  /** Default `DEFAULT_HEARTBEAT_MS`. */
  heartbeatMs?: number;
}

/** The longest single sleep: bucket waits are taken in chunks of at most this, then re-checked. */
export const MAX_SLEEP_MS = 60_000;
export const DEFAULT_HEARTBEAT_MS = 5_000;
/** Node turns a longer setTimeout into 1 ms (with a warning); nothing here asks for more than MAX_SLEEP_MS anyway. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A real-time sleep that clears its timer when aborted, so an abandoned wait keeps no process alive. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    signal.addEventListener('abort', done, { once: true });
  });
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

/** One caller waiting in a queue; settled exactly once, by its grant or by its abort. */
interface Ticket {
  grant: () => void;
}

/**
 * A FIFO of tickets whose `enqueue` promise rejects with the signal's reason when the caller aborts
 * while still queued. A ticket granted before the abort stays granted: the caller owns what it got.
 */
class TicketQueue {
  private readonly tickets: Ticket[] = [];
  constructor(private readonly onLeave: () => void = () => undefined) {}
  get length(): number {
    return this.tickets.length;
  }
  enqueue(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const i = this.tickets.indexOf(ticket);
        if (i < 0) return; // already granted
        this.tickets.splice(i, 1);
        this.onLeave();
        reject(signal!.reason as Error);
      };
      const ticket: Ticket = {
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.tickets.push(ticket);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
  /** Grant the oldest ticket; false when none waits. */
  grantNext(): boolean {
    const t = this.tickets.shift();
    t?.grant();
    return t !== undefined;
  }
}

export class ProviderLimiter {
  private active = 0;
  private readonly slotQueue = new TicketQueue();
  /** Requests that hold a slot and wait for the buckets, in arrival order; one pump serves them. */
  private readonly bucketQueue = new TicketQueue(() => {
    // The last waiter left: stop the pump's sleep now rather than at the end of its chunk.
    if (this.bucketQueue.length === 0) this.pumpSleep?.abort();
  });
  private pumping = false;
  private pumpSleep?: AbortController;
  private readonly rpm?: Bucket;
  private readonly tpm?: Bucket;
  private readonly now: () => number;
  private readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;

  constructor(readonly options: LimiterOptions) {
    this.now = options.now ?? Date.now;
    this.sleep = options.sleep ?? abortableSleep;
    if (options.requestsPerMinute) this.rpm = new Bucket(options.requestsPerMinute, this.now);
    if (options.tokensPerMinute) this.tpm = new Bucket(options.tokensPerMinute, this.now);
  }

  get inFlight(): number {
    return this.active;
  }

  /** Callers queued for a slot or for the buckets (not counting those whose call runs). */
  get waiting(): number {
    return this.slotQueue.length + this.bucketQueue.length;
  }

  /** Run `fn` under the limits; `fn` returns the tokens it used, charged to the TPM bucket afterwards. */
  async run<T>(fn: () => Promise<T>, tokensUsed: (result: T) => number, wait: WaitOptions = {}): Promise<T> {
    await this.alive(this.acquireSlot(wait.signal), wait);
    try {
      if (this.rpm || this.tpm) {
        const turn = this.bucketQueue.enqueue(wait.signal);
        void this.pump();
        await this.alive(turn, wait);
      }
      wait.signal?.throwIfAborted();
      const result = await this.alive(fn(), wait);
      this.tpm?.take(tokensUsed(result));
      return result;
    } finally {
      this.releaseSlot();
    }
  }

  /**
   * Await `p`, heartbeating every `heartbeatMs` until it settles. Aborts are `p`'s business (the queues
   * and the call reject on their own), so that a turn granted just as the caller aborts is still seen
   * by the caller and released by its `finally`.
   */
  private async alive<T>(p: Promise<T>, wait: WaitOptions): Promise<T> {
    if (!wait.heartbeat) return p;
    const ms = Math.min(MAX_SLEEP_MS, Math.max(1, wait.heartbeatMs ?? DEFAULT_HEARTBEAT_MS));
    let settled = false;
    const outcome = p.finally(() => (settled = true));
    for (;;) {
      const tick = new AbortController();
      await Promise.race([outcome.then(noop, noop), this.sleep(ms, tick.signal)]);
      tick.abort();
      if (settled) return outcome;
      wait.heartbeat();
    }
  }

  private acquireSlot(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason as Error);
    if (this.active < this.options.concurrency) {
      this.active++;
      return Promise.resolve();
    }
    return this.slotQueue.enqueue(signal);
  }

  private releaseSlot(): void {
    // Hand the slot straight to the oldest waiter (active stays the same), or give it back.
    if (!this.slotQueue.grantNext()) this.active--;
  }

  /** Let queued requests through the buckets one at a time, in order, sleeping in bounded chunks. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.bucketQueue.length > 0) {
        // TPM is charged after the fact (usage is only known then); wait while the bucket is in debt.
        const wait = Math.max(this.rpm?.waitFor(1) ?? 0, this.tpm?.waitFor(1) ?? 0);
        if (wait > 0) {
          this.pumpSleep = new AbortController();
          await this.sleep(Math.min(wait, MAX_SLEEP_MS), this.pumpSleep.signal);
          this.pumpSleep = undefined;
          continue;
        }
        this.rpm?.take(1);
        this.bucketQueue.grantNext();
      }
    } finally {
      this.pumping = false;
    }
  }
}

const noop = () => undefined;

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

import assert from 'node:assert/strict';
import { ErrorType, llmErrorForStatus, parseRetryAfter } from '../../src/common/errors';
import { MAX_SLEEP_MS, ProviderLimiter, abortableSleep } from '../../src/llm/limiter';

/** A fake clock: sleeping advances time instantly, so rate limits are checked exactly, not timed. */
function fakeClock() {
  let t = 0;
  return {
    now: () => t,
    sleep: async (ms: number) => {
      t += ms;
      await Promise.resolve();
    },
  };
}

/**
 * Virtual time for the limiter's injected clock and sleep: timers fire in order of their due time, one at a
 * time, only once everything else has settled (a setImmediate turn), so parallel sleeps overlap as real ones
 * do and every result is exact, never timed.
 */
class VirtualClock {
  t = 0;
  /** Every sleep asked for, in ms. */
  readonly asked: number[] = [];
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  private seq = 0;
  readonly now = () => this.t;
  readonly sleep = (ms: number, signal: AbortSignal): Promise<void> =>
    new Promise<void>((resolve) => {
      this.asked.push(ms);
      if (signal.aborted) return resolve();
      const timer = { at: this.t + ms, seq: this.seq++, fire: resolve };
      this.timers.push(timer);
      signal.addEventListener(
        'abort',
        () => {
          this.timers = this.timers.filter((x) => x !== timer);
          resolve();
        },
        { once: true },
      );
    });
  get pending(): number {
    return this.timers.length;
  }
  private async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
  }
  /** Fire timers one by one until `stop()` holds; throws if nothing is left to wait for. */
  async runUntil(stop: () => boolean, maxTimers = 100_000): Promise<void> {
    await this.settle();
    for (let n = 0; !stop(); n++) {
      if (!this.timers.length) throw new Error('nothing left to wait for');
      if (n >= maxTimers) throw new Error(`still running after ${maxTimers} timers`);
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift()!;
      this.t = Math.max(this.t, next.at);
      next.fire();
      await this.settle();
    }
  }
}

/** A call that runs until the test ends it. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, fn: () => opened.then(() => 0) };
}

/** Follow a promise's state without awaiting it. */
function track<T>(p: Promise<T>) {
  const s: { done: boolean; error?: unknown; value?: T } = { done: false };
  p.then(
    (value) => Object.assign(s, { done: true, value }),
    (error: unknown) => Object.assign(s, { done: true, error }),
  );
  return s;
}

describe('provider limiter', () => {
  it('never exceeds the concurrency bound', async () => {
    const limiter = new ProviderLimiter({ concurrency: 3 });
    let inFlight = 0;
    let peak = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        limiter.run(
          async () => {
            inFlight++;
            peak = Math.max(peak, inFlight);
            await new Promise((r) => setTimeout(r, 2));
            inFlight--;
            return 1;
          },
          () => 0,
        ),
      ),
    );
    assert.equal(peak, 3);
    assert.equal(limiter.inFlight, 0);
  });

  it('spaces requests to the requests-per-minute rate', async () => {
    const clock = new VirtualClock();
    const limiter = new ProviderLimiter({ concurrency: 100, requestsPerMinute: 600, ...clock });
    const starts: number[] = [];
    const all = Array.from({ length: 50 }, () =>
      track(
        limiter.run(
          async () => starts.push(clock.now()),
          () => 0,
        ),
      ),
    );
    await clock.runUntil(() => all.every((x) => x.done));
    // 600/min = 10/s: after a burst of one second's worth (10), the rest leave 100 ms apart.
    const span = Math.max(...starts) - Math.min(...starts);
    assert.ok(span >= 3900 && span <= 4100, `50 requests took ${span} ms of fake time`);
  });

  it('holds new requests while the tokens-per-minute bucket is in debt', async () => {
    const clock = fakeClock();
    const limiter = new ProviderLimiter({ concurrency: 1, tokensPerMinute: 6000, ...clock });
    const starts: number[] = [];
    for (let i = 0; i < 3; i++)
      await limiter.run(
        async () => starts.push(clock.now()),
        () => 1000,
      );
    // Each call uses 1000 tokens = 10 s of a 6000/min budget (100/s). The first call is covered by the
    // initial one second of capacity (100 tokens), so the second waits 9 s; in steady state 10 s apart.
    assert.equal(starts[0], 0);
    assert.ok(Math.abs(starts[1]! - 9010) <= 10, `second start at ${starts[1]}`);
    assert.ok(Math.abs(starts[2]! - starts[1]! - 10_000) <= 20, `third start at ${starts[2]}`);
  });
});

describe('provider limiter: waits that live', () => {
  it('a caller aborted while queued for a slot leaves the queue: its call never runs, no slot leaks', async () => {
    const clock = new VirtualClock();
    const limiter = new ProviderLimiter({ concurrency: 1, ...clock });
    const first = gate();
    const a = track(limiter.run(first.fn, () => 0));
    const abort = new AbortController();
    let bRan = false;
    const b = track(
      limiter.run(
        async () => (bRan = true),
        () => 0,
        { signal: abort.signal },
      ),
    );
    const c = track(
      limiter.run(
        async () => 'c',
        () => 0,
      ),
    );
    await clock.runUntil(() => limiter.waiting === 2);
    abort.abort(new Error('activity cancelled'));
    await clock.runUntil(() => b.done);
    assert.equal((b.error as Error).message, 'activity cancelled', 'rejects with the signal reason');
    assert.equal(limiter.waiting, 1, 'only c still waits');
    first.open();
    await clock.runUntil(() => a.done && c.done);
    assert.equal(c.value, 'c');
    assert.equal(bRan, false);
    assert.equal(limiter.inFlight, 0, 'every slot came back');
    assert.equal(limiter.waiting, 0);
  });

  it('a caller aborted in the rate-limit line gives up its place: the next one takes its turn, in order', async () => {
    const clock = new VirtualClock();
    // 60/min: one request a second after the first.
    const limiter = new ProviderLimiter({ concurrency: 10, requestsPerMinute: 60, ...clock });
    const starts: [string, number][] = [];
    const call = (name: string, signal?: AbortSignal) =>
      track(
        limiter.run(
          async () => starts.push([name, clock.now()]),
          () => 0,
          { signal },
        ),
      );
    const abort = new AbortController();
    const all = [call('a'), call('b'), call('c', abort.signal), call('d'), call('e')];
    await clock.runUntil(() => starts.length === 1);
    abort.abort(new Error('gone'));
    await clock.runUntil(() => all.every((x) => x.done));
    assert.deepEqual(starts, [
      ['a', 0],
      ['b', 1000],
      ['d', 2000],
      ['e', 3000],
    ]);
    assert.equal((all[2]!.error as Error).message, 'gone');
    assert.equal(limiter.inFlight, 0);
    assert.equal(clock.pending, 0, 'no sleep left behind');
  });

  it('a call aborted while it runs frees its slot for the next caller', async () => {
    const clock = new VirtualClock();
    const limiter = new ProviderLimiter({ concurrency: 1, ...clock });
    const abort = new AbortController();
    const a = track(
      limiter.run(
        () =>
          new Promise<number>((_, reject) =>
            abort.signal.addEventListener('abort', () => reject(abort.signal.reason as Error)),
          ),
        () => 0,
        { signal: abort.signal },
      ),
    );
    const b = track(
      limiter.run(
        async () => 'b',
        () => 0,
      ),
    );
    await clock.runUntil(() => limiter.waiting === 1);
    abort.abort(new Error('shutdown'));
    await clock.runUntil(() => a.done && b.done);
    assert.equal((a.error as Error).message, 'shutdown');
    assert.equal(b.value, 'b');
    assert.equal(limiter.inFlight, 0);
  });

  it('heartbeats a caller while it waits for a slot and for the rate limit, and stops once it is through', async () => {
    const clock = new VirtualClock();
    // 1/min: the second request waits 60 s for the bucket after waiting for the slot.
    const limiter = new ProviderLimiter({ concurrency: 1, requestsPerMinute: 1, ...clock });
    const first = gate();
    const a = track(limiter.run(first.fn, () => 0));
    const beats: number[] = [];
    const b = track(
      limiter.run(
        async () => clock.now(),
        () => 0,
        {
          heartbeatMs: 5000,
          heartbeat: () => {
            beats.push(clock.now());
            // Hold the slot for three beats, then let b have it.
            if (beats.length === 3) first.open();
          },
        },
      ),
    );
    await clock.runUntil(() => a.done && b.done);
    // 3 beats (15 s) waiting for the slot, then 8 in the bucket's remaining 45 s (none once it is through).
    assert.equal(b.value, 60_000);
    assert.deepEqual(
      beats,
      Array.from({ length: 11 }, (_, i) => (i + 1) * 5000),
    );
    assert.equal(clock.pending, 0, 'no heartbeat timer left behind');
  });

  it('sleeps in bounded chunks at any rate: 1e-9 requests per minute wakes once a minute, and an abort ends it', async () => {
    const clock = new VirtualClock();
    const limiter = new ProviderLimiter({ concurrency: 4, requestsPerMinute: 1e-9, ...clock });
    await limiter.run(
      async () => 0,
      () => 0,
    );
    const abort = new AbortController();
    const b = track(
      limiter.run(
        async () => 0,
        () => 0,
        { signal: abort.signal },
      ),
    );
    // A virtual hour of waiting (the wait it asks for is 6e13 ms, far past any timer's range).
    await clock.runUntil(() => clock.now() >= 3_600_000);
    assert.ok(
      clock.asked.every((ms) => ms > 0 && ms <= MAX_SLEEP_MS),
      `sleeps asked: ${Math.max(...clock.asked)} ms at most`,
    );
    assert.ok(clock.asked.length <= 61, `${clock.asked.length} sleeps in an hour: no busy loop`);
    abort.abort(new Error('stop'));
    await clock.runUntil(() => b.done);
    assert.equal((b.error as Error).message, 'stop');
    assert.equal(clock.pending, 0, 'the abandoned wait holds no timer');
    assert.equal(limiter.waiting, 0);
    assert.equal(limiter.inFlight, 0);
  });

  it('the real sleep clamps an overlong timer and clears it on abort', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const before = timers();
      const abort = new AbortController();
      const slept = abortableSleep(2 ** 40, abort.signal);
      assert.equal(timers(), before + 1);
      // Counted before any await: mocha arms its own test timer once the test's first turn ends.
      abort.abort();
      assert.equal(timers(), before, 'the timer is gone');
      await slept;
      await new Promise((r) => setImmediate(r));
      assert.ok(!warnings.includes('TimeoutOverflowWarning'), 'no timer overflow');
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('error taxonomy', () => {
  it('maps HTTP statuses to retry classes', () => {
    const cases: [number, string, boolean][] = [
      [400, ErrorType.LlmBadRequest, false],
      [401, ErrorType.LlmAuth, false],
      [403, ErrorType.LlmAuth, false],
      [429, ErrorType.LlmRateLimited, true],
      [500, ErrorType.LlmServerError, true],
      [503, ErrorType.LlmServerError, true],
      [408, ErrorType.LlmTimeout, true],
    ];
    for (const [status, type, retryable] of cases) {
      const e = llmErrorForStatus(status, '{"error":{"message":"m"}}');
      assert.equal(e.type, type, String(status));
      assert.equal(e.retryable, retryable, String(status));
    }
    assert.equal(
      llmErrorForStatus(400, '{"error":{"message":"blocked by content_filter"}}').type,
      ErrorType.LlmContentFilter,
    );
  });

  it('parses Retry-After as seconds or as an HTTP date', () => {
    assert.equal(parseRetryAfter('3', 0), 3000);
    assert.equal(parseRetryAfter('0.5', 0), 500);
    const now = Date.parse('2026-11-27T12:00:00Z');
    assert.equal(parseRetryAfter('Fri, 27 Nov 2026 12:00:07 GMT', now), 7000);
    assert.equal(parseRetryAfter(null, 0), undefined);
    assert.equal(parseRetryAfter('soon', 0), undefined);
  });
});

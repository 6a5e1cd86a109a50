import assert from 'node:assert/strict';
import { ErrorType, llmErrorForStatus, parseRetryAfter } from '../../src/common/errors';
import { ProviderLimiter } from '../../src/llm/limiter';

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
    const clock = fakeClock();
    const limiter = new ProviderLimiter({ concurrency: 100, requestsPerMinute: 600, ...clock });
    const starts: number[] = [];
    await Promise.all(
      Array.from({ length: 50 }, () =>
        limiter.run(
          async () => starts.push(clock.now()),
          () => 0,
        ),
      ),
    );
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

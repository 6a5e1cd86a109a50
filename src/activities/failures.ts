import { ApplicationFailure } from '@temporalio/common';
import { isPolyglotError } from '../common/errors';

/** Map the project's error taxonomy onto Temporal failures: the one place retry classes are decided. */
export function toApplicationFailure(e: unknown): unknown {
  if (!isPolyglotError(e)) return e;
  return ApplicationFailure.create({
    type: e.type,
    message: e.message,
    nonRetryable: !e.retryable,
    // Honour the server's Retry-After: Temporal waits exactly that long before the next attempt.
    nextRetryDelay: e.retryAfterMs !== undefined ? Math.max(1, e.retryAfterMs) : undefined,
  });
}

/** Wrap an activity so every PolyglotError leaves it as a typed ApplicationFailure. */
export function mapped<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  return async (...args: A) => {
    try {
      return await fn(...args);
    } catch (e) {
      throw toApplicationFailure(e);
    }
  };
}

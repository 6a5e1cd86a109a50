import { Context } from '@temporalio/activity';
import { DEFAULT_HEARTBEAT_MS, type ProviderLimiter, type WaitOptions } from '../llm/limiter';

/**
 * The provider limiter as an activity sees it. A shard or metric queued behind the process-wide limiter
 * can wait minutes under a low `requestsPerMinute`; tied to its activity, the wait heartbeats (so it
 * does not miss its heartbeat timeout and get retried into the same queue), and it ends as soon as the
 * activity is cancelled — by the workflow, by a heartbeat timeout that already gave the attempt up, or by
 * the worker shutting down (the SDK cancels running activities with `WORKER_SHUTDOWN`) — leaving no slot
 * and no place in line behind.
 */
export interface ActivityLimiter {
  run<T>(fn: () => Promise<T>, tokensUsed: (result: T) => number): Promise<T>;
}

export function forActivity(limiter: ProviderLimiter): ActivityLimiter {
  return { run: (fn, tokensUsed) => limiter.run(fn, tokensUsed, activityWait(limiter)) };
}

/** Wait options bound to the running activity (read when the call is made, inside the activity). */
export function activityWait(limiter: ProviderLimiter): WaitOptions {
  const ctx = Context.current();
  const timeoutMs = ctx.info.heartbeatTimeoutMs;
  return {
    signal: ctx.cancellationSignal,
    // The details say why the activity is quiet; its own progress heartbeats follow when calls finish.
    heartbeat: () => ctx.heartbeat({ limiter: { inFlight: limiter.inFlight, waiting: limiter.waiting } }),
    // Several beats per heartbeat timeout (the SDK forwards at most one per 0.8 × timeout to the server).
    heartbeatMs: timeoutMs ? Math.max(100, Math.min(DEFAULT_HEARTBEAT_MS, timeoutMs / 4)) : DEFAULT_HEARTBEAT_MS,
  };
}

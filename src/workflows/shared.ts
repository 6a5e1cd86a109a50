import { defineSearchAttributeKey, SearchAttributeType, type Duration, type RetryPolicy } from '@temporalio/common';
import { ActivityCancellationType, defineQuery, defineSignal, type ActivityOptions } from '@temporalio/workflow';
import { NON_RETRYABLE } from '../common/errors';
import type { SweepSpec } from '../spec/sweep';
import { MAX_REPAIRS_SHOWN, type Repair } from '../storage/repairs';

/** Search attributes the project registers (see `polyglot dev up` and the test setup). */
export const SweepIdKey = defineSearchAttributeKey('SweepId', SearchAttributeType.KEYWORD);
export const TeacherKey = defineSearchAttributeKey('Teacher', SearchAttributeType.KEYWORD);
export const LanguageKey = defineSearchAttributeKey('Language', SearchAttributeType.KEYWORD);
export const StageKey = defineSearchAttributeKey('Stage', SearchAttributeType.KEYWORD);
export const SEARCH_ATTRIBUTES = [SweepIdKey, TeacherKey, LanguageKey, StageKey];

export type CellStatus =
  'pending' | 'running' | 'paused' | 'students' | 'metrics' | 'done' | 'cached' | 'failed' | 'cancelled';

export interface CellProgress {
  cellId: string;
  teacherId: string;
  language: string;
  status: CellStatus;
  shardsDone: number;
  shardsTotal: number;
  examples: number;
  /** Teacher answers cut at the length limit so far (kept or dropped); absent before it was counted. */
  truncated?: number;
  tokens: number;
  costUsd: number;
  manifestUri?: string;
  intrinsicUri?: string;
  error?: string;
  /** Artifacts of this cell that failed their integrity check and were discarded and rebuilt (the first few). */
  repaired?: Repair[];
}

export interface SweepProgress {
  sweepId: string;
  stage: string;
  paused: boolean;
  pauseReason?: string;
  cells: CellProgress[];
  totals: { tokens: number; costUsd: number; examples: number };
  report?: { htmlUri: string; markdownUri: string };
}

export interface ResumeArgs {
  /** Raise the budget caps when resuming a sweep that paused on its budget. */
  maxCostUsd?: number;
  maxTokens?: number;
}

/** Add repairs to a cell's list, keeping the first MAX_REPAIRS_SHOWN (progress state goes through history). */
export function noteRepairs(progress: CellProgress, repairs: Repair[] | undefined): boolean {
  if (!repairs?.length) return false;
  const list = (progress.repaired ??= []);
  for (const r of repairs) if (list.length < MAX_REPAIRS_SHOWN) list.push({ key: r.key, reason: r.reason });
  return true;
}

export const pauseSignal = defineSignal<[string?]>('pause');
export const resumeSignal = defineSignal<[ResumeArgs?]>('resume');
/**
 * Parent → cell: the pause state, stamped with an epoch. Signals between workflows are separate
 * commands that may arrive out of order, so a cell applies only a newer epoch than it has seen.
 */
export const cellPauseSignal = defineSignal<[{ paused: boolean; epoch: number }]>('cellPause');
/** Child → parent: a cell's progress (throttled to a few per cell, to keep the parent's history small). */
export const cellProgressSignal = defineSignal<[CellProgress]>('cellProgress');
export const sweepProgressQuery = defineQuery<SweepProgress>('progress');
export const cellProgressQuery = defineQuery<CellProgress>('cellProgress');

/**
 * The one shape of options for an activity that heartbeats while it runs (long calls, GPU job watchers, the
 * worker's keep-alive): a dead worker shows within the heartbeat timeout, retries are bounded, and the
 * taxonomy's final failures (NON_RETRYABLE) are never retried. `waitForCancel`: a cancel waits until the
 * activity has stopped what it started (a provider call, a Job), so "cancelled" means nothing is left running.
 */
export function heartbeating(o: {
  startToCloseTimeout: Duration;
  heartbeatTimeout: Duration;
  retry: Omit<RetryPolicy, 'nonRetryableErrorTypes'>;
  taskQueue?: string;
  waitForCancel?: boolean;
}): ActivityOptions {
  return {
    ...(o.taskQueue !== undefined ? { taskQueue: o.taskQueue } : {}),
    ...(o.waitForCancel ? { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED } : {}),
    startToCloseTimeout: o.startToCloseTimeout,
    heartbeatTimeout: o.heartbeatTimeout,
    retry: { ...o.retry, nonRetryableErrorTypes: [...NON_RETRYABLE] },
  };
}

/** A spec's retry settings (`retry:` of the sweep spec) as an activity's retry policy. */
export function specRetry(r: SweepSpec['retry']): Omit<RetryPolicy, 'nonRetryableErrorTypes'> {
  return {
    initialInterval: `${r.initialIntervalSeconds} seconds`,
    maximumInterval: `${r.maximumIntervalSeconds} seconds`,
    maximumAttempts: r.maximumAttempts,
  };
}

/**
 * Options of the short activities the worker heartbeats for while they run (KEEP_ALIVE in activities/index.ts):
 * a dead worker shows within the 30 s heartbeat timeout. Retries are bounded, so a fault that outlasts them
 * (about 5 minutes at the default interval) ends the workflow with the last error and a resume picks it up;
 * retry options are not replay-checked, so they may change without a patch.
 */
export function keptAlive(startToCloseTimeout: string, maximumInterval = '30s'): ActivityOptions {
  return heartbeating({
    startToCloseTimeout,
    heartbeatTimeout: '30 seconds',
    retry: { initialInterval: '1s', maximumInterval, maximumAttempts: 12 },
  });
}

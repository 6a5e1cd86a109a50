import { Context } from '@temporalio/activity';
import { createDatasetActivities, type DatasetDeps } from './dataset';
import { mapped } from './failures';
import { createJobActivities, type JobDeps } from './jobs';
import { createMetricsActivities } from './metrics';
import { createReportActivities } from './report';
import { createPolicyActivities } from './policy';
import { createSweepActivities } from './sweep';
import { PolicyViolationError, checkBucket, readTrustPolicy } from '../common/policy';
import { metricActivities } from '../metrics/registry';

export type ActivityDeps = DatasetDeps & { runners?: JobDeps['runners'] };

/**
 * Activities that report no progress of their own. While one runs, the worker heartbeats for it every
 * few seconds, so the workflow can use a short heartbeat timeout: when the worker dies, the activity is
 * retried elsewhere in seconds instead of after its whole start-to-close timeout. The registry's `main`-queue
 * metrics are among them (the metrics workflow gives them the kept-alive options).
 */
const KEEP_ALIVE = new Set([
  'prepareDataset',
  'finalizeDataset',
  'recordSweep',
  'checkSpecPolicy',
  'writeSweepSummary',
  'writeSweepSummaryPage',
  'scoreSweep',
  'subsampleDataset',
  ...metricActivities('main'),
  'combineIntrinsic',
]);
/** How often a kept-alive activity heartbeats; workflows give such activities a 30 s heartbeat timeout. */
export const KEEP_ALIVE_MS = 5_000;

function keepAlive<A extends unknown[], R>(fn: (...a: A) => Promise<R>): (...a: A) => Promise<R> {
  return async (...args: A) => {
    const ctx = Context.current();
    const timer = setInterval(() => ctx.heartbeat(), KEEP_ALIVE_MS);
    try {
      return await fn(...args);
    } finally {
      clearInterval(timer);
    }
  };
}

/** All activities, with dependencies injected so tests and workers choose real or local backends. */
export function createActivities(given: ActivityDeps) {
  const policy = given.policy ?? readTrustPolicy(given.env);
  // Every activity's bucket is checked where its store is taken: a child workflow started directly (the
  // Web UI can) skips the sweep's up-front check.
  const stores = given.stores.guarded((bucket) => {
    const problems = checkBucket(policy, bucket, 'storage.bucket');
    if (problems.length) throw new PolicyViolationError(problems);
  });
  const deps: ActivityDeps = { ...given, stores, policy };
  const all = {
    ...createDatasetActivities(deps),
    ...createSweepActivities(deps),
    ...createMetricsActivities(deps),
    ...createReportActivities(deps),
    ...createJobActivities({
      stores: deps.stores,
      runners: deps.runners ?? {},
      policy,
    }),
    ...createPolicyActivities({ policy }),
  };
  return Object.fromEntries(
    Object.entries(all).map(([name, fn]) => {
      const f = mapped(fn as (...a: unknown[]) => Promise<unknown>);
      return [name, KEEP_ALIVE.has(name) ? keepAlive(f) : f];
    }),
  ) as typeof all;
}

export type Activities = ReturnType<typeof createActivities>;
export type { DatasetDeps } from './dataset';
export type * from './types';
export type { MetricInput, MetricResult, SubsampleInput, CombineInput } from './metrics';
export type { ScoreSweepInput, ScoreSweepResult } from './report';
export type { RunJobInput, RunJobResult } from './jobs';

import { createDatasetActivities, type DatasetDeps } from './dataset';
import { mapped } from './failures';
import { createJobActivities, type JobDeps } from './jobs';
import { createMetricsActivities } from './metrics';
import { createReportActivities } from './report';
import { createSweepActivities } from './sweep';

export type ActivityDeps = DatasetDeps & { runners?: JobDeps['runners'] };

/** All activities, with dependencies injected so tests and workers choose real or local backends. */
export function createActivities(deps: ActivityDeps) {
  const all = {
    ...createDatasetActivities(deps),
    ...createSweepActivities(deps),
    ...createMetricsActivities(deps),
    ...createReportActivities(deps),
    ...createJobActivities({ stores: deps.stores, runners: deps.runners ?? {} }),
  };
  return Object.fromEntries(
    Object.entries(all).map(([name, fn]) => [name, mapped(fn as (...a: unknown[]) => Promise<unknown>)]),
  ) as typeof all;
}

export type Activities = ReturnType<typeof createActivities>;
export type { DatasetDeps } from './dataset';
export type * from './types';
export type { MetricInput, MetricResult, SubsampleInput, CombineInput } from './metrics';
export type { ScoreSweepInput, ScoreSweepResult } from './report';
export type { RunJobInput, RunJobResult } from './jobs';

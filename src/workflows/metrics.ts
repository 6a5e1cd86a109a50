import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { llmTaskQueue } from '../common/env';
import type { MetricsSpec, Provider, SweepSpec } from '../spec/sweep';
import type { Repair } from '../storage/repairs';
import { metricCalls } from '../metrics/registry';
import { StageKey, heartbeating, keptAlive, specRetry } from './shared';

export interface MetricsWorkflowInput {
  cellId: string;
  teacherId: string;
  language: string;
  datasetKey: string;
  storage: SweepSpec['storage'];
  metrics: MetricsSpec;
  /** Providers the metrics name (only those). */
  providers: Provider[];
  retry: SweepSpec['retry'];
}

export interface MetricsWorkflowResult {
  cellId: string;
  intrinsicUri: string;
  values: Record<string, number>;
  /** Artifacts that failed their integrity check and were discarded and rebuilt. */
  repaired?: Repair[];
}

const local = proxyActivities<Activities>(keptAlive('30 minutes', '60s'));

/**
 * Intrinsic metrics of one teacher × language dataset (docs/method.md, "Intrinsic metrics"): a balanced subsample, then
 * each configured metric as its own cached activity — model-backed ones on their provider's queue —
 * then one intrinsic record that the scoring stage reads.
 */
export async function metricsWorkflow(input: MetricsWorkflowInput): Promise<MetricsWorkflowResult> {
  upsertSearchAttributes([{ key: StageKey, value: 'metrics' }]);
  const storage = { bucket: input.storage.bucket, prefix: input.storage.prefix };
  const m = input.metrics;
  const sub = await local.subsampleDataset({
    storage,
    datasetKey: input.datasetKey,
    size: m.subsampleSize,
    seed: m.subsampleSeed,
  });
  const base = {
    storage,
    datasetKey: input.datasetKey,
    language: input.language,
    subsampleUri: sub.uri,
    checkpointEvery: m.checkpointEvery,
  };

  const onProvider = (providerId: string) =>
    proxyActivities<Activities>(
      heartbeating({
        taskQueue: llmTaskQueue(providerId),
        startToCloseTimeout: '4 hours',
        heartbeatTimeout: '2 minutes',
        retry: specRetry(input.retry),
      }),
    );
  // Each model-backed metric runs on its endpoint's provider queue, under that provider's limits; local ones on
  // the main queue. Registry order is schedule order, so the commands (and activity ids) stay what they were.
  const jobs = metricCalls(m, base, input.providers).map((c) =>
    c.providerId === undefined ? local[c.activity](c.input) : onProvider(c.providerId)[c.activity](c.input),
  );
  const results = await Promise.all(jobs);

  const info = workflowInfo();
  const combined = await local.combineIntrinsic({
    storage,
    datasetKey: input.datasetKey,
    metrics: results,
    subsampleUri: sub.uri,
    workflowId: info.workflowId,
    runId: info.runId,
  });
  upsertSearchAttributes([{ key: StageKey, value: 'done' }]);
  const repaired = [sub, ...results, combined].flatMap((r) => r.repaired ?? []);
  return {
    cellId: input.cellId,
    intrinsicUri: combined.uri,
    values: combined.values,
    ...(repaired.length ? { repaired } : {}),
  };
}

import {
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, GenerateShardResult } from '../activities';
import { llmTaskQueue } from '../common/env';
import type { CellPlan } from '../spec/plan';
import type { Provider, SweepSpec, Teacher } from '../spec/sweep';
import type { TemplateVersion } from '../spec/templates';
import {
  StageKey,
  cellPauseSignal,
  cellProgressQuery,
  cellProgressSignal,
  noteRepairs,
  pauseSignal,
  resumeSignal,
  type CellProgress,
  heartbeating,
  keptAlive,
  specRetry,
} from './shared';

export interface DatasetWorkflowInput {
  sweepId: string;
  cell: CellPlan;
  teacher: Teacher;
  provider: Provider;
  spec: Pick<
    SweepSpec,
    'storage' | 'seedPool' | 'templateVersion' | 'shardSize' | 'checkpointEvery' | 'seed' | 'timeouts' | 'retry'
  >;
  /** Parent sweep workflow id, for progress signals; absent when run standalone. */
  parentWorkflowId?: string;
  /** Shards in flight at once for this cell. Default 8. */
  maxParallelShards?: number;
}

export interface DatasetWorkflowResult {
  cellId: string;
  manifestUri: string;
  examples: number;
  tokens: number;
  costUsd: number;
  parseFailures: number;
  /** Answers cut at the length limit (absent when the manifest predates the count). */
  truncated?: number;
  cached: boolean;
}

const { prepareDataset, finalizeDataset } = proxyActivities<Activities>(keptAlive('10 minutes'));

function setStage(stage: string): void {
  upsertSearchAttributes([{ key: StageKey, value: stage }]);
}

/**
 * One teacher × language dataset: select seeds, generate every shard of every strategy on the
 * provider's task queue, then write the manifest. Finished shards and datasets are found in S3 by
 * their keys, so a re-run repeats nothing that completed.
 */
export async function datasetWorkflow(input: DatasetWorkflowInput): Promise<DatasetWorkflowResult> {
  const { cell, spec } = input;
  const storage = { bucket: spec.storage.bucket, prefix: spec.storage.prefix };
  const progress: CellProgress = {
    cellId: cell.cellId,
    teacherId: cell.teacherId,
    language: cell.language,
    status: 'running',
    shardsDone: 0,
    shardsTotal: cell.strategies.reduce((n, s) => n + s.shards, 0),
    examples: 0,
    tokens: 0,
    costUsd: 0,
  };
  let paused = false;
  setHandler(cellProgressQuery, () => progress);
  setHandler(pauseSignal, () => {
    paused = true;
    if (progress.status === 'running') progress.status = 'paused';
  });
  setHandler(resumeSignal, () => {
    paused = false;
    if (progress.status === 'paused') progress.status = 'running';
  });
  let pauseEpoch = -1;
  setHandler(cellPauseSignal, ({ paused: p, epoch }) => {
    if (epoch <= pauseEpoch) return;
    pauseEpoch = epoch;
    paused = p;
    if (p && progress.status === 'running') progress.status = 'paused';
    if (!p && progress.status === 'paused') progress.status = 'running';
  });

  const parent = input.parentWorkflowId ? getExternalWorkflowHandle(input.parentWorkflowId) : undefined;
  let lastReported = -1;
  const report = async (force = false) => {
    if (!parent) return;
    // At most ~20 reports per cell: the parent's history must stay small at paper scale.
    const step = Math.max(1, Math.floor(progress.shardsTotal / 20));
    if (!force && progress.shardsDone - lastReported < step) return;
    lastReported = progress.shardsDone;
    await parent.signal(cellProgressSignal, { ...progress });
  };

  const generateShard = proxyActivities<Activities>(
    heartbeating({
      taskQueue: llmTaskQueue(input.provider.id),
      startToCloseTimeout: `${spec.timeouts.shardMinutes} minutes`,
      heartbeatTimeout: `${spec.timeouts.heartbeatSeconds} seconds`,
      waitForCancel: true,
      retry: { ...specRetry(spec.retry), backoffCoefficient: 2 },
    }),
  ).generateShard;

  setStage('prepare');
  const prepared = await prepareDataset({
    storage,
    datasetKey: cell.datasetKey,
    keyManifest: cell.keyManifest,
    seedPool: spec.seedPool,
    language: cell.language,
    strategies: cell.strategies.map((s) => ({ strategy: s.strategy, count: s.count })),
    seed: spec.seed,
    shardSize: spec.shardSize,
    sweepId: input.sweepId,
  });
  progress.shardsTotal = prepared.strategies.reduce((n, s) => n + s.shards, 0);
  noteRepairs(progress, prepared.repaired);

  if (prepared.manifestUri) {
    progress.status = 'cached';
    progress.shardsDone = progress.shardsTotal;
    progress.examples = prepared.examples ?? 0;
    if (prepared.truncated !== undefined) progress.truncated = prepared.truncated;
    progress.manifestUri = prepared.manifestUri;
    await report(true);
    setStage('done');
    return {
      cellId: cell.cellId,
      manifestUri: prepared.manifestUri,
      examples: progress.examples,
      tokens: 0,
      costUsd: 0,
      parseFailures: 0,
      ...(prepared.truncated !== undefined ? { truncated: prepared.truncated } : {}),
      cached: true,
    };
  }

  setStage('generate');
  const work = prepared.strategies.flatMap((s) =>
    Array.from({ length: s.shards }, (_, shard) => ({ strategy: s.strategy, shard })),
  );
  const maxParallel = input.maxParallelShards ?? 8;
  let next = 0;
  const runOne = async (): Promise<void> => {
    for (;;) {
      await condition(() => !paused);
      // Check after waking: other loops may have taken the remaining shards while this one waited.
      if (next >= work.length) return;
      const item = work[next++]!;
      const r: GenerateShardResult = await generateShard({
        storage,
        datasetKey: cell.datasetKey,
        seedPool: spec.seedPool,
        strategy: item.strategy,
        shard: item.shard,
        shardSize: spec.shardSize,
        checkpointEvery: spec.checkpointEvery,
        language: cell.language,
        // The key manifest's wording: the version and the spec's own files (URIs naming their SHA-256).
        templateVersion: cell.keyManifest.templateVersion as TemplateVersion,
        ...(cell.keyManifest.templateFiles ? { templateFiles: cell.keyManifest.templateFiles } : {}),
        seed: spec.seed,
        teacher: input.teacher,
        provider: input.provider,
        selection: prepared.strategies.find((s) => s.strategy === item.strategy)?.selection,
      });
      const repairedNow = noteRepairs(progress, r.repaired);
      progress.shardsDone++;
      progress.examples += r.produced;
      // Counted for cached shards too: it describes the data, not this run's calls.
      if (r.truncated !== undefined) progress.truncated = (progress.truncated ?? 0) + r.truncated;
      if (!r.cached) {
        progress.tokens += r.promptTokens + r.completionTokens;
        progress.costUsd += r.costUsd;
      }
      // A repair is reported at once: `sweep status` shows it while the cell still runs.
      await report(repairedNow);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(maxParallel, work.length) }, runOne));
  } catch (e) {
    progress.status = isCancellation(e) ? 'cancelled' : 'failed';
    throw e;
  }

  setStage('finalize');
  const info = workflowInfo();
  const fin = await finalizeDataset({
    storage,
    datasetKey: cell.datasetKey,
    keyManifest: cell.keyManifest,
    strategies: prepared.strategies.map((s) => ({ strategy: s.strategy, shards: s.shards })),
    sweepId: input.sweepId,
    workflowId: info.workflowId,
    runId: info.runId,
  });
  noteRepairs(progress, fin.repaired);
  progress.status = 'done';
  progress.manifestUri = fin.manifestUri;
  progress.examples = fin.examples;
  if (fin.truncated !== undefined) progress.truncated = fin.truncated;
  await report(true);
  setStage('done');
  return {
    cellId: cell.cellId,
    manifestUri: fin.manifestUri,
    examples: fin.examples,
    tokens: progress.tokens,
    costUsd: progress.costUsd,
    parseFailures: fin.parseFailures,
    ...(fin.truncated !== undefined ? { truncated: fin.truncated } : {}),
    cached: false,
  };
}

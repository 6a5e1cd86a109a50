import {
  ApplicationFailure,
  ChildWorkflowHandle,
  condition,
  executeChild,
  isCancellation,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, ScoreSweepInput, ScoreSweepResult } from '../activities';
import { NON_RETRYABLE } from '../common/errors';
import { planSweep, type CellPlan } from '../spec/plan';
import { InvalidSpecError, parseSweepSpec, type SweepSpec } from '../spec/sweep';
import { datasetWorkflow, type DatasetWorkflowResult } from './dataset';
import { jobWorkflow } from './job';
import { metricsWorkflow } from './metrics';
import {
  LanguageKey,
  StageKey,
  SweepIdKey,
  TeacherKey,
  cellPauseSignal,
  cellProgressSignal,
  pauseSignal,
  resumeSignal,
  sweepProgressQuery,
  type CellProgress,
  type SweepProgress,
} from './shared';

export interface SweepResult {
  sweepId: string;
  summaryUri: string;
  cells: DatasetWorkflowResult[];
  totals: SweepProgress['totals'];
  report?: ScoreSweepResult;
  students: StudentRun[];
}

/** One trained student: small numbers and URIs only (history). */
export interface StudentRun {
  teacher: string;
  language: string;
  student: string;
  job: string;
  resultUri: string;
  metrics: Record<string, number>;
}

const { recordSweep, writeSweepSummary, scoreSweep } = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '1s', maximumInterval: '30s', nonRetryableErrorTypes: [...NON_RETRYABLE] },
});

/** Cells whose dataset workflows run at once. Keeps pending children far below Temporal's 2,000. */
const MAX_PARALLEL_CELLS = 64;

/**
 * A whole sweep: validate the spec (again — Web UI starts bypass the CLI), plan cells, run one
 * dataset workflow per teacher × language, enforce the budget, and write a summary.
 * The single argument is the spec itself, so the Web UI's one-JSON-input form can start it.
 */
/** The innermost failure's type and message: "Activity task failed" alone tells a user nothing. */
function describeFailure(e: unknown): string {
  let cur: unknown = e;
  while (cur instanceof Error && cur.cause instanceof Error) cur = cur.cause;
  if (cur instanceof ApplicationFailure) return `${cur.type ?? 'Error'}: ${cur.message}`;
  return cur instanceof Error ? cur.message : String(cur);
}

export async function sweepWorkflow(input: unknown): Promise<SweepResult> {
  let spec: SweepSpec;
  try {
    spec = parseSweepSpec(input);
  } catch (e) {
    if (e instanceof InvalidSpecError)
      throw ApplicationFailure.nonRetryable(e.message, 'InvalidSpec', { problems: e.problems });
    throw e;
  }
  const plan = planSweep(spec);
  const info = workflowInfo();
  const storage = { bucket: spec.storage.bucket, prefix: spec.storage.prefix };

  const state: SweepProgress = {
    sweepId: plan.sweepId,
    stage: 'plan',
    paused: false,
    cells: plan.cells.map((c) => ({
      cellId: c.cellId,
      teacherId: c.teacherId,
      language: c.language,
      status: 'pending',
      shardsDone: 0,
      shardsTotal: c.strategies.reduce((n, s) => n + s.shards, 0),
      examples: 0,
      tokens: 0,
      costUsd: 0,
    })),
    totals: { tokens: 0, costUsd: 0, examples: 0 },
  };
  const byId = new Map(state.cells.map((c) => [c.cellId, c]));
  /** Every workflow of a cell is found by sweep, teacher, language and stage in the Web UI. */
  const cellAttributes = (cell: CellPlan, stage: string) => [
    { key: SweepIdKey, value: plan.sweepId },
    { key: TeacherKey, value: cell.teacherId },
    { key: LanguageKey, value: cell.language },
    { key: StageKey, value: stage },
  ];
  const running = new Map<string, ChildWorkflowHandle<typeof datasetWorkflow>>();
  const budget = { ...spec.budget };

  const recomputeTotals = () => {
    state.totals = state.cells.reduce(
      (t, c) => ({ tokens: t.tokens + c.tokens, costUsd: t.costUsd + c.costUsd, examples: t.examples + c.examples }),
      { tokens: 0, costUsd: 0, examples: 0 },
    );
  };
  const overBudget = (): string | undefined => {
    if (budget.maxCostUsd !== undefined && state.totals.costUsd >= budget.maxCostUsd) {
      return `budget reached: cost $${state.totals.costUsd.toFixed(4)} ≥ maxCostUsd $${budget.maxCostUsd}`;
    }
    if (budget.maxTokens !== undefined && state.totals.tokens >= budget.maxTokens) {
      return `budget reached: ${state.totals.tokens} tokens ≥ maxTokens ${budget.maxTokens}`;
    }
    return undefined;
  };
  let pauseEpoch = 0;
  const forward = async () => {
    const msg = { paused: state.paused, epoch: ++pauseEpoch };
    await Promise.all([...running.values()].map((h) => h.signal(cellPauseSignal, msg).catch(() => undefined)));
  };
  const pause = async (reason: string) => {
    if (state.paused) return;
    state.paused = true;
    state.pauseReason = reason;
    await forward();
  };

  setHandler(sweepProgressQuery, () => state);
  setHandler(pauseSignal, async (reason?: string) => pause(reason ?? 'paused by signal'));
  setHandler(resumeSignal, async (args) => {
    if (args?.maxCostUsd !== undefined) budget.maxCostUsd = args.maxCostUsd;
    if (args?.maxTokens !== undefined) budget.maxTokens = args.maxTokens;
    const still = overBudget();
    if (still) {
      state.pauseReason = `${still}; resume with a higher cap`;
      return;
    }
    state.paused = false;
    state.pauseReason = undefined;
    await forward();
  });
  setHandler(cellProgressSignal, async (p: CellProgress) => {
    const cell = byId.get(p.cellId);
    if (!cell) return;
    Object.assign(cell, p);
    recomputeTotals();
    const reason = overBudget();
    if (reason) await pause(reason);
  });

  upsertSearchAttributes([
    { key: SweepIdKey, value: plan.sweepId },
    { key: StageKey, value: 'generate' },
  ]);
  state.stage = 'generate';
  await recordSweep({ storage, sweepId: plan.sweepId, spec, workflowId: info.workflowId, runId: info.runId });

  const results: DatasetWorkflowResult[] = [];
  const intrinsic: ScoreSweepInput['cells'] = [];
  const students: StudentRun[] = [];
  const failures: string[] = [];
  const queue: CellPlan[] = plan.cells.slice();
  const runCell = async (): Promise<void> => {
    for (let cell = queue.shift(); cell; cell = queue.shift()) {
      await condition(() => !state.paused);
      const progress = byId.get(cell.cellId)!;
      const teacher = spec.teachers.find((t) => t.id === cell.teacherId)!;
      const provider = spec.providers.find((p) => p.id === teacher.provider)!;
      progress.status = 'running';
      const handle = await startChild(datasetWorkflow, {
        workflowId: cell.cellId,
        args: [
          {
            sweepId: plan.sweepId,
            cell,
            teacher,
            provider,
            spec: {
              storage: spec.storage,
              seedPool: spec.seedPool,
              templateVersion: spec.templateVersion,
              shardSize: spec.shardSize,
              checkpointEvery: spec.checkpointEvery,
              seed: spec.seed,
              timeouts: spec.timeouts,
              retry: spec.retry,
            },
            parentWorkflowId: info.workflowId,
          },
        ],
        typedSearchAttributes: cellAttributes(cell, 'prepare'),
      });
      running.set(cell.cellId, handle);
      // A child started while the sweep was pausing must pause too.
      if (state.paused)
        await handle.signal(cellPauseSignal, { paused: true, epoch: pauseEpoch }).catch(() => undefined);
      try {
        const r = await handle.result();
        results.push(r);
        Object.assign(progress, {
          status: r.cached ? 'cached' : 'done',
          manifestUri: r.manifestUri,
          examples: r.examples,
          shardsDone: progress.shardsTotal,
        });
        if (spec.training) {
          for (const student of spec.students) {
            const id = cell.cellId.replace(/\/dataset$/, `/s=${student.id}/train`);
            const t = spec.training;
            const job = await executeChild(jobWorkflow, {
              workflowId: id,
              args: [
                {
                  runner: t.runner,
                  heartbeatSeconds: t.heartbeatSeconds,
                  spec: {
                    cellId: id,
                    sweepId: plan.sweepId,
                    image: t.image,
                    command: t.command,
                    args: t.args,
                    env: {
                      ...t.env,
                      POLYGLOT_STUDENT_ID: student.id,
                      POLYGLOT_STUDENT_MODEL: student.model,
                      POLYGLOT_DATASET_MANIFEST: r.manifestUri,
                    },
                    secretEnv: t.secretEnv,
                    resources: { cpu: t.cpu, memory: t.memory, gpus: t.gpus, gpuType: t.gpuType },
                    queueName: t.queueName,
                    activeDeadlineSeconds: t.activeDeadlineSeconds,
                    inputs: { dataset: r.manifestUri },
                    outputUri: `s3://${spec.storage.bucket}/${spec.storage.prefix}/students/${cell.datasetKey}/${student.id}/`,
                  },
                },
              ],
              typedSearchAttributes: cellAttributes(cell, 'train'),
            });
            students.push({
              teacher: cell.teacherId,
              language: cell.language,
              student: student.id,
              job: job.jobName,
              resultUri: job.resultUri,
              metrics: job.result.metrics,
            });
          }
        }
        if (spec.metrics) {
          progress.status = 'metrics';
          const needed = new Set(
            [spec.metrics.embeddings, spec.metrics.judge, spec.metrics.perplexity, spec.metrics.tokenizer].flatMap(
              (x) => (x ? [x.provider] : []),
            ),
          );
          const mh = await startChild(metricsWorkflow, {
            workflowId: cell.cellId.replace(/\/dataset$/, '/metrics'),
            args: [
              {
                cellId: cell.cellId,
                teacherId: cell.teacherId,
                language: cell.language,
                datasetKey: cell.datasetKey,
                storage: spec.storage,
                metrics: spec.metrics,
                providers: spec.providers.filter((p) => needed.has(p.id)),
                retry: spec.retry,
              },
            ],
            typedSearchAttributes: cellAttributes(cell, 'metrics'),
          });
          const m = await mh.result();
          intrinsic.push({
            teacher: cell.teacherId,
            language: cell.language,
            intrinsicUri: m.intrinsicUri,
            workflowId: mh.workflowId,
            runId: mh.firstExecutionRunId,
          });
          progress.intrinsicUri = m.intrinsicUri;
          progress.status = r.cached ? 'cached' : 'done';
        }
      } catch (e) {
        if (isCancellation(e)) throw e;
        progress.status = 'failed';
        progress.error = describeFailure(e);
        failures.push(`${cell.cellId}: ${progress.error}`);
      } finally {
        running.delete(cell.cellId);
        recomputeTotals();
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_CELLS, plan.cells.length) }, runCell));

  let report: ScoreSweepResult | undefined;
  if (spec.metrics && !failures.length && intrinsic.length) {
    state.stage = 'score';
    upsertSearchAttributes([{ key: StageKey, value: 'score' }]);
    intrinsic.sort((a, b) => (a.teacher + a.language < b.teacher + b.language ? -1 : 1));
    report = await scoreSweep({
      storage,
      sweepId: plan.sweepId,
      cells: intrinsic,
      resultsUri: spec.scoring.resultsUri,
      alpha: spec.scoring.alpha,
      smallGapThreshold: spec.scoring.smallGapThreshold,
    });
    state.report = { htmlUri: report.htmlUri, markdownUri: report.markdownUri };
  }
  state.stage = failures.length ? 'failed' : 'done';
  upsertSearchAttributes([{ key: StageKey, value: state.stage }]);
  results.sort((a, b) => (a.cellId < b.cellId ? -1 : 1));
  const summaryUri = await writeSweepSummary({
    storage,
    sweepId: plan.sweepId,
    summary: {
      sweepId: plan.sweepId,
      workflowId: info.workflowId,
      runId: info.runId,
      state,
      results,
      intrinsic,
      report,
      failures,
    },
  });
  if (failures.length) {
    // Other cells were allowed to finish first: a resume then only redoes the failed ones.
    throw ApplicationFailure.nonRetryable(
      `${failures.length} of ${plan.cells.length} cells failed:\n${failures.join('\n')}`,
      'CellsFailed',
    );
  }
  return { sweepId: plan.sweepId, summaryUri, cells: results, totals: state.totals, report, students };
}

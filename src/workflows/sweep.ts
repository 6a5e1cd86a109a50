import {
  ApplicationFailure,
  ChildWorkflowHandle,
  condition,
  executeChild,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, ScoreSweepInput, ScoreSweepResult } from '../activities';
import { ErrorType } from '../common/errors';
import { scoringRuns } from '../scoring/runs';
import { planSweep, specVersion, type CellPlan } from '../spec/plan';
import { InvalidSpecError, parseSweepSpec, withJudgeAsBegun, type SweepSpec } from '../spec/sweep';
import { datasetWorkflow, type DatasetWorkflowResult } from './dataset';
import { anchorWorkflow, type AnchorWorkflowResult } from './anchor';
import { metricsWorkflow } from './metrics';
import { studentWorkflow } from './student';
import {
  LanguageKey,
  StageKey,
  SweepIdKey,
  TeacherKey,
  cellPauseSignal,
  cellProgressSignal,
  noteRepairs,
  pauseSignal,
  resumeSignal,
  sweepProgressQuery,
  type CellProgress,
  type SweepProgress,
  keptAlive,
} from './shared';

export interface SweepResult {
  sweepId: string;
  summaryUri: string;
  cells: DatasetWorkflowResult[];
  totals: SweepProgress['totals'];
  report?: ScoreSweepResult;
  students: StudentRun[];
}

/** One trained and evaluated student: small numbers and URIs only (history). */
export interface StudentRun {
  teacher: string;
  language: string;
  student: string;
  family: string;
  /** The training Job and its result. */
  job: string;
  resultUri: string;
  evalResultUri: string;
  /** S_c: mean primary metric over the language's tasks. */
  score?: number;
  // Training and evaluation metrics stay in the two result files: the sweep's result and summary payloads
  // carry one small entry per student, or a 10× grid would bring them near Temporal's 2 MiB payload cap.
}

const { recordSweep, writeSweepSummary, writeSweepSummaryPage, scoreSweep } = proxyActivities<Activities>(
  keptAlive('10 minutes'),
);
/** A few DNS lookups at most, on the main queue before the sweep's first step. */
const { checkSpecPolicy } = proxyActivities<Activities>(keptAlive('2 minutes'));

/** Cells whose dataset workflows run at once. Keeps pending children far below Temporal's 2,000. */
const MAX_PARALLEL_CELLS = 64;
/** Entries per list in one summary page: with the longest entries (~1 KiB), a page stays near 250 KiB. */
const SUMMARY_PAGE = 250;

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
  // patched(): a run begun before the study's judge (template, 2,048-token budget) became the default keeps the
  // judge it began with; the defaults feed its sweep id and version, and a cohort is graded under one protocol.
  if (!patched('judge-template-default')) spec = withJudgeAsBegun(spec, input);
  const plan = planSweep(spec);
  const info = workflowInfo();
  // One id, one sweep: status, report and resume find a sweep by `sweep/<sweepId>` only. patched(): a run
  // started under another id before this check existed replays (and ends) as it began.
  if (patched('workflow-id-check') && info.workflowId !== plan.workflowId)
    throw ApplicationFailure.nonRetryable(
      `workflow id "${info.workflowId}" does not match this spec: start it with workflow id "${plan.workflowId}" (sweep/<sweepId>, from the spec's sweepId or its digest)`,
      ErrorType.WrongWorkflowId,
    );
  const storage = { bucket: spec.storage.bucket, prefix: spec.storage.prefix };
  // Each spec run under this id keeps its own spec, summary and report (runs/<version>/); runs recorded
  // before versions keep writing where they began.
  const version = patched('versioned-runs') ? specVersion(spec) : undefined;

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

  // The worker's trust policy (key variables, hosts, Secrets, commands, buckets) before any call or write: a
  // refused spec fails the sweep at once, with every problem. After the handlers, so `progress` answers while
  // it runs. patched(): older runs replay without it.
  if (patched('spec-policy')) {
    try {
      await checkSpecPolicy({ spec });
    } catch (e) {
      const cause = e instanceof Error ? e.cause : undefined;
      if (cause instanceof ApplicationFailure && cause.type === 'PolicyViolation')
        throw ApplicationFailure.nonRetryable(cause.message, 'PolicyViolation');
      throw e;
    }
  }
  upsertSearchAttributes([
    { key: SweepIdKey, value: plan.sweepId },
    { key: StageKey, value: 'generate' },
  ]);
  state.stage = 'generate';
  await recordSweep({
    storage,
    sweepId: plan.sweepId,
    spec,
    workflowId: info.workflowId,
    runId: info.runId,
    ...(version ? { version } : {}),
  });

  // Anchors depend on no data: they run from the start, beside the cells, once per family × language.
  const anchorRuns: Promise<AnchorWorkflowResult | { family: string; language: string; error: string }>[] = [];
  if (spec.evaluation) {
    const families = new Map<string, { base: string; reference: string; languages: Set<string> }>();
    for (const st of spec.students) {
      if (!st.anchors) continue;
      const family = st.family ?? st.id;
      const f = families.get(family) ?? { ...st.anchors, languages: new Set<string>() };
      for (const l of st.languages ?? spec.languages) f.languages.add(l);
      families.set(family, f);
    }
    for (const [family, f] of families) {
      for (const language of [...f.languages].sort()) {
        const attrs = [
          { key: SweepIdKey, value: plan.sweepId },
          { key: LanguageKey, value: language },
          { key: StageKey, value: 'anchor' },
        ];
        anchorRuns.push(
          executeChild(anchorWorkflow, {
            workflowId: `sweep/${plan.sweepId}/anchors/f=${family}/l=${language}`,
            args: [
              {
                sweepId: plan.sweepId,
                family,
                language,
                base: f.base,
                reference: f.reference,
                evaluation: spec.evaluation,
                storage: spec.storage,
                searchAttributes: attrs,
              },
            ],
            typedSearchAttributes: attrs,
          }).catch((e: unknown) => ({
            // Settled, never rejected: these promises are awaited only after the cells, so a rejection
            // (a cancel, above all) would go unhandled meanwhile and fail the workflow task.
            family,
            language,
            error: isCancellation(e) ? 'cancelled' : describeFailure(e),
          })),
        );
      }
    }
  }

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
          ...(r.truncated !== undefined ? { truncated: r.truncated } : {}),
          shardsDone: progress.shardsTotal,
        });
        if (spec.training && spec.evaluation) {
          progress.status = 'students';
          const trained = await Promise.all(
            spec.students
              .filter((st) => !st.languages || st.languages.includes(cell.language))
              .map((student) =>
                executeChild(studentWorkflow, {
                  workflowId: cell.cellId.replace(/\/dataset$/, `/s=${student.id}/student`),
                  args: [
                    {
                      sweepId: plan.sweepId,
                      cellId: cell.cellId,
                      teacher: cell.teacherId,
                      language: cell.language,
                      datasetKey: cell.datasetKey,
                      manifestUri: r.manifestUri,
                      student,
                      training: spec.training!,
                      evaluation: spec.evaluation!,
                      storage: spec.storage,
                      searchAttributes: cellAttributes(cell, 'student'),
                    },
                  ],
                  typedSearchAttributes: cellAttributes(cell, 'student'),
                }),
              ),
          );
          for (const st of trained) {
            noteRepairs(progress, st.repaired);
            students.push({
              teacher: st.teacher,
              language: st.language,
              student: st.student,
              family: st.family,
              job: st.trainJob,
              resultUri: st.trainResultUri,
              evalResultUri: st.eval.resultUri,
              score: st.eval.score,
            });
          }
          progress.status = r.cached ? 'cached' : 'done';
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
          noteRepairs(progress, m.repaired);
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

  const anchors: AnchorWorkflowResult[] = [];
  for (const a of await Promise.all(anchorRuns)) {
    if ('error' in a) failures.push(`anchors ${a.family}/${a.language}: ${a.error}`);
    else anchors.push(a);
  }

  let report: ScoreSweepResult | undefined;
  if (spec.metrics && !failures.length && intrinsic.length) {
    state.stage = 'score';
    upsertSearchAttributes([{ key: StageKey, value: 'score' }]);
    intrinsic.sort((a, b) => (a.teacher + a.language < b.teacher + b.language ? -1 : 1));
    report = await scoreSweep({
      storage,
      sweepId: plan.sweepId,
      ...(version ? { version } : {}),
      cells: intrinsic,
      resultsUri: spec.scoring.resultsUri,
      ...scoringRuns(students, anchors),
      alpha: spec.scoring.alpha,
      smallGapThreshold: spec.scoring.smallGapThreshold,
    });
    state.report = { htmlUri: report.htmlUri, markdownUri: report.markdownUri };
  }
  state.stage = failures.length ? 'failed' : 'done';
  upsertSearchAttributes([{ key: StageKey, value: state.stage }]);
  results.sort((a, b) => (a.cellId < b.cellId ? -1 : 1));
  // The long lists go in pages, each a payload of its own (paper-scale bench: the whole summary was one
  // 1 MiB activity input at 600 cells × 1,500 students, half of Temporal's 2 MiB cap).
  // patched(): a run that reached this point under the one-payload code replays that code unchanged.
  const paged = patched('summary-pages');
  const lists: Record<string, unknown[]> = { 'state.cells': state.cells, results, intrinsic, students };
  const longest = paged ? Math.max(...Object.values(lists).map((l) => l.length)) : 0;
  let pages = 0;
  for (let at = 0; at < longest; at += SUMMARY_PAGE) {
    await writeSweepSummaryPage({
      storage,
      sweepId: plan.sweepId,
      runId: info.runId,
      page: pages++,
      lists: Object.fromEntries(Object.entries(lists).map(([k, l]) => [k, l.slice(at, at + SUMMARY_PAGE)])),
    });
  }
  const summaryUri = await writeSweepSummary({
    storage,
    sweepId: plan.sweepId,
    ...(version ? { version } : {}),
    summary: paged
      ? {
          sweepId: plan.sweepId,
          workflowId: info.workflowId,
          runId: info.runId,
          state: { ...state, cells: [] },
          results: [],
          intrinsic: [],
          students: [],
          anchors,
          report,
          failures,
        }
      : {
          sweepId: plan.sweepId,
          workflowId: info.workflowId,
          runId: info.runId,
          state,
          results,
          intrinsic,
          students,
          anchors,
          report,
          failures,
        },
    ...(paged ? { pages: { runId: info.runId, count: pages } } : {}),
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

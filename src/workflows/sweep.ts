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
  type WorkflowInfo,
} from '@temporalio/workflow';
import type { Activities, ScoreSweepInput, ScoreSweepResult } from '../activities';
import { ErrorType } from '../common/errors';
import { scoringRuns } from '../scoring/runs';
import { planSweep, specVersion, type CellPlan, type SweepPlan } from '../spec/plan';
import { InvalidSpecError, parseSweepSpec, withJudgeAsBegun, type SweepSpec } from '../spec/sweep';
import { datasetWorkflow, type DatasetWorkflowResult } from './dataset';
import { anchorWorkflow, type AnchorWorkflowResult } from './anchor';
import { anchorWorkflowId, metricsWorkflowId, studentWorkflowId, type CellRef } from '../common/workflow-ids';
import { metricsWorkflow } from './metrics';
import { metricProviders } from '../metrics/registry';
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
 * The stages a cell passes through, in the order the sweep runs them; the sweep's own stage is the least
 * advanced one among its unfinished cells. A cell's place is kept by the sweep alone: a child's progress
 * report may say "done" before the sweep has taken its result, and must not move the stage ahead and back.
 */
const CELL_STAGES = ['generate', 'students', 'metrics'] as const;
type CellStage = (typeof CELL_STAGES)[number] | 'finished';

type AnchorOutcome = AnchorWorkflowResult | { family: string; language: string; error: string };

/** What the steps of one sweep run share: its spec and plan, its progress, and what its cells produced. */
interface Run {
  spec: SweepSpec;
  plan: SweepPlan;
  info: WorkflowInfo;
  storage: { bucket: string; prefix: string };
  version?: string;
  state: SweepProgress;
  byId: Map<string, CellProgress>;
  /** Each cell's stage, as the sweep moves it (see CELL_STAGES). */
  stages: Map<string, CellStage>;
  /** patched('stage-follows-cells'): runs begun before it report "generate" until the score. */
  stageFollowsCells: boolean;
  running: Map<string, ChildWorkflowHandle<typeof datasetWorkflow>>;
  budget: SweepSpec['budget'];
  pauseEpoch: number;
  results: DatasetWorkflowResult[];
  intrinsic: ScoreSweepInput['cells'];
  students: StudentRun[];
  failures: string[];
}

/** The innermost failure's type and message: "Activity task failed" alone tells a user nothing. */
function describeFailure(e: unknown): string {
  let cur: unknown = e;
  while (cur instanceof Error && cur.cause instanceof Error) cur = cur.cause;
  if (cur instanceof ApplicationFailure) return `${cur.type ?? 'Error'}: ${cur.message}`;
  return cur instanceof Error ? cur.message : String(cur);
}

/**
 * A whole sweep: validate the spec (again — Web UI starts bypass the CLI), plan cells, run one
 * dataset workflow per teacher × language, enforce the budget, and write a summary.
 * The single argument is the spec itself, so the Web UI's one-JSON-input form can start it.
 * Each step below schedules its commands in the order running sweeps recorded them (replay).
 */
export async function sweepWorkflow(input: unknown): Promise<SweepResult> {
  const run = planStep(input);
  handleBudgetAndPause(run);
  await checkPolicy(run);
  await begin(run);
  const anchorRuns = startAnchors(run);
  await runCells(run);
  const anchors = await collectAnchors(run, anchorRuns);
  const report = await score(run, anchors);
  run.state.stage = run.failures.length ? 'failed' : 'done';
  upsertSearchAttributes([{ key: StageKey, value: run.state.stage }]);
  const summaryUri = await writeSummary(run, anchors, report);
  if (run.failures.length) {
    // Other cells were allowed to finish first: a resume then only redoes the failed ones.
    throw ApplicationFailure.nonRetryable(
      `${run.failures.length} of ${run.plan.cells.length} cells failed:\n${run.failures.join('\n')}`,
      ErrorType.CellsFailed,
    );
  }
  const { plan, results, state, students } = run;
  return { sweepId: plan.sweepId, summaryUri, cells: results, totals: state.totals, report, students };
}

/** The spec, validated, and its plan; the sweep's id checked against the plan's. */
function planStep(input: unknown): Run {
  let spec: SweepSpec;
  try {
    spec = parseSweepSpec(input);
  } catch (e) {
    if (e instanceof InvalidSpecError)
      throw ApplicationFailure.nonRetryable(e.message, ErrorType.InvalidSpec, { problems: e.problems });
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
  return {
    spec,
    plan,
    info,
    storage,
    version,
    state,
    byId: new Map(state.cells.map((c) => [c.cellId, c])),
    stages: new Map(plan.cells.map((c) => [c.cellId, 'generate'])),
    stageFollowsCells: false,
    running: new Map(),
    budget: { ...spec.budget },
    pauseEpoch: 0,
    results: [],
    intrinsic: [],
    students: [],
    failures: [],
  };
}

function cellRef(run: Run, cell: CellPlan): CellRef {
  return { sweepId: run.plan.sweepId, teacherId: cell.teacherId, language: cell.language };
}

/** Every workflow of a cell is found by sweep, teacher, language and stage in the Web UI. */
function cellAttributes(run: Run, cell: CellPlan, stage: string) {
  return [
    { key: SweepIdKey, value: run.plan.sweepId },
    { key: TeacherKey, value: cell.teacherId },
    { key: LanguageKey, value: cell.language },
    { key: StageKey, value: stage },
  ];
}

function recomputeTotals(run: Run): void {
  run.state.totals = run.state.cells.reduce(
    (t, c) => ({ tokens: t.tokens + c.tokens, costUsd: t.costUsd + c.costUsd, examples: t.examples + c.examples }),
    { tokens: 0, costUsd: 0, examples: 0 },
  );
}

function overBudget(run: Run): string | undefined {
  const { budget, state } = run;
  if (budget.maxCostUsd !== undefined && state.totals.costUsd >= budget.maxCostUsd) {
    return `budget reached: cost $${state.totals.costUsd.toFixed(4)} ≥ maxCostUsd $${budget.maxCostUsd}`;
  }
  if (budget.maxTokens !== undefined && state.totals.tokens >= budget.maxTokens) {
    return `budget reached: ${state.totals.tokens} tokens ≥ maxTokens ${budget.maxTokens}`;
  }
  return undefined;
}

/** The sweep's pause state, sent to every running cell with a newer epoch. */
async function forwardPause(run: Run): Promise<void> {
  const msg = { paused: run.state.paused, epoch: ++run.pauseEpoch };
  await Promise.all([...run.running.values()].map((h) => h.signal(cellPauseSignal, msg).catch(() => undefined)));
}

async function pause(run: Run, reason: string): Promise<void> {
  if (run.state.paused) return;
  run.state.paused = true;
  run.state.pauseReason = reason;
  await forwardPause(run);
}

/** Progress, pause and resume, and the budget: each cell's report may pause the sweep on its caps. */
function handleBudgetAndPause(run: Run): void {
  const { state } = run;
  setHandler(sweepProgressQuery, () => state);
  setHandler(pauseSignal, async (reason?: string) => pause(run, reason ?? 'paused by signal'));
  setHandler(resumeSignal, async (args) => {
    if (args?.maxCostUsd !== undefined) run.budget.maxCostUsd = args.maxCostUsd;
    if (args?.maxTokens !== undefined) run.budget.maxTokens = args.maxTokens;
    const still = overBudget(run);
    if (still) {
      state.pauseReason = `${still}; resume with a higher cap`;
      return;
    }
    state.paused = false;
    state.pauseReason = undefined;
    await forwardPause(run);
  });
  setHandler(cellProgressSignal, async (p: CellProgress) => {
    const cell = run.byId.get(p.cellId);
    if (!cell) return;
    Object.assign(cell, p);
    recomputeTotals(run);
    const reason = overBudget(run);
    if (reason) await pause(run, reason);
  });
}

/**
 * The worker's trust policy (key variables, hosts, Secrets, commands, buckets) before any call or write: a
 * refused spec fails the sweep at once, with every problem. After the handlers, so `progress` answers while
 * it runs. patched(): older runs replay without it.
 */
async function checkPolicy(run: Run): Promise<void> {
  if (!patched('spec-policy')) return;
  try {
    await checkSpecPolicy({ spec: run.spec });
  } catch (e) {
    const cause = e instanceof Error ? e.cause : undefined;
    if (cause instanceof ApplicationFailure && cause.type === ErrorType.PolicyViolation)
      throw ApplicationFailure.nonRetryable(cause.message, ErrorType.PolicyViolation);
    throw e;
  }
}

/** The sweep found by its id and stage, and its spec recorded. */
async function begin(run: Run): Promise<void> {
  run.stageFollowsCells = patched('stage-follows-cells');
  upsertSearchAttributes([
    { key: SweepIdKey, value: run.plan.sweepId },
    { key: StageKey, value: 'generate' },
  ]);
  run.state.stage = 'generate';
  await recordSweep({
    storage: run.storage,
    sweepId: run.plan.sweepId,
    spec: run.spec,
    workflowId: run.info.workflowId,
    runId: run.info.runId,
    ...(run.version ? { version: run.version } : {}),
  });
}

/**
 * Move a cell to its next stage, and the sweep's stage with its least advanced unfinished cell. Only on a
 * change: each upsert is an event of the sweep's history.
 */
function moveCell(run: Run, cellId: string, stage: CellStage): void {
  run.stages.set(cellId, stage);
  if (!run.stageFollowsCells) return;
  const at = [...run.stages.values()].reduce<number>(
    (min, s) => (s === 'finished' ? min : Math.min(min, CELL_STAGES.indexOf(s))),
    CELL_STAGES.length,
  );
  const next = CELL_STAGES[at];
  if (!next || next === run.state.stage) return;
  run.state.stage = next;
  upsertSearchAttributes([{ key: StageKey, value: next }]);
}

/**
 * Anchors depend on no data: they run from the start, beside the cells, once per family × language.
 * Settled, never rejected: these promises are awaited only after the cells, so a rejection (a cancel,
 * above all) would go unhandled meanwhile and fail the workflow task.
 */
function startAnchors(run: Run): Promise<AnchorOutcome>[] {
  const { spec, plan } = run;
  const anchorRuns: Promise<AnchorOutcome>[] = [];
  if (!spec.evaluation) return anchorRuns;
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
          workflowId: anchorWorkflowId({ sweepId: plan.sweepId, family, language }),
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
          family,
          language,
          error: isCancellation(e) ? 'cancelled' : describeFailure(e),
        })),
      );
    }
  }
  return anchorRuns;
}

/** Every cell, at most MAX_PARALLEL_CELLS at once, each taken from the plan's order as a slot frees. */
async function runCells(run: Run): Promise<void> {
  const queue: CellPlan[] = run.plan.cells.slice();
  const slot = async (): Promise<void> => {
    for (let cell = queue.shift(); cell; cell = queue.shift()) await runCell(run, cell);
  };
  await Promise.all(Array.from({ length: Math.min(MAX_PARALLEL_CELLS, run.plan.cells.length) }, slot));
}

/** One cell: its dataset, then its students and its metrics; a failure is noted and the others go on. */
async function runCell(run: Run, cell: CellPlan): Promise<void> {
  const { spec, state } = run;
  await condition(() => !state.paused);
  const progress = run.byId.get(cell.cellId)!;
  progress.status = 'running';
  const handle = await startDataset(run, cell);
  try {
    const r = await handle.result();
    run.results.push(r);
    Object.assign(progress, {
      status: r.cached ? 'cached' : 'done',
      manifestUri: r.manifestUri,
      examples: r.examples,
      ...(r.truncated !== undefined ? { truncated: r.truncated } : {}),
      shardsDone: progress.shardsTotal,
    });
    if (spec.training && spec.evaluation) {
      progress.status = 'students';
      moveCell(run, cell.cellId, 'students');
      await runStudents(run, cell, r.manifestUri, progress);
      progress.status = r.cached ? 'cached' : 'done';
    }
    if (spec.metrics) {
      progress.status = 'metrics';
      moveCell(run, cell.cellId, 'metrics');
      await runMetrics(run, cell, progress);
      progress.status = r.cached ? 'cached' : 'done';
    }
  } catch (e) {
    if (isCancellation(e)) throw e;
    progress.status = 'failed';
    progress.error = describeFailure(e);
    run.failures.push(`${cell.cellId}: ${progress.error}`);
  } finally {
    run.running.delete(cell.cellId);
    recomputeTotals(run);
    moveCell(run, cell.cellId, 'finished');
  }
}

/** The cell's dataset workflow, started (and paused at once if the sweep is pausing). */
async function startDataset(run: Run, cell: CellPlan): Promise<ChildWorkflowHandle<typeof datasetWorkflow>> {
  const { spec, plan } = run;
  const teacher = spec.teachers.find((t) => t.id === cell.teacherId)!;
  const provider = spec.providers.find((p) => p.id === teacher.provider)!;
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
        parentWorkflowId: run.info.workflowId,
      },
    ],
    typedSearchAttributes: cellAttributes(run, cell, 'prepare'),
  });
  run.running.set(cell.cellId, handle);
  // A child started while the sweep was pausing must pause too.
  if (run.state.paused)
    await handle.signal(cellPauseSignal, { paused: true, epoch: run.pauseEpoch }).catch(() => undefined);
  return handle;
}

/** Every student of the cell's language, trained and evaluated on its dataset, all at once. */
async function runStudents(run: Run, cell: CellPlan, manifestUri: string, progress: CellProgress): Promise<void> {
  const { spec, plan } = run;
  const trained = await Promise.all(
    spec.students
      .filter((st) => !st.languages || st.languages.includes(cell.language))
      .map((student) =>
        executeChild(studentWorkflow, {
          workflowId: studentWorkflowId(cellRef(run, cell), student.id),
          args: [
            {
              sweepId: plan.sweepId,
              cellId: cell.cellId,
              teacher: cell.teacherId,
              language: cell.language,
              datasetKey: cell.datasetKey,
              manifestUri,
              student,
              training: spec.training!,
              evaluation: spec.evaluation!,
              storage: spec.storage,
              searchAttributes: cellAttributes(run, cell, 'student'),
            },
          ],
          typedSearchAttributes: cellAttributes(run, cell, 'student'),
        }),
      ),
  );
  for (const st of trained) {
    noteRepairs(progress, st.repaired);
    run.students.push({
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
}

/** The cell's intrinsic metrics, with only the providers they name. */
async function runMetrics(run: Run, cell: CellPlan, progress: CellProgress): Promise<void> {
  const { spec } = run;
  const metrics = spec.metrics!;
  const needed = new Set(metricProviders(metrics));
  const mh = await startChild(metricsWorkflow, {
    workflowId: metricsWorkflowId(cellRef(run, cell)),
    args: [
      {
        cellId: cell.cellId,
        teacherId: cell.teacherId,
        language: cell.language,
        datasetKey: cell.datasetKey,
        storage: spec.storage,
        metrics,
        providers: spec.providers.filter((p) => needed.has(p.id)),
        retry: spec.retry,
      },
    ],
    typedSearchAttributes: cellAttributes(run, cell, 'metrics'),
  });
  const m = await mh.result();
  run.intrinsic.push({
    teacher: cell.teacherId,
    language: cell.language,
    intrinsicUri: m.intrinsicUri,
    workflowId: mh.workflowId,
    runId: mh.firstExecutionRunId,
  });
  progress.intrinsicUri = m.intrinsicUri;
  noteRepairs(progress, m.repaired);
}

/** The anchors' outcomes, after the cells: a failed one is a failure of the sweep like a failed cell. */
async function collectAnchors(run: Run, anchorRuns: Promise<AnchorOutcome>[]): Promise<AnchorWorkflowResult[]> {
  const anchors: AnchorWorkflowResult[] = [];
  for (const a of await Promise.all(anchorRuns)) {
    if ('error' in a) run.failures.push(`anchors ${a.family}/${a.language}: ${a.error}`);
    else anchors.push(a);
  }
  return anchors;
}

/** The sweep's scores and report, when every cell has its metrics and nothing failed. */
async function score(run: Run, anchors: AnchorWorkflowResult[]): Promise<ScoreSweepResult | undefined> {
  const { spec, state, intrinsic } = run;
  if (!spec.metrics || run.failures.length || !intrinsic.length) return undefined;
  state.stage = 'score';
  upsertSearchAttributes([{ key: StageKey, value: 'score' }]);
  intrinsic.sort((a, b) => (a.teacher + a.language < b.teacher + b.language ? -1 : 1));
  const report = await scoreSweep({
    storage: run.storage,
    sweepId: run.plan.sweepId,
    ...(run.version ? { version: run.version } : {}),
    cells: intrinsic,
    resultsUri: spec.scoring.resultsUri,
    ...scoringRuns(run.students, anchors),
    alpha: spec.scoring.alpha,
    smallGapThreshold: spec.scoring.smallGapThreshold,
  });
  state.report = { htmlUri: report.htmlUri, markdownUri: report.markdownUri };
  return report;
}

/**
 * The summary, its long lists in pages, each a payload of its own (paper-scale bench: the whole summary was
 * one 1 MiB activity input at 600 cells × 1,500 students, half of Temporal's 2 MiB cap). patched(): a run
 * that reached this point under the one-payload code replays that code unchanged.
 */
async function writeSummary(
  run: Run,
  anchors: AnchorWorkflowResult[],
  report: ScoreSweepResult | undefined,
): Promise<string> {
  const { storage, plan, info, state, results, intrinsic, students, failures, version } = run;
  results.sort((a, b) => (a.cellId < b.cellId ? -1 : 1));
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
  const head = { sweepId: plan.sweepId, workflowId: info.workflowId, runId: info.runId };
  return writeSweepSummary({
    storage,
    sweepId: plan.sweepId,
    ...(version ? { version } : {}),
    summary: paged
      ? {
          ...head,
          state: { ...state, cells: [] },
          results: [],
          intrinsic: [],
          students: [],
          anchors,
          report,
          failures,
        }
      : { ...head, state, results, intrinsic, students, anchors, report, failures },
    ...(paged ? { pages: { runId: info.runId, count: pages } } : {}),
  });
}

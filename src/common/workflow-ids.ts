/**
 * Every workflow id, built here and nowhere else (docs/workflow-ids.md lists them). Each id is built from its
 * parts, never from another id, and never parsed back: whoever needs a part keeps it beside the id.
 * The strings are part of the contract: status, resume and the replay of running sweeps find workflows by
 * them, so a change here must keep every existing form byte for byte (test/integration/replay.test.ts).
 * Pure, with no imports: the workflow bundle, the planner and the CLI all use it.
 */

/** The parts that name one teacher × language cell of a sweep. */
export interface CellRef {
  sweepId: string;
  teacherId: string;
  language: string;
}

/** The prefix every workflow of one cell shares (not an id itself). */
function cellPrefix(c: CellRef): string {
  return `sweep/${c.sweepId}/t=${c.teacherId}/l=${c.language}`;
}

/** The sweep: `sweep/<sweepId>`; status, report and resume find a sweep by this id only. */
export function sweepWorkflowId(sweepId: string): string {
  return `sweep/${sweepId}`;
}

/** A cell's dataset workflow; also the cell's id in progress, summaries and its dataset's provenance. */
export function datasetWorkflowId(c: CellRef): string {
  return `${cellPrefix(c)}/dataset`;
}

/** A cell's intrinsic metrics. */
export function metricsWorkflowId(c: CellRef): string {
  return `${cellPrefix(c)}/metrics`;
}

/** One student trained and evaluated on a cell's dataset. */
export function studentWorkflowId(c: CellRef, studentId: string): string {
  return `${cellPrefix(c)}/s=${studentId}/student`;
}

/** The student's training job (workflow id, and the job contract's cellId that names its Jobs). */
export function trainJobId(c: CellRef, studentId: string): string {
  return `${cellPrefix(c)}/s=${studentId}/train`;
}

/** The student's evaluation job. */
export function evalJobId(c: CellRef, studentId: string): string {
  return `${cellPrefix(c)}/s=${studentId}/eval`;
}

/** The parts that name one student family's anchors on one language. */
export interface AnchorRef {
  sweepId: string;
  family: string;
  language: string;
}

/** The prefix every workflow of one family's anchors on one language shares. */
function anchorPrefix(a: AnchorRef): string {
  return `sweep/${a.sweepId}/anchors/f=${a.family}/l=${a.language}`;
}

/** A family's anchors (B_ℓ and R_ℓ) on one language. */
export function anchorWorkflowId(a: AnchorRef): string {
  return anchorPrefix(a);
}

/** The evaluation job of a family's base or reference model on one language. */
export function anchorJobId(a: AnchorRef, which: 'base' | 'reference'): string {
  return `${anchorPrefix(a)}/${which}`;
}

import { scoreCohort } from '../scoring';
import { parseResultsJson } from '../scoring/results-file';
import {
  CORE_INTRINSIC,
  EXTRA_INTRINSIC,
  type CellInput,
  type CohortScores,
  type IntrinsicRecord,
  type TeacherScore,
} from '../scoring/types';
import { getSealed, mustBeIntact } from '../storage/integrity';
import { parseS3Uri, type S3Store } from '../storage/s3';
import { INTRINSIC_ONLY, renderReport, type IntrinsicRow, type RenderedReport } from './render';

/**
 * Build a sweep's scores and report from its artifacts in S3: the intrinsic metrics of each data
 * cell plus, when given, a results file with student and anchor results. Shared by the sweep's last
 * activity and by `polyglot report`, so both produce the same report from the same inputs.
 */
export interface SweepReportInput {
  sweepId: string;
  cells: { teacher: string; language: string; intrinsicUri: string; workflowId?: string; runId?: string }[];
  resultsUri?: string;
  /** Student results from the sweep's own student stage (S_c per teacher × language × family). */
  students?: { teacher: string; language: string; family: string; result: number; uri: string }[];
  /** Anchor results from the sweep's anchor stage (B_ℓ, R_ℓ per family × language). */
  anchors?: { family: string; language: string; base: number; reference: number; uri: string }[];
  alpha: number;
  smallGapThreshold: number;
  webUiBase?: string;
  generatedAt: string;
}

export async function buildSweepReport(
  store: S3Store,
  input: SweepReportInput,
  linkForUri?: (uri: string) => string,
): Promise<{ scores: CohortScores; report: RenderedReport }> {
  const intrinsic: IntrinsicRow[] = [];
  const byCell = new Map<string, { record: IntrinsicRecord; uri: string; workflowId?: string; runId?: string }>();
  for (const c of input.cells) {
    const doc = mustBeIntact(
      await getSealed<{ intrinsic: Record<string, number> }>(store, parseS3Uri(c.intrinsicUri).key),
      c.intrinsicUri,
      "resume the sweep: its cell's metrics stage rewrites it",
    );
    if (!doc) throw new Error(`intrinsic metrics ${c.intrinsicUri} are missing`);
    const v = doc.intrinsic;
    // Core measures absent from a record are NaN (the cell is then flagged); extras are carried as found.
    const record = Object.fromEntries([
      ...CORE_INTRINSIC.map((k) => [k, v[k] ?? NaN]),
      ...EXTRA_INTRINSIC.map((k) => [k, v[k]]),
    ]) as IntrinsicRecord;
    byCell.set(`${c.teacher}|${c.language}`, { record, uri: c.intrinsicUri, workflowId: c.workflowId, runId: c.runId });
    intrinsic.push({
      teacher: c.teacher,
      language: c.language,
      values: v,
      uri: c.intrinsicUri,
      workflowId: c.workflowId,
      runId: c.runId,
    });
  }

  let cells: CellInput[];
  let anchors: Parameters<typeof scoreCohort>[1] = [];
  const provenanceOf = (teacher: string, language: string) => {
    const c = byCell.get(`${teacher}|${language}`);
    return c ? { uri: c.uri, workflowId: c.workflowId, runId: c.runId } : undefined;
  };
  if (input.resultsUri) {
    const text = await store.getText(parseS3Uri(input.resultsUri).key);
    if (text === undefined) throw new Error(`results file ${input.resultsUri} is missing`);
    const parsed = parseResultsJson(text, input.resultsUri);
    anchors = parsed.anchors;
    // Student results from the file, intrinsic values from this sweep's own metrics.
    cells = parsed.cells.map((c) => ({
      ...c,
      intrinsic: byCell.get(`${c.teacher}|${c.language}`)?.record ?? c.intrinsic,
      z_score: byCell.has(`${c.teacher}|${c.language}`) ? undefined : c.z_score,
      provenance: { ...c.provenance, intrinsic: provenanceOf(c.teacher, c.language) ?? c.provenance?.intrinsic },
    }));
  } else if (input.students?.length) {
    cells = input.students.map((st) => ({
      teacher: st.teacher,
      language: st.language,
      family: st.family,
      result: st.result,
      intrinsic: byCell.get(`${st.teacher}|${st.language}`)?.record,
      provenance: { intrinsic: provenanceOf(st.teacher, st.language), result: { uri: st.uri } },
    }));
    anchors = (input.anchors ?? []).map((a) => ({ ...a, provenance: { uri: a.uri } }));
  } else {
    cells = input.cells.map((c) => ({
      teacher: c.teacher,
      language: c.language,
      intrinsic: byCell.get(`${c.teacher}|${c.language}`)!.record,
      provenance: { intrinsic: provenanceOf(c.teacher, c.language) },
    }));
  }
  const scores = scoreCohort(cells, anchors, { alpha: input.alpha, smallGapThreshold: input.smallGapThreshold });
  if (!scores.teachers.length) {
    // No student results yet: rank teachers by their mean intrinsic z, and say so plainly.
    scores.teachers = rankByZ(scores);
    scores.warnings.unshift(
      'No student results yet: teachers are ranked by mean intrinsic z alone. The PG-Score also needs PGR from trained students (scoring.resultsUri or the student stage).',
    );
  }
  const report = renderReport({
    sweepId: input.sweepId,
    generatedAt: input.generatedAt,
    scores,
    intrinsic,
    webUiBase: input.webUiBase,
    linkForUri,
  });
  return { scores, report };
}

function rankByZ(scores: CohortScores): TeacherScore[] {
  const sums = new Map<string, { sum: number; n: number }>();
  for (const c of scores.cells) {
    if (!Number.isFinite(c.z_score)) continue;
    const s = sums.get(c.teacher) ?? { sum: 0, n: 0 };
    s.sum += c.z_score;
    s.n++;
    sums.set(c.teacher, s);
  }
  const rows = [...sums.entries()]
    .map(([teacher, s]) => ({ teacher, family: INTRINSIC_ONLY, pg_score: s.sum / s.n, languages: s.n, rank: 0 }))
    .sort((a, b) => b.pg_score - a.pg_score);
  rows.forEach((r, i) => (r.rank = i > 0 && r.pg_score === rows[i - 1]!.pg_score ? rows[i - 1]!.rank : i + 1));
  return rows;
}

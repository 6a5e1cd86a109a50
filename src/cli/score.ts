/**
 * `polyglot score`: PG-Score a results file outside any workflow (docs/method.md, "PG-Score" and "Analyses"), e.g. the
 * paper's published table or an exported cohort. Reading files lives here; parsing and validating them is
 * `src/scoring/results-file.ts` (the report reads the same files from S3), the math the pure `src/scoring`
 * module that workflows also use.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorType, PolyglotError } from '../common/errors';
import { scoreCohort } from '../scoring/pgscore';
import { EXTRA_INTRINSIC, parseAnchorsCsv, parseResultsCsv, parseResultsJson } from '../scoring/results-file';
import { CORE_INTRINSIC, type AnchorScores, type CellInput, type CohortScores } from '../scoring/types';

/** `polyglot score --help`: the flags and the columns a results table and an anchors table may have. */
export const SCORE_HELP = `usage: polyglot score --from <results.csv|json> [--anchors <anchors.csv>] [--alpha 0.5]
                      [--small-gap-threshold 0.02] [--primary-family <family>] [--out <dir>]

PG-Score of a results table outside any sweep, e.g. the paper's published table (docs/method.md, "PG-Score").

flags:
  --from <file>                  results table: CSV (header row) or JSON {"cells": [...], "anchors": [...]}
  --anchors <file>               anchors CSV; required when rows carry a result S (JSON may inline "anchors")
  --alpha <0..1>                 weight of z in PG(α) = α·z + (1 − α)·PGR                    (default 0.5)
  --small-gap-threshold <x ≥ 0>  flag cells whose anchors differ by less than this, |R − B|  (default 0.02)
  --primary-family <family>      family whose results drive the analyses        (default: most scored cells)
  --out <dir>                    also write scores.json (the whole cohort) and scores.txt (these tables)

results columns (one row per teacher × language × student family; empty field = not given):
  teacher                        required; the teacher's name
  language | lang                required; ISO 639-1 code (the paper's table says "lang")
  family                         the student family the row's result belongs to, as named in the anchors;
                                 required on every row that gives result or pgr
  result                         S: the student's mean primary metric over the language's tasks
  pgr                            a published PGR: used when result or the family's anchors are missing
                                 (as for ja in the paper); otherwise computed and only compared
  z_score                        a precomputed intrinsic z (used when the intrinsic columns are absent)
  ${CORE_INTRINSIC.join(',\n  ')}
                                 intrinsic metrics: all on a row or none; z is then computed over the cohort
  ${EXTRA_INTRINSIC.join(',\n  ')}
                                 optional extras, reported only
  any other column (e.g. pg_score) is ignored with a warning

anchors columns:
  family, language | lang, base (B), reference (R)   all required; one row per family and language

examples/score-results.csv and examples/score-anchors.csv: a small table of this shape (illustrative values).`;

export interface ScoreFileOptions {
  /** Weight of z in PG(α); default 0.5. */
  alpha?: number;
  /** |R − B| below this is flagged; default 0.02. */
  smallGapThreshold?: number;
  /** Family whose results drive the analyses; default the one with most scored cells. */
  primaryFamily?: string;
  /** Anchors CSV with columns `family,language,base,reference`; added to a JSON file's `anchors`. */
  anchorsFile?: string;
  /** Directory to write `scores.json` (the full cohort) and `scores.txt` (the rendered tables) into. */
  out?: string;
}

/**
 * Score a results file and return the cohort.
 *
 * - JSON: `{ "cells": CellInput[], "anchors": AnchorScores[] }` (`anchors` may be omitted when
 *   `anchorsFile` is given; a `null` number counts as absent, as pandas writes NaN).
 * - CSV (any other extension): a header row with `teacher,language` (or `lang`, as the paper's table
 *   names it) and any of `family`, `result`, `pgr`, `z_score` and the intrinsic columns
 *   (`prompts_distinct_ri`, `responses_distinct_ri`, `average_rubric_score`, `average_perplexity`,
 *   `prompts_average_length`, `responses_average_length`, plus the optional extras of
 *   `IntrinsicRecord`). Empty fields are absent; the six core intrinsic fields are all given on a row or
 *   none; a row with `result` or `pgr` needs its `family`. Other columns (e.g. a table's own
 *   `pg_score`) are ignored with a warning. Anchors come from `anchorsFile`. `SCORE_HELP` lists it all.
 *
 * Problems throw `PolyglotError(InvalidInput)` naming the file, row (and line) and column.
 */
export async function scoreFromFile(file: string, opts: ScoreFileOptions = {}): Promise<CohortScores> {
  const text = await readText(file);
  const warnings: string[] = [];
  let cells: CellInput[];
  let anchors: AnchorScores[] = [];
  if (/\.json$/i.test(file)) ({ cells, anchors } = parseResultsJson(text, file));
  else cells = parseResultsCsv(text, file, warnings);
  if (opts.anchorsFile) anchors = anchors.concat(parseAnchorsCsv(await readText(opts.anchorsFile), opts.anchorsFile));
  if (anchors.length === 0 && cells.some((c) => c.result !== undefined)) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `${file}: rows give a result but no anchors are given; pass --anchors <anchors.csv> ` +
        '(family,language,base,reference) or an "anchors" array in JSON',
    );
  }
  let cohort: CohortScores;
  try {
    cohort = scoreCohort(cells, anchors, {
      alpha: opts.alpha,
      smallGapThreshold: opts.smallGapThreshold,
      primaryFamily: opts.primaryFamily,
    });
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `${file}: ${(e as Error).message}`);
  }
  cohort.warnings.unshift(...warnings);
  if (opts.out) {
    await mkdir(opts.out, { recursive: true });
    await writeFile(path.join(opts.out, 'scores.json'), JSON.stringify(cohort, null, 2) + '\n');
    await writeFile(path.join(opts.out, 'scores.txt'), renderScoreTable(cohort));
  }
  return cohort;
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `cannot read ${file}: ${(e as Error).message}`);
  }
}

// ---- Rendering -------------------------------------------------------------------------------------

const fmt = (v: number | undefined, digits = 4): string =>
  v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits);

function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const line = (r: string[]): string =>
    r
      .map((v, j) => v.padEnd(widths[j]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

/** Plain-text per-cell table, per-family leaderboards, analyses summary and warnings. */
export function renderScoreTable(c: CohortScores): string {
  const out: string[] = [`PG-Score cells (alpha = ${c.options.alpha})`, ''];
  out.push(
    ...table(
      ['teacher', 'language', 'family', 'result', 'pgr', 'z', 'pg', 'flags'],
      c.cells.map((s) => [
        s.teacher,
        s.language,
        s.family ?? '-',
        fmt(s.result),
        fmt(s.pgr),
        fmt(s.z_score),
        fmt(s.pg_score),
        s.flags.join(','),
      ]),
    ),
  );
  const families = [...new Set(c.teachers.map((t) => t.family ?? '-'))];
  for (const family of families) {
    const flagged = new Set(c.cells.filter((s) => s.family === family && s.flags.length).map((s) => s.teacher));
    out.push('', `Leaderboard: ${family}`, '');
    out.push(
      ...table(
        ['rank', 'teacher', 'pg_score', 'languages', 'flagged cells'],
        c.teachers
          .filter((t) => (t.family ?? '-') === family)
          .map((t) => [
            String(t.rank),
            t.teacher,
            fmt(t.pg_score),
            String(t.languages),
            flagged.has(t.teacher) ? 'yes' : '',
          ]),
      ),
    );
  }
  const a = c.analyses;
  const summary: string[] = [];
  if (a.pca) {
    const first4 = a.pca.cumulative[Math.min(3, a.pca.cumulative.length - 1)];
    summary.push(`PCA (${a.pca.n ?? '?'} cells): first 4 components explain ${fmt((first4 ?? NaN) * 100, 1)}%`);
  }
  if (a.regression) {
    const r = a.regression;
    summary.push(`Linear regression of ${r.target} (${r.family ?? '-'}) on PCs: R² ${fmt(r.r2)}, RMSE ${fmt(r.rmse)}`);
  }
  if (a.robustness) {
    const minRho = Math.min(...a.robustness.spearman.flat());
    const zp = a.robustness.zVsPgr;
    summary.push(`Weight robustness: min Spearman rho over alpha pairs ${fmt(minRho)}; rho(z, PGR) ${fmt(zp.rho)}`);
  }
  for (const f of a.families) {
    summary.push(`Family agreement ${f.a} vs ${f.b}: rho ${fmt(f.rho)} (p ${fmt(f.p)}, ${f.teachers} teachers)`);
  }
  if (summary.length) out.push('', 'Analyses', ...summary.map((s) => `  ${s}`));
  if (c.warnings.length) out.push('', 'Warnings', ...c.warnings.map((w) => `  ! ${w}`));
  return out.join('\n') + '\n';
}

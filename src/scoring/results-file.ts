/**
 * Results files (docs/method.md, "PG-Score"): the JSON `{cells, anchors}` and the CSV tables of student, anchor
 * and intrinsic results that `polyglot score --from` reads and a sweep's `scoring.resultsUri` names. Parsing
 * and validation only — no file system, so the CLI (which reads local files) and the report (which reads
 * S3) share it. Problems throw `PolyglotError(InvalidInput)` naming the file, row (and line) and column.
 */
import { z } from 'zod';
import { ErrorType, PolyglotError } from '../common/errors';
import { CORE_INTRINSIC, EXTRA_INTRINSIC, type AnchorScores, type CellInput, type IntrinsicRecord } from './types';

/** Intrinsic columns a results file may give besides the core ones: reported, never part of z (from the metric registry). */
export { EXTRA_INTRINSIC };

// ---- JSON ------------------------------------------------------------------------------------------

const FAMILY_NEEDED =
  'required when "result" or "pgr" is given: add the student family the result belongs to (e.g. olmo-3-7b), named as in the anchors';

/** JSON null (pandas' NaN) is read as "absent". */
const optNumber = z.preprocess((v) => (v === null ? undefined : v), z.number().optional());
const ProvenanceSchema = z.object({
  uri: z.string().optional(),
  workflowId: z.string().optional(),
  runId: z.string().optional(),
});
const IntrinsicSchema = z.object({
  ...Object.fromEntries(CORE_INTRINSIC.map((f) => [f, z.number()])),
  ...Object.fromEntries(EXTRA_INTRINSIC.map((f) => [f, optNumber])),
});
/** The paper's tables say `lang`; a row with `lang` and no `language` is read as that language. */
const withLanguage = (v: unknown): unknown => {
  if (v && typeof v === 'object' && !Array.isArray(v) && 'lang' in v && !('language' in v)) {
    const { lang, ...rest } = v as Record<string, unknown>;
    return { ...rest, language: lang };
  }
  return v;
};
const CellObject = z.object({
  teacher: z.string().min(1),
  language: z.string().min(1),
  family: z.preprocess((v) => (v === null ? undefined : v), z.string().min(1).optional()),
  result: optNumber,
  pgr: optNumber,
  z_score: optNumber,
  intrinsic: z.preprocess((v) => (v === null ? undefined : v), IntrinsicSchema.optional()),
  provenance: z.object({ intrinsic: ProvenanceSchema.optional(), result: ProvenanceSchema.optional() }).optional(),
});
const CellSchema = z.preprocess(
  withLanguage,
  CellObject.refine((c) => c.family !== undefined || (c.result === undefined && c.pgr === undefined), {
    message: FAMILY_NEEDED,
    path: ['family'],
  }),
);
const AnchorObject = z.object({
  family: z.string().min(1),
  language: z.string().min(1),
  base: z.number(),
  reference: z.number(),
  provenance: ProvenanceSchema.optional(),
});
const AnchorSchema = z.preprocess(withLanguage, AnchorObject);
const ResultsFileSchema = z.object({ cells: z.array(CellSchema).min(1), anchors: z.array(AnchorSchema).default([]) });

/** Parse and validate a JSON results file; errors name the row (array index + 1) and field. */
export function parseResultsJson(text: string, file: string): { cells: CellInput[]; anchors: AnchorScores[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `${file}: not valid JSON: ${(e as Error).message}`);
  }
  const r = ResultsFileSchema.safeParse(doc);
  if (!r.success) {
    const problems = r.error.issues.map((issue) => {
      const [list, index, ...field] = issue.path;
      if (typeof index === 'number') {
        return `${String(list)} row ${index + 1}, column "${field.join('.') || '(row)'}": ${issue.message}`;
      }
      return `${issue.path.join('.') || '(root)'}: ${issue.message}`;
    });
    throw invalid(file, problems);
  }
  return r.data as { cells: CellInput[]; anchors: AnchorScores[] };
}

// ---- CSV -------------------------------------------------------------------------------------------

export interface CsvRecord {
  /** 1-based line where the record starts (quoted fields may span lines). */
  line: number;
  fields: string[];
}

/** RFC 4180 CSV: comma separated, `"` quotes with `""` escapes, LF or CRLF line ends, blank lines skipped. */
export function parseCsv(text: string): CsvRecord[] {
  const out: CsvRecord[] = [];
  let fields: string[] = [];
  let field = '';
  let quoted = false;
  let line = 1;
  let start = 1;
  const src = text.replace(/^\uFEFF/, '');
  const endRecord = (): void => {
    fields.push(field);
    if (!(fields.length === 1 && fields[0] === '')) out.push({ line: start, fields });
    fields = [];
    field = '';
  };
  for (let i = 0; i < src.length; i++) {
    const ch = src[i]!;
    if (quoted) {
      if (ch !== '"') {
        if (ch === '\n') line++;
        field += ch;
      } else if (src[i + 1] === '"') {
        field += '"'; // "" inside quotes is a literal quote
        i++;
      } else quoted = false;
    } else if (ch === '"' && field === '') {
      quoted = true;
    } else if (ch === ',') {
      fields.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && src[i + 1] === '\n') i++;
      endRecord();
      line++;
      start = line;
    } else field += ch;
  }
  if (quoted) throw new Error(`unterminated quoted field starting on line ${start}`);
  if (field !== '' || fields.length > 0) endRecord();
  return out;
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;
/** An optional numeric CSV field: empty is absent, anything else must be a decimal number. */
const csvNumber = z
  .string()
  .trim()
  .transform((s, ctx) => {
    if (s === '') return undefined;
    if (!NUMBER_RE.test(s)) {
      ctx.addIssue({ code: 'custom', message: `expected a number, got "${s}"` });
      return z.NEVER;
    }
    return Number(s);
  });
const csvText = z
  .string()
  .trim()
  .transform((s) => (s === '' ? undefined : s));
const csvRequired = z.string().trim().min(1, 'required, got an empty field');

const RESULT_COLUMNS = [
  'teacher',
  'language',
  'family',
  'result',
  'pgr',
  'z_score',
  ...CORE_INTRINSIC,
  ...EXTRA_INTRINSIC,
];
/** Other names a table may give a column (the paper's tables say `lang`). */
const COLUMN_ALIASES: Readonly<Record<string, string>> = { lang: 'language' };
const ResultRowSchema = z.object({
  teacher: csvRequired,
  language: csvRequired,
  family: csvText.optional(),
  result: csvNumber.optional(),
  pgr: csvNumber.optional(),
  z_score: csvNumber.optional(),
  ...Object.fromEntries([...CORE_INTRINSIC, ...EXTRA_INTRINSIC].map((f) => [f, csvNumber.optional()])),
});
const AnchorRowSchema = z.object({
  family: csvRequired,
  language: csvRequired,
  base: csvNumber.pipe(z.number({ error: 'required, got an empty field' })),
  reference: csvNumber.pipe(z.number({ error: 'required, got an empty field' })),
});

/** Rows of a CSV as header-keyed objects, checked for required columns and field counts. */
function csvObjects(
  text: string,
  file: string,
  required: readonly string[],
  known: readonly string[],
  warnings: string[],
): { names: string[]; rows: { line: number; row: Record<string, string> }[] } {
  let records: CsvRecord[];
  try {
    records = parseCsv(text);
  } catch (e) {
    throw invalid(file, [(e as Error).message]);
  }
  const [header, ...body] = records;
  if (!header) throw invalid(file, ['the file is empty; it needs a header row']);
  const given = header.fields.map((h) => h.trim());
  for (const [alias, name] of Object.entries(COLUMN_ALIASES)) {
    if (given.includes(alias) && given.includes(name)) {
      throw invalid(file, [`header: columns "${alias}" and "${name}" are the same column; keep one`]);
    }
  }
  const names = given.map((n) => COLUMN_ALIASES[n] ?? n);
  const missing = required.filter((c) => !names.includes(c));
  if (missing.length) throw invalid(file, [`header: missing column(s) ${missing.map((c) => `"${c}"`).join(', ')}`]);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw invalid(file, [`header: column "${dup}" appears twice`]);
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length) warnings.push(`${file}: ignored column(s) ${unknown.join(', ')}`);
  const problems: string[] = [];
  const rows = body.map((rec, i) => {
    if (rec.fields.length !== names.length) {
      problems.push(`row ${i + 1} (line ${rec.line}): ${rec.fields.length} fields, header has ${names.length}`);
    }
    return { line: rec.line, row: Object.fromEntries(names.map((n, j) => [n, rec.fields[j] ?? ''])) };
  });
  if (problems.length) throw invalid(file, problems);
  return { names, rows };
}

function rowProblems(error: z.ZodError, i: number, line: number): string[] {
  return error.issues.map((issue) => `row ${i + 1} (line ${line}), column "${issue.path.join('.')}": ${issue.message}`);
}

/** Parse and validate a results CSV (see `scoreFromFile`); `warnings` receives ignored columns. */
export function parseResultsCsv(text: string, file: string, warnings: string[] = []): CellInput[] {
  const { names, rows } = csvObjects(text, file, ['teacher', 'language'], RESULT_COLUMNS, warnings);
  const results = names.filter((n) => n === 'result' || n === 'pgr');
  if (results.length > 0 && !names.includes('family')) {
    // Without it every result would be read as a family-less data cell and silently left out of PGR.
    throw invalid(file, [
      `header: no "family" column, but the table has ${results.map((n) => `"${n}"`).join(' and ')}: add a ` +
        '"family" column naming, on each row, the student family the result belongs to (e.g. olmo-3-7b), ' +
        'as the anchors file names it',
    ]);
  }
  const problems: string[] = [];
  const cells: CellInput[] = [];
  rows.forEach(({ line, row }, i) => {
    const r = ResultRowSchema.safeParse(row);
    if (!r.success) return void problems.push(...rowProblems(r.error, i, line));
    const d = r.data as Record<string, string | number | undefined>;
    const cell: CellInput = { teacher: d.teacher as string, language: d.language as string };
    if (d.family !== undefined) cell.family = d.family as string;
    if (d.result !== undefined) cell.result = d.result as number;
    if (d.pgr !== undefined) cell.pgr = d.pgr as number;
    if (cell.family === undefined && (cell.result !== undefined || cell.pgr !== undefined)) {
      return void problems.push(`row ${i + 1} (line ${line}), column "family": ${FAMILY_NEEDED}`);
    }
    if (d.z_score !== undefined) cell.z_score = d.z_score as number;
    const given = CORE_INTRINSIC.filter((f) => d[f] !== undefined);
    if (given.length > 0 && given.length < CORE_INTRINSIC.length) {
      const absent = CORE_INTRINSIC.filter((f) => d[f] === undefined);
      return void problems.push(
        `row ${i + 1} (line ${line}), column "${absent[0]}": missing; give all intrinsic columns on a row or none`,
      );
    }
    if (given.length > 0) {
      const rec: Record<string, number> = {};
      for (const f of [...CORE_INTRINSIC, ...EXTRA_INTRINSIC]) if (d[f] !== undefined) rec[f] = d[f] as number;
      cell.intrinsic = rec as unknown as IntrinsicRecord;
    }
    cells.push(cell);
  });
  if (rows.length === 0) problems.push('no data rows');
  if (problems.length) throw invalid(file, problems);
  return cells;
}

/** Parse and validate an anchors CSV with columns `family,language,base,reference`. */
export function parseAnchorsCsv(text: string, file: string): AnchorScores[] {
  const cols = ['family', 'language', 'base', 'reference'];
  const { rows } = csvObjects(text, file, cols, cols, []);
  const problems: string[] = [];
  const anchors: AnchorScores[] = [];
  rows.forEach(({ line, row }, i) => {
    const r = AnchorRowSchema.safeParse(row);
    if (!r.success) problems.push(...rowProblems(r.error, i, line));
    else anchors.push(r.data);
  });
  if (problems.length) throw invalid(file, problems);
  return anchors;
}

function invalid(file: string, problems: string[]): PolyglotError {
  const shown = problems.slice(0, 20);
  const more = problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more` : '';
  return new PolyglotError(ErrorType.InvalidInput, `invalid ${file}:\n  ${shown.join('\n  ')}${more}`);
}

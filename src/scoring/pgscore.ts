/**
 * PG-Score (docs/method.md, "PG-Score"): intrinsic z over the cohort's data cells, extrinsic PGR against each
 * family's base and reference anchors, and their α-weighted combination, with the spec's invariants
 * checked on every run. Pure: no I/O, no Node built-ins, so workflows can import it.
 */
import { analyze } from './analyses';
import { CORE_INTRINSIC } from './types';
import { mean, popStd, standardizeColumns } from './stats';
import type {
  AnchorScores,
  CellFlag,
  CellInput,
  CohortScores,
  IntrinsicRecord,
  ScoredCell,
  ScoringOptions,
  TeacherScore,
} from './types';

export const DEFAULT_SCORING_OPTIONS: ScoringOptions = { alpha: 0.5, smallGapThreshold: 0.02 };

/** Names of the four z features, in the order of `ScoredCell.z_features`. */
export const Z_FEATURES = [
  'prompts_distinct_ri',
  'responses_distinct_ri',
  'average_rubric_score',
  'neg_log1p_average_perplexity',
] as const;

/** Invariants hold to this absolute tolerance (the reference files agree to ~1e-15). */
const INVARIANT_TOL = 1e-9;

/** Fixed order of flags within a cell, so output is deterministic. */
const FLAG_ORDER: readonly CellFlag[] = [
  'missing-intrinsic',
  'missing-anchor',
  'sign-inversion',
  'small-anchor-gap',
  'missing-result',
];

/**
 * x_c = [prompt distinct-RI, response distinct-RI, rubric, −ln(1 + perplexity)]. The log turns
 * perplexity into a "higher is better" fluency term; log1p is exact where 1 + p would round.
 */
export function zFeatureVector(r: IntrinsicRecord): [number, number, number, number] {
  if (!(r.average_perplexity > -1)) throw new Error(`average_perplexity must be > −1 (got ${r.average_perplexity})`);
  return [r.prompts_distinct_ri, r.responses_distinct_ri, r.average_rubric_score, -Math.log1p(r.average_perplexity)];
}

/** PGR = (S − B)/(R − B), unclipped (faithful: a sign-inverted gap inverts the ranking). */
export function performanceGainRecovered(result: number, base: number, reference: number): number {
  return (result - base) / (reference - base);
}

/** PG(α) = α·z + (1 − α)·PGR. */
export function pgAlpha(z: number, pgr: number, alpha: number): number {
  return alpha * z + (1 - alpha) * pgr;
}

const key = (...parts: (string | undefined)[]): string => parts.map((p) => p ?? '').join('\u0000');

interface DataCell {
  teacher: string;
  language: string;
  intrinsic?: IntrinsicRecord;
  givenZ?: number;
  hasFamilyRows: boolean;
}

function checkFinite(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new Error(`${what} must be a finite number (got ${String(value)})`);
  }
}

/** Group input rows into data cells (teacher × language); rows of one data cell must agree on z inputs. */
function collectDataCells(cells: readonly CellInput[]): Map<string, DataCell> {
  const dataCells = new Map<string, DataCell>();
  const seenRows = new Set<string>();
  cells.forEach((c, i) => {
    const where = `cell ${i} (${c.teacher}/${c.language}${c.family ? `/${c.family}` : ''})`;
    if (!c.teacher || !c.language) throw new Error(`cell ${i}: teacher and language are required`);
    const rowKey = key(c.teacher, c.language, c.family);
    if (c.family !== undefined && seenRows.has(rowKey)) throw new Error(`${where}: duplicate row for this family`);
    seenRows.add(rowKey);
    if (c.result !== undefined) checkFinite(c.result, `${where} result`);
    if (c.z_score !== undefined) checkFinite(c.z_score, `${where} z_score`);
    if (c.intrinsic) for (const f of CORE_INTRINSIC) checkFinite(c.intrinsic[f], `${where} intrinsic.${f}`);
    const dk = key(c.teacher, c.language);
    const dc = dataCells.get(dk) ?? { teacher: c.teacher, language: c.language, hasFamilyRows: false };
    if (c.family !== undefined) dc.hasFamilyRows = true;
    if (c.intrinsic) {
      if (dc.intrinsic && CORE_INTRINSIC.some((f) => dc.intrinsic![f] !== c.intrinsic![f])) {
        throw new Error(`${where}: intrinsic metrics differ from another row of the same data cell`);
      }
      dc.intrinsic ??= c.intrinsic;
    }
    if (c.z_score !== undefined) {
      if (dc.givenZ !== undefined && Math.abs(dc.givenZ - c.z_score) > 1e-12) {
        throw new Error(`${where}: z_score differs from another row of the same data cell`);
      }
      dc.givenZ ??= c.z_score;
    }
    dataCells.set(dk, dc);
  });
  return dataCells;
}

interface ZResult {
  z: Map<string, number>;
  features: Map<string, [number, number, number, number]>;
  computed: boolean;
}

/**
 * z per data cell. Either every data cell that has inputs gives intrinsic metrics (z is computed over
 * all of them together) or they give z directly (paper-table mode, used as is). A mix is refused:
 * a given z is relative to some other cohort and cannot be combined with freshly standardized ones.
 */
function intrinsicZ(dataCells: Map<string, DataCell>, warnings: string[]): ZResult {
  const withIntrinsic = [...dataCells.entries()].filter(([, d]) => d.intrinsic);
  const zOnly = [...dataCells.values()].filter((d) => !d.intrinsic && d.givenZ !== undefined);
  if (withIntrinsic.length > 0 && zOnly.length > 0) {
    const ex = zOnly[0]!;
    throw new Error(
      `mixed z inputs: ${withIntrinsic.length} data cells give intrinsic metrics but ${zOnly.length} give only ` +
        `z_score (e.g. ${ex.teacher}/${ex.language}); give intrinsic metrics for every cell or z_score for every cell`,
    );
  }
  const z = new Map<string, number>();
  const features = new Map<string, [number, number, number, number]>();
  if (withIntrinsic.length === 0) {
    for (const [k, d] of dataCells) if (d.givenZ !== undefined) z.set(k, d.givenZ);
    return { z, features, computed: false };
  }
  const given = withIntrinsic.filter(([, d]) => d.givenZ !== undefined);
  const std = standardizeColumns(withIntrinsic.map(([, d]) => zFeatureVector(d.intrinsic!)));
  std.constant.forEach((isConstant, j) => {
    if (isConstant) warnings.push(`intrinsic feature ${Z_FEATURES[j]} is constant over the cohort: its z is 0`);
  });
  // A verdict cut off by the answer budget scores 1 (as in the study) and pulls the cell's rubric mean down:
  // said per cell, with the fix, so a low rubric score is not read as low data quality.
  for (const [, d] of withIntrinsic) {
    const cut = d.intrinsic!.rubric_truncated;
    if (cut)
      warnings.push(
        `${d.teacher}/${d.language}: ${cut} judge answer(s) were cut by the length limit before a verdict and scored 1; raise metrics.judge.maxTokens`,
      );
  }
  withIntrinsic.forEach(([k], i) => {
    const row = std.scaled[i]! as [number, number, number, number];
    features.set(k, row);
    z.set(k, mean(row));
  });
  // Invariants (spec §6): each standardized feature has population std 1, and mean z is 0.
  std.constant.forEach((isConstant, j) => {
    if (isConstant) return;
    const sd = popStd(std.scaled.map((r) => r[j]!));
    if (Math.abs(sd - 1) > INVARIANT_TOL)
      throw new Error(`invariant violated: std of z feature ${Z_FEATURES[j]} is ${sd}`);
  });
  const zMean = mean([...z.values()]);
  if (Math.abs(zMean) > INVARIANT_TOL) throw new Error(`invariant violated: cohort mean of z is ${zMean}`);
  const differing = given.filter(([k, d]) => Math.abs(d.givenZ! - z.get(k)!) > 1e-6).length;
  if (differing > 0) {
    warnings.push(`ignored the given z_score of ${differing} data cells: z is recomputed from intrinsic metrics`);
  }
  return { z, features, computed: true };
}

function resolveOptions(options: Partial<ScoringOptions> | undefined): ScoringOptions {
  const o: ScoringOptions = { ...DEFAULT_SCORING_OPTIONS };
  // Only known keys, and `undefined` means "default" (the CLI passes unset flags through).
  if (options?.alpha !== undefined) o.alpha = options.alpha;
  if (options?.smallGapThreshold !== undefined) o.smallGapThreshold = options.smallGapThreshold;
  if (options?.primaryFamily !== undefined) o.primaryFamily = options.primaryFamily;
  if (!Number.isFinite(o.alpha) || o.alpha < 0 || o.alpha > 1)
    throw new Error(`alpha must be in [0, 1] (got ${o.alpha})`);
  if (!Number.isFinite(o.smallGapThreshold) || o.smallGapThreshold < 0) {
    throw new Error(`smallGapThreshold must be a non-negative number (got ${o.smallGapThreshold})`);
  }
  return o;
}

function indexAnchors(anchors: readonly AnchorScores[]): Map<string, AnchorScores> {
  const byKey = new Map<string, AnchorScores>();
  anchors.forEach((a, i) => {
    const k = key(a.family, a.language);
    if (byKey.has(k)) throw new Error(`anchor ${i}: duplicate anchor for ${a.family}/${a.language}`);
    checkFinite(a.base, `anchor ${a.family}/${a.language} base`);
    checkFinite(a.reference, `anchor ${a.family}/${a.language} reference`);
    byKey.set(k, a);
  });
  return byKey;
}

/**
 * Score a cohort. Output cells follow input order: one per (teacher, language, family) row, plus one
 * family-less row for a data cell that no family was trained on (so its z is still reported).
 * A cell with R − B = 0 exactly gets no PGR (it would be ±∞). Teachers get competition ranks (equal
 * scores share the better rank) per family, over the languages where PG is defined.
 */
export function scoreCohort(
  cells: CellInput[],
  anchors: AnchorScores[],
  options?: Partial<ScoringOptions>,
): CohortScores {
  const opts = resolveOptions(options);
  const warnings: string[] = [];
  const dataCells = collectDataCells(cells);
  const { z, features } = intrinsicZ(dataCells, warnings);
  const anchorIndex = indexAnchors(anchors);
  if (opts.primaryFamily !== undefined && !cells.some((c) => c.family === opts.primaryFamily)) {
    throw new Error(`primaryFamily ${opts.primaryFamily} has no cells in this cohort`);
  }

  const scored: ScoredCell[] = [];
  const flagged = new Map<string, { flags: Set<CellFlag>; teachers: string[]; gap?: number }>();
  const note = (k: string, flag: CellFlag, teacher: string, gap?: number): void => {
    const entry = flagged.get(k) ?? { flags: new Set<CellFlag>(), teachers: [], gap };
    entry.flags.add(flag);
    if (!entry.teachers.includes(teacher)) entry.teachers.push(teacher);
    flagged.set(k, entry);
  };
  const givenPgr: string[] = [];
  const differingPgr: string[] = [];
  for (const c of cells) {
    const dk = key(c.teacher, c.language);
    if (c.family === undefined && dataCells.get(dk)!.hasFamilyRows) continue;
    const flags = new Set<CellFlag>();
    const zc = z.get(dk);
    if (zc === undefined) flags.add('missing-intrinsic');
    const out: ScoredCell = { teacher: c.teacher, language: c.language, z_score: zc ?? NaN, flags: [] };
    const fv = features.get(dk);
    if (fv) out.z_features = [...fv];
    if (c.family !== undefined) {
      out.family = c.family;
      if (c.result !== undefined) out.result = c.result;
      else if (c.pgr === undefined) flags.add('missing-result');
      const anchor = anchorIndex.get(key(c.family, c.language));
      if (!anchor) {
        if (c.pgr === undefined) flags.add('missing-anchor');
      } else {
        const gap = anchor.reference - anchor.base;
        if (gap <= 0) flags.add('sign-inversion');
        if (Math.abs(gap) < opts.smallGapThreshold) flags.add('small-anchor-gap');
        if (c.result !== undefined && gap !== 0)
          out.pgr = performanceGainRecovered(c.result, anchor.base, anchor.reference);
      }
      if (c.pgr !== undefined) {
        checkFinite(c.pgr, `cell ${c.teacher}/${c.language}/${c.family} pgr`);
        if (out.pgr === undefined) {
          out.pgr = c.pgr;
          givenPgr.push(`${c.teacher}/${c.language}/${c.family}`);
        } else if (Math.abs(out.pgr - c.pgr) > 1e-6 * Math.max(1, Math.abs(c.pgr))) {
          differingPgr.push(`${c.teacher}/${c.language}/${c.family}`);
        }
      }
      if (out.pgr !== undefined && zc !== undefined) out.pg_score = pgAlpha(zc, out.pgr, opts.alpha);
      const gap = anchor ? anchor.reference - anchor.base : undefined;
      for (const f of flags)
        note(f === 'missing-intrinsic' ? key('', c.language) : key(c.family, c.language), f, c.teacher, gap);
    } else if (zc === undefined) {
      note(key('', c.language), 'missing-intrinsic', c.teacher);
    }
    out.flags = FLAG_ORDER.filter((f) => flags.has(f));
    if (c.provenance) out.provenance = c.provenance;
    checkCellInvariant(out, opts.alpha);
    scored.push(out);
  }
  for (const [k, entry] of flagged) warnings.push(flagWarning(k, entry));
  if (givenPgr.length) {
    warnings.push(`used the given pgr of ${givenPgr.length} cells without S or anchors: ${listSome(givenPgr)}`);
  }
  if (differingPgr.length) {
    warnings.push(
      `the given pgr of ${differingPgr.length} cells differs from (S − B)/(R − B); used the computed value: ${listSome(differingPgr)}`,
    );
  }

  const teachers = rankTeachers(scored, warnings);
  const partial: CohortScores = { options: opts, cells: scored, teachers, analyses: { families: [] }, warnings };
  partial.analyses = analyze(partial, cells);
  return partial;
}

function listSome(items: string[]): string {
  return items.slice(0, 10).join(', ') + (items.length > 10 ? `, … and ${items.length - 10} more` : '');
}

function checkCellInvariant(c: ScoredCell, alpha: number): void {
  if (c.pg_score === undefined || c.pgr === undefined) return;
  const expected = alpha === 0.5 ? (c.pgr + c.z_score) / 2 : alpha * c.z_score + (1 - alpha) * c.pgr;
  if (!(Math.abs(c.pg_score - expected) <= INVARIANT_TOL * Math.max(1, Math.abs(expected)))) {
    throw new Error(
      `invariant violated: pg_score ${c.pg_score} ≠ α·z + (1−α)·pgr = ${expected} for ${c.teacher}/${c.language}`,
    );
  }
}

function flagWarning(k: string, entry: { flags: Set<CellFlag>; teachers: string[]; gap?: number }): string {
  const [family, language] = k.split('\u0000');
  const where = family ? `${family}/${language}` : `${language}`;
  const parts: string[] = [];
  const gap = entry.gap === undefined ? '' : ` (R − B = ${entry.gap.toPrecision(4)})`;
  if (entry.flags.has('sign-inversion'))
    parts.push(`sign inversion${gap}: reference ≤ base, so PGR rewards weaker students`);
  if (entry.flags.has('small-anchor-gap'))
    parts.push(`small anchor gap${entry.flags.has('sign-inversion') ? '' : gap}: PGR is unstable`);
  if (entry.flags.has('missing-anchor')) parts.push('no base/reference anchor: PGR undefined');
  if (entry.flags.has('missing-result')) parts.push('missing student result for some teachers: PG undefined');
  if (entry.flags.has('missing-intrinsic')) parts.push('no intrinsic metrics or z_score: z undefined');
  return `${where}: ${parts.join('; ')} [${entry.teachers.length} cells: ${entry.teachers.join(', ')}]`;
}

function rankTeachers(cells: readonly ScoredCell[], warnings: string[]): TeacherScore[] {
  const families: string[] = [];
  for (const c of cells) if (c.family !== undefined && !families.includes(c.family)) families.push(c.family);
  const out: TeacherScore[] = [];
  for (const family of families) {
    const fam = cells.filter((c) => c.family === family);
    const teacherNames = [...new Set(fam.map((c) => c.teacher))];
    const allLanguages = new Set(fam.map((c) => c.language));
    const scores: TeacherScore[] = [];
    for (const teacher of teacherNames) {
      const pgs = fam.filter((c) => c.teacher === teacher && c.pg_score !== undefined).map((c) => c.pg_score!);
      if (pgs.length === 0) {
        warnings.push(`${family}: teacher ${teacher} has no PG-Score on any language and is left out of the ranking`);
        continue;
      }
      if (pgs.length < allLanguages.size) {
        warnings.push(`${family}: teacher ${teacher} is averaged over ${pgs.length} of ${allLanguages.size} languages`);
      }
      scores.push({ teacher, family, pg_score: mean(pgs), rank: 0, languages: pgs.length });
    }
    scores.sort((a, b) => b.pg_score - a.pg_score || (a.teacher < b.teacher ? -1 : a.teacher > b.teacher ? 1 : 0));
    scores.forEach((s, i) => {
      const prev = scores[i - 1];
      s.rank = prev && prev.pg_score === s.pg_score ? prev.rank : i + 1;
    });
    out.push(...scores);
  }
  return out;
}

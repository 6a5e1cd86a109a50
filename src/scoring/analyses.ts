/**
 * Analyses behind the paper's claims (docs/method.md, "Analyses"): PCA of the six intrinsic features with a
 * regression of the student result on the component scores, PG weight robustness, and agreement
 * between student families. Numbers match scikit-learn/scipy (see test/unit/scoring.test.ts). Pure
 * math, no I/O, no Node built-ins.
 */
import { leastSquares, matMul, symmetricEigen, transpose } from './linalg';
import { mean, spearman, standardizeColumns } from './stats';
import type {
  Analyses,
  CellInput,
  CohortScores,
  FamilyCorrelation,
  IntrinsicRecord,
  PcaResult,
  RegressionResult,
  RobustnessResult,
  ScoredCell,
} from './types';

/** The PCA's six features, in the reference's column order (perplexity raw, not log). */
export const PCA_FEATURES = [
  'prompts_distinct_ri',
  'responses_distinct_ri',
  'average_perplexity',
  'average_rubric_score',
  'prompts_average_length',
  'responses_average_length',
] as const;

/** The α grid of the reference's robustness analysis. */
export const ROBUSTNESS_ALPHAS = [0, 0.25, 0.5, 0.75, 1] as const;

/** A PCA fit with what the regression needs; `analyze` keeps only the `PcaResult` part. */
export interface PcaFit extends PcaResult {
  /** rows × components: standardized rows projected on the components (sklearn `transform`). */
  scores: number[][];
  /** Per-feature mean and population std of the StandardScaler step. */
  mean: number[];
  scale: number[];
}

/**
 * StandardScaler then PCA(n_components=6), via the eigen-decomposition of the covariance of the
 * standardized rows (same subspace and variances as sklearn's SVD). Component signs follow
 * `symmetricEigen` (largest-magnitude loading positive, which sklearn ≥ 1.5 also uses), so compare
 * with older sklearn up to sign. Needs at least as many rows as features.
 */
export function pca(rows: IntrinsicRecord[]): PcaFit {
  const k = PCA_FEATURES.length;
  if (rows.length < k) throw new Error(`pca: needs at least ${k} rows (got ${rows.length})`);
  const std = standardizeColumns(rows.map((r) => PCA_FEATURES.map((f) => r[f])));
  const x = std.scaled;
  const n = x.length;
  // Standardized columns are centered, so XᵀX/(n−1) is the covariance sklearn's SVD diagonalises.
  const cov = matMul(transpose(x), x).map((row) => row.map((v) => v / (n - 1)));
  const eig = symmetricEigen(cov);
  // Rounding can leave a zero eigenvalue slightly negative; a variance cannot be.
  const variances = eig.values.map((v) => Math.max(0, v));
  const total = variances.reduce((a, b) => a + b, 0);
  if (!(total > 0)) throw new Error('pca: every feature is constant');
  const explainedVarianceRatio = variances.map((v) => v / total);
  const cumulative: number[] = [];
  explainedVarianceRatio.reduce((acc, v) => (cumulative.push(acc + v), acc + v), 0);
  return {
    features: [...PCA_FEATURES],
    explainedVarianceRatio,
    cumulative,
    loadings: eig.vectors,
    n,
    scores: matMul(x, transpose(eig.vectors)),
    mean: std.mean,
    scale: std.scale,
  };
}

/**
 * Ordinary least squares with an intercept of `target` on every column of `scores` (sklearn
 * `LinearRegression`), scored in sample as the reference does: R² = 1 − SS_res/SS_tot and
 * RMSE = √(SS_res/n). Coefficients follow the component signs of `pca`.
 */
export function regressOnComponents(scores: number[][], target: number[], targetName = 'result'): RegressionResult {
  const n = scores.length;
  if (n === 0 || n !== target.length)
    throw new Error(`regressOnComponents: ${n} score rows but ${target.length} targets`);
  const design = scores.map((row) => [1, ...row]);
  const { coefficients } = leastSquares(design, target);
  const fitted = design.map((row) => row.reduce((s, v, j) => s + v * coefficients[j]!, 0));
  const my = mean(target);
  let ssRes = 0;
  let ssTot = 0;
  target.forEach((y, i) => {
    ssRes += (y - fitted[i]!) ** 2;
    ssTot += (y - my) ** 2;
  });
  // sklearn's r2_score returns 1 for a perfect fit of a constant target and 0 otherwise; follow it.
  const r2 = ssTot === 0 ? (ssRes === 0 ? 1 : 0) : 1 - ssRes / ssTot;
  return {
    target: targetName,
    r2,
    rmse: Math.sqrt(ssRes / n),
    intercept: coefficients[0]!,
    coefficients: coefficients.slice(1),
    n,
  };
}

/** Cells with both PGR and z, the ones PG(α) is defined on for every α. */
function rankable(cells: readonly ScoredCell[]): ScoredCell[] {
  return cells.filter((c) => c.pgr !== undefined && Number.isFinite(c.z_score));
}

/**
 * Weight robustness: PG(α) = α·z + (1 − α)·PGR for each α of the grid over the given cells, Spearman
 * ρ and p between the cell rankings of every pair of α (diagonal ρ = 1, p = 0), and ρ(z, PGR).
 * Pass one family's cells: the reference ranks the 60 cells of its OLMo students.
 */
export function robustness(cells: ScoredCell[], alphas: readonly number[] = ROBUSTNESS_ALPHAS): RobustnessResult {
  const usable = rankable(cells);
  if (usable.length < 3) throw new Error(`robustness: needs at least 3 cells with PGR and z (got ${usable.length})`);
  const pgs = alphas.map((a) => usable.map((c) => a * c.z_score + (1 - a) * c.pgr!));
  const spearmanM = alphas.map(() => alphas.map(() => NaN));
  const pValues = alphas.map(() => alphas.map(() => NaN));
  for (let i = 0; i < alphas.length; i++) {
    spearmanM[i]![i] = 1;
    pValues[i]![i] = 0;
    for (let j = i + 1; j < alphas.length; j++) {
      const r = spearman(pgs[i]!, pgs[j]!);
      spearmanM[i]![j] = spearmanM[j]![i] = r.rho;
      pValues[i]![j] = pValues[j]![i] = r.p;
    }
  }
  const zp = spearman(
    usable.map((c) => c.z_score),
    usable.map((c) => c.pgr!),
  );
  return { alphas: [...alphas], spearman: spearmanM, pValues, zVsPgr: { rho: zp.rho, p: zp.p }, n: usable.length };
}

/**
 * Spearman ρ between every pair of student families over the teachers both were trained on. Each
 * teacher's score is its mean PG over the languages where it has a PG under both families, so both
 * sides average the same languages (the reference compares families on ar, de and id). Pairs with
 * fewer than 3 shared teachers are left out (no p-value exists).
 */
export function familyCorrelations(cells: ScoredCell[]): FamilyCorrelation[] {
  const pg = new Map<string, Map<string, Map<string, number>>>(); // family → teacher → language → PG
  for (const c of cells) {
    if (c.family === undefined || c.pg_score === undefined) continue;
    const byTeacher = pg.get(c.family) ?? new Map<string, Map<string, number>>();
    const byLang = byTeacher.get(c.teacher) ?? new Map<string, number>();
    byLang.set(c.language, c.pg_score);
    byTeacher.set(c.teacher, byLang);
    pg.set(c.family, byTeacher);
  }
  const families = [...pg.keys()];
  const out: FamilyCorrelation[] = [];
  for (let i = 0; i < families.length; i++) {
    for (let j = i + 1; j < families.length; j++) {
      const a = pg.get(families[i]!)!;
      const b = pg.get(families[j]!)!;
      const xs: number[] = [];
      const ys: number[] = [];
      for (const [teacher, langsA] of a) {
        const langsB = b.get(teacher);
        if (!langsB) continue;
        const shared = [...langsA.keys()].filter((l) => langsB.has(l));
        if (shared.length === 0) continue;
        xs.push(mean(shared.map((l) => langsA.get(l)!)));
        ys.push(mean(shared.map((l) => langsB.get(l)!)));
      }
      if (xs.length < 3) continue;
      const r = spearman(xs, ys);
      out.push({ a: families[i]!, b: families[j]!, rho: r.rho, p: r.p, teachers: xs.length });
    }
  }
  return out;
}

/** The family the analyses follow: the option if set, else the one with the most scored cells. */
export function primaryFamily(cohort: CohortScores): string | undefined {
  if (cohort.options.primaryFamily !== undefined) return cohort.options.primaryFamily;
  const counts = new Map<string, number>();
  for (const c of cohort.cells) {
    if (c.family !== undefined) counts.set(c.family, (counts.get(c.family) ?? 0) + (c.pg_score !== undefined ? 1 : 0));
  }
  let best: string | undefined;
  for (const [family, count] of counts) if (best === undefined || count > counts.get(best)!) best = family;
  return best;
}

/**
 * All analyses the data allows. PCA rows are the data cells with intrinsic metrics, inner-joined with
 * the primary family's results when there is one (as the reference joins its OLMo table); the
 * regression needs more rows than its 7 parameters, robustness at least 3 rankable cells.
 */
export function analyze(cohort: CohortScores, inputs: CellInput[]): Analyses {
  const family = primaryFamily(cohort);
  const analyses: Analyses = { families: familyCorrelations(cohort.cells) };

  const intrinsic = new Map<string, IntrinsicRecord>();
  for (const c of inputs) {
    const k = `${c.teacher}\u0000${c.language}`;
    if (c.intrinsic && !intrinsic.has(k)) intrinsic.set(k, c.intrinsic);
  }
  const rows: IntrinsicRecord[] = [];
  const target: number[] = [];
  if (family === undefined) {
    rows.push(...intrinsic.values());
  } else {
    for (const c of cohort.cells) {
      const rec = intrinsic.get(`${c.teacher}\u0000${c.language}`);
      if (c.family !== family || c.result === undefined || !rec) continue;
      rows.push(rec);
      target.push(c.result);
    }
  }
  if (rows.length >= PCA_FEATURES.length) {
    const fit = pca(rows);
    analyses.pca = {
      features: fit.features,
      explainedVarianceRatio: fit.explainedVarianceRatio,
      cumulative: fit.cumulative,
      loadings: fit.loadings,
      n: fit.n,
    };
    if (family !== undefined && rows.length > PCA_FEATURES.length + 1) {
      analyses.regression = { ...regressOnComponents(fit.scores, target), family };
    }
  }
  const familyCells = cohort.cells.filter((c) => c.family === family);
  if (family !== undefined && rankable(familyCells).length >= 3) {
    analyses.robustness = { ...robustness(familyCells), family };
  }
  return analyses;
}

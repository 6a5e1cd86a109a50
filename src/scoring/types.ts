/**
 * Data shapes of scoring (docs/method.md, "PG-Score" and "Analyses"). Pure types: workflows, activities, CLI and report
 * all speak these. Field names follow the reference implementation's tables.
 */
import type { CoreIntrinsicField, ExtraIntrinsicField } from '../metrics/registry';

/**
 * Intrinsic data-quality measures of one data cell (teacher × language), paper §5 "Intrinsic record": the six core
 * measures, then optional extras beyond the paper. Both lists come from the metric registry (each field is
 * documented in its metric's src/metrics/defs/<name>.ts).
 */
export type IntrinsicRecord = { [K in CoreIntrinsicField]: number } & { [K in ExtraIntrinsicField]?: number };

/** The six intrinsic measures every cohort cell must have (paper §5), in the reference's table order. */
export { CORE_INTRINSIC, EXTRA_INTRINSIC } from '../metrics/registry';

/** Where a number came from, so the report can link every value to its artifact and workflow run. */
export interface Provenance {
  /** s3:// URI of the artifact (metrics JSON, eval result, dataset manifest). */
  uri?: string;
  workflowId?: string;
  runId?: string;
}

/** One row of a cohort: a data cell, optionally with a student family's result on it. */
export interface CellInput {
  teacher: string;
  language: string;
  /** Student family (e.g. `olmo-3-7b`); cells without student results use `family: undefined`. */
  family?: string;
  /** S_c: mean primary metric over the language's tasks, for the family's student trained on this cell. */
  result?: number;
  /** Either intrinsic values (z is computed over the cohort) … */
  intrinsic?: IntrinsicRecord;
  /** … or a precomputed intrinsic z (as in the paper's published table). */
  z_score?: number;
  /**
   * A published PGR, used when S or the family's anchors are not given (the paper's table gives no S for
   * some cells, e.g. ja). When S and anchors are both given, PGR is computed and this is only compared.
   */
  pgr?: number;
  provenance?: { intrinsic?: Provenance; result?: Provenance };
}

/** B_ℓ and R_ℓ for a family and language: same task mean for the base and reference anchors. */
export interface AnchorScores {
  family: string;
  language: string;
  base: number;
  reference: number;
  provenance?: Provenance;
}

export interface ScoringOptions {
  /** Weight of z in PG(α) = α·z + (1 − α)·PGR. Paper default 0.5. */
  alpha: number;
  /** Flag a language when |R − B| is below this (absolute, in metric units). Default 0.02. */
  smallGapThreshold: number;
  /**
   * Student family whose results feed the analyses (PCA target, regression, α robustness), as the
   * reference uses its OLMo table. Default: the family with the most scored cells.
   */
  primaryFamily?: string;
}

export type CellFlag =
  'sign-inversion' | 'small-anchor-gap' | 'missing-anchor' | 'missing-result' | 'missing-intrinsic';

export interface ScoredCell {
  teacher: string;
  language: string;
  family?: string;
  result?: number;
  pgr?: number;
  /** NaN when the data cell has neither intrinsic metrics nor a given z (flag `missing-intrinsic`). */
  z_score: number;
  pg_score?: number;
  /** The four standardized features behind z: [prompt dRI, response dRI, rubric, −ln(1+ppl)]. */
  z_features?: [number, number, number, number];
  flags: CellFlag[];
  provenance?: CellInput['provenance'];
}

export interface TeacherScore {
  teacher: string;
  family?: string;
  /** Unweighted mean of PG over the teacher's languages. */
  pg_score: number;
  rank: number;
  languages: number;
}

export interface PcaResult {
  features: string[];
  explainedVarianceRatio: number[];
  cumulative: number[];
  /** components × features */
  loadings: number[][];
  /** Rows (data cells) the PCA used. */
  n?: number;
}

export interface RegressionResult {
  target: string;
  /** Student family whose `result` is the target. */
  family?: string;
  r2: number;
  rmse: number;
  intercept: number;
  coefficients: number[];
  n: number;
}

export interface RobustnessResult {
  alphas: number[];
  /** Spearman ρ between the cell rankings under each pair of α values. */
  spearman: number[][];
  pValues: number[][];
  zVsPgr: { rho: number; p: number };
  /** Student family whose cells were ranked, and how many cells. */
  family?: string;
  n?: number;
}

export interface FamilyCorrelation {
  a: string;
  b: string;
  rho: number;
  p: number;
  teachers: number;
}

export interface Analyses {
  pca?: PcaResult;
  regression?: RegressionResult;
  robustness?: RobustnessResult;
  families: FamilyCorrelation[];
}

export interface CohortScores {
  options: ScoringOptions;
  cells: ScoredCell[];
  teachers: TeacherScore[];
  analyses: Analyses;
  /** Human-readable warnings (flags summarised, fallbacks taken). */
  warnings: string[];
}

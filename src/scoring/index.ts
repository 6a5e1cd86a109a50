/**
 * Public surface of scoring (docs/method.md, "PG-Score" and "Analyses"): pure math that workflows, CLI
 * and report share.
 */
export type {
  AnchorScores,
  Analyses,
  CellFlag,
  CellInput,
  CohortScores,
  FamilyCorrelation,
  IntrinsicRecord,
  PcaResult,
  Provenance,
  RegressionResult,
  RobustnessResult,
  ScoredCell,
  ScoringOptions,
  TeacherScore,
} from './types';
export {
  DEFAULT_SCORING_OPTIONS,
  Z_FEATURES,
  performanceGainRecovered,
  pgAlpha,
  scoreCohort,
  zFeatureVector,
} from './pgscore';
export {
  PCA_FEATURES,
  ROBUSTNESS_ALPHAS,
  analyze,
  familyCorrelations,
  pca,
  primaryFamily,
  regressOnComponents,
  robustness,
  type PcaFit,
} from './analyses';
export {
  logGamma,
  mean,
  pearson,
  popStd,
  ranks,
  regularizedIncompleteBeta,
  spearman,
  standardizeColumns,
  type Correlation,
  type Standardized,
} from './stats';
export { leastSquares, matMul, symmetricEigen, transpose, type Eigen, type LeastSquares } from './linalg';

import { digestOf } from '../common/hash';
import { keys, seedPoolDigestOf } from '../storage/layout';
import { PAPER_JUDGE_MAX_TOKENS } from '../metrics/judge';
import {
  PAPER_TEACHER_MAX_TOKENS,
  STRATEGIES,
  templatesOf,
  type Strategy,
  type SweepSpec,
  type Teacher,
} from './sweep';
import { templateHashOf, type TemplateFiles } from './templates';
import { datasetWorkflowId, sweepWorkflowId } from '../common/workflow-ids';

/**
 * Planning: expand a validated spec into cells and shards, and derive every id and cache key.
 * Pure and deterministic, so the sweep workflow, the CLI's `sweep plan` and the activities all agree.
 */

/** Bump when the generation algorithm changes in a way that makes old datasets stale. */
export const GENERATION_CODE_VERSION = 'gen-1';

export interface StrategyPlan {
  strategy: Strategy;
  /** Seeds requested for this strategy (before the pool caps it). */
  count: number;
  /** Number of shards of `shardSize` seeds. */
  shards: number;
}

/** The explicit, printable manifest behind a dataset cache key. */
export interface DatasetKeyManifest {
  kind: 'dataset';
  teacher: { id: string; provider: string; model: string; revision: string | null; sampling: Teacher['sampling'] };
  language: string;
  strategies: Record<string, number>;
  templateVersion: string;
  templateHash: string;
  /** The spec's own prompt files (stored URIs, each naming its SHA-256); absent with the built-in wording. */
  templateFiles?: TemplateFiles;
  seedPool: string;
  seed: number;
  shardSize: number;
  codeVersion: string;
}

export interface CellPlan {
  /** Readable, deterministic: `sweep/<sweepId>/t=<teacher>/l=<lang>/dataset`. Also the child workflow id. */
  cellId: string;
  teacherId: string;
  language: string;
  /** `<teacher>/<lang>/<digest16>`: the dataset's S3 prefix below `<prefix>/datasets/`. */
  datasetKey: string;
  keyManifest: DatasetKeyManifest;
  strategies: StrategyPlan[];
}

export interface SweepPlan {
  sweepId: string;
  workflowId: string;
  cells: CellPlan[];
  totalShards: number;
  totalRequested: number;
}

/** The default sweep id is a digest of the spec's work-defining fields, so starting the same spec twice is one sweep. */
export function deriveSweepId(spec: SweepSpec): string {
  if (spec.sweepId) return spec.sweepId;
  const { name: _name, budget: _budget, timeouts: _timeouts, retry: _retry, ...work } = spec;
  return `sw-${digestOf(work).slice(0, 12)}`;
}

/**
 * A sweep version: the digest of the whole validated spec. One sweep id may run several specs, one at a
 * time (`sweep start --new-run`); each keeps its spec, summary and report under its version.
 */
export function specVersion(spec: SweepSpec): string {
  return digestOf(spec).slice(0, 16);
}

export function seedPoolDigest(seedPoolUri: string): string {
  const digest = seedPoolDigestOf(seedPoolUri);
  if (!digest) throw new Error(`not a seed pool URI: ${seedPoolUri}`);
  return digest;
}

export function datasetKeyManifest(spec: SweepSpec, teacher: Teacher, language: string): DatasetKeyManifest {
  const provider = spec.providers.find((p) => p.id === teacher.provider);
  const strategies: Record<string, number> = {};
  for (const s of STRATEGIES) {
    const count = spec.strategies[s]?.count ?? 0;
    if (count > 0) strategies[s] = count;
  }
  const templates = templatesOf(spec);
  return {
    kind: 'dataset',
    teacher: {
      id: teacher.id,
      // The provider's id, not its URL: moving the same model to another host keeps the cache.
      provider: provider?.id ?? teacher.provider,
      model: teacher.model,
      revision: teacher.revision ?? null,
      sampling: teacher.sampling,
    },
    language,
    strategies,
    templateVersion: templates.version,
    templateHash: templateHashOf(templates.version, templates.files),
    // Only with files of its own: the key of a spec with the built-in wording stays what it was.
    ...(templates.files ? { templateFiles: templates.files } : {}),
    seedPool: seedPoolDigest(spec.seedPool),
    seed: spec.seed,
    shardSize: spec.shardSize,
    codeVersion: GENERATION_CODE_VERSION,
  };
}

export function planSweep(spec: SweepSpec): SweepPlan {
  const sweepId = deriveSweepId(spec);
  const cells: CellPlan[] = [];
  for (const teacher of spec.teachers) {
    for (const language of spec.languages) {
      const keyManifest = datasetKeyManifest(spec, teacher, language);
      const strategies: StrategyPlan[] = Object.entries(keyManifest.strategies).map(([strategy, count]) => ({
        strategy: strategy as Strategy,
        count,
        shards: Math.ceil(count / spec.shardSize),
      }));
      cells.push({
        cellId: datasetWorkflowId({ sweepId, teacherId: teacher.id, language }),
        teacherId: teacher.id,
        language,
        datasetKey: keys.datasetKey(teacher.id, language, keys.datasetDigest(keyManifest)),
        keyManifest,
        strategies,
      });
    }
  }
  return {
    sweepId,
    workflowId: sweepWorkflowId(sweepId),
    cells,
    totalShards: cells.reduce((n, c) => n + c.strategies.reduce((m, s) => m + s.shards, 0), 0),
    totalRequested: cells.reduce((n, c) => n + c.strategies.reduce((m, s) => m + s.count, 0), 0),
  };
}

/** Which fields of two key manifests differ, as `path: old → new` lines (for `sweep plan`'s "why"). */
export function diffManifests(before: unknown, after: unknown, path = ''): string[] {
  if (JSON.stringify(before) === JSON.stringify(after)) return [];
  const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
  if (isObj(before) && isObj(after)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    return keys.flatMap((k) => diffManifests(before[k], after[k], path ? `${path}.${k}` : k));
  }
  return [`${path}: ${JSON.stringify(before)} → ${JSON.stringify(after)}`];
}

/**
 * Where a spec's answer budgets are below the paper's: a warning each (never an error: a cheap pilot may want
 * short answers), naming the field and the paper's value. Cut answers are counted in every dataset manifest.
 */
export function fidelityWarnings(spec: SweepSpec): string[] {
  const out: string[] = [];
  spec.teachers.forEach((t, i) => {
    if (t.sampling.maxTokens < PAPER_TEACHER_MAX_TOKENS)
      out.push(
        `teachers[${i}].sampling.maxTokens: ${t.sampling.maxTokens} is below the paper's ${PAPER_TEACHER_MAX_TOKENS} (teacher ${t.id}); long answers will be cut (finish_reason length), and a cut JSON answer is dropped`,
      );
  });
  const judge = spec.metrics?.judge;
  if (judge && judge.maxTokens < PAPER_JUDGE_MAX_TOKENS)
    out.push(
      `metrics.judge.maxTokens: ${judge.maxTokens} is below the paper's ${PAPER_JUDGE_MAX_TOKENS}; a long feedback is cut before its score`,
    );
  return out;
}

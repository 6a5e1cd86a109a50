import { z } from 'zod';
import { ErrorType } from '../common/errors';
import { JobTemplateSchema, TEMPLATE_ITEMS } from '../common/job-template';
import { LANGUAGES, suggestLanguage } from '../common/languages';
import { LEGACY_JUDGE } from '../metrics/judge';
import { METRICS, metricSpecShape } from '../metrics/registry';
import { SEED_POOL_URI, STORED_TEMPLATE_URI } from '../storage/layout';
import { TEMPLATE_PARTS, type TemplateFiles, type TemplateVersion } from './templates';

/**
 * The sweep spec: one document that defines every work item of a sweep. It is parsed from YAML or
 * JSON by the CLI and, because Web UI starts bypass the CLI, parsed again inside `sweepWorkflow`.
 * Everything here is pure (zod only), so workflows may import it.
 */

export const STRATEGIES = ['generate', 'translate', 'respond'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** Ids end up in S3 keys, workflow ids, search attributes and Kubernetes names: keep them boring. */
const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const id = (what: string) =>
  z.string({ error: `must be a string (${what})` }).regex(ID_PATTERN, {
    error: `must be 1-63 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit (it is used in S3 keys and workflow ids)`,
  });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A field that names an environment variable holding a secret; never the secret itself. */
const envVarName = z
  .string()
  .refine((v) => !/^(sk-|hf_|AKIA|Bearer )/.test(v), {
    error: 'looks like a secret value; put the secret in an environment variable and give its NAME here',
  })
  .refine((v) => ENV_NAME.test(v), { error: 'must be an environment variable name like OPENAI_API_KEY' });

/**
 * Bounds on the spec's size: the whole spec travels as one workflow input (Temporal refuses payloads
 * over 2 MiB with a bare "Failed to start Workflow"), and every list becomes work or history entries.
 */
export const SPEC_LIMITS = {
  /** Serialized spec (JSON, UTF-8), and a spec file on disk. */
  bytes: 1024 * 1024,
  providers: 64,
  teachers: 1000,
  languages: 200,
  students: 1000,
  /** Entries of a job's command, args, env, secretEnv, podLabels (the job template's limit); a student's languages; loraTargets. */
  items: TEMPLATE_ITEMS,
} as const;
const list = <T extends z.ZodType>(item: T, max: number, what: string) =>
  z.array(item).max(max, { error: `at most ${max} ${what} (the limit of a spec)` });

export const ProviderSchema = z.strictObject({
  /** Provider id; generation activities for it run on task queue `llm-<id>`. */
  id: id('provider id'),
  /** OpenAI-compatible base URL including `/v1`, e.g. `https://api.openai.com/v1`. */
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as http://127.0.0.1:8000/v1' }),
  /** Name of the environment variable that holds the API key on the worker. Optional for local servers. */
  apiKeyEnv: envVarName.optional(),
  /** Requests in flight at once per worker process. Default 4. */
  concurrency: z.int().min(1).max(1024).default(4),
  /**
   * Requests per minute per worker process (token bucket). Default: unlimited. At least 1: slower, a
   * default shard (50 requests) no longer fits its default attempt time (120 minutes).
   */
  requestsPerMinute: z
    .number()
    .min(1, {
      error:
        'must be at least 1 request per minute (per worker process): slower, a shard of `shardSize` requests outlasts `timeouts.shardMinutes`; leave it out for no limit, or lower `concurrency` to be gentler',
    })
    .max(1e7, { error: 'must be at most 10,000,000 requests per minute; leave it out for no limit' })
    .optional(),
  /** Prompt + completion tokens per minute per worker process. Default: unlimited. At least 1000 (one request's worth). */
  tokensPerMinute: z
    .number()
    .min(1000, {
      error: 'must be at least 1000 tokens per minute (a single request can use that many); leave it out for no limit',
    })
    .max(1e10, { error: 'must be at most 10,000,000,000 tokens per minute; leave it out for no limit' })
    .optional(),
  /** USD per million tokens; used for cost accounting and budget caps. Default 0. */
  pricePerMTok: z
    .strictObject({ input: z.number().min(0).max(10_000), output: z.number().min(0).max(10_000) })
    .default({ input: 0, output: 0 }),
  /** Per-request timeout in seconds. Default 120. */
  timeoutSeconds: z.number().positive().max(3600).default(120),
});
export type Provider = z.infer<typeof ProviderSchema>;

/**
 * The paper's teacher answer budget: it set no limit, so its inference library's default of 4,096 new tokens
 * applied. A lower limit cuts long JSON answers, which then fail to parse and are dropped (docs/method.md,
 * "Generation strategies"); `sweep plan` warns about a spec that sets less.
 */
export const PAPER_TEACHER_MAX_TOKENS = 4096;

export const SamplingSchema = z.strictObject({
  temperature: z.number().min(0).max(2).default(0.8),
  topP: z.number().gt(0).max(1).default(0.9),
  /** Max new tokens per request. Default: the paper's 4,096. A server may refuse more than its context allows. */
  maxTokens: z.int().min(1).max(65_536).default(PAPER_TEACHER_MAX_TOKENS),
});

export const TeacherSchema = z.strictObject({
  id: id('teacher id'),
  /** Id of an entry in `providers`. */
  provider: z.string(),
  /** Model name as the provider knows it (sent as `model`). */
  model: z.string().min(1).max(256),
  /** Model revision or snapshot; part of the cache key so a new snapshot recomputes. */
  revision: z.string().max(128).optional(),
  sampling: SamplingSchema.default({ temperature: 0.8, topP: 0.9, maxTokens: PAPER_TEACHER_MAX_TOKENS }),
});
export type Teacher = z.infer<typeof TeacherSchema>;

const StrategyCount = z.strictObject({ count: z.int().min(0).max(1_000_000) });

/**
 * A model reference as the Python jobs read it (jobs/polyglot_jobs/models.py): an HF id (`org/name`,
 * `org/name@revision`), an `s3://` model folder, or `random:<ref>` (architecture of ref, random weights:
 * smoke tests only). In a spec *file* a local path is allowed too: the CLI imports it into S3 first.
 */
const ModelRef = z
  .string()
  .min(1)
  .max(1024)
  .refine((v) => !/\s/.test(v), { error: 'must not contain spaces' })
  .refine((v) => !v.startsWith('/') && !v.startsWith('.'), {
    error: 'is a local path: start the sweep from a spec file (`polyglot sweep start`), which imports it into S3 first',
  });

export const StudentSchema = z.strictObject({
  id: id('student id'),
  /** The pre-trained student model the trainer starts from. */
  model: ModelRef,
  /** Students of one family share anchors and a chat template. Default: the student id. */
  family: id('student family').optional(),
  /** Chat template the trainer renders messages with: `model` (the tokenizer's own), `llama-3.1`, `gemma-3`, `chatml`. */
  chatTemplate: z.string().min(1).max(20000).optional(),
  /** Languages this student trains on (paper: Gemma, Qwen, Llama on ar, de, id only). Default: all. */
  languages: list(z.string(), SPEC_LIMITS.items, 'languages').min(1).optional(),
  /**
   * Anchors of the family's PGR: `base` (the pre-trained model) and `reference` (the instruction-tuned
   * model), each evaluated once per language and suite version. Paper default: the OLMo 3 pair.
   */
  anchors: z.strictObject({ base: ModelRef, reference: ModelRef }).optional(),
});
export type StudentSpec = z.infer<typeof StudentSchema>;

/** A spec's own prompt file once the CLI has checked and stored it: content-addressed (its URI names its SHA-256). */
const StoredTemplate = z.string().max(2048).regex(STORED_TEMPLATE_URI, {
  error:
    'must be a stored prompt file (s3://<bucket>/<prefix>/templates/sha256-<64 hex>.txt); in a spec file give a local path or any s3:// object, and `polyglot sweep plan|start` checks and stores it',
});

/** The paper's balanced subsample: its seed (the remainder draws with seed + 1), and the student training size. */
export const PAPER_SUBSAMPLE_SEED = 42;
export const PAPER_TRAIN_SIZE = 10_500;

export const MetricsSchema = z.strictObject({
  /** Rows per teacher × language in the balanced subsample all metrics use. Paper default 10,000. */
  subsampleSize: z.int().min(2).max(1_000_000).default(10_000),
  /** Seed of the subsample. Paper default 42. */
  subsampleSeed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(PAPER_SUBSAMPLE_SEED),
  /** One entry per metric (src/metrics/registry.ts; each documented in its src/metrics/defs/<name>.ts). */
  ...metricSpecShape(METRICS),
  /** Items per part-file for per-item metrics. Default 20. */
  checkpointEvery: z.int().min(1).max(10_000).default(20),
});
export type MetricsSpec = z.infer<typeof MetricsSchema>;

export const ScoringSchema = z.strictObject({
  /** Weight of the intrinsic z in PG(α) = α·z + (1 − α)·PGR. Paper default 0.5. */
  alpha: z.number().min(0).max(1).default(0.5),
  /** Flag languages whose anchor gap |R − B| is below this. Default 0.02. */
  smallGapThreshold: z.number().min(0).max(1).default(0.02),
  /**
   * s3:// URI of a results file (JSON `{cells, anchors}` as `polyglot score --from` reads) with student
   * and anchor results, until student training runs inside the sweep.
   */
  resultsUri: z
    .string()
    .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+/, { error: 'must be an s3:// URI' })
    .optional(),
});
export type ScoringSpec = z.infer<typeof ScoringSchema>;

/**
 * Trainer settings (jobs/polyglot_jobs/trainer.py `TrainConfig`). Anything left out takes the paper's
 * value: QLoRA r 16 α 16 dropout 0 on q,k,v,o,gate,up,down; lr 5e-5; 2 epochs; batch 2 × 4; max length
 * 16,384; adamw_8bit, weight decay 0.001, linear, 5 warm-up steps; seed 3407; 10,500 rows (3,500 per strategy).
 */
export const TrainHyperSchema = z.strictObject({
  method: z.enum(['lora', 'qlora', 'full']).optional(),
  learningRate: z.number().positive().max(1).optional(),
  epochs: z.number().positive().max(100).optional(),
  /** Stop after this many optimizer steps (smoke runs); overrides epochs. */
  maxSteps: z.int().min(1).max(10_000_000).optional(),
  perDeviceBatchSize: z.int().min(1).max(4096).optional(),
  gradientAccumulation: z.int().min(1).max(4096).optional(),
  maxSeqLength: z.int().min(16).max(1_048_576).optional(),
  packing: z.boolean().optional(),
  loraR: z.int().min(1).max(4096).optional(),
  loraAlpha: z.int().min(1).max(65536).optional(),
  loraDropout: z.number().min(0).max(1).optional(),
  loraTargets: list(z.string().min(1).max(128), SPEC_LIMITS.items, 'LoRA targets').min(1).optional(),
  weightDecay: z.number().min(0).max(10).optional(),
  warmupSteps: z.int().min(0).max(1_000_000).optional(),
  scheduler: z.enum(['linear', 'cosine', 'constant', 'constant_with_warmup']).optional(),
  optimizer: z.enum(['adamw_8bit', 'paged_adamw_8bit', 'adamw_torch', 'adamw_torch_fused', 'adafactor']).optional(),
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
  /** Rows of the balanced subsample the student trains on (default: the paper's 10,500). */
  trainSize: z.int().min(1).max(100_000_000).optional(),
  subsampleSeed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .optional(),
  saveSteps: z.int().min(1).max(10_000_000).optional(),
  save: list(z.enum(['merged', 'adapter']), 2, 'save formats')
    .min(1)
    .optional(),
  saveDtype: z.enum(['bfloat16', 'float16', 'float32']).optional(),
  precision: z.enum(['auto', 'bf16', 'fp16', 'fp32']).optional(),
  gradientCheckpointing: z.boolean().optional(),
  /** Training rows whose loss is measured before and after training (the summary's loss_before/after). */
  probeExamples: z.int().min(0).max(10_000).optional(),
});
export type TrainHyper = z.infer<typeof TrainHyperSchema>;

/**
 * How a student is trained on a dataset: a job template (src/common/job-template.ts, the fields the job
 * runner validates again at launch with the same schemas) plus the trainer's hyper-parameters. The trainer is the Python job of `jobs/`
 * (`polyglot-train`); any image/command honouring the job contract works.
 */
export const TrainingSchema = z.strictObject({ ...JobTemplateSchema.shape, hyper: TrainHyperSchema.default({}) });
export type TrainingSpec = z.infer<typeof TrainingSchema>;

/**
 * How students and anchors are evaluated (jobs/polyglot_jobs/evaluator.py, `polyglot-eval`): the
 * suite, where its benchmark data lives, and generation settings (paper §9).
 */
export const EvaluationSchema = z.strictObject({
  ...JobTemplateSchema.shape,
  /**
   * Versioned task set (jobs/polyglot_jobs/suites.py): Global-MMLU-Lite, M-RewardBench MCF, MGSM (paper §9).
   * `lighteval-v1` (default) = the paper's requests and metrics, run by lighteval; `pg-v1` = the same tasks
   * with reworded prompts on lm-evaluation-harness, kept so that earlier results stay reproducible.
   */
  suite: z.enum(['lighteval-v1', 'pg-v1']).default('lighteval-v1'),
  /** s3:// prefix of the benchmark data (`<benchmark>/<lang>/<split>.jsonl`); a local folder in a spec file. */
  dataUri: z.string().min(1).max(1024),
  /** Items per task and language (smoke runs); omit for every item. */
  limit: z.int().min(1).max(10_000_000).optional(),
  batchSize: z.int().min(1).max(4096).default(8),
  /** Generation (MGSM): paper temperature 0.6, top-p 0.95, ≤ 50 new tokens. 0 = greedy. */
  temperature: z.number().min(0).max(2).default(0.6),
  topP: z.number().gt(0).max(1).default(0.95),
  maxNewTokens: z.int().min(1).max(4096).default(50),
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(1234),
});
export type EvaluationSpec = z.infer<typeof EvaluationSchema>;

export const SweepSpecSchema = z.strictObject({
  /** Human name for the sweep (free text, shown in reports). */
  name: z.string().max(200).optional(),
  /** Sweep id; workflow id is `sweep/<sweepId>`. Default: derived from the spec's hash. */
  sweepId: id('sweep id').optional(),
  storage: z.strictObject({
    bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be a valid S3 bucket name' }),
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/, {
        error: "must be S3-safe path segments (A-Z a-z 0-9 . _ -) separated by '/', without leading or trailing '/'",
      })
      .refine((p) => !p.split('/').some((s) => s === '.' || s === '..'), {
        error: "must not contain '.' or '..' segments",
      })
      .default('polyglot'),
  }),
  providers: list(ProviderSchema, SPEC_LIMITS.providers, 'providers').min(1, { error: 'needs at least one provider' }),
  teachers: list(TeacherSchema, SPEC_LIMITS.teachers, 'teachers').min(1, { error: 'needs at least one teacher' }),
  languages: list(z.string(), SPEC_LIMITS.languages, 'languages').min(1, {
    error: 'needs at least one language (ISO 639-1, e.g. de)',
  }),
  strategies: z
    .strictObject({
      generate: StrategyCount.optional(),
      translate: StrategyCount.optional(),
      respond: StrategyCount.optional(),
    })
    .refine((s) => Object.values(s).some((c) => c && c.count > 0), {
      error: 'needs at least one of generate, translate, respond with count > 0',
    }),
  /** S3 URI of an imported seed pool: `s3://<bucket>/<prefix>/seeds/sha256-<hex>` (see `polyglot seeds import`). */
  seedPool: z.string().regex(SEED_POOL_URI, {
    error: 'must be the S3 URI printed by `polyglot seeds import` (s3://<bucket>/<prefix>/seeds/sha256-<64 hex>)',
  }),
  /** Prompt template version: `v1` (main grid) or `v2` (with the ten task categories). */
  templateVersion: z.enum(['v1', 'v2']).default('v1'),
  /**
   * The spec's own wording: a version name (as `templateVersion`), or `{version?, system?, generate?, translate?,
   * respond?}` where each part names a prompt file with placeholders (`{{language}}`, `{{examples}}`, `{{prompt}}`).
   * In a spec file a part may be a local path or any s3:// object: the CLI checks it and stores it content-addressed;
   * the workflow sees only stored files (`s3://…/templates/sha256-<hex>.txt`), whose digests enter the dataset key.
   */
  templates: z
    .preprocess(
      (v) => (typeof v === 'string' ? { version: v } : v),
      z.strictObject({
        version: z.enum(['v1', 'v2']).optional(),
        system: StoredTemplate.optional(),
        generate: StoredTemplate.optional(),
        translate: StoredTemplate.optional(),
        respond: StoredTemplate.optional(),
      }),
    )
    .optional(),
  /** Examples per generation activity. Default 50. */
  shardSize: z.int().min(1).max(10_000).default(50),
  /** Examples per part-file inside a shard: a crashed shard repeats at most this many calls. Default 10. */
  checkpointEvery: z.int().min(1).max(10_000).default(10),
  /** Random seed for seed shuffles and in-context draws. Paper default 921. */
  seed: z
    .int()
    .min(0)
    .max(2 ** 31 - 1)
    .default(921),
  /** Caps over the whole sweep; when reached the sweep pauses (it does not fail). */
  budget: z
    .strictObject({ maxCostUsd: z.number().min(0).max(1e7).optional(), maxTokens: z.int().min(0).optional() })
    .default({}),
  students: list(StudentSchema, SPEC_LIMITS.students, 'students').default([]),
  /** Student training jobs (one per dataset × student); required when `students` is not empty. */
  training: TrainingSchema.optional(),
  /** Student and anchor evaluation jobs; required when `students` is not empty. */
  evaluation: EvaluationSchema.optional(),
  /** Intrinsic data-quality metrics per teacher × language. Omit to skip the stage. */
  metrics: MetricsSchema.optional(),
  /** PG-Score and leaderboard report at the end of the sweep. */
  scoring: ScoringSchema.default({ alpha: 0.5, smallGapThreshold: 0.02 }),
  timeouts: z
    .strictObject({
      /** Heartbeat timeout of a generation shard, seconds. Default 120. */
      heartbeatSeconds: z.number().min(1).max(3600).default(120),
      /** Start-to-close timeout of one shard attempt, minutes. Default 120. */
      shardMinutes: z
        .number()
        .min(1)
        .max(24 * 60)
        .default(120),
    })
    .default({ heartbeatSeconds: 120, shardMinutes: 120 }),
  retry: z
    .strictObject({
      maximumAttempts: z.int().min(1).max(1000).default(20),
      initialIntervalSeconds: z.number().min(0.1).max(3600).default(1),
      maximumIntervalSeconds: z.number().min(1).max(86_400).default(60),
    })
    .default({ maximumAttempts: 20, initialIntervalSeconds: 1, maximumIntervalSeconds: 60 }),
});

export type SweepSpec = z.infer<typeof SweepSpecSchema>;
export type SweepSpecInput = z.input<typeof SweepSpecSchema>;

/** Thrown when a spec is invalid; `problems` holds one `path: message` line per problem. */
export class InvalidSpecError extends Error {
  readonly type = ErrorType.InvalidSpec;
  constructor(readonly problems: string[]) {
    super(`invalid sweep spec:\n  ${problems.join('\n  ')}`);
    this.name = 'InvalidSpecError';
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(root)';
}

type Loose = Record<string, unknown>;
const isObj = (v: unknown): v is Loose => v !== null && typeof v === 'object' && !Array.isArray(v);
/** The objects of a list with their indices; anything else (already a schema problem) is skipped. */
const objects = (v: unknown): [Loose, number][] =>
  Array.isArray(v) ? v.flatMap((x: unknown, i) => (isObj(x) ? [[x, i] as [Loose, number]] : [])) : [];
const text = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/**
 * Checks across fields. They read the document as given, each field only when it has the right type,
 * so a spec whose schema check failed still gets these problems in the same report.
 */
function crossFieldProblems(spec: Loose): string[] {
  const problems: string[] = [];
  const dup = (items: [Loose, number][], path: string) => {
    const seen = new Map<string, number>();
    for (const [item, i] of items) {
      const k = text(item.id);
      if (k === undefined) continue;
      const first = seen.get(k);
      if (first !== undefined)
        problems.push(`${path}[${i}].id: duplicate id "${k}" (also ${path}[${first}]); ids must be unique`);
      else seen.set(k, i);
    }
  };
  const providers = objects(spec.providers);
  const teachers = objects(spec.teachers);
  const students = objects(spec.students);
  const languages = Array.isArray(spec.languages) ? spec.languages.filter((l) => typeof l === 'string') : [];
  dup(providers, 'providers');
  dup(teachers, 'teachers');
  dup(students, 'students');
  const providerIds = providers.flatMap(([p]) => (text(p.id) === undefined ? [] : [text(p.id)!]));
  for (const [t, i] of teachers) {
    const provider = text(t.provider);
    if (provider !== undefined && !providerIds.includes(provider)) {
      problems.push(`teachers[${i}].provider: unknown provider "${provider}"; known: ${providerIds.join(', ')}`);
    }
  }
  const seenLang = new Set<string>();
  (Array.isArray(spec.languages) ? (spec.languages as unknown[]) : []).forEach((code, i) => {
    if (typeof code !== 'string') return;
    if (!LANGUAGES[code]) {
      const hint = suggestLanguage(code);
      problems.push(
        `languages[${i}]: unknown language code "${code}"; use a lowercase ISO 639-1 code${hint ? ` (did you mean "${hint}"?)` : ', e.g. de, es, ar'}`,
      );
    } else if (seenLang.has(code)) {
      problems.push(`languages[${i}]: "${code}" is listed twice; list each language once`);
    }
    seenLang.add(code);
  });
  if (isObj(spec.metrics)) {
    for (const m of METRICS.filter((d) => d.queue === 'provider').map((d) => d.specKey)) {
      const ref = spec.metrics[m];
      const provider = isObj(ref) ? text(ref.provider) : undefined;
      if (provider !== undefined && !providerIds.includes(provider)) {
        problems.push(`metrics.${m}.provider: unknown provider "${provider}"; known: ${providerIds.join(', ')}`);
      }
    }
  }
  if (students.length && spec.training === undefined) {
    problems.push('training: required when students are listed; give the job template (image, command, runner)');
  }
  if (students.length && spec.evaluation === undefined) {
    problems.push(
      'evaluation: required when students are listed; give the job template (image, command, runner) and dataUri',
    );
  }
  const dataUri = isObj(spec.evaluation) ? text(spec.evaluation.dataUri) : undefined;
  if (dataUri !== undefined && !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+/.test(dataUri)) {
    problems.push(
      'evaluation.dataUri: must be an s3:// prefix of the benchmark data (a local folder only in a spec file, which the CLI imports)',
    );
  }
  const anchorsByFamily = new Map<string, { base: unknown; reference: unknown; index: number }>();
  for (const [s, i] of students) {
    (Array.isArray(s.languages) ? (s.languages as unknown[]) : []).forEach((l, j) => {
      if (typeof l === 'string' && !languages.includes(l)) {
        problems.push(
          `students[${i}].languages[${j}]: "${l}" is not one of the sweep's languages (${languages.join(', ')})`,
        );
      }
    });
    if (!isObj(s.anchors)) continue;
    const family = text(s.family) ?? text(s.id);
    if (family === undefined) continue;
    const seen = anchorsByFamily.get(family);
    if (seen && (seen.base !== s.anchors.base || seen.reference !== s.anchors.reference)) {
      problems.push(
        `students[${i}].anchors: family "${family}" already has other anchors (students[${seen.index}]); one family, one anchor pair`,
      );
    } else if (!seen) anchorsByFamily.set(family, { base: s.anchors.base, reference: s.anchors.reference, index: i });
  }
  // The schema's defaults, where the field is left out.
  const shardSize = spec.shardSize === undefined ? 50 : spec.shardSize;
  const checkpointEvery = spec.checkpointEvery === undefined ? 10 : spec.checkpointEvery;
  if (typeof shardSize === 'number' && typeof checkpointEvery === 'number' && checkpointEvery > shardSize) {
    problems.push(`checkpointEvery: ${checkpointEvery} is larger than shardSize ${shardSize}; use a value ≤ shardSize`);
  }
  const bucketInUri = /^s3:\/\/([^/]+)\//.exec(text(spec.seedPool) ?? '')?.[1];
  const bucket = isObj(spec.storage) ? text(spec.storage.bucket) : undefined;
  if (bucketInUri && bucket !== undefined && bucketInUri !== bucket) {
    problems.push(
      `seedPool: bucket "${bucketInUri}" differs from storage.bucket "${bucket}"; import the seeds into the sweep's bucket`,
    );
  }
  return problems;
}

/** The spec's size as the workflow input carries it (JSON, UTF-8 bytes). */
export function specBytes(input: unknown): number {
  return new TextEncoder().encode(JSON.stringify(input) ?? '').length;
}

/**
 * The spec as a sweep begun before judge template versions parsed it: no `template` (its metrics runs then
 * keep `rubric-v2`) and the old default budget where the spec set none. Used by the sweep workflow for runs
 * begun before the study's judge became the default, so their sweep id, spec version and judge stay what they
 * were and one cohort is never graded under two protocols.
 */
export function withJudgeAsBegun(spec: SweepSpec, input: unknown): SweepSpec {
  const metrics = spec.metrics;
  const judge = metrics?.judge;
  if (!metrics || !judge) return spec;
  const given = (input as { metrics?: { judge?: { maxTokens?: unknown } } }).metrics?.judge?.maxTokens;
  const { template: _template, ...rest } = judge;
  const legacy = { ...rest, maxTokens: typeof given === 'number' ? given : LEGACY_JUDGE.maxTokens };
  return { ...spec, metrics: { ...metrics, judge: legacy as typeof judge } };
}

/** Parse and validate a spec; throws InvalidSpecError listing every problem with its path. */
export function parseSweepSpec(input: unknown): SweepSpec {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new InvalidSpecError([
      '(root): the spec must be a JSON/YAML object with storage, providers, teachers, languages, strategies, seedPool',
    ]);
  }
  const bytes = specBytes(input);
  if (bytes > SPEC_LIMITS.bytes) {
    // Checked first and alone: a spec this large is a mistake, and reading it through would only bury that.
    throw new InvalidSpecError([
      `(root): the spec is ${bytes} bytes as JSON; the limit is ${SPEC_LIMITS.bytes} (1 MiB). Long texts and lists belong in S3 (seed pools, benchmark data), not in the spec`,
    ]);
  }
  const result = SweepSpecSchema.safeParse(input);
  // Schema and cross-field problems in one report: fixing one round must not reveal another.
  const problems = result.success
    ? []
    : result.error.issues.map((issue) => {
        if (issue.code === 'unrecognized_keys') {
          return `${formatPath(issue.path)}: unknown field(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}; check the spelling against the spec reference in docs/spec.md`;
        }
        return `${formatPath(issue.path)}: ${issue.message}`;
      });
  problems.push(...crossFieldProblems(result.success ? (result.data as Loose) : (input as Loose)));
  if (problems.length || !result.success) throw new InvalidSpecError(problems);
  return result.data;
}

/** The wording a spec asks for: the built-in version its own files start from, and those files (stored URIs). */
export function templatesOf(spec: Pick<SweepSpec, 'templateVersion' | 'templates'>): {
  version: TemplateVersion;
  files?: TemplateFiles;
} {
  const t = spec.templates;
  const files = Object.fromEntries(TEMPLATE_PARTS.filter((p) => t?.[p]).map((p) => [p, t![p]!])) as TemplateFiles;
  return { version: t?.version ?? spec.templateVersion, ...(Object.keys(files).length ? { files } : {}) };
}

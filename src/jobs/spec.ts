import { z } from 'zod';
import { sha256Hex } from '../common/hash';
import { EnvMapSchema, JobFields, SecretEnvSchema, type JobTemplate } from '../common/job-template';

/**
 * The job contract (docs/architecture.md, "Job contract"): what a GPU job needs, independent of where it runs. The same
 * spec runs as a Kubernetes batch/v1 Job or as a local process. Inputs and outputs are S3 URIs; the job
 * writes `result.json` under its output URI and exits non-zero with a reason on failure. The fields it shares
 * with a sweep's job template are defined once, in src/common/job-template.ts.
 */
const S3_URI = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.*$/, { error: 'must be an s3:// URI' });

export const JobSpecSchema = z.strictObject({
  /** Cell id the job belongs to, e.g. `sweep/s1/t=a/l=de/s=olmo/train`; with `attempt` it names the Job. */
  cellId: z.string().min(1).max(512),
  sweepId: z.string().min(1).max(63),
  /** Bumped only when a new Job must replace a failed one; retries of the watcher re-attach to the same attempt. */
  attempt: z.int().min(0).max(1000).default(0),
  image: JobFields.image,
  command: JobFields.command,
  args: JobFields.args,
  /** Not bounded in count as a template's is: the workflows add the contract's POLYGLOT_JOB_CONFIG to it. */
  env: EnvMapSchema,
  secretEnv: SecretEnvSchema,
  /** Whole Secrets exposed as env (`envFrom`). */
  envFromSecrets: z.array(z.string().min(1).max(253)).default([]),
  resources: z
    .strictObject({
      cpu: JobFields.cpu.default('1'),
      memory: JobFields.memory.default('4Gi'),
      gpus: JobFields.gpus.default(0),
      gpuType: JobFields.gpuType,
      /** Size of the in-memory /dev/shm (PyTorch DataLoader, NCCL). */
      shm: JobFields.memory.default('8Gi'),
    })
    .default({ cpu: '1', memory: '4Gi', gpus: 0, shm: '8Gi' }),
  /** Extra labels and annotations on the pod (not the Job), e.g. for admission policies or kwok test stages. */
  podLabels: JobFields.podLabels,
  podAnnotations: z.record(z.string().min(1).max(316), z.string().max(65536)).optional(),
  nodeSelector: z.record(z.string(), z.string()).default({}),
  tolerations: z
    .array(
      z.strictObject({
        key: z.string(),
        operator: z.enum(['Exists', 'Equal']).default('Exists'),
        value: z.string().optional(),
        effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
      }),
    )
    .default([]),
  queueName: JobFields.queueName,
  /** Wall-clock limit of the whole Job, seconds. */
  activeDeadlineSeconds: JobFields.activeDeadlineSeconds,
  /** Pod retries inside Kubernetes (disruptions do not count, see podFailurePolicy). */
  backoffLimit: z.int().min(0).max(10).default(1),
  ttlSecondsAfterFinished: z
    .int()
    .min(0)
    .max(30 * 24 * 3600)
    .default(7 * 24 * 3600),
  /** Exit codes that mean "retrying cannot help" (bad config, bad data): the Job fails at once. */
  nonRetryableExitCodes: z.array(z.int().min(1).max(255)).default([2, 3]),
  inputs: z.record(z.string(), S3_URI).default({}),
  /** Prefix the job writes under: `result.json`, checkpoints, logs. */
  outputUri: S3_URI,
});
export type JobSpec = z.infer<typeof JobSpecSchema>;
export type JobSpecInput = z.input<typeof JobSpecSchema>;

/** The contract's variable with the job's own settings (JSON): written into the spec's `env` by `jobSpecFrom`. */
export const JOB_CONFIG_ENV = 'POLYGLOT_JOB_CONFIG';

/** The job contract's spec from a sweep's job template: the one place that maps a template onto a job. */
export function jobSpecFrom(
  t: JobTemplate,
  ids: { cellId: string; sweepId: string },
  config: Record<string, unknown>,
  inputs: Record<string, string>,
  outputUri: string,
): JobSpecInput {
  return {
    cellId: ids.cellId,
    sweepId: ids.sweepId,
    image: t.image,
    command: t.command,
    args: t.args,
    env: { ...t.env, [JOB_CONFIG_ENV]: JSON.stringify(config) },
    secretEnv: t.secretEnv,
    resources: { cpu: t.cpu, memory: t.memory, gpus: t.gpus, gpuType: t.gpuType },
    queueName: t.queueName,
    podLabels: t.podLabels,
    activeDeadlineSeconds: t.activeDeadlineSeconds,
    inputs,
    outputUri,
  };
}

/**
 * The variables every runner sets for a job (read by jobs/polyglot_jobs/contract.py): where to write, what
 * to read, which cell and attempt it is. Besides them a job gets its spec's `env` — with JOB_CONFIG_ENV —
 * and `secretEnv`.
 */
export const CONTRACT_ENV = [
  'POLYGLOT_OUTPUT_URI',
  'POLYGLOT_INPUTS',
  'POLYGLOT_CELL_ID',
  'POLYGLOT_JOB_ATTEMPT',
] as const;

/** What a job's environment holds, backend-neutral: each runner only says how to deliver it. */
export interface JobEnvironment {
  /** The spec's plain variables sorted by name, then the contract's (CONTRACT_ENV, in that order). */
  values: { name: string; value: string }[];
  /** Secret references (a Kubernetes Secret's key; locally, a worker variable the operator maps it to). */
  secrets: JobSpec['secretEnv'];
}

/**
 * The environment of a job, for every backend (src/jobs/manifest.ts, src/jobs/local.ts). The contract's
 * variables are the runner's: a spec's entry of the same name, plain or secret, is dropped, not raced
 * (runJob refuses such a spec first, with the fix; this is the last line of defence).
 */
export function jobEnvironment(spec: JobSpec): JobEnvironment {
  const contract: Record<(typeof CONTRACT_ENV)[number], string> = {
    POLYGLOT_OUTPUT_URI: spec.outputUri,
    POLYGLOT_INPUTS: JSON.stringify(spec.inputs),
    POLYGLOT_CELL_ID: spec.cellId,
    POLYGLOT_JOB_ATTEMPT: String(spec.attempt),
  };
  const own = new Set<string>(CONTRACT_ENV);
  return {
    values: [
      ...Object.entries(spec.env)
        .filter(([n]) => !own.has(n))
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([name, value]) => ({ name, value })),
      ...CONTRACT_ENV.map((name) => ({ name, value: contract[name] })),
    ],
    secrets: spec.secretEnv.filter((s) => !own.has(s.name)),
  };
}

/** What every job writes to `<outputUri>/result.json`. */
export const JobResultSchema = z.object({
  status: z.enum(['succeeded', 'failed']),
  reason: z.string().optional(),
  outputs: z.record(z.string(), z.string()).default({}),
  metrics: z.record(z.string(), z.number()).default({}),
});
export type JobResult = z.infer<typeof JobResultSchema>;

/**
 * Deterministic DNS-1123 name (≤ 63 chars) from the cell id and attempt: a readable stem plus a hash,
 * so a restarted watcher finds the Job it created instead of creating a second one.
 */
export function jobName(cellId: string, attempt: number): string {
  const hash = sha256Hex(`${cellId}#${attempt}`).slice(0, 10);
  const clean = cellId
    .toLowerCase()
    .replace(/^sweep\//, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  const room = 63 - 'pg--'.length - hash.length - `-a${attempt}`.length;
  // Too long: keep the end — teacher, language, student and stage (train/eval) — over the sweep id.
  let stem = clean;
  if (clean.length > room) {
    stem = clean.slice(clean.length - room);
    // Start at a whole word: "paper-grid-…" cut to "aper-grid-…" reads as a typo.
    if (clean[clean.length - room - 1] !== '-') stem = stem.replace(/^[^-]*-/, '');
  }
  stem = stem.replace(/^-+|-+$/g, '');
  return `pg-${stem}-a${attempt}-${hash}`.replace(/--+/g, '-');
}

/** Label values must be ≤ 63 chars of [A-Za-z0-9._-]: long ids are shortened with a hash. */
export function labelValue(v: string): string {
  const clean = v.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return clean.length <= 63
    ? clean
    : `${clean.slice(0, 52).replace(/[^A-Za-z0-9]+$/, '')}-${sha256Hex(v).slice(0, 10)}`;
}

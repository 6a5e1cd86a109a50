import { z } from 'zod';
import { sha256Hex } from '../common/hash';

/**
 * The job contract (docs/architecture.md, "Job contract"): what a GPU job needs, independent of where it runs. The same
 * spec runs as a Kubernetes batch/v1 Job or as a local process. Inputs and outputs are S3 URIs; the job
 * writes `result.json` under its output URI and exits non-zero with a reason on failure.
 */
const S3_URI = z.string().regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.*$/, { error: 'must be an s3:// URI' });
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Plain, non-secret environment settings. */
export const EnvMapSchema = z.record(z.string().regex(ENV_NAME), z.string().max(4096)).default({});
/** Secrets by reference only: env var ← key of a Kubernetes Secret (locally: the worker's env var of that name). */
export const SecretEnvSchema = z
  .array(
    z.strictObject({
      name: z.string().regex(ENV_NAME),
      secretName: z.string().min(1).max(253),
      key: z.string().min(1).max(253),
    }),
  )
  .default([]);

export const JobSpecSchema = z.strictObject({
  /** Cell id the job belongs to, e.g. `sweep/s1/t=a/l=de/s=olmo/train`; with `attempt` it names the Job. */
  cellId: z.string().min(1).max(512),
  sweepId: z.string().min(1).max(63),
  /** Bumped only when a new Job must replace a failed one; retries of the watcher re-attach to the same attempt. */
  attempt: z.int().min(0).max(1000).default(0),
  image: z.string().min(1).max(512),
  command: z.array(z.string()).min(1),
  args: z.array(z.string()).default([]),
  env: EnvMapSchema,
  secretEnv: SecretEnvSchema,
  /** Whole Secrets exposed as env (`envFrom`). */
  envFromSecrets: z.array(z.string().min(1).max(253)).default([]),
  resources: z
    .strictObject({
      cpu: z.string().default('1'),
      memory: z.string().default('4Gi'),
      gpus: z.int().min(0).max(64).default(0),
      /** Node label value of `nvidia.com/gpu.product`, e.g. `NVIDIA-H100-80GB-HBM3`. */
      gpuType: z.string().max(128).optional(),
      /** Size of the in-memory /dev/shm (PyTorch DataLoader, NCCL). */
      shm: z.string().default('8Gi'),
    })
    .default({ cpu: '1', memory: '4Gi', gpus: 0, shm: '8Gi' }),
  /** Extra labels and annotations on the pod (not the Job), e.g. for admission policies or kwok test stages. */
  podLabels: z.record(z.string().min(1).max(316), z.string().regex(LABEL_VALUE).max(63)).optional(),
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
  /** Kueue LocalQueue; the Job is created suspended by Kueue until admitted. */
  queueName: z.string().regex(LABEL_VALUE).max(63).optional(),
  /** Wall-clock limit of the whole Job, seconds. */
  activeDeadlineSeconds: z
    .int()
    .min(1)
    .max(30 * 24 * 3600)
    .default(24 * 3600),
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

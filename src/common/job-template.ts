import { z } from 'zod';

/**
 * The job template: how a sweep spec's `training` and `evaluation` describe the GPU jobs they run, and the
 * one definition of every field a template shares with the job contract (src/jobs/spec.ts). The sweep spec
 * validates with these schemas when a sweep starts, the job runner with the same ones when it launches a
 * job: a template that would fail at launch fails at validation, before any dataset is generated. Pure
 * (zod only): workflows and the spec import it, and so does the job contract, which builds on it.
 */

/** Where a job runs (src/jobs/local.ts, src/jobs/kubernetes.ts). */
export const RUNNER_KINDS = ['local', 'kubernetes'] as const;
export type RunnerKind = (typeof RUNNER_KINDS)[number];

/** Entries of a template's command, args, env, secretEnv and podLabels: every one becomes workflow input. */
export const TEMPLATE_ITEMS = 256;

/** A Kubernetes label value: ≤ 63 characters of [A-Za-z0-9._-], beginning and ending with a letter or digit. */
export const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const labelValue = (what: string, example: string) =>
  z
    .string()
    .max(63, { error: `must be at most 63 characters (${what} is a Kubernetes label value)` })
    .regex(LABEL_VALUE, {
      error: `must be a Kubernetes label value (${what}): letters, digits, '-', '_' and '.', beginning and ending with a letter or digit, e.g. ${example}`,
    });

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const envName = z.string().regex(ENV_NAME, { error: 'must be an environment variable name like HF_HUB_OFFLINE' });
/** Plain, non-secret environment settings. */
export const EnvMapSchema = z.record(envName, z.string().max(4096)).default({});
/** Secrets by reference only: env var ← key of a Kubernetes Secret (locally: the worker's env var of that name). */
export const SecretEnvSchema = z
  .array(
    z.strictObject({
      name: envName,
      secretName: z.string().min(1).max(253),
      key: z.string().min(1).max(253),
    }),
  )
  .default([]);

const list = <T extends z.ZodType>(item: T, what: string) =>
  z.array(item).max(TEMPLATE_ITEMS, { error: `at most ${TEMPLATE_ITEMS} ${what} (the limit of a job template)` });
const bounded = <T extends z.ZodType>(map: T, what: string) =>
  map.refine((m) => Object.keys(m as object).length <= TEMPLATE_ITEMS, {
    error: `at most ${TEMPLATE_ITEMS} ${what} (the limit of a job template)`,
  });

/**
 * The wall-clock limit of a job, seconds. At least a minute: a Job is killed at its deadline whatever it is
 * doing, and under a minute it is still being scheduled or pulling its image, so a shorter deadline can only
 * end in DeadlineExceeded (a permanent failure) — after the sweep has generated the dataset it trains on.
 * Kubernetes itself takes any positive number; a value like `24` meant as hours is caught here instead.
 */
export const MIN_DEADLINE_SECONDS = 60;
export const DEFAULT_DEADLINE_SECONDS = 24 * 3600;

/** The fields a template shares with the job contract, each defined here once. */
export const JobFields = {
  image: z.string().min(1).max(512),
  command: list(z.string().max(4096), 'command words').min(1),
  args: list(z.string().max(4096), 'arguments').default([]),
  /**
   * Kubernetes quantities (`4`, `500m`, `32Gi`). Not checked against the quantity grammar yet: the local
   * runner ignores them, so a sweep running today may hold values the API server would refuse, and the
   * sweep workflow parses its spec again on replay (a stricter rule there needs a patched() guard).
   */
  cpu: z.string(),
  memory: z.string(),
  gpus: z.int().min(0).max(64),
  /** Node label value of `nvidia.com/gpu.product`, e.g. `NVIDIA-H100-80GB-HBM3` (unchecked as cpu and memory are). */
  gpuType: z.string().max(128).optional(),
  /** Kueue LocalQueue; the Job is created suspended by Kueue until admitted. */
  queueName: labelValue('Kueue reads it from the label kueue.x-k8s.io/queue-name', 'gpu-queue').optional(),
  activeDeadlineSeconds: z
    .int()
    .min(MIN_DEADLINE_SECONDS, {
      error: `must be at least ${MIN_DEADLINE_SECONDS} seconds: a job killed sooner never gets past scheduling and its image pull (the value is in seconds: 86400 = 24 h)`,
    })
    .max(30 * 24 * 3600)
    .default(DEFAULT_DEADLINE_SECONDS),
  /** Extra labels on the pod (admission policies, cost tags; the test control plane's pod simulator). */
  podLabels: bounded(
    z.record(z.string().min(1).max(316), labelValue('a pod label', 'team-a')),
    'pod labels',
  ).optional(),
} as const;

/**
 * A job template as a sweep spec gives it (`training`, `evaluation`). The Python jobs of `jobs/` are the
 * usual image and command; any honouring the job contract (inputs and output as S3 URIs, `result.json`) work.
 */
export const JobTemplateSchema = z.strictObject({
  runner: z.enum(RUNNER_KINDS).default('local'),
  image: JobFields.image,
  command: JobFields.command,
  args: JobFields.args,
  env: bounded(EnvMapSchema, 'environment variables'),
  secretEnv: bounded(SecretEnvSchema, 'secret variables'),
  gpus: JobFields.gpus.default(1),
  gpuType: JobFields.gpuType,
  cpu: JobFields.cpu.default('4'),
  memory: JobFields.memory.default('32Gi'),
  queueName: JobFields.queueName,
  activeDeadlineSeconds: JobFields.activeDeadlineSeconds,
  /** How soon a crashed worker's job watch moves to another worker, seconds. Default 60. */
  heartbeatSeconds: z.int().min(1).max(3600).default(60),
  /** Jobs to try when one fails retryably (pod lost, OOM-kill); each is a new Job. Default 2. */
  maxJobAttempts: z.int().min(1).max(10).default(2),
  podLabels: JobFields.podLabels,
});
export type JobTemplate = z.infer<typeof JobTemplateSchema>;

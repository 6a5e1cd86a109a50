import type { RunnerKind } from '../common/job-template';
import type { JobSpec } from './spec';

/**
 * One contract for running a job, whatever runs it (docs/architecture.md, "Job contract"). A runner never launches a
 * second copy of a job: `submit` creates it, or attaches when a job with that name already exists.
 */
export type JobPhase =
  /** Waiting for admission (Kueue suspend) or for resources (Unschedulable): not a failure. */
  | 'queued'
  /** Scheduled, containers not yet running (image pull, init). */
  | 'pending'
  | 'running'
  | 'succeeded'
  | 'failed';

export interface JobStatus {
  phase: JobPhase;
  /** Kubernetes reason when there is one: Unschedulable, ImagePullBackOff, BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy … */
  reason?: string;
  message?: string;
  /** For failures: whether running the job again could help. */
  retryable?: boolean;
  /** Container exit code of the last failed pod, when known. */
  exitCode?: number;
}

export interface JobHandle {
  name: string;
  /** Where it runs: a namespace, or `local`. */
  namespace: string;
  /** True when `submit` found the job already there (a restarted watcher re-attached). */
  attached: boolean;
}

/** How the caller of `forget` stays alive and can stop it while the runner waits. */
export interface ForgetWait {
  signal?: AbortSignal;
  heartbeat?: () => void;
}

export interface JobRunner {
  readonly kind: RunnerKind;
  submit(spec: JobSpec): Promise<JobHandle>;
  status(handle: JobHandle): Promise<JobStatus>;
  /** Delete the job and its pods/processes; idempotent. */
  cancel(handle: JobHandle): Promise<void>;
  /**
   * Remove a finished job's record, so that a job of the same name can run again (its stored output was
   * found damaged and discarded). Returns once the name is free. Optional: without it the job workflow
   * runs the job again as its next attempt. Waiting for the name to be free can take a while: `heartbeat`
   * is called on every check, and an aborted `signal` ends the wait (throwing its reason).
   */
  forget?(name: string, wait?: ForgetWait): Promise<void>;
  /** Logs of the job's pods/process so far (best effort, for saving to S3 at the end). */
  logs(handle: JobHandle): Promise<Record<string, string>>;
}

/** Reasons that end a job for good: retrying with the same spec cannot succeed. */
export const TERMINAL_REASONS = [
  'ImagePullBackOff',
  'ErrImagePull',
  'InvalidImageName',
  'CreateContainerConfigError',
  'PodFailurePolicy',
];

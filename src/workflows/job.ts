import { ActivityFailure, ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { Activities, RunJobInput, RunJobResult } from '../activities';
import { ErrorType } from '../common/errors';
import { DEFAULT_DEADLINE_SECONDS } from '../common/job-template';
import { heartbeating } from './shared';

export interface JobWorkflowInput extends RunJobInput {
  /** Heartbeat timeout of the watcher, seconds: how soon a dead worker's watch moves to another. Default 60. */
  heartbeatSeconds?: number;
  /** Attempts of the watcher (each re-attaches to the same Job). Default 50. */
  maximumAttempts?: number;
  /** Jobs to try when one fails retryably (a new Job, attempt + 1, each time). Default 2. */
  maxJobAttempts?: number;
}

/**
 * One GPU job (training or evaluation) followed to the end. Two kinds of retry, kept apart:
 * - the watcher activity is retried by Temporal after a worker crash and re-attaches to the same Job
 *   (same deterministic name), so a crash never launches a second Job;
 * - a Job that failed retryably (`JobFailed`) is replaced by a new Job with the next attempt number,
 *   up to `maxJobAttempts`. Final failures (`JobFailedPermanently`) end the workflow at once.
 */
export async function jobWorkflow(input: JobWorkflowInput): Promise<RunJobResult> {
  const { runJob } = proxyActivities<Activities>(
    heartbeating({
      // A cancel waits until the watcher has deleted the Job: when the workflow reports "cancelled", nothing
      // of it is left running on the cluster, and the watcher learns of the cancel as CANCELLED, not NOT_FOUND.
      waitForCancel: true,
      startToCloseTimeout: `${(input.spec.activeDeadlineSeconds ?? DEFAULT_DEADLINE_SECONDS) + 3600} seconds`,
      heartbeatTimeout: `${input.heartbeatSeconds ?? 60} seconds`,
      retry: { initialInterval: '1s', maximumInterval: '30s', maximumAttempts: input.maximumAttempts ?? 50 },
    }),
  );
  const first = input.spec.attempt ?? 0;
  const last = first + Math.max(1, input.maxJobAttempts ?? 2) - 1;
  for (let attempt = first; ; attempt++) {
    try {
      return await runJob({ runner: input.runner, spec: { ...input.spec, attempt }, pollMs: input.pollMs });
    } catch (e) {
      const cause = e instanceof ActivityFailure ? e.cause : undefined;
      if (attempt < last && cause instanceof ApplicationFailure && cause.type === ErrorType.JobFailed) continue;
      throw e;
    }
  }
}

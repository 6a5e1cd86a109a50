import { proxyActivities } from '@temporalio/workflow';
import type { Activities, RunJobInput, RunJobResult } from '../activities';
import { NON_RETRYABLE } from '../common/errors';

export interface JobWorkflowInput extends RunJobInput {
  /** Heartbeat timeout of the watcher, seconds: how soon a dead worker's watch moves to another. Default 60. */
  heartbeatSeconds?: number;
  /** Attempts of the watcher (each re-attaches to the same Job). Default 50. */
  maximumAttempts?: number;
}

/**
 * One GPU job (training or evaluation) followed to the end. The watcher activity re-attaches to the
 * Job by its deterministic name after a worker crash, so retries never launch a second Job.
 */
export async function jobWorkflow(input: JobWorkflowInput): Promise<RunJobResult> {
  const { runJob } = proxyActivities<Activities>({
    startToCloseTimeout: `${(input.spec.activeDeadlineSeconds ?? 24 * 3600) + 3600} seconds`,
    heartbeatTimeout: `${input.heartbeatSeconds ?? 60} seconds`,
    retry: {
      initialInterval: '1s',
      maximumInterval: '30s',
      maximumAttempts: input.maximumAttempts ?? 50,
      nonRetryableErrorTypes: [...NON_RETRYABLE],
    },
  });
  return runJob({ runner: input.runner, spec: input.spec, pollMs: input.pollMs });
}

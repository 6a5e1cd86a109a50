import { keys } from '../storage/layout';
import type { StoreRegistry } from '../storage/s3';
import type { RecordSweepInput, StorageRef } from './types';

export interface SweepSummaryInput {
  storage: StorageRef;
  sweepId: string;
  summary: unknown;
}

export function createSweepActivities(deps: { stores: StoreRegistry }) {
  /** Keep the resolved spec beside the sweep's results: what ran is auditable without history. */
  async function recordSweep(input: RecordSweepInput): Promise<string> {
    const store = deps.stores.for(input.storage.bucket);
    await store.ensureBucket();
    return store.putJson(keys.sweepSpec(input.storage.prefix, input.sweepId), {
      spec: input.spec,
      workflowId: input.workflowId,
      runId: input.runId,
      recordedAt: new Date().toISOString(),
    });
  }

  async function writeSweepSummary(input: SweepSummaryInput): Promise<string> {
    const store = deps.stores.for(input.storage.bucket);
    return store.putJson(keys.sweepSummary(input.storage.prefix, input.sweepId), input.summary);
  }

  return { recordSweep, writeSweepSummary };
}

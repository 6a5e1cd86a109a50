import { keys } from '../storage/layout';
import { getSealed, mustBeIntact, putSealed } from '../storage/integrity';
import type { S3Store, StoreRegistry } from '../storage/s3';
import type { RecordSweepInput, StorageRef } from './types';

export interface SweepSummaryInput {
  storage: StorageRef;
  sweepId: string;
  summary: Record<string, unknown>;
  /** The per-cell and per-student lists, written before in pages (writeSweepSummaryPage) of this run. */
  pages?: { runId: string; count: number };
  /** The sweep version: the summary goes under `runs/<version>/`, beside its spec. */
  version?: string;
}

/** A slice of each long list of the summary, keyed by its dotted path in it (e.g. `state.cells`). */
export interface SweepSummaryPageInput {
  storage: StorageRef;
  sweepId: string;
  runId: string;
  page: number;
  lists: Record<string, unknown[]>;
}

const AGAIN = 'start or resume the sweep: it records its spec and latest.json again';

/** The version `latest.json` names, checked against its seal (older unsealed ones: when they name one). */
export async function readLatestVersion(store: S3Store, prefix: string, sweepId: string): Promise<string | undefined> {
  const key = keys.sweepLatest(prefix, sweepId);
  const read = await getSealed<{ version: string }>(
    store,
    key,
    (v) => typeof (v as { version?: unknown }).version === 'string',
  );
  return mustBeIntact(read, store.uri(key), AGAIN)?.version;
}

/** The spec record of a sweep (of `version`), checked against its seal (older unsealed ones: when they hold a spec). */
export async function readRecordedSpec(
  store: S3Store,
  prefix: string,
  sweepId: string,
  version?: string,
): Promise<{ spec: unknown } | undefined> {
  const key = keys.sweepSpec(prefix, sweepId, version);
  const read = await getSealed<{ spec: unknown }>(store, key, (v) => (v as { spec?: unknown }).spec !== undefined);
  return mustBeIntact(read, store.uri(key), AGAIN);
}

export function createSweepActivities(deps: { stores: StoreRegistry }) {
  /**
   * Keep the resolved spec beside the sweep's results: what ran is auditable without history. A versioned
   * run also points `latest.json` at its version, for `report` and for `sweep start`'s spec comparison
   * once Temporal has forgotten the workflow.
   */
  async function recordSweep(input: RecordSweepInput): Promise<string> {
    const store = deps.stores.for(input.storage.bucket);
    await store.ensureBucket();
    const record = {
      spec: input.spec,
      workflowId: input.workflowId,
      runId: input.runId,
      recordedAt: new Date().toISOString(),
    };
    // Both sealed: `sweep start` and `report` trust them, and tell a damaged one from a good one.
    const specKey = keys.sweepSpec(input.storage.prefix, input.sweepId, input.version);
    await putSealed(store, specKey, record);
    const uri = store.uri(specKey);
    if (input.version) {
      await putSealed(store, keys.sweepLatest(input.storage.prefix, input.sweepId), {
        version: input.version,
        specUri: uri,
        workflowId: input.workflowId,
        runId: input.runId,
        recordedAt: record.recordedAt,
      });
    }
    return uri;
  }

  /**
   * The summary's long lists arrive in pages: each activity input stays far below Temporal's 2 MiB payload
   * cap however large the grid (one whole summary was 1 MiB at 600 cells × 1,500 students).
   */
  async function writeSweepSummaryPage(input: SweepSummaryPageInput): Promise<string> {
    const store = deps.stores.for(input.storage.bucket);
    const key = keys.sweepSummaryPage(input.storage.prefix, input.sweepId, input.runId, input.page);
    await putSealed(store, key, input.lists);
    return store.uri(key);
  }

  /** summary.json in one piece (the shape readers know), with the pages' lists put back in place. */
  async function writeSweepSummary(input: SweepSummaryInput): Promise<string> {
    const store = deps.stores.for(input.storage.bucket);
    const summary = structuredClone(input.summary);
    for (let page = 0; page < (input.pages?.count ?? 0); page++) {
      const key = keys.sweepSummaryPage(input.storage.prefix, input.sweepId, input.pages!.runId, page);
      const lists = mustBeIntact(
        await getSealed<Record<string, unknown[]>>(store, key),
        store.uri(key),
        'resume the sweep: its last step writes the pages again',
      );
      if (!lists) throw new Error(`summary page ${store.uri(key)} is missing`);
      for (const [dotted, items] of Object.entries(lists)) {
        const path = dotted.split('.');
        let at = summary;
        for (const part of path.slice(0, -1)) at = (at[part] ??= {}) as Record<string, unknown>;
        const last = path[path.length - 1]!;
        at[last] = [...((at[last] as unknown[] | undefined) ?? []), ...items];
      }
    }
    // Sealed (integrity.sha256 over the rest): a reader tells a damaged summary from a good one.
    const summaryKey = keys.sweepSummary(input.storage.prefix, input.sweepId, input.version);
    await putSealed(store, summaryKey, summary);
    return store.uri(summaryKey);
  }

  return { recordSweep, writeSweepSummary, writeSweepSummaryPage };
}

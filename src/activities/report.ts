import { buildSweepReport, type SweepReportInput } from '../report/sweep-report';
import type { RenderedReport } from '../report/render';
import { getSealed, getVerified, putSealed, putVerified, type Digest } from '../storage/integrity';
import { keys, REPORT_FILES } from '../storage/layout';
import type { S3Store, StoreRegistry } from '../storage/s3';
import type { StorageRef } from './types';

export interface ScoreSweepInput extends Omit<SweepReportInput, 'generatedAt' | 'webUiBase'> {
  storage: StorageRef;
  /** The sweep version (spec) the report belongs to; absent in runs recorded before versions. */
  version?: string;
}

export interface ScoreSweepResult {
  reportPrefix: string;
  htmlUri: string;
  markdownUri: string;
  /** The leaderboard's first rows (small: it goes through history). */
  leaderboard: { rank: number; teacher: string; family?: string; score: number }[];
  warnings: number;
}

export function reportPrefix(storage: StorageRef, sweepId: string, version?: string): string {
  return keys.sweepReport(storage.prefix, sweepId, version);
}

/**
 * Write a rendered report under `prefix`, each file a whole object, the HTML page after the data, and
 * last a sealed `integrity.json` with every file's size and SHA-256 (a reader verifies against it).
 */
export async function storeReport(store: S3Store, prefix: string, report: RenderedReport): Promise<void> {
  const files: Record<string, Digest> = {};
  const put = async (name: string, text: string, type: string) =>
    (files[name] = await putVerified(store, keys.reportFile(prefix, name), text, type));
  for (const [name, text] of Object.entries(report.csv)) await put(name, text, 'text/csv');
  await put(REPORT_FILES.json, report.json, 'application/json');
  await put(REPORT_FILES.markdown, report.markdown, 'text/markdown');
  await put(REPORT_FILES.html, report.html, 'text/html');
  await putSealed(store, keys.reportFile(prefix, REPORT_FILES.integrity), { files });
}

/**
 * Check a stored report against its `integrity.json` (nothing in Polyglot reads report files back: this is
 * for `polyglot report --verify` and for anyone handed the S3 folder). Returns one line per problem.
 */
export async function verifyStoredReport(store: S3Store, prefix: string): Promise<string[]> {
  const key = keys.reportFile(prefix, REPORT_FILES.integrity);
  const record = await getSealed<{ files: Record<string, Digest> }>(
    store,
    key,
    (v) => typeof (v as { files?: unknown }).files === 'object',
  );
  if (record.state === 'missing') return [`${store.uri(key)} is missing: the report was not stored whole`];
  if (record.state === 'damaged') return [`${store.uri(key)} is damaged (${record.reason})`];
  if (!record.verified) return [`${store.uri(key)} is unsealed: nothing to verify against`];
  const problems: string[] = [];
  for (const [name, digest] of Object.entries(record.value.files)) {
    const got = await getVerified(store, keys.reportFile(prefix, name), digest);
    if (got.state !== 'ok')
      problems.push(
        `${store.uri(keys.reportFile(prefix, name))} is ${got.state === 'missing' ? 'missing' : `damaged (${got.reason})`}`,
      );
  }
  return problems;
}

export function createReportActivities(deps: { stores: StoreRegistry; env: NodeJS.ProcessEnv }) {
  /** Score the cohort and write the report files (each a whole object) under reports/<sweepId>/runs/<version>/. */
  async function scoreSweep(input: ScoreSweepInput): Promise<ScoreSweepResult> {
    const store = deps.stores.for(input.storage.bucket);
    const { version, ...reportInput } = input;
    const { scores, report } = await buildSweepReport(store, {
      ...reportInput,
      generatedAt: new Date().toISOString(),
      webUiBase: deps.env.POLYGLOT_WEB_UI,
    });
    const prefix = reportPrefix(input.storage, input.sweepId, version);
    await storeReport(store, prefix, report);
    return {
      reportPrefix: store.uri(prefix),
      htmlUri: store.uri(keys.reportFile(prefix, REPORT_FILES.html)),
      markdownUri: store.uri(keys.reportFile(prefix, REPORT_FILES.markdown)),
      leaderboard: scores.teachers
        .slice(0, 50)
        .map((t) => ({ rank: t.rank, teacher: t.teacher, family: t.family, score: t.pg_score })),
      warnings: scores.warnings.length,
    };
  }
  return { scoreSweep };
}

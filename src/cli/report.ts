import { existsSync } from 'node:fs';
import path from 'node:path';
import { reportPrefix, storeReport, verifyStoredReport } from '../activities/report';
import { readLatestVersion, readRecordedSpec } from '../activities/sweep';
import { buildSweepReport, type SweepReportInput } from '../report/sweep-report';
import { writeReportFiles } from '../report/write';
import { scoringRuns, type AnchorRunScore, type StudentRunScore } from '../scoring/runs';
import type { CohortScores } from '../scoring/types';
import type { SweepSpec } from '../spec/sweep';
import { keys, REPORT_FILES } from '../storage/layout';
import { getSealed, getVerified, mustBeIntact, type Digest } from '../storage/integrity';
import type { S3Store } from '../storage/s3';
import { ROOT } from './devstack';

/**
 * `polyglot report <sweepId>`: rebuild the scores and report from the sweep's artifacts (its summary
 * lists each cell's intrinsic-metrics URI) and write them to a local folder and to S3.
 */
export async function writeSweepReport(
  store: S3Store,
  spec: SweepSpec,
  sweepId: string,
  outDir: string,
  /** A version of the sweep (`runs/<version>/`); default: the latest, or the unversioned keys of older sweeps. */
  version?: string,
): Promise<{ files: string[]; markdown: string; scores: CohortScores; s3Prefix: string }> {
  version ??= await readLatestVersion(store, spec.storage.prefix, sweepId);
  if (version) {
    // The named version's own spec: its scoring settings, not the latest's. Checked against its seal.
    const recorded = (await readRecordedSpec(store, spec.storage.prefix, sweepId, version)) as
      { spec: SweepSpec } | undefined;
    if (!recorded)
      throw new Error(
        `sweep ${sweepId} has no version ${version} in ${store.uri(keys.sweepRuns(spec.storage.prefix, sweepId))}; \`polyglot sweep status ${sweepId}\` shows the latest`,
      );
    spec = recorded.spec;
  }
  const summaryKey = keys.sweepSummary(spec.storage.prefix, sweepId, version);
  const summary = mustBeIntact(
    await getSealed<{
      intrinsic?: SweepReportInput['cells'];
      students?: StudentRunScore[];
      anchors?: AnchorRunScore[];
    }>(store, summaryKey),
    store.uri(summaryKey),
    'resume the sweep: its last step writes the summary again',
  );
  if (!summary)
    throw new Error(
      `sweep ${sweepId} has no summary in ${store.uri(keys.sweep(spec.storage.prefix, sweepId))}; has it finished?`,
    );
  if (!summary.intrinsic?.length)
    throw new Error(`sweep ${sweepId} has no intrinsic metrics: add a \`metrics\` section to its spec and resume it`);
  // On the local stack the S3 server stores objects as files: link those directly so the report opens offline.
  const localS3 = path.join(ROOT, '.data/s3');
  const linkForUri = existsSync(path.join(localS3, spec.storage.bucket))
    ? (uri: string) => `file://${path.join(localS3, uri.replace(/^s3:\/\//, ''))}`
    : undefined;
  const { scores, report } = await buildSweepReport(
    store,
    {
      sweepId,
      cells: summary.intrinsic,
      // The sweep's own student and anchor runs, so this report scores what the sweep's report scored.
      ...scoringRuns(summary.students ?? [], summary.anchors ?? []),
      resultsUri: spec.scoring.resultsUri,
      alpha: spec.scoring.alpha,
      smallGapThreshold: spec.scoring.smallGapThreshold,
      webUiBase: process.env.POLYGLOT_WEB_UI,
      generatedAt: new Date().toISOString(),
    },
    linkForUri,
  );
  const files = await writeReportFiles(outDir, report);
  const prefix = reportPrefix(spec.storage, sweepId, version);
  await storeReport(store, prefix, report);
  return { files, markdown: report.markdown, scores, s3Prefix: store.uri(prefix) };
}

/** `polyglot report <sweepId> --verify`: the stored report (latest version, or the one named) against its integrity.json. */
export async function verifySweepReport(
  store: S3Store,
  spec: SweepSpec,
  sweepId: string,
  version?: string,
): Promise<{ prefix: string; problems: string[] }> {
  version ??= await readLatestVersion(store, spec.storage.prefix, sweepId);
  const prefix = reportPrefix(spec.storage, sweepId, version);
  return { prefix: store.uri(prefix), problems: await verifyStoredReport(store, prefix) };
}

/**
 * The scores of a sweep version's stored report (`scores.json`, checked against the report's integrity.json),
 * for the terminal's leaderboard; `problem` says why there are none. `location`: where the report's files are,
 * as a local folder on the local stack, else as an s3:// URI.
 */
export async function readStoredScores(
  store: S3Store,
  storage: SweepSpec['storage'],
  sweepId: string,
  version: string | undefined,
): Promise<{ scores?: CohortScores; problem?: string; location: string }> {
  const prefix = reportPrefix(storage, sweepId, version);
  const localS3 = path.join(ROOT, '.data/s3', storage.bucket);
  const location = existsSync(localS3) ? `${path.join(localS3, prefix)}/` : keys.folderUri(store.bucket, prefix);
  const record = await getSealed<{ files: Record<string, Digest> }>(
    store,
    keys.reportFile(prefix, REPORT_FILES.integrity),
  );
  if (record.state === 'missing') return { problem: 'no report stored yet', location };
  if (record.state === 'damaged')
    return { problem: `the report's integrity.json is damaged (${record.reason})`, location };
  const digest = record.value.files[REPORT_FILES.json];
  if (!digest) return { problem: `the report's integrity.json lists no ${REPORT_FILES.json}`, location };
  const got = await getVerified(store, keys.reportFile(prefix, REPORT_FILES.json), digest);
  if (got.state !== 'ok')
    return {
      problem: `the report's ${REPORT_FILES.json} is ${got.state === 'damaged' ? `damaged (${got.reason})` : 'missing'}; \`polyglot report ${sweepId} --verify\` checks every file`,
      location,
    };
  const { scores } = JSON.parse(Buffer.from(got.value).toString('utf8')) as { scores: CohortScores };
  return { scores, location };
}

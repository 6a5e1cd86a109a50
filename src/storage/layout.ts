import { digestOf } from '../common/hash';

/**
 * The S3 layout, in one place. Every key Polyglot reads or writes is built here from ids and digests,
 * so a finished artifact is found again by recomputing its key — that is what makes resume cheap.
 * Keys are built from their parts and never taken apart again: whoever needs a part is handed it.
 *
 * Pure (no Node built-ins, no AWS SDK): workflows import it to name their jobs' outputs.
 * docs/s3-layout.md documents every entry of `keys`; test/unit/layout.test.ts holds the two together, and
 * test/unit/layout-guard.test.ts fails when a key is built anywhere else in src/.
 */
const pad = (n: number) => String(n).padStart(5, '0');

/** Digests that name stored artifacts: SHA-256 of canonical JSON (common/hash.ts), first 16 hex digits. */
const digest16 = (value: unknown) => digestOf(value).slice(0, 16);

/** The marker a content-addressed asset folder gets last: jobs read it to know the folder is whole. */
export const ASSET_COMPLETE_MARKER = '_COMPLETE';

/** The integrity record the job watcher writes beside a succeeded job's `result.json`. */
export const JOB_RESULT_RECORD = 'result.integrity.json';

/** The files of a stored report. */
export const REPORT_FILES = {
  markdown: 'leaderboard.md',
  html: 'report.html',
  json: 'scores.json',
  /** Size and digest of each file above. */
  integrity: 'integrity.json',
} as const;

/**
 * A spec names its seed pool and its own prompt files by URI (printed by `polyglot seeds import`, written into the
 * spec by the CLI), so their digests can only be read from those URIs: these patterns are that one reading, kept
 * beside the keys they match (`seedPool`, `template`). Nothing else in src/ reads an id or digest out of a key or
 * URI (`parseS3Uri` only splits a URI into the bucket and object key that address it).
 */
export const SEED_POOL_URI =
  /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/(?:[A-Za-z0-9._-]+\/)*seeds\/(sha256-[0-9a-f]{64})\/?$/;
export const STORED_TEMPLATE_URI = /^s3:\/\/[^/]+\/(?:.+\/)?templates\/sha256-([0-9a-f]{64})\.txt$/;

/** The seed pool's digest (`sha256-<hex>`) from the URI a spec names it by; undefined for any other URI. */
export function seedPoolDigestOf(uri: string): string | undefined {
  return SEED_POOL_URI.exec(uri)?.[1];
}

/** The SHA-256 of a stored prompt file from its URI; undefined for any other URI. */
export function storedTemplateDigestOf(uri: string): string | undefined {
  return STORED_TEMPLATE_URI.exec(uri)?.[1];
}

export const keys = {
  /** `s3://<bucket>/<key>`: the only place a key becomes a URI. */
  uri: (bucket: string, key: string) => `s3://${bucket}/${key}`,
  /** A folder's URI, with the trailing `/` jobs and readers expect of a prefix. */
  folderUri: (bucket: string, key: string) => `s3://${bucket}/${key}/`,

  seedPool: (prefix: string, digest: string) => `${prefix}/seeds/${digest}`,
  seedRows: (poolKey: string) => `${poolKey}/seeds.jsonl`,
  seedManifest: (poolKey: string) => `${poolKey}/manifest.json`,

  /** A spec's own prompt file, content-addressed (the URI carries the SHA-256 of its bytes). */
  template: (prefix: string, sha256: string) => `${prefix}/templates/sha256-${sha256}.txt`,

  /**
   * Content-addressed folder of a model or benchmark imported from a local path; `digest` is
   * `sha256-<hex>` over every file's relative path and bytes.
   */
  asset: (prefix: string, kind: 'models' | 'benchmarks', digest: string) => `${prefix}/${kind}/${digest}`,
  assetFile: (assetKey: string, rel: string) => `${assetKey}/${rel}`,
  assetComplete: (assetKey: string) => `${assetKey}/${ASSET_COMPLETE_MARKER}`,

  /** The digest part of a dataset key: its key manifest's canonical digest. */
  datasetDigest: (keyManifest: unknown) => digest16(keyManifest),
  /** A dataset's id, `<teacher>/<lang>/<digest16>`; also the folder below `datasets/`, `metrics/` and `students/`. */
  datasetKey: (teacherId: string, language: string, digest: string) => `${teacherId}/${language}/${digest}`,
  dataset: (prefix: string, datasetKey: string) => `${prefix}/datasets/${datasetKey}`,
  datasetKeyManifest: (ds: string) => `${ds}/key.json`,
  datasetManifest: (ds: string) => `${ds}/manifest.json`,
  selection: (ds: string, strategy: string) => `${ds}/selection/${strategy}.json`,
  shardsPrefix: (ds: string) => `${ds}/shards/`,
  shardData: (ds: string, strategy: string, shard: number) => `${ds}/shards/${strategy}-${pad(shard)}.jsonl`,
  shardMarker: (ds: string, strategy: string, shard: number) => `${ds}/shards/${strategy}-${pad(shard)}.done.json`,
  /** One checkpoint part-file in a parts folder (`shardPartsPrefix`, `metricParts`: both end in `/`). */
  partFile: (partsPrefix: string, n: number) => `${partsPrefix}part-${pad(n)}.jsonl`,
  shardPartsPrefix: (ds: string, strategy: string, shard: number) => `${ds}/parts/${strategy}-${pad(shard)}/`,
  /** Index of every dataset ever made for a teacher × language, so `plan` can say why a key changed. */
  cellIndexPrefix: (prefix: string, teacherId: string, language: string) => `${prefix}/index/${teacherId}/${language}/`,
  cellIndexEntry: (prefix: string, teacherId: string, language: string, digest: string) =>
    `${prefix}/index/${teacherId}/${language}/${digest}.json`,

  /** Everything measured on one dataset: its subsamples, metric results and intrinsic records. */
  metrics: (prefix: string, datasetKey: string) => `${prefix}/metrics/${datasetKey}`,
  /**
   * A balanced subsample's ids (metrics and student training read the same record). `method` names the sampling
   * algorithm, so ids chosen by an earlier algorithm are never taken for this one's.
   */
  subsample: (prefix: string, datasetKey: string, method: string, size: number, seed: number) =>
    `${prefix}/metrics/${datasetKey}/subsample-${method}-${size}-${seed}.json`,

  /** One metric's result on a dataset; `digest` names the metric's config and the subsample it read. */
  metricResult: (prefix: string, datasetKey: string, metric: string, digest: string) =>
    `${keys.metrics(prefix, datasetKey)}/${metric}-${digest}.json`,
  /** Checkpoint part-files of a metric being computed (resume reads them). */
  metricParts: (prefix: string, datasetKey: string, metric: string, digest: string) =>
    `${keys.metrics(prefix, datasetKey)}/${metric}-${digest}/parts/`,
  /** The intrinsic record of a dataset: the metric values the scorer reads, keyed by the results it merged. */
  intrinsic: (prefix: string, datasetKey: string, metricUris: string[]) =>
    `${keys.metrics(prefix, datasetKey)}/intrinsic-${digest16(metricUris)}.json`,

  /**
   * A student trained on a dataset: the train job's output folder. `trainDigest` is `jobDigest` of the
   * train job's identity (config, image, command, code version).
   */
  student: (prefix: string, datasetKey: string, studentId: string, trainDigest: string) =>
    `${prefix}/students/${datasetKey}/${studentId}-${trainDigest}`,
  /** The evaluation of a trained student: inside the student's folder, keyed by `jobDigest` of the eval identity. */
  studentEval: (studentKey: string, evalDigest: string) => `${studentKey}/eval/${evalDigest}`,
  /**
   * An anchor evaluation (base or reference model of a family on one language). Outside any sweep's folder, so
   * every sweep that needs the same anchor finds one evaluation.
   */
  anchorEval: (prefix: string, family: string, language: string, which: 'base' | 'reference', evalDigest: string) =>
    `${prefix}/anchors/${family}/${language}/${which}-${evalDigest}`,
  /** The digest that keys a job's output folder: of everything that decides what the job computes. */
  jobDigest: (identity: unknown) => digest16(identity),
  /** Inside any job's output folder (`outKey`, no trailing `/`): what the job wrote and what the watcher adds. */
  jobResult: (outKey: string) => `${outKey}/result.json`,
  jobResultRecord: (outKey: string) => `${outKey}/${JOB_RESULT_RECORD}`,
  jobLogs: (outKey: string) => `${outKey}/logs/`,
  jobLog: (outKey: string, name: string) => `${outKey}/logs/${name}`,

  sweep: (prefix: string, sweepId: string) => `${prefix}/sweeps/${sweepId}`,
  /**
   * Each version of a sweep (one spec; `--new-run` makes another) keeps its spec, summary and report under
   * `runs/<version>/`; `latest.json` names the newest. Without a version: the keys of sweeps recorded
   * before versions existed.
   */
  sweepRuns: (prefix: string, sweepId: string) => `${prefix}/sweeps/${sweepId}/runs/`,
  sweepRun: (prefix: string, sweepId: string, version: string) => `${keys.sweepRuns(prefix, sweepId)}${version}`,
  sweepLatest: (prefix: string, sweepId: string) => `${prefix}/sweeps/${sweepId}/latest.json`,
  sweepSpec: (prefix: string, sweepId: string, version?: string) =>
    `${version ? keys.sweepRun(prefix, sweepId, version) : keys.sweep(prefix, sweepId)}/spec.json`,
  sweepSummary: (prefix: string, sweepId: string, version?: string) =>
    `${version ? keys.sweepRun(prefix, sweepId, version) : keys.sweep(prefix, sweepId)}/summary.json`,
  sweepReport: (prefix: string, sweepId: string, version?: string) =>
    `${prefix}/reports/${sweepId}${version ? `/runs/${version}` : ''}`,
  /** One file of a stored report (`REPORT_FILES`, or a CSV table) under `sweepReport`. */
  reportFile: (reportKey: string, name: string) => `${reportKey}/${name}`,
  /** One page of a run's summary lists, merged into summary.json by the final write. */
  sweepSummaryPage: (prefix: string, sweepId: string, runId: string, page: number) =>
    `${prefix}/sweeps/${sweepId}/summary-pages/${runId}/${String(page).padStart(4, '0')}.json`,
};

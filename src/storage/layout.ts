/**
 * The S3 layout, in one place. Every key Polyglot reads or writes is built here from ids and digests,
 * so a finished artifact is found again by recomputing its key — that is what makes resume cheap.
 */
const pad = (n: number) => String(n).padStart(5, '0');

export const keys = {
  seedPool: (prefix: string, digest: string) => `${prefix}/seeds/${digest}`,
  seedRows: (poolKey: string) => `${poolKey}/seeds.jsonl`,
  seedManifest: (poolKey: string) => `${poolKey}/manifest.json`,

  /** A spec's own prompt file, content-addressed (the URI carries the SHA-256 of its bytes). */
  template: (prefix: string, sha256: string) => `${prefix}/templates/sha256-${sha256}.txt`,

  dataset: (prefix: string, datasetKey: string) => `${prefix}/datasets/${datasetKey}`,
  datasetKeyManifest: (ds: string) => `${ds}/key.json`,
  datasetManifest: (ds: string) => `${ds}/manifest.json`,
  selection: (ds: string, strategy: string) => `${ds}/selection/${strategy}.json`,
  shardData: (ds: string, strategy: string, shard: number) => `${ds}/shards/${strategy}-${pad(shard)}.jsonl`,
  shardMarker: (ds: string, strategy: string, shard: number) => `${ds}/shards/${strategy}-${pad(shard)}.done.json`,
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

  sweep: (prefix: string, sweepId: string) => `${prefix}/sweeps/${sweepId}`,
  /**
   * Each version of a sweep (one spec; `--new-run` makes another) keeps its spec, summary and report under
   * `runs/<version>/`; `latest.json` names the newest. Without a version: the keys of sweeps recorded
   * before versions existed.
   */
  sweepRun: (prefix: string, sweepId: string, version: string) => `${prefix}/sweeps/${sweepId}/runs/${version}`,
  sweepLatest: (prefix: string, sweepId: string) => `${prefix}/sweeps/${sweepId}/latest.json`,
  sweepSpec: (prefix: string, sweepId: string, version?: string) =>
    `${version ? keys.sweepRun(prefix, sweepId, version) : keys.sweep(prefix, sweepId)}/spec.json`,
  sweepSummary: (prefix: string, sweepId: string, version?: string) =>
    `${version ? keys.sweepRun(prefix, sweepId, version) : keys.sweep(prefix, sweepId)}/summary.json`,
  sweepReport: (prefix: string, sweepId: string, version?: string) =>
    `${prefix}/reports/${sweepId}${version ? `/runs/${version}` : ''}`,
  /** One page of a run's summary lists, merged into summary.json by the final write. */
  sweepSummaryPage: (prefix: string, sweepId: string, runId: string, page: number) =>
    `${prefix}/sweeps/${sweepId}/summary-pages/${runId}/${String(page).padStart(4, '0')}.json`,
};

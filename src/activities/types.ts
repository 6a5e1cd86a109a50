import type { DatasetKeyManifest } from '../spec/plan';
import type { Provider, Strategy, Teacher } from '../spec/sweep';
import type { TemplateFiles, TemplateVersion } from '../spec/templates';
import type { Digest, Repair } from '../storage/integrity';

/** Inputs and outputs of activities: ids, URIs, digests and small numbers only (they go through history). */

export interface StorageRef {
  bucket: string;
  prefix: string;
}

export interface PrepareDatasetInput {
  storage: StorageRef;
  datasetKey: string;
  keyManifest: DatasetKeyManifest;
  seedPool: string;
  language: string;
  strategies: { strategy: Strategy; count: number }[];
  seed: number;
  shardSize: number;
  sweepId: string;
}

export interface PrepareDatasetResult {
  /** Set when the dataset is already complete: nothing to generate. */
  manifestUri?: string;
  examples?: number;
  /** With `manifestUri`: answers cut at the length limit, as the manifest counts them. */
  truncated?: number;
  strategies: { strategy: Strategy; selected: number; shards: number; shardsDone: number; selection?: Digest }[];
  /** Artifacts that failed their integrity check and were discarded (absent in older histories). */
  repaired?: Repair[];
}

export interface GenerateShardInput {
  storage: StorageRef;
  datasetKey: string;
  seedPool: string;
  strategy: Strategy;
  shard: number;
  shardSize: number;
  checkpointEvery: number;
  language: string;
  templateVersion: TemplateVersion;
  /** The spec's own prompt files (stored URIs naming their SHA-256); absent with the built-in wording. */
  templateFiles?: TemplateFiles;
  seed: number;
  teacher: Teacher;
  provider: Provider;
  /** The selection's digest, from prepareDataset (absent in older histories: read unverified). */
  selection?: Digest;
}

export interface ShardStats {
  requested: number;
  produced: number;
  parseFailures: number;
  emptyResponses: number;
  /**
   * Answers the provider cut at the length limit (`finish_reason: length`), kept or not; absent in records
   * written before it was counted. A cut answer is usually an unfinished JSON object: it is then also a
   * parse failure, and `truncatedDropped` counts it.
   */
  truncated?: number;
  /** Of the `truncated` answers, those that were dropped (did not parse, or were empty). */
  truncatedDropped?: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
}

export interface GenerateShardResult extends ShardStats {
  shardUri: string;
  /** True when the shard was already complete and no call was made. */
  cached: boolean;
  /** LLM calls this attempt made (0 when cached). */
  calls: number;
  /** Size and digest of the shard file (absent in markers written before digests). */
  file?: Digest;
  /** Artifacts that failed their integrity check and were discarded. */
  repaired?: Repair[];
}

export interface DatasetManifest extends ShardStats {
  datasetKey: string;
  uri: string;
  keyManifest: DatasetKeyManifest;
  /** `files[i]` is the size and digest of `shards[i]` (absent in manifests written before digests). */
  perStrategy: Record<string, ShardStats & { shards: string[]; files?: Digest[] }>;
  createdBy: { sweepId: string; workflowId: string; runId: string };
  codeVersion: string;
  createdAt: string;
}

export interface FinalizeDatasetInput {
  storage: StorageRef;
  datasetKey: string;
  keyManifest: DatasetKeyManifest;
  strategies: { strategy: Strategy; shards: number }[];
  sweepId: string;
  workflowId: string;
  runId: string;
}

export interface FinalizeDatasetResult {
  manifestUri: string;
  examples: number;
  promptTokens: number;
  completionTokens: number;
  costUsd: number;
  parseFailures: number;
  /** Answers cut at the length limit (absent from manifests written before it was counted). */
  truncated?: number;
  repaired?: Repair[];
}

export interface RecordSweepInput {
  storage: StorageRef;
  sweepId: string;
  spec: unknown;
  workflowId: string;
  runId: string;
  /** The sweep version (`specVersion` of the spec); absent in runs recorded before versions. */
  version?: string;
}

import { Context } from '@temporalio/activity';
import { ErrorType, isPolyglotError, PolyglotError } from '../common/errors';
import type { SyntheticRow } from '../generation/requests';
import type { LimiterRegistry } from '../llm/limiter';
import { DistinctAccumulator } from '../metrics/diversity';
import { prometheusTexts } from '../common/protocols';
import {
  judgeOutcome,
  judgeRequest,
  judgeSettings,
  LEGACY_JUDGE,
  readVerdict,
  type JudgeOutcome,
  type JudgeTemplate,
} from '../metrics/judge';
import { conformance, duplicateRate } from '../metrics/language';
import {
  inBatches,
  meanIgnoringNaN,
  paperBatchPerplexity,
  scoreItem,
  type PadSide,
  type ScoredItem,
  type ScoringEndpoint,
} from '../metrics/perplexity';
import { balancedSubsample, SUBSAMPLE_METHOD } from '../metrics/subsample';
import { digestOf } from '../common/hash';
import type { Provider } from '../spec/sweep';
import { keys } from '../storage/layout';
import { parseS3Uri, type S3Store, type StoreRegistry } from '../storage/s3';
import {
  getSealed,
  getVerified,
  mustBeIntact,
  parseJsonLines,
  putSealed,
  type Digest,
  type Repair,
} from '../storage/integrity';
import { runCheckpointed } from './checkpoint';
import type { TrustPolicy } from '../common/policy';
import { clientFor } from './provider';
import type { DatasetManifest, StorageRef } from './types';

/**
 * Intrinsic metrics of one dataset (docs/method.md, "Intrinsic metrics"), each its own cached S3 artifact keyed by the
 * dataset key and the metric's config: a finished metric is never recomputed, and per-item metrics
 * checkpoint part-files so a retry continues where it stopped.
 */

export interface SubsampleInput {
  storage: StorageRef;
  datasetKey: string;
  size: number;
  seed: number;
}

export interface MetricInput {
  storage: StorageRef;
  datasetKey: string;
  language: string;
  subsampleUri: string;
  /** Model and provider of the metric's endpoint (absent for local metrics). */
  model?: string;
  provider?: Provider;
  maxTokens?: number;
  /**
   * Judge template version (docs/method.md, "Rubric judge"). Absent only in runs begun before versions
   * were selectable: those keep the template they began with.
   */
  judgeTemplate?: JudgeTemplate;
  /** Perplexity's options (absent from inputs of earlier versions: per-item). */
  perplexity?: PerplexityOptions;
  checkpointEvery: number;
}

export interface PerplexityOptions {
  mode: 'per-item' | 'paper';
  batchSize: number;
  padSide: PadSide;
}

export interface MetricResult {
  metric: string;
  uri: string;
  values: Record<string, number>;
  cached: boolean;
  /** Size and digest of the stored result (absent when it was written before digests). */
  file?: Digest;
  /** Artifacts that failed their integrity check and were discarded (part-files, the result itself). */
  repaired?: Repair[];
}

export interface CombineInput {
  storage: StorageRef;
  datasetKey: string;
  metrics: MetricResult[];
  subsampleUri: string;
  workflowId: string;
  runId: string;
}

interface Subsample {
  datasetKey: string;
  size: number;
  seed: number;
  ids: string[];
  perStrategy: Record<string, number>;
  /** The sampling algorithm (absent in records written before it was named). */
  method?: string;
}

export interface SubsampleResult {
  uri: string;
  n: number;
  /** Size and SHA-256 of the stored record (absent from results of older histories). */
  file?: Digest;
  repaired?: Repair[];
}

export interface MetricsDeps {
  stores: StoreRegistry;
  limiters: LimiterRegistry;
  env: NodeJS.ProcessEnv;
  fetchImpl?: typeof fetch;
  policy?: TrustPolicy;
}

/** One judged item as its part-file stores it. */
interface JudgedItem {
  score: number | null;
  /** Absent in part-files written before outcomes were recorded. */
  outcome?: JudgeOutcome;
  finishReason?: string;
  /** The answer's first 2,000 characters. */
  feedback: string;
  /** Its last 200 characters, where it is longer. */
  tail?: string;
}

const isValues = (v: unknown) => typeof (v as { values?: unknown }).values === 'object';
const isSubsample = (v: unknown) => Array.isArray((v as Subsample).ids);

/** A subsample record, verified; damaged: a clear error (subsampleDataset, run first, recomputes it). */
async function readSubsample(store: S3Store, uri: string): Promise<Subsample | undefined> {
  return mustBeIntact(
    await getSealed<Subsample>(store, parseS3Uri(uri).key, isSubsample),
    uri,
    'resume the sweep: its metrics stage recomputes it',
  );
}

async function datasetRows(
  store: S3Store,
  storage: StorageRef,
  datasetKey: string,
): Promise<{ manifest: DatasetManifest; rows: SyntheticRow[] }> {
  const ds = keys.dataset(storage.prefix, datasetKey);
  const manifestKey = keys.datasetManifest(ds);
  // This stage cannot regenerate data: a damaged dataset fails clearly, and a resume of the sweep runs the
  // dataset stage first, which discards and rebuilds what failed (from part-files: no call when they hold).
  const fix = 'resume the sweep: its dataset stage rebuilds the damaged artifact';
  const manifest = mustBeIntact(
    await getSealed<DatasetManifest>(store, manifestKey, (v) => typeof (v as DatasetManifest).perStrategy === 'object'),
    store.uri(manifestKey),
    fix,
  );
  // Missing: not generated yet, or being repaired by another sweep's dataset stage (which removes the manifest
  // first and writes it last). Retryable: the repair finishes, or the retries run out with this message.
  if (!manifest)
    throw new PolyglotError(
      ErrorType.StorageError,
      `dataset ${store.uri(ds)} has no manifest (not generated yet, or being repaired by another run); retried`,
    );
  const rows: SyntheticRow[] = [];
  for (const s of Object.values(manifest.perStrategy)) {
    for (let i = 0; i < s.shards.length; i++) {
      const uri = s.shards[i]!;
      const got = await getVerified(store, parseS3Uri(uri).key, s.files?.[i]);
      if (got.state !== 'ok')
        throw new PolyglotError(
          ErrorType.CorruptArtifact,
          `${uri} is ${got.state === 'missing' ? 'missing' : `damaged (${got.reason})`}; ${fix}`,
        );
      rows.push(...parseJsonLines<SyntheticRow>(new TextDecoder().decode(got.value), uri));
    }
  }
  return { manifest, rows };
}

export function createMetricsActivities(deps: MetricsDeps) {
  /** The subsample's rows, in subsample order. */
  async function subsampleRows(input: MetricInput): Promise<SyntheticRow[]> {
    const store = deps.stores.for(input.storage.bucket);
    const sub = await readSubsample(store, input.subsampleUri);
    if (!sub) throw new PolyglotError(ErrorType.StorageError, `subsample ${input.subsampleUri} is missing`);
    const { rows } = await datasetRows(store, input.storage, input.datasetKey);
    const byId = new Map(rows.map((r) => [r.id, r]));
    return sub.ids.map((id) => {
      const r = byId.get(id);
      if (!r)
        throw new PolyglotError(ErrorType.StorageError, `subsample id ${id} is not in dataset ${input.datasetKey}`);
      return r;
    });
  }

  /** Return the stored result when present; else compute, store (whole object) and return it. */
  async function cached(
    input: MetricInput,
    metric: string,
    config: unknown,
    compute: (
      partsPrefix: string,
    ) => Promise<{ values: Record<string, number>; detail?: unknown; repaired?: Repair[] }>,
  ): Promise<MetricResult> {
    const store = deps.stores.for(input.storage.bucket);
    const digest = digestOf({ metric, config, subsample: input.subsampleUri }).slice(0, 16);
    const key = keys.metricResult(input.storage.prefix, input.datasetKey, metric, digest);
    const read = await getSealed<{ values: Record<string, number> }>(store, key, (v) => isValues(v));
    // A cached result's own digest too: the intrinsic record lists every result's size and digest.
    if (read.state === 'ok')
      return { metric, uri: store.uri(key), values: read.value.values, cached: true, file: read.file };
    const repaired: Repair[] = [];
    // A damaged result is recomputed alone; its part-files, if any, still hold (checked line by line).
    if (read.state === 'damaged') repaired.push({ key, reason: `metric result ${read.reason}; recomputed` });
    const parts = keys.metricParts(input.storage.prefix, input.datasetKey, metric, digest);
    const { values, detail, repaired: partRepairs } = await compute(parts);
    repaired.push(...(partRepairs ?? []));
    const file = await putSealed(store, key, {
      metric,
      config,
      datasetKey: input.datasetKey,
      subsample: input.subsampleUri,
      values,
      detail,
      createdAt: new Date().toISOString(),
    });
    return { metric, uri: store.uri(key), values, cached: false, file, repaired };
  }

  function endpoint(input: MetricInput) {
    if (!input.provider || !input.model)
      throw new PolyglotError(ErrorType.InvalidInput, 'metric needs a provider and a model');
    return { ...clientFor(deps, input.provider), model: input.model };
  }

  /** Run `process` over every subsample row, checkpointed in part-files (a retry resumes), heartbeating. */
  async function perSubsampleItem<O>(
    input: MetricInput,
    partsPrefix: string,
    process: (row: SyntheticRow) => Promise<O>,
  ): Promise<{ rows: SyntheticRow[]; outcomes: Map<string, O>; repaired: Repair[] }> {
    const rows = await subsampleRows(input);
    const { outcomes, repaired } = await runCheckpointed<SyntheticRow, O>({
      store: deps.stores.for(input.storage.bucket),
      partsPrefix,
      items: rows,
      idOf: (r) => r.id,
      checkpointEvery: input.checkpointEvery,
      progress: (done, total) => Context.current().heartbeat({ done, total }),
      process,
    });
    return { rows, outcomes, repaired };
  }

  /**
   * The balanced subsample's ids, stored once per dataset, size and seed; metrics and student training read the
   * same record. `file` is the stored bytes' size and SHA-256: a job that reads the file verifies it.
   */
  async function subsampleDataset(input: SubsampleInput): Promise<SubsampleResult> {
    const store = deps.stores.for(input.storage.bucket);
    const key = keys.subsample(input.storage.prefix, input.datasetKey, SUBSAMPLE_METHOD, input.size, input.seed);
    const read = await getSealed<Subsample>(store, key, isSubsample);
    if (read.state === 'ok') return { uri: store.uri(key), n: read.value.ids.length, file: read.file };
    // The subsample is a pure function of the dataset, size and seed: a damaged one is recomputed as it was.
    const repaired: Repair[] =
      read.state === 'damaged' ? [{ key, reason: `subsample ${read.reason}; recomputed` }] : [];
    const { rows } = await datasetRows(store, input.storage, input.datasetKey);
    const order: string[] = [];
    const byStrategy = new Map<string, string[]>();
    for (const r of rows) {
      if (!byStrategy.has(r.strategy)) {
        order.push(r.strategy);
        byStrategy.set(r.strategy, []);
      }
      byStrategy.get(r.strategy)!.push(r.id);
    }
    const chosen = balancedSubsample(
      order.map((strategy) => ({ strategy, ids: byStrategy.get(strategy)! })),
      input.size,
      input.seed,
    );
    const sub: Subsample = {
      datasetKey: input.datasetKey,
      size: input.size,
      seed: input.seed,
      ids: order.flatMap((s) => chosen.get(s) ?? []),
      perStrategy: Object.fromEntries(order.map((s) => [s, chosen.get(s)?.length ?? 0])),
      method: SUBSAMPLE_METHOD,
    };
    const file = await putSealed(store, key, sub);
    return { uri: store.uri(key), n: sub.ids.length, file, repaired };
  }

  async function measureDiversity(input: MetricInput): Promise<MetricResult> {
    return cached(input, 'diversity', { model: input.model, provider: input.provider?.id }, async () => {
      const { client, limiter, model } = endpoint(input);
      const rows = await subsampleRows(input);
      const prompts = new DistinctAccumulator();
      const responses = new DistinctAccumulator();
      const embed = (texts: string[]) =>
        limiter.run(
          () => client.embed(model, texts, Context.current().cancellationSignal),
          () => 0,
        );
      const batch = 32;
      for (let i = 0; i < rows.length; i += batch) {
        const part = rows.slice(i, i + batch);
        const [p, r] = await Promise.all([embed(part.map((x) => x.prompt)), embed(part.map((x) => x.response))]);
        prompts.add(p);
        responses.add(r);
        Context.current().heartbeat({ done: i + part.length, total: rows.length });
      }
      return {
        values: { prompts_distinct_ri: prompts.value(), responses_distinct_ri: responses.value(), n: rows.length },
      };
    });
  }

  async function measureJudge(input: MetricInput): Promise<MetricResult> {
    const maxTokens = input.maxTokens ?? LEGACY_JUDGE.maxTokens;
    const template = input.judgeTemplate ?? LEGACY_JUDGE.template;
    // Read before anything else: a worker without the rendered texts fails at once, naming the fix.
    const texts = template === 'rubric-v2' ? undefined : prometheusTexts(deps.env);
    return cached(
      input,
      'judge',
      // rubric-v2's settings are what they were before versions, so its stored results stay found.
      { model: input.model, provider: input.provider?.id, ...judgeSettings(template, texts), maxTokens },
      async (parts) => {
        const { client, limiter, model } = endpoint(input);
        const { rows, outcomes, repaired } = await perSubsampleItem(input, parts, async (r): Promise<JudgedItem> => {
          const req = judgeRequest(
            template,
            { model, language: input.language, prompt: r.prompt, response: r.response, maxTokens },
            texts,
          );
          const res = await limiter.run(
            () => client.chat(req, Context.current().cancellationSignal),
            (x) => x.promptTokens + x.completionTokens,
          );
          const score = readVerdict(template, res.content);
          return {
            score: score ?? null,
            outcome: judgeOutcome(score, res.finishReason),
            finishReason: res.finishReason,
            feedback: res.content.slice(0, 2000),
            // The verdict ends the answer: a long answer keeps its end too, so the score can be checked.
            ...(res.content.length > 2000 ? { tail: res.content.slice(-200) } : {}),
          };
        });
        const items = rows.map((r) => outcomes.get(r.id)!);
        const scores = items.map((o) => o.score);
        const parsed = scores.filter((s): s is number => s !== null);
        // Part-files written before outcomes were recorded hold a score only: unread counts as unparsed.
        const count = (k: JudgeOutcome) =>
          items.filter((o) => (o.outcome ?? (o.score === null ? 'unparsed' : 'scored')) === k).length;
        return {
          values: {
            // Faithful: unreadable judgements score 1, whether cut by the length limit or not.
            average_rubric_score: scores.reduce<number>((a, s) => a + (s ?? 1), 0) / Math.max(1, scores.length),
            rubric_mean_parsed_only: parsed.length ? parsed.reduce((a, b) => a + b, 0) / parsed.length : NaN,
            rubric_parse_failures: scores.length - parsed.length,
            rubric_truncated: count('truncated'),
            rubric_unparsed: count('unparsed'),
          },
          detail: rows.map((r) => ({ id: r.id, ...outcomes.get(r.id)! })),
          repaired,
        };
      },
    );
  }

  async function measurePerplexity(input: MetricInput): Promise<MetricResult> {
    const opts: PerplexityOptions = input.perplexity ?? { mode: 'per-item', batchSize: 8, padSide: 'left' };
    const paper = opts.mode === 'paper';
    // The boundary now comes from the echo's own length (a leading BOS is detected, not assumed absent), so the
    // config says so: results of the earlier prompt-count boundary keep their own keys.
    const config = {
      model: input.model,
      provider: input.provider?.id,
      mode: opts.mode,
      boundary: 'echo-minus-tokenize',
      ...(paper ? { batchSize: opts.batchSize, padSide: opts.padSide } : {}),
    };
    return cached(input, 'perplexity', config, async (parts) => {
      const { client, limiter, model } = endpoint(input);
      const signal = () => Context.current().cancellationSignal;
      const server: ScoringEndpoint = {
        countTokens: (text) =>
          limiter.run(
            () => client.countTokens(model, text, signal()),
            () => 0,
          ),
        promptLogprobs: async (text) =>
          (
            await limiter.run(
              () => client.promptLogprobs(model, text, signal()),
              () => 0,
            )
          ).logprobs,
      };
      const { rows, outcomes, repaired } = await perSubsampleItem(
        input,
        parts,
        async (r): Promise<{ ppl: number | null; boundary?: number; logprobs?: (number | null)[] }> => {
          let item: ScoredItem;
          try {
            item = await scoreItem(server, r.prompt, r.response);
          } catch (e) {
            if (isPolyglotError(e)) throw e;
            throw new PolyglotError(ErrorType.LlmBadResponse, `perplexity of item ${r.id}: ${(e as Error).message}`);
          }
          const { ppl, boundary, logprobs } = item;
          // Paper mode needs every echoed logprob later (left padding can expose prompt tokens to the loss).
          return { ppl: Number.isFinite(ppl) ? ppl : null, ...(paper ? { boundary, logprobs } : {}) };
        },
      );
      const perItem = rows.map((r) => outcomes.get(r.id)!.ppl ?? NaN);
      const values: Record<string, number> = {
        average_perplexity: meanIgnoringNaN(perItem),
        average_perplexity_per_item: meanIgnoringNaN(perItem),
        perplexity_items: perItem.filter(Number.isFinite).length,
        perplexity_paper_mode: paper ? 1 : 0,
      };
      let paperValues: number[] | undefined;
      if (paper) {
        paperValues = [];
        let unscored = 0;
        for (const batch of inBatches(rows, opts.batchSize)) {
          const items = batch.map((r) => {
            const o = outcomes.get(r.id)!;
            if (!o.logprobs || o.boundary === undefined)
              throw new PolyglotError(ErrorType.CorruptArtifact, `perplexity part-file for ${r.id} lacks its logprobs`);
            return { logprobs: o.logprobs, boundary: o.boundary };
          });
          const b = paperBatchPerplexity(items, opts.padSide);
          unscored += b.unscored;
          paperValues.push(...batch.map(() => b.perplexity));
        }
        values.average_perplexity_paper = meanIgnoringNaN(paperValues);
        values.perplexity_paper_unscored_labels = unscored;
        values.average_perplexity = values.average_perplexity_paper;
      }
      return {
        values,
        detail: rows.map((r, i) => ({ id: r.id, ppl: perItem[i], ...(paperValues ? { paper: paperValues[i] } : {}) })),
        repaired,
      };
    });
  }

  async function measureLengths(input: MetricInput): Promise<MetricResult> {
    return cached(input, 'lengths', { model: input.model, provider: input.provider?.id }, async (parts) => {
      const { client, limiter, model } = endpoint(input);
      const signal = () => Context.current().cancellationSignal;
      const count = (text: string) =>
        limiter.run(
          () => client.countTokens(model, text, signal()),
          () => 0,
        );
      const { rows, outcomes, repaired } = await perSubsampleItem(input, parts, async (r) => ({
        p: await count(r.prompt),
        r: await count(r.response),
      }));
      const all = rows.map((r) => outcomes.get(r.id)!);
      return {
        values: {
          prompts_average_length: all.reduce((a, x) => a + x.p, 0) / Math.max(1, all.length),
          responses_average_length: all.reduce((a, x) => a + x.r, 0) / Math.max(1, all.length),
        },
        repaired,
      };
    });
  }

  async function measureLanguage(input: MetricInput): Promise<MetricResult> {
    return cached(input, 'language', { detector: 'fasttext-lid.176', target: input.language }, async () => {
      const rows = await subsampleRows(input);
      return {
        values: {
          prompts_language_conformance: await conformance(
            rows.map((r) => r.prompt),
            input.language,
          ),
          responses_language_conformance: await conformance(
            rows.map((r) => r.response),
            input.language,
          ),
          duplicate_rate: duplicateRate(rows),
        },
      };
    });
  }

  async function combineIntrinsic(
    input: CombineInput,
  ): Promise<{ uri: string; values: Record<string, number>; repaired?: Repair[] }> {
    const store = deps.stores.for(input.storage.bucket);
    const values: Record<string, number> = {};
    for (const m of input.metrics) Object.assign(values, m.values);
    const sub = await readSubsample(store, input.subsampleUri);
    values.subsample_size = sub?.ids.length ?? NaN;
    // How many teacher answers the length limit cut (docs/method.md, "Generation strategies"): shown beside the
    // metrics, since a cut answer is either dropped (JSON) or kept unfinished (respond), and both bias them.
    const manifest = await getSealed<DatasetManifest>(
      store,
      keys.datasetManifest(keys.dataset(input.storage.prefix, input.datasetKey)),
      (v) => typeof (v as DatasetManifest).perStrategy === 'object',
    );
    if (manifest.state === 'ok' && manifest.value.truncated !== undefined) {
      values.generation_truncated = manifest.value.truncated;
      values.generation_truncated_dropped = manifest.value.truncatedDropped ?? NaN;
    }
    const key = keys.intrinsic(
      input.storage.prefix,
      input.datasetKey,
      input.metrics.map((m) => m.uri),
    );
    const read = await getSealed(store, key, (v) => typeof (v as { intrinsic?: unknown }).intrinsic === 'object');
    const repaired: Repair[] =
      read.state === 'damaged' ? [{ key, reason: `intrinsic record ${read.reason}; rewritten` }] : [];
    if (read.state !== 'ok') {
      // Sealed, and it records each metric result's size and digest (when the result was written with one).
      await putSealed(store, key, {
        datasetKey: input.datasetKey,
        intrinsic: values,
        metrics: input.metrics.map((m) => ({ metric: m.metric, uri: m.uri, ...m.file })),
        subsample: input.subsampleUri,
        createdBy: { workflowId: input.workflowId, runId: input.runId },
        createdAt: new Date().toISOString(),
      });
    }
    return { uri: store.uri(key), values, repaired };
  }

  return {
    subsampleDataset,
    measureDiversity,
    measureJudge,
    measurePerplexity,
    measureLengths,
    measureLanguage,
    combineIntrinsic,
  };
}

/**
 * The metric registry (src/metrics/registry.ts, docs/extending-metrics.md): one declaration per metric, and the
 * spec, activities, workers, workflow and intrinsic record all agree with it. The activity types, order, queues
 * and inputs are pinned to what workflow histories already hold.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { createMetricsActivities, type MetricsDeps } from '../../src/activities/metrics';
import type { SyntheticRow } from '../../src/generation/requests';
import { COMPUTE, type ComputeRegistry, type Computed, type MetricContext } from '../../src/activities/measure';
import {
  allOutputs,
  configOf,
  CORE_INTRINSIC,
  EXTRA_INTRINSIC,
  metricActivities,
  metricCalls,
  metricProviders,
  METRICS,
  metricSpecShape,
  recordFields,
  type MetricDefinition,
} from '../../src/metrics/registry';
import { PCA_FEATURES } from '../../src/scoring/analyses';
import { MetricsSchema, parseSweepSpec, type Provider } from '../../src/spec/sweep';
import { computeToyChars, toyChars } from '../fixtures/toy-metric';

const ROOT = path.resolve(__dirname, '../../..');
const LIB = path.join(ROOT, 'lib');

/** Every export of the compiled modules of folder `dir` (from the root). */
function definitionsIn(dir: string): { file: string; value: unknown }[] {
  return fs
    .readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const mod = require(path.join(LIB, dir, f.replace(/\.ts$/, '.js'))) as Record<string, unknown>;
      return Object.values(mod).map((value) => ({ file: `${dir}/${f}`, value }));
    });
}

const endpoint = { concurrency: 4, pricePerMTok: { input: 0, output: 0 }, timeoutSeconds: 60 };
const PROVIDERS: Provider[] = [
  { id: 'local', baseUrl: 'http://127.0.0.1:8000/v1', ...endpoint },
  { id: 'judge-host', baseUrl: 'http://127.0.0.1:8001/v1', ...endpoint },
];

const ALL_ON = {
  embeddings: { provider: 'local', model: 'e5' },
  judge: { provider: 'judge-host', model: 'prometheus', template: 'rubric-v2' as const, maxTokens: 512 },
  perplexity: { provider: 'local', model: 'gemma', mode: 'paper' as const, batchSize: 4, padSide: 'right' as const },
  tokenizer: { provider: 'local', model: 'gemma' },
};

const BASE = {
  storage: { bucket: 'b', prefix: 'p' },
  datasetKey: 'ds',
  language: 'de',
  subsampleUri: 's3://b/p/sub.json',
  checkpointEvery: 20,
};

describe('metric registry', () => {
  it('registers every definition under src/metrics/defs, and nothing else', () => {
    const declared = definitionsIn('src/metrics/defs');
    assert.ok(declared.length >= 5, 'the definitions are found');
    for (const d of declared) {
      assert.ok(
        (METRICS as readonly unknown[]).includes(d.value),
        `${d.file} exports a definition METRICS (src/metrics/registry.ts) does not list`,
      );
    }
    for (const m of METRICS) {
      assert.ok(
        declared.some((d) => d.value === m),
        `${m.name} is not declared in src/metrics/defs`,
      );
    }
  });

  it('has one compute function per metric, each from its own src/activities/measure file', () => {
    assert.deepEqual(Object.keys(COMPUTE).sort(), METRICS.map((m) => m.name).sort());
    const computes = definitionsIn('src/activities/measure').filter((d) => typeof d.value === 'function');
    for (const fn of Object.values(COMPUTE)) assert.ok(computes.some((c) => c.value === fn));
    for (const c of computes) assert.ok(Object.values(COMPUTE).includes(c.value as never), `${c.file} not in COMPUTE`);
  });

  it('keeps names, spec keys, activity types and output names unique', () => {
    for (const key of ['name', 'specKey', 'activity'] as const) {
      const values = METRICS.map((m) => m[key]);
      assert.equal(new Set(values).size, values.length, `${key}s repeat: ${values.join(', ')}`);
    }
    // combineIntrinsic merges every metric's values into one record: two writers of a name would collide.
    const outputs = allOutputs(METRICS).map((o) => o.name);
    assert.equal(new Set(outputs).size, outputs.length, `outputs repeat: ${outputs.join(', ')}`);
  });

  it("keeps the activity types, order and queues that running workflows' histories hold", () => {
    assert.deepEqual(
      METRICS.map((m) => [m.specKey, m.name, m.activity, m.queue]),
      [
        ['embeddings', 'diversity', 'measureDiversity', 'provider'],
        ['judge', 'judge', 'measureJudge', 'provider'],
        ['perplexity', 'perplexity', 'measurePerplexity', 'provider'],
        ['tokenizer', 'lengths', 'measureLengths', 'provider'],
        ['languageId', 'language', 'measureLanguage', 'main'],
      ],
    );
  });

  it('schedules the same activities with the same inputs as the hand-written workflow did', () => {
    const spec = MetricsSchema.parse(ALL_ON);
    const [local, judgeHost] = PROVIDERS;
    // What src/workflows/metrics.ts built before the registry, field for field and in this order.
    const before = [
      { activity: 'measureDiversity', providerId: 'local', input: { ...BASE, model: 'e5', provider: local } },
      {
        activity: 'measureJudge',
        providerId: 'judge-host',
        input: { ...BASE, model: 'prometheus', provider: judgeHost, maxTokens: 512, judgeTemplate: 'rubric-v2' },
      },
      {
        activity: 'measurePerplexity',
        providerId: 'local',
        input: {
          ...BASE,
          model: 'gemma',
          provider: local,
          perplexity: { mode: 'paper', batchSize: 4, padSide: 'right' },
        },
      },
      { activity: 'measureLengths', providerId: 'local', input: { ...BASE, model: 'gemma', provider: local } },
      { activity: 'measureLanguage', input: BASE },
    ];
    const calls = metricCalls(spec, BASE, PROVIDERS);
    assert.deepEqual(calls, before);
    // Payloads are JSON: the same keys in the same order give the same bytes in the history.
    assert.deepEqual(
      calls.map((c) => JSON.stringify(c.input)),
      before.map((c) => JSON.stringify(c.input)),
    );
    // A judge spec'd before template versions (withJudgeAsBegun) has no template: the input has none either.
    const { template: _t, ...legacyJudge } = spec.judge!;
    const legacy = metricCalls({ ...spec, judge: legacyJudge }, BASE, PROVIDERS);
    assert.equal(JSON.stringify(legacy[1]!.input), JSON.stringify({ ...before[1]!.input, judgeTemplate: undefined }));
  });

  it('turns a metric off when its entry is absent, and a local one when its switch is off', () => {
    const language = METRICS.find((m) => m.queue === 'main')!;
    assert.equal(configOf(language, {}), undefined, 'absent: off, whatever the default');
    assert.equal(configOf(language, { languageId: false }), undefined);
    assert.equal(configOf(language, { languageId: true }), true);
    assert.deepEqual(metricCalls(MetricsSchema.parse({ languageId: false }), BASE, PROVIDERS), []);
    assert.deepEqual(
      metricCalls(MetricsSchema.parse({}), BASE, PROVIDERS).map((c) => c.activity),
      ['measureLanguage'],
      'by default only the local metric runs',
    );
    assert.deepEqual(metricProviders(MetricsSchema.parse(ALL_ON)), ['local', 'judge-host', 'local', 'local']);
  });

  it("assembles the spec's metrics block from the registry, with the same shape and defaults", () => {
    assert.deepEqual(Object.keys(MetricsSchema.shape), [
      'subsampleSize',
      'subsampleSeed',
      ...METRICS.map((m) => m.specKey),
      'checkpointEvery',
    ]);
    assert.deepEqual(MetricsSchema.parse({}), {
      subsampleSize: 10_000,
      subsampleSeed: 42,
      languageId: true,
      checkpointEvery: 20,
    });
    assert.deepEqual(Object.keys(MetricsSchema.parse(ALL_ON)), [
      'subsampleSize',
      'subsampleSeed',
      'embeddings',
      'judge',
      'perplexity',
      'tokenizer',
      'languageId',
      'checkpointEvery',
    ]);
    assert.throws(() => MetricsSchema.parse({ embeddings: { provider: 'local', model: 'e5', extra: 1 } }));
  });

  it('checks the provider of every model-backed metric in a spec', () => {
    const spec = {
      storage: { bucket: 'polyglot-test', prefix: 'polyglot' },
      providers: [{ id: 'local', baseUrl: 'http://127.0.0.1:8000/v1' }],
      teachers: [{ id: 'smol', provider: 'local', model: 'smollm2-135m' }],
      languages: ['de'],
      strategies: { generate: { count: 10 } },
      seedPool: `s3://polyglot-test/polyglot/seeds/sha256-${'a'.repeat(64)}`,
      metrics: Object.fromEntries(
        METRICS.filter((m) => m.queue === 'provider').map((m) => [m.specKey, { provider: 'nowhere', model: 'x' }]),
      ),
    };
    const problems = (() => {
      try {
        parseSweepSpec(spec);
        return [];
      } catch (e) {
        return (e as { problems: string[] }).problems;
      }
    })();
    for (const m of METRICS.filter((d) => d.queue === 'provider'))
      assert.ok(
        problems.some((p) => p.startsWith(`metrics.${m.specKey}.provider: unknown provider "nowhere"`)),
        `${m.specKey}: ${problems.join('; ')}`,
      );
  });

  it('creates one activity per metric; the LLM workers take the provider ones, the main worker the rest', () => {
    const deps = { stores: undefined, limiters: undefined, env: {} } as unknown as MetricsDeps;
    const activities = createMetricsActivities(deps);
    for (const m of METRICS) assert.equal(typeof (activities as Record<string, unknown>)[m.activity], 'function');
    assert.deepEqual(metricActivities('provider'), [
      'measureDiversity',
      'measureJudge',
      'measurePerplexity',
      'measureLengths',
    ]);
    assert.deepEqual(metricActivities('main'), ['measureLanguage']);
  });

  it("derives the intrinsic record's columns: the paper's six core, then the extras", () => {
    assert.deepEqual(
      [...CORE_INTRINSIC],
      [
        'prompts_distinct_ri',
        'responses_distinct_ri',
        'average_rubric_score',
        'average_perplexity',
        'prompts_average_length',
        'responses_average_length',
      ],
    );
    assert.deepEqual([...CORE_INTRINSIC].sort(), [...PCA_FEATURES].sort());
    assert.deepEqual(
      [...EXTRA_INTRINSIC],
      [
        'rubric_parse_failures',
        'rubric_truncated',
        'rubric_unparsed',
        'rubric_mean_parsed_only',
        'prompts_language_conformance',
        'responses_language_conformance',
        'duplicate_rate',
        'subsample_size',
      ],
    );
  });

  describe('a toy metric declared in one file (test/fixtures/toy-metric.ts)', () => {
    const defs: readonly MetricDefinition[] = [...METRICS, toyChars];

    it('gets a spec entry with its defaults, off when absent', () => {
      const schema = z.strictObject(metricSpecShape(defs));
      const parsed = schema.parse({ toyChars: { provider: 'local', model: 'tiny' } });
      assert.deepEqual(parsed.toyChars, { provider: 'local', model: 'tiny', maxTokens: 7 });
      assert.equal(schema.parse({}).toyChars, undefined);
      assert.throws(() => schema.parse({ toyChars: { provider: 'local' } }), 'a provider metric needs its model');
    });

    it('is scheduled last, on its provider queue, with its own input fields', () => {
      const metrics = { languageId: true, toyChars: { provider: 'judge-host', model: 'tiny', maxTokens: 3 } };
      assert.deepEqual(metricCalls(metrics, BASE, PROVIDERS, defs), [
        { activity: 'measureLanguage', input: BASE },
        {
          activity: 'measureToyChars',
          providerId: 'judge-host',
          input: { ...BASE, model: 'tiny', provider: PROVIDERS[1], maxTokens: 3 },
        },
      ]);
      assert.deepEqual(metricProviders(metrics, defs), ['judge-host']);
      assert.ok(metricActivities('provider', defs).includes('measureToyChars'));
      assert.ok(!metricActivities('main', defs).includes('measureToyChars'));
    });

    it('adds its extra output to the record columns', () => {
      assert.deepEqual(recordFields(defs, 'extra').slice(-1), ['toy_average_chars']);
      assert.deepEqual(recordFields(defs, 'core'), [...CORE_INTRINSIC]);
      assert.ok(allOutputs(defs).some((o) => o.name === 'toy_items'));
    });

    it('computes through its context', async () => {
      const rows = [{ response: 'abcd' }, { response: 'ab' }] as SyntheticRow[];
      let config: unknown;
      const ctx = {
        input: { ...BASE, model: 'tiny', maxTokens: 3 },
        subsampleRows: () => Promise.resolve(rows),
        cached: async (c: unknown, compute: (parts: string) => Promise<Computed<typeof toyChars>>) => {
          config = c;
          const { values } = await compute('parts/');
          return {
            metric: toyChars.name,
            uri: 's3://b/p/toy.json',
            values: values as Record<string, number>,
            cached: false,
          };
        },
      } as unknown as MetricContext<typeof toyChars>;
      const result = await computeToyChars(ctx);
      assert.deepEqual(result.values, { toy_average_chars: 3, toy_items: 2 });
      assert.deepEqual(config, { model: 'tiny', maxTokens: 3 });
    });
  });

  it('is checked by the compiler: a missing compute function or an undeclared output does not compile', () => {
    // These lines compile only while they are errors (@ts-expect-error): the build proves both checks.
    const { judge: _judge, ...withoutJudge } = COMPUTE;
    // @ts-expect-error a registry without the judge's compute function lacks the property 'judge'
    const incomplete: ComputeRegistry = withoutJudge;
    // @ts-expect-error the toy metric declares no output 'toy_words'
    const undeclared: Computed<typeof toyChars> = { values: { toy_average_chars: 1, toy_words: 2 } };
    // @ts-expect-error a provider metric's schema must describe `{ provider, model }`
    const noEndpoint: MetricDefinition = { ...toyChars, schema: z.strictObject({ words: z.int() }) };
    assert.ok(incomplete && undeclared && noEndpoint);
  });
});

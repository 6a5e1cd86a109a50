import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { duplicateJsonKeys, readSpecFile } from '../../src/cli/spec-file';
import { cliMessage, renderGrid } from '../../src/cli/sweep';
import { InvalidSpecError, SPEC_LIMITS, parseSweepSpec, type SweepSpecInput } from '../../src/spec/sweep';
import { deriveSweepId, planSweep, diffManifests, fidelityWarnings } from '../../src/spec/plan';

const POOL = `s3://polyglot-test/polyglot/seeds/sha256-${'a'.repeat(64)}`;

function valid(): SweepSpecInput {
  return {
    storage: { bucket: 'polyglot-test', prefix: 'polyglot' },
    providers: [
      { id: 'local', baseUrl: 'http://127.0.0.1:8000/v1' },
      { id: 'openai', baseUrl: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_API_KEY' },
    ],
    teachers: [
      { id: 'smol', provider: 'local', model: 'smollm2-135m' },
      { id: 'gpt4o-mini', provider: 'openai', model: 'gpt-4o-mini-2024-07-18' },
    ],
    languages: ['de', 'es'],
    strategies: { generate: { count: 10 }, translate: { count: 10 }, respond: { count: 5 } },
    seedPool: POOL,
  };
}

// Bad specs are built by mutating a valid one in ways the type system would (rightly) forbid.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

function problemsOf(mutate: (s: Doc) => void): string[] {
  const spec = structuredClone(valid()) as Doc;
  mutate(spec);
  try {
    parseSweepSpec(spec);
  } catch (e) {
    assert.ok(e instanceof InvalidSpecError, `expected InvalidSpecError, got ${String(e)}`);
    return e.problems;
  }
  assert.fail('spec was accepted');
}

/** Each bad spec, and the message (path + fix) a user must see. */
const BAD: [string, (s: Doc) => void, RegExp][] = [
  [
    'unknown provider',
    (s) => (s.teachers[1].provider = 'x'),
    /^teachers\[1\]\.provider: unknown provider "x"; known: local, openai$/,
  ],
  [
    'duplicate teacher',
    (s) => (s.teachers[1].id = 'smol'),
    /^teachers\[1\]\.id: duplicate id "smol" \(also teachers\[0\]\)/,
  ],
  [
    'unknown language with a hint',
    (s) => (s.languages = ['de', 'ge']),
    /^languages\[1\]: unknown language code "ge".*did you mean "de"\?/,
  ],
  ['duplicate language', (s) => (s.languages = ['de', 'de']), /^languages\[1\]: "de" is listed twice/],
  ['negative count', (s) => (s.strategies.generate.count = -1), /^strategies\.generate\.count: .*>=0/],
  [
    'no strategy',
    (s) => (s.strategies = { generate: { count: 0 } }),
    /^strategies: needs at least one of generate, translate, respond/,
  ],
  ['unknown strategy', (s) => (s.strategies.summarize = { count: 3 }), /^strategies: unknown field\(s\) "summarize"/],
  ['typo in a field', (s) => (s.teachers[0].modle = 'x'), /^teachers\[0\]: unknown field\(s\) "modle"/],
  [
    'secret instead of env name',
    (s) => (s.providers[1].apiKeyEnv = 'sk-abc123'),
    /^providers\[1\]\.apiKeyEnv: looks like a secret value/,
  ],
  [
    'bad base URL',
    (s) => (s.providers[0].baseUrl = 'localhost:8000'),
    /^providers\[0\]\.baseUrl: must be an http\(s\) URL/,
  ],
  // A rate so low that a shard outlasts its timeouts (1e-9 once overflowed the limiter's timer into a busy loop).
  [
    'requests per minute below 1',
    (s) => (s.providers[0].requestsPerMinute = 1e-9),
    /^providers\[0\]\.requestsPerMinute: must be at least 1 request per minute .*leave it out for no limit/,
  ],
  [
    'tokens per minute below one request',
    (s) => (s.providers[1].tokensPerMinute = 10),
    /^providers\[1\]\.tokensPerMinute: must be at least 1000 tokens per minute/,
  ],
  [
    'infinite request rate',
    (s) => (s.providers[0].requestsPerMinute = Infinity),
    /^providers\[0\]\.requestsPerMinute: /,
  ],
  ['S3-unsafe teacher id', (s) => (s.teachers[0].id = '../etc'), /^teachers\[0\]\.id: must be 1-63 characters/],
  [
    'path traversal in prefix',
    (s) => (s.storage.prefix = 'a/../b'),
    /^storage\.prefix: must not contain '\.' or '\.\.' segments/,
  ],
  ['bad bucket', (s) => (s.storage.bucket = 'Bad_Bucket'), /^storage\.bucket: must be a valid S3 bucket name/],
  [
    'temperature out of range',
    (s) => (s.teachers[0].sampling = { temperature: 5 }),
    /^teachers\[0\]\.sampling\.temperature: .*<=2/,
  ],
  [
    'seed pool not a URI',
    (s) => (s.seedPool = 'seeds.jsonl'),
    /^seedPool: must be the S3 URI printed by `polyglot seeds import`/,
  ],
  ['no teachers', (s) => (s.teachers = []), /^teachers: needs at least one teacher/],
  ['missing storage', (s) => delete s.storage, /^storage: /],
  [
    'checkpoint larger than shard',
    (s) => Object.assign(s, { shardSize: 5, checkpointEvery: 10 }),
    /^checkpointEvery: 10 is larger than shardSize 5/,
  ],
  ['negative budget', (s) => (s.budget = { maxCostUsd: -3 }), /^budget\.maxCostUsd: /],
  ['count is a string', (s) => (s.strategies.respond.count = '5'), /^strategies\.respond\.count: .*expected number/],
  [
    'seed pool in another bucket',
    (s) => (s.seedPool = POOL.replace('polyglot-test', 'other-bucket')),
    /^seedPool: bucket "other-bucket" differs from storage\.bucket/,
  ],
  // The student side (issue #5): jobs, models, anchors and hyper-parameters.
  [
    'students without evaluation',
    (s) => withStudents(s, (x) => delete x.evaluation),
    /^evaluation: required when students/,
  ],
  [
    'student model is a local path in a workflow input',
    (s) => withStudents(s, (x) => (x.students[0].model = './models/olmo')),
    /^students\[0\]\.model: is a local path: start the sweep from a spec file/,
  ],
  [
    'student model with spaces',
    (s) => withStudents(s, (x) => (x.students[0].model = 'allenai/Olmo 3')),
    /^students\[0\]\.model: must not contain spaces/,
  ],
  [
    'student language not in the sweep',
    (s) => withStudents(s, (x) => (x.students[0].languages = ['ja'])),
    /^students\[0\]\.languages\[0\]: "ja" is not one of the sweep's languages/,
  ],
  [
    'two anchor pairs for one family',
    (s) =>
      withStudents(s, (x) =>
        x.students.push({ id: 'olmo-b', family: 'olmo', model: 'a/b', anchors: { base: 'x/y', reference: 'x/z' } }),
      ),
    /^students\[1\]\.anchors: family "olmo" already has other anchors/,
  ],
  [
    'typo in a training hyper-parameter',
    (s) => withStudents(s, (x) => (x.training.hyper = { maxStep: 3 })),
    /^training\.hyper: unknown field\(s\) "maxStep"/,
  ],
  [
    'unknown training method',
    (s) => withStudents(s, (x) => (x.training.hyper = { method: 'dora' })),
    /^training\.hyper\.method: /,
  ],
  [
    'negative learning rate',
    (s) => withStudents(s, (x) => (x.training.hyper = { learningRate: -1 })),
    /^training\.hyper\.learningRate: /,
  ],
  ['unknown evaluation suite', (s) => withStudents(s, (x) => (x.evaluation.suite = 'pg-v9')), /^evaluation\.suite: /],
  [
    // Kueue reads the queue from a label: a name that is no label value used to pass here and fail in runJob,
    // after the sweep had generated the dataset.
    'a queue name that is no Kubernetes label value',
    (s) => withStudents(s, (x) => (x.training.queueName = 'GPU Queue')),
    /^training\.queueName: must be a Kubernetes label value \(Kueue reads it from the label kueue\.x-k8s\.io\/queue-name\): .*e\.g\. gpu-queue$/,
  ],
  [
    'a job deadline under the minimum',
    (s) => withStudents(s, (x) => (x.evaluation.activeDeadlineSeconds = 59)),
    /^evaluation\.activeDeadlineSeconds: must be at least 60 seconds: .*86400 = 24 h/,
  ],
  [
    'benchmark data not in S3',
    (s) => withStudents(s, (x) => (x.evaluation.dataUri = 'https://huggingface.co/datasets/x')),
    /^evaluation\.dataUri: must be an s3:\/\/ prefix/,
  ],
];

/** A valid student side (one OLMo student, paper anchors), then the case's change. */
function withStudents(s: Doc, change: (s: Doc) => void): void {
  const job = { runner: 'kubernetes', image: 'ghcr.io/x/trainer:1', command: ['polyglot-train'] };
  s.students = [
    {
      id: 'olmo',
      family: 'olmo',
      model: 'allenai/Olmo-3-1025-7B',
      anchors: { base: 'allenai/Olmo-3-1025-7B', reference: 'allenai/Olmo-3-7B-Instruct-SFT' },
    },
  ];
  s.training = { ...job };
  s.evaluation = { ...job, command: ['polyglot-eval'], dataUri: 's3://polyglot-test/benchmarks/' };
  change(s);
}

describe('sweep spec validation', () => {
  it('accepts a valid spec and fills defaults', () => {
    const spec = parseSweepSpec(valid());
    assert.equal(spec.shardSize, 50);
    assert.equal(spec.seed, 921);
    assert.equal(spec.teachers[0]!.sampling.temperature, 0.8);
    assert.equal(spec.providers[0]!.concurrency, 4);
  });

  it('accepts a student side and leaves unset hyper-parameters to the trainer (the paper defaults)', () => {
    const doc = structuredClone(valid()) as Doc;
    withStudents(doc, () => undefined);
    const spec = parseSweepSpec(doc);
    assert.deepEqual(spec.training!.hyper, {});
    assert.equal(spec.evaluation!.suite, 'lighteval-v1');
    assert.equal(spec.evaluation!.temperature, 0.6);
    assert.equal(spec.evaluation!.maxNewTokens, 50);
  });

  for (const [name, mutate, expected] of BAD) {
    it(`rejects: ${name}`, () => {
      const problems = problemsOf(mutate);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected a problem matching ${expected}, got:\n${problems.join('\n')}`,
      );
    });
  }

  it('reports every problem at once, not just the first', () => {
    const problems = problemsOf((s) => {
      s.teachers[0].provider = 'nope';
      s.languages = ['xx'];
    });
    assert.equal(problems.length, 2);
  });

  it('reports schema and cross-field problems in one report (five problems, one round)', () => {
    const problems = problemsOf((s) => {
      s.providers[0].concurrency = 0; // schema
      s.teachers[0].modle = 'typo'; // schema: unknown field
      s.teachers[1].provider = 'nope'; // cross-field
      s.languages = ['de', 'ge']; // cross-field
      s.checkpointEvery = 20; // cross-field, with the shardSize below
      s.shardSize = 5;
    });
    assert.equal(problems.length, 5, problems.join('\n'));
    assert.match(problems.join('\n'), /providers\[0\]\.concurrency: /);
    assert.match(problems.join('\n'), /teachers\[0\]: unknown field\(s\) "modle"/);
    assert.match(problems.join('\n'), /teachers\[1\]\.provider: unknown provider "nope"/);
    assert.match(problems.join('\n'), /languages\[1\]: unknown language code "ge"/);
    assert.match(problems.join('\n'), /checkpointEvery: 20 is larger than shardSize 5/);
  });

  it('runs the cross-field checks on a partly invalid spec without crashing on wrong types', () => {
    const problems = problemsOf((s) => {
      s.teachers = [null, 'x', { id: 't', provider: 'missing', model: 'm' }];
      s.students = 'not a list';
      s.languages = [7, 'de'];
      s.metrics = { judge: 'no' };
      s.storage = null;
    });
    assert.ok(
      problems.includes('teachers[2].provider: unknown provider "missing"; known: local, openai'),
      problems.join('\n'),
    );
    assert.ok(problems.some((p) => p.startsWith('teachers[0]: ')));
    assert.ok(problems.some((p) => p.startsWith('languages[0]: ')));
  });

  it('bounds list lengths, naming the field and the limit', () => {
    const cases: [(s: Doc) => void, RegExp][] = [
      [(s) => (s.languages = Array(SPEC_LIMITS.languages + 1).fill('de')), /^languages: at most 200 languages/],
      [
        (s) =>
          (s.teachers = Array.from({ length: SPEC_LIMITS.teachers + 1 }, (_, i) => ({
            id: `t${i}`,
            provider: 'local',
            model: 'm',
          }))),
        /^teachers: at most 1000 teachers/,
      ],
      [
        (s) =>
          (s.providers = Array.from({ length: 65 }, (_, i) => ({ id: `p${i}`, baseUrl: 'http://127.0.0.1:1/v1' }))),
        /^providers: at most 64 providers/,
      ],
      [
        (s) => withStudents(s, (d) => (d.training.args = Array(257).fill('x'))),
        /^training\.args: at most 256 arguments/,
      ],
      [
        (s) => withStudents(s, (d) => (d.evaluation.command = Array(257).fill('x'))),
        /^evaluation\.command: at most 256 command words/,
      ],
      [
        (s) =>
          withStudents(
            s,
            (d) => (d.training.env = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`V${i}`, 'x']))),
          ),
        /^training\.env: at most 256 environment variables/,
      ],
      [
        (s) =>
          withStudents(
            s,
            (d) => (d.students = Array.from({ length: 1001 }, (_, i) => ({ id: `s${i}`, model: 'org/m' }))),
          ),
        /^students: at most 1000 students/,
      ],
    ];
    for (const [mutate, expected] of cases) {
      const problems = problemsOf(mutate);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `expected ${expected}, got:\n${problems.slice(0, 5).join('\n')}`,
      );
    }
  });

  it('refuses a spec over 1 MiB as JSON, saying the size and the limit', () => {
    const problems = problemsOf((s) => (s.teachers[0].revision = 'x'.repeat(SPEC_LIMITS.bytes)));
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^\(root\): the spec is \d+ bytes as JSON; the limit is 1048576 \(1 MiB\)/);
  });

  it('rejects a non-object document', () => {
    assert.throws(() => parseSweepSpec([1, 2]), /the spec must be a JSON\/YAML object/);
  });
});

describe('planning', () => {
  it('expands teachers × languages into cells with readable ids and stable keys', () => {
    const plan = planSweep(parseSweepSpec(valid()));
    assert.equal(plan.cells.length, 4);
    assert.deepEqual(
      plan.cells.map((c) => c.cellId),
      [
        `sweep/${plan.sweepId}/t=smol/l=de/dataset`,
        `sweep/${plan.sweepId}/t=smol/l=es/dataset`,
        `sweep/${plan.sweepId}/t=gpt4o-mini/l=de/dataset`,
        `sweep/${plan.sweepId}/t=gpt4o-mini/l=es/dataset`,
      ],
    );
    // generate 10 → 1 shard of 50; counts per strategy carried into the key.
    assert.deepEqual(
      plan.cells[0]!.strategies.map((s) => [s.strategy, s.count, s.shards]),
      [
        ['generate', 10, 1],
        ['translate', 10, 1],
        ['respond', 5, 1],
      ],
    );
    assert.equal(plan.totalRequested, 100);
  });

  it('keys ignore field order and budget but change with anything that changes the data', () => {
    const a = planSweep(parseSweepSpec(valid()));
    const reordered = valid();
    reordered.strategies = { respond: { count: 5 }, translate: { count: 10 }, generate: { count: 10 } };
    reordered.budget = { maxCostUsd: 3 };
    const b = planSweep(parseSweepSpec(reordered));
    assert.deepEqual(
      b.cells.map((c) => c.datasetKey),
      a.cells.map((c) => c.datasetKey),
    );
    assert.equal(deriveSweepId(parseSweepSpec(reordered)), a.sweepId);
    const hotter = valid();
    hotter.teachers[0]!.sampling = { temperature: 0.9 };
    const c = planSweep(parseSweepSpec(hotter));
    assert.notEqual(c.cells[0]!.datasetKey, a.cells[0]!.datasetKey);
    assert.equal(c.cells[2]!.datasetKey, a.cells[2]!.datasetKey, 'other teachers keep their keys');
    assert.deepEqual(diffManifests(a.cells[0]!.keyManifest, c.cells[0]!.keyManifest), [
      'teacher.sampling.temperature: 0.8 → 0.9',
    ]);
  });
});

describe('spec files', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-spec-'));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('finds duplicate JSON keys with their paths, at any depth, and none in a clean document', () => {
    assert.deepEqual(duplicateJsonKeys(JSON.stringify(valid())), []);
    assert.deepEqual(
      duplicateJsonKeys('{"a": 1, "b": [{"x": "}\\"", "x": 2}, {"x": 3}], "c": {"d": {}, "d": []}, "a": null}'),
      ['b[0].x', 'c.d', 'a'],
    );
  });

  it('refuses a JSON spec with a duplicate key, naming the path (YAML refuses them too)', async () => {
    const text = JSON.stringify(valid()).replace('"model":"smollm2-135m"', '"model":"smollm2-135m","model":"other"');
    await assert.rejects(
      readSpecFile(write('dup.json', text)),
      /duplicate key\(s\) teachers\[0\]\.model; JSON readers silently keep the last/,
    );
    await assert.rejects(readSpecFile(write('dup.yaml', 'name: a\nname: b\n')), /not valid YAML: .*unique/i);
  });

  it('refuses a spec file over 1 MiB before parsing it', async () => {
    const file = write('big.json', JSON.stringify({ ...valid(), name: 'x'.repeat(SPEC_LIMITS.bytes) }));
    await assert.rejects(readSpecFile(file), /the spec file is \d+ bytes; the limit is 1048576 \(1 MiB\)/);
  });
});

describe('CLI error messages', () => {
  it('turn gRPC status prefixes into sentences', () => {
    assert.equal(cliMessage(new Error('5 NOT_FOUND: namespace x is not found')), 'Namespace x is not found.');
    assert.equal(
      cliMessage(new Error('14 UNAVAILABLE: connection refused')),
      'Connection refused (Temporal is unavailable: start it with `polyglot dev up` or check TEMPORAL_ADDRESS).',
    );
    assert.match(
      cliMessage(new Error('5 NOT_FOUND: workflow not found for ID: sweep/x')),
      /^no sweep workflow sweep\/x on this Temporal server/,
    );
    assert.equal(cliMessage(new Error('plain words')), 'plain words');
    const failed = new Error('Failed to start Workflow', {
      cause: new Error('3 INVALID_ARGUMENT: Blob data size exceeds limit'),
    });
    assert.equal(
      cliMessage(failed),
      'Failed to start Workflow: Blob data size exceeds limit (refused by Temporal as invalid).',
    );
  });
});

describe('answer budgets: the paper’s by default, a warning below it', () => {
  it('defaults a teacher to 4,096 new tokens, and warns (never refuses) for less, naming the field', () => {
    const spec = parseSweepSpec(valid());
    assert.equal(spec.teachers[0]!.sampling.maxTokens, 4096);
    assert.deepEqual(fidelityWarnings(spec), []);
    const low = structuredClone(valid());
    low.teachers[0]!.sampling = { maxTokens: 512 };
    low.metrics = { judge: { provider: 'local', model: 'judge', maxTokens: 512 } };
    const warnings = fidelityWarnings(parseSweepSpec(low));
    assert.equal(warnings.length, 2, warnings.join('\n'));
    assert.match(warnings[0]!, /^teachers\[0\]\.sampling\.maxTokens: 512 is below the paper's 4096 \(teacher smol\)/);
    assert.match(warnings[1]!, /^metrics\.judge\.maxTokens: 512 is below the paper's 2048/);
    // The key changes with the budget: a dataset made with 512 is never reused for 4,096.
    assert.notEqual(planSweep(parseSweepSpec(low)).cells[0]!.datasetKey, planSweep(spec).cells[0]!.datasetKey);
  });

  it('`sweep status` shows answers cut at the length limit per cell and in total', () => {
    const cell = (teacherId: string, truncated?: number) => ({
      cellId: `sweep/x/t=${teacherId}/l=de/dataset`,
      teacherId,
      language: 'de',
      status: 'done' as const,
      shardsDone: 1,
      shardsTotal: 1,
      examples: 9,
      tokens: 0,
      costUsd: 0,
      ...(truncated !== undefined ? { truncated } : {}),
    });
    const grid = renderGrid({
      sweepId: 'x',
      stage: 'done',
      paused: false,
      cells: [cell('a', 3), cell('b')],
      totals: { tokens: 0, costUsd: 0, examples: 18 },
    });
    assert.match(grid, /done 1\/1 · 9 ex · 3 cut · \$0\.0000/);
    assert.match(grid, /done 1\/1 · 9 ex · \$0\.0000/);
    assert.match(grid, /^3 teacher answers were cut at the length limit/m);
  });
});

describe('metrics.perplexity options', () => {
  it('default to per-item, and paper mode takes the reference batch of 8 padded on the left', () => {
    const spec = parseSweepSpec({ ...valid(), metrics: { perplexity: { provider: 'local', model: 'm' } } });
    assert.deepEqual(spec.metrics?.perplexity, {
      provider: 'local',
      model: 'm',
      mode: 'per-item',
      batchSize: 8,
      padSide: 'left',
    });
    const paper = parseSweepSpec({
      ...valid(),
      metrics: { perplexity: { provider: 'local', model: 'm', mode: 'paper', padSide: 'right' } },
    });
    assert.equal(paper.metrics?.perplexity?.mode, 'paper');
    assert.equal(paper.metrics?.perplexity?.padSide, 'right');
  });

  it('names the field of a bad mode', () => {
    const problems = problemsOf((s) => (s.metrics = { perplexity: { provider: 'local', model: 'm', mode: 'batch' } }));
    assert.ok(
      problems.some((p) => p.startsWith('metrics.perplexity.mode')),
      problems.join('\n'),
    );
  });
});

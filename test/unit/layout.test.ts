import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { digestOf } from '../../src/common/hash';
import { planSweep } from '../../src/spec/plan';
import { parseSweepSpec, type EvaluationSpec } from '../../src/spec/sweep';
import {
  keys,
  seedPoolDigestOf,
  storedTemplateDigestOf,
  SEED_POOL_URI,
  STORED_TEMPLATE_URI,
} from '../../src/storage/layout';
import { EVAL_CODE_VERSION, TRAIN_CODE_VERSION, evalKey, trainKey } from '../../src/workflows/student';

const ROOT = path.resolve(__dirname, '../../..');
const DOC = 'docs/s3-layout.md';

/** The documented rows: `| \`keys.<name>\` | \`<pattern>\` | …`. */
function documentedKeys(): Map<string, string> {
  const rows = new Map<string, string>();
  for (const line of readFileSync(path.join(ROOT, DOC), 'utf8').split('\n')) {
    const m = /^\|\s*`keys\.(\w+)`\s*\|\s*`([^`]+)`\s*\|/.exec(line);
    if (m) {
      assert.ok(!rows.has(m[1]!), `${DOC}: keys.${m[1]} is documented twice`);
      rows.set(m[1]!, m[2]!);
    }
  }
  return rows;
}

/** What a key function builds with `<param>` for each parameter; a digest it computes shows as `<digest16>`. */
function shapeOf(fn: (...args: string[]) => string): string {
  const params = /^\(([^)]*)\)/
    .exec(fn.toString())![1]!
    .split(',')
    .map((p) => p.trim());
  return fn(...params.filter(Boolean).map((p) => `<${p}>`))
    .replace(/[0-9a-f]{16}/g, '<digest16>')
    .replace(/0+(?=<)/g, ''); // zero-padding of a number placeholder
}

describe('S3 layout (src/storage/layout.ts)', () => {
  it(`${DOC} documents every key function, with the pattern it builds, and nothing else`, () => {
    const documented = documentedKeys();
    const defined = Object.keys(keys);
    const missing = defined.filter((k) => !documented.has(k));
    const stale = [...documented.keys()].filter((k) => !defined.includes(k));
    assert.deepEqual(missing, [], `keys not documented in ${DOC}: ${missing.join(', ')}`);
    assert.deepEqual(stale, [], `${DOC} documents keys that layout.ts does not have: ${stale.join(', ')}`);
    for (const [name, fn] of Object.entries(keys))
      assert.equal(
        shapeOf(fn as (...args: string[]) => string),
        documented.get(name),
        `${DOC}: keys.${name} builds another pattern than documented`,
      );
  });

  it('keeps the keys of stored artifacts what they were (a changed string would silently miss every cache)', () => {
    const ds = keys.dataset('p', 'smol/de/0123456789abcdef');
    assert.equal(ds, 'p/datasets/smol/de/0123456789abcdef');
    assert.equal(keys.shardData(ds, 'generate', 7), `${ds}/shards/generate-00007.jsonl`);
    assert.equal(
      keys.partFile(keys.shardPartsPrefix(ds, 'generate', 7), 3),
      `${ds}/parts/generate-00007/part-00003.jsonl`,
    );
    assert.equal(keys.metricResult('p', 'smol/de/x', 'judge', 'd'), 'p/metrics/smol/de/x/judge-d.json');
    assert.equal(keys.metricParts('p', 'smol/de/x', 'judge', 'd'), 'p/metrics/smol/de/x/judge-d/parts/');
    const uris = ['s3://b/p/metrics/smol/de/x/judge-d.json'];
    assert.equal(
      keys.intrinsic('p', 'smol/de/x', uris),
      `p/metrics/smol/de/x/intrinsic-${digestOf(uris).slice(0, 16)}.json`,
    );
    assert.equal(keys.jobResult('p/anchors/olmo/de/base-d'), 'p/anchors/olmo/de/base-d/result.json');
    assert.equal(keys.jobResultRecord('o'), 'o/result.integrity.json');
    assert.equal(keys.jobLog('o', 'main'), 'o/logs/main');
    assert.equal(keys.reportFile(keys.sweepReport('p', 'sw', 'v1'), 'report.html'), 'p/reports/sw/runs/v1/report.html');
    assert.equal(keys.sweepRun('p', 'sw', 'v1'), 'p/sweeps/sw/runs/v1');
    assert.equal(keys.asset('p', 'models', 'sha256-ab'), 'p/models/sha256-ab');
    assert.equal(keys.assetComplete(keys.asset('p', 'models', 'sha256-ab')), 'p/models/sha256-ab/_COMPLETE');
    assert.equal(
      keys.folderUri('b', keys.anchorEval('p', 'olmo', 'de', 'base', 'd')),
      's3://b/p/anchors/olmo/de/base-d/',
    );
  });

  it('builds the dataset key from its parts, with the digest of its key manifest', () => {
    const spec = parseSweepSpec({
      storage: { bucket: 'polyglot-test', prefix: 'p' },
      providers: [{ id: 'local', baseUrl: 'http://127.0.0.1:8000/v1' }],
      teachers: [{ id: 'smol', provider: 'local', model: 'smollm2-135m' }],
      languages: ['de'],
      strategies: { generate: { count: 4 } },
      seedPool: keys.uri('polyglot-test', keys.seedPool('p', `sha256-${'a'.repeat(64)}`)),
    });
    const [cell] = planSweep(spec).cells;
    const digest = keys.datasetDigest(cell!.keyManifest);
    assert.equal(digest, digestOf(cell!.keyManifest).slice(0, 16));
    assert.equal(cell!.datasetKey, keys.datasetKey('smol', 'de', digest));
    // The manifest travels through workflow history as JSON: its digest is the same on the far side.
    assert.equal(keys.datasetDigest(JSON.parse(JSON.stringify(cell!.keyManifest))), digest);
  });

  it('reads a digest back only from the URIs a spec names stored files by, as the keys build them', () => {
    const pool = `sha256-${'c'.repeat(64)}`;
    const poolUri = keys.uri('bucket-1', keys.seedPool('team/polyglot', pool));
    assert.match(poolUri, SEED_POOL_URI);
    assert.equal(seedPoolDigestOf(poolUri), pool);
    assert.equal(seedPoolDigestOf(keys.folderUri('bucket-1', keys.seedPool('p', pool))), pool);
    assert.equal(seedPoolDigestOf('s3://bucket-1/p/datasets/x'), undefined);
    const sha = 'd'.repeat(64);
    const templateUri = keys.uri('bucket-1', keys.template('p', sha));
    assert.match(templateUri, STORED_TEMPLATE_URI);
    assert.equal(storedTemplateDigestOf(templateUri), sha);
    assert.equal(storedTemplateDigestOf('s3://bucket-1/p/prompts/x.txt'), undefined);
  });

  it('keys student and eval jobs with the canonical digest: field order does not change them, contents do', () => {
    const t = { image: 'img:1', command: ['polyglot-train'], args: [] };
    const a = trainKey(t, { lr: 2e-4, epochs: 3, student: 'org/m' });
    const b = trainKey(t, { student: 'org/m', epochs: 3, lr: 2e-4 });
    assert.equal(a, b);
    assert.match(a, /^[0-9a-f]{16}$/);
    assert.notEqual(trainKey(t, { lr: 1e-4, epochs: 3, student: 'org/m' }), a);
    assert.equal(
      a,
      keys.jobDigest({ trainConfig: { epochs: 3, lr: 2e-4, student: 'org/m' }, ...t, v: TRAIN_CODE_VERSION }),
    );
    // The versions moved with the digest: no key of the old scheme (train-1, eval-1) can come out again.
    assert.equal(TRAIN_CODE_VERSION, 'train-2');
    assert.equal(EVAL_CODE_VERSION, 'eval-2');
    const e = { suite: 's', limit: 10, batchSize: 8, seed: 1, dataUri: 's3://b/data/', image: 'i', command: ['c'] };
    const ev = evalKey(e as unknown as EvaluationSpec, 'de', 'org/m');
    assert.equal(
      evalKey({ ...e, batchSize: 64 } as unknown as EvaluationSpec, 'de', 'org/m'),
      ev,
      'batch size is not identity',
    );
    assert.notEqual(evalKey(e as unknown as EvaluationSpec, 'es', 'org/m'), ev);
  });
});

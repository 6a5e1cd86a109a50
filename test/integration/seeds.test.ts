import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { importSeedPool, loadSeedPool, readSeedFile, type SeedRow } from '../../src/seeds/pool';
import { keys } from '../../src/storage/layout';
import { storeFor, uniqueName } from '../support/fixtures';
import { ROOT } from '../support/stack';

const row = (i: number, extra: Partial<SeedRow> = {}): SeedRow => ({
  id: `id-${i}`,
  source: 'test',
  language: 'de',
  strategy: ['generate', 'respond'],
  source_id: String(i),
  prompt: `Frage ${i}?`,
  response: `Antwort ${i}.`,
  ...extra,
});
const jsonl = (rows: unknown[]) => Buffer.from(rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

describe('seed pools', function () {
  this.timeout(30_000);

  it('imports the shipped demo pool content-addressed; a second import writes nothing new', async () => {
    const bucket = uniqueName('seeds');
    const store = storeFor(bucket);
    await store.ensureBucket();
    const file = path.join(ROOT, 'seeds/demo.jsonl');
    const rows = await readSeedFile(file, readFileSync(file));
    assert.equal(rows.length, 90);
    const first = await importSeedPool(store, 'polyglot', rows, file);
    assert.ok(first.created);
    assert.match(first.uri, /^s3:\/\/.+\/polyglot\/seeds\/sha256-[0-9a-f]{64}$/);
    assert.deepEqual(first.manifest.counts, {
      'de/generate': 24,
      'de/respond': 30,
      'en/translate': 30,
      'es/generate': 24,
      'es/respond': 30,
    });
    // Same content in another order → same digest, nothing rewritten.
    const again = await importSeedPool(store, 'polyglot', rows.slice().reverse(), file);
    assert.equal(again.created, false);
    assert.equal(again.uri, first.uri);
    const loaded = await loadSeedPool(store, first.uri.replace(`s3://${bucket}/`, ''));
    assert.equal(loaded.length, 90);
    assert.deepEqual(await store.list(`polyglot/seeds/`), [
      keys.seedManifest(first.uri.replace(`s3://${bucket}/`, '')),
      keys.seedRows(first.uri.replace(`s3://${bucket}/`, '')),
    ]);

    // The rows are checked against the pool's digest: one changed byte is damage, and importing again repairs it.
    const poolKey = first.uri.replace(`s3://${bucket}/`, '');
    const text = (await store.getText(keys.seedRows(poolKey)))!;
    await store.putText(keys.seedRows(poolKey), text.replace('"de"', '"es"'));
    await assert.rejects(loadSeedPool(store, poolKey), (e: Error) => {
      assert.equal(e.name, 'CorruptArtifact');
      assert.match(e.message, new RegExp(`seed pool ${first.uri} is damaged \\(rows digest .*polyglot seeds import`));
      return true;
    });
    assert.equal((await importSeedPool(store, 'polyglot', rows, file)).created, true, 'a damaged pool is rewritten');
    assert.equal((await loadSeedPool(store, poolKey)).length, 90);
    // A manifest from before seals is accepted while the rows match its digest.
    const { integrity: _seal, ...unsealed } = (await store.getJson<Record<string, unknown>>(
      keys.seedManifest(poolKey),
    ))!;
    await store.putJson(keys.seedManifest(poolKey), unsealed);
    assert.equal((await loadSeedPool(store, poolKey)).length, 90);
  });

  it('reads Parquet with the same schema (list-typed strategy) to the same rows and digest as JSONL', async () => {
    const { parquetWriteBuffer } = await import('hyparquet-writer');
    const rows = [row(1), row(2, { language: 'en', strategy: ['translate'] }), row(3, { response: '' })];
    const cols = ['id', 'source', 'language', 'strategy', 'source_id', 'prompt', 'response'] as const;
    const buf = parquetWriteBuffer({
      columnData: cols.map((name) => ({ name, data: rows.map((r) => r[name]) })),
    });
    const fromParquet = await readSeedFile('seeds.parquet', new Uint8Array(buf));
    assert.deepEqual(fromParquet, rows);
    const fromJsonl = await readSeedFile('seeds.jsonl', jsonl(rows));
    const bucket = uniqueName('pq');
    const store = storeFor(bucket);
    await store.ensureBucket();
    const a = await importSeedPool(store, 'p', fromParquet, 'a.parquet');
    const b = await importSeedPool(store, 'p', fromJsonl, 'b.jsonl');
    assert.equal(a.uri, b.uri);
  });

  const bad: [string, Buffer, RegExp][] = [
    ['empty file', Buffer.from(''), /seed pool is empty/],
    ['invalid JSON line', Buffer.from('{"id": 1\n'), /line 1: not valid JSON/],
    ['non-UTF-8 bytes', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), /not valid UTF-8; re-encode the file as UTF-8/],
    ['duplicate id', jsonl([row(1), row(1)]), /row 2: id: duplicate id "id-1" \(first at row 1\)/],
    ['unknown strategy', jsonl([row(1, { strategy: ['summarize' as never] })]), /row 1: strategy\.0: /],
    ['missing prompt', jsonl([{ ...row(1), prompt: undefined }]), /row 1: prompt: /],
    ['blank prompt', jsonl([row(1, { prompt: '   ' })]), /row 1: prompt: must be a non-empty string/],
    ['unknown language', jsonl([row(1, { language: 'xx' })]), /row 1: language: must be an ISO 639-1 code/],
    ['extra field', jsonl([{ ...row(1), lang: 'de' }]), /row 1: \(row\): unknown field\(s\) lang/],
    ['empty strategy list', jsonl([row(1, { strategy: [] })]), /row 1: strategy: must list at least one/],
  ];
  for (const [name, bytes, expected] of bad) {
    it(`rejects a seed file with ${name}, naming the row and field`, async () => {
      await assert.rejects(readSeedFile('seeds.jsonl', bytes), (e: Error) => {
        assert.match(e.message, expected);
        return true;
      });
    });
  }
});

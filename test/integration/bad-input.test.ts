import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { storeFor, uniqueName } from '../support/fixtures';
import { processEnv, runCommand } from '../support/processes';
import { ROOT } from '../support/stack';

/**
 * Bad input through the real CLI (`sweep start` / `sweep plan` / `seeds import`): rejected before any
 * work starts, with a message that names the field and the fix, and nothing written to S3.
 */
describe('bad input is rejected before any work, with nothing written', function () {
  this.timeout(60_000);
  const dir = mkdtempSync(path.join(tmpdir(), 'pg-bad-'));
  const demoSeeds = readFileSync(path.join(ROOT, 'seeds/demo.jsonl'));
  writeFileSync(path.join(dir, 'seeds.jsonl'), demoSeeds);
  writeFileSync(path.join(dir, 'empty.jsonl'), '');
  writeFileSync(path.join(dir, 'latin1.jsonl'), Buffer.from('{"id":"a","prompt":"Gr\xfc\xdfe"}\n', 'latin1'));

  const spec = (bucket: string, patch: Record<string, unknown>) => ({
    storage: { bucket, prefix: 'polyglot' },
    providers: [{ id: 'local', baseUrl: 'http://127.0.0.1:9/v1' }],
    teachers: [{ id: 't1', provider: 'local', model: 'm' }],
    languages: ['de'],
    strategies: { respond: { count: 2 } },
    seedPool: './seeds.jsonl',
    ...patch,
  });

  const cases: [string, (b: string) => string | Buffer, RegExp][] = [
    [
      'a duplicate teacher',
      (b) =>
        JSON.stringify(
          spec(b, {
            teachers: [
              { id: 't1', provider: 'local', model: 'm' },
              { id: 't1', provider: 'local', model: 'n' },
            ],
          }),
        ),
      /teachers\[1\]\.id: duplicate id "t1"/,
    ],
    [
      'an absurd budget',
      (b) => JSON.stringify(spec(b, { budget: { maxCostUsd: 1e12 } })),
      /budget\.maxCostUsd: .*<=10000000/,
    ],
    ['a huge name', (b) => JSON.stringify(spec(b, { name: 'x'.repeat(100_000) })), /name: .*<=200/],
    [
      'a 50 MB spec (before Temporal refuses it with no cause)',
      (b) => JSON.stringify(spec(b, { name: 'x'.repeat(50_000_000) })),
      /the spec file is \d+ bytes; the limit is 1048576 \(1 MiB\)/,
    ],
    [
      'an S3-unsafe sweep id',
      (b) => JSON.stringify(spec(b, { sweepId: 'a b/../c' })),
      /sweepId: must be 1-63 characters/,
    ],
    ['an empty seed pool', (b) => JSON.stringify(spec(b, { seedPool: './empty.jsonl' })), /the seed pool is empty/],
    [
      'a non-UTF-8 seed file',
      (b) => JSON.stringify(spec(b, { seedPool: './latin1.jsonl' })),
      /not valid UTF-8; re-encode the file as UTF-8/,
    ],
    [
      'a missing seed file',
      (b) => JSON.stringify(spec(b, { seedPool: './nope.jsonl' })),
      /seedPool: cannot read seed file .*nope\.jsonl/,
    ],
    [
      'a non-UTF-8 spec file',
      () => Buffer.from('name: "Gr\xfc\xdfe"\n', 'latin1'),
      /\.yaml: not valid UTF-8; re-encode the file as UTF-8/,
    ],
    ['YAML that is not a mapping', () => '- a\n- b\n', /the spec must be a mapping/],
  ];

  for (const [name, make, expected] of cases) {
    it(`rejects ${name}`, async () => {
      const bucket = uniqueName('bad');
      const file = path.join(dir, `${uniqueName('spec')}.yaml`);
      writeFileSync(file, make(bucket));
      const res = await runCommand(path.join(ROOT, 'bin/polyglot'), ['sweep', 'start', file], processEnv({}));
      assert.equal(res.code, 2, res.out);
      assert.match(res.out, expected);
      const store = storeFor(bucket);
      assert.deepEqual(await store.list(''), [], 'nothing written to S3');
    });
  }
});

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { sha256Hex } from '../../src/common/hash';
import { checkSeal, digestBytes, digestMismatch, parseJsonAt, parseJsonLines, seal } from '../../src/storage/integrity';

describe('integrity helpers', () => {
  it('digests bytes with the one SHA-256 (as node:crypto computes it) and their size', () => {
    const text = 'ünïcode line\n{"a":1}\n';
    const d = digestBytes(text);
    assert.equal(d.sha256, createHash('sha256').update(text).digest('hex'));
    assert.equal(d.size, Buffer.byteLength(text));
    assert.equal(digestMismatch(new TextEncoder().encode(text), d), undefined);
    assert.match(digestMismatch(new TextEncoder().encode(text.slice(0, -1)), d)!, /^size \d+ bytes, expected \d+/);
    const flipped = new TextEncoder().encode(text.replace('a', 'b'));
    assert.match(digestMismatch(flipped, d)!, /^sha256 /);
  });

  it('hashes stored bytes (node:crypto) exactly as the pure sha256Hex that workflows use', () => {
    for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, 100_003]) {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 0xff);
      assert.equal(digestBytes(bytes).sha256, sha256Hex(bytes), `${n} bytes`);
    }
  });

  it('seals a record and tells an intact one from an edited, truncated or older one', () => {
    const sealed = seal({ produced: 3, shards: ['s3://b/k'], nan: NaN });
    const roundTrip = JSON.parse(JSON.stringify(sealed)) as Record<string, unknown>;
    assert.equal(checkSeal(roundTrip), 'ok', 'a JSON round trip keeps the seal valid');
    assert.equal(checkSeal({ ...roundTrip, produced: 4 }), 'content does not match its integrity.sha256');
    assert.equal(checkSeal({ produced: 3 }), 'unsealed');
    assert.equal(checkSeal([1, 2]), 'not a JSON object');
    assert.equal(checkSeal(seal(seal({ a: 1 }))), 'ok', 'sealing again replaces the seal');
  });

  it('names the object and the line of a parse error', () => {
    assert.throws(
      () => parseJsonLines('{"a":1}\n\n{"b":\n', 's3://b/parts/part-00000.jsonl'),
      (e: Error) =>
        e.name === 'CorruptArtifact' && /^s3:\/\/b\/parts\/part-00000\.jsonl line 3: not valid JSON/.test(e.message),
    );
    assert.throws(
      () => parseJsonAt('{\n  "a": 1,\n  "b": \n}', 's3://b/manifest.json'),
      (e: Error) => /^s3:\/\/b\/manifest\.json line \d: not valid JSON/.test(e.message),
    );
    assert.deepEqual(parseJsonLines('{"a":1}\n{"a":2}\n', 'x'), [{ a: 1 }, { a: 2 }]);
  });
});

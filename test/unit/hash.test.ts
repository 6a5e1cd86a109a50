import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { canonicalJson, sha256Hex } from '../../src/common/hash';
import { rng, seededShuffle, sampleIndices } from '../../src/common/random';

describe('pure sha256 and seeded randomness', () => {
  it('matches node:crypto on edge-length and multi-byte inputs', () => {
    const inputs = [
      '',
      'a',
      'abc',
      'x'.repeat(55),
      'x'.repeat(56),
      'x'.repeat(64),
      'x'.repeat(1000),
      'Grüße, 日本語 ✓',
    ];
    for (const s of inputs)
      assert.equal(sha256Hex(s), createHash('sha256').update(s, 'utf8').digest('hex'), `len ${s.length}`);
  });

  it('canonical JSON sorts keys at every depth and drops undefined', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: undefined } }),
      '{"a":{"d":[1,{"y":2,"z":1}]},"b":1}',
    );
  });

  it('shuffles reproducibly from a seed and differently for another seed', () => {
    const items = Array.from({ length: 50 }, (_, i) => i);
    const a = seededShuffle(items, 921);
    assert.deepEqual(seededShuffle(items, 921), a);
    assert.notDeepEqual(seededShuffle(items, 922), a);
    assert.deepEqual(
      [...a].sort((x, y) => x - y),
      items,
    );
    const r = rng('s');
    for (let i = 0; i < 1000; i++) {
      const v = r();
      assert.ok(v >= 0 && v < 1);
    }
  });

  it('samples distinct indices, never the excluded one', () => {
    for (let seed = 0; seed < 50; seed++) {
      const got = sampleIndices(5, 3, seed, 2);
      assert.equal(new Set(got).size, 3);
      assert.ok(!got.includes(2));
    }
    assert.deepEqual(sampleIndices(2, 3, 1, 0), [1]);
  });
});

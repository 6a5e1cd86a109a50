import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import {
  AesGcmCodec,
  CodecKeyError,
  ENCRYPTED_ENCODING,
  codecFromEnv,
  generateKey,
  keyId,
} from '../../src/common/codec';

const text = (b?: Uint8Array | null) => Buffer.from(b ?? new Uint8Array()).toString('utf8');

describe('payload encryption codec (AES-256-GCM)', () => {
  const value = { cellId: 'sweep/zebra-secret/t=a/l=de/dataset', n: 3, nested: { ok: true } };
  const plain = () => defaultPayloadConverter.toPayload(value);

  it('encrypts every payload, hides its content and metadata, and decodes it back exactly', async () => {
    const codec = new AesGcmCodec([randomBytes(32)]);
    const [enc] = await codec.encode([plain()]);
    assert.equal(text(enc!.metadata!.encoding), ENCRYPTED_ENCODING);
    assert.ok(!text(enc!.data).includes('zebra-secret') && !text(enc!.data).includes('json/plain'));
    const [back] = await codec.decode([enc!]);
    assert.deepEqual(defaultPayloadConverter.fromPayload(back!), value);
    assert.equal(text(back!.metadata!.encoding), 'json/plain');
    // A fresh IV per payload: the same value never gives the same ciphertext.
    const [again] = await codec.encode([plain()]);
    assert.notDeepEqual(Buffer.from(again!.data!), Buffer.from(enc!.data!));
  });

  it('passes payloads written before encryption was switched on through unchanged', async () => {
    const codec = new AesGcmCodec([randomBytes(32)]);
    const p = plain();
    assert.deepEqual(await codec.decode([p]), [p]);
  });

  it('refuses a tampered payload and a payload under a key it does not hold, saying which', async () => {
    const key = randomBytes(32);
    const codec = new AesGcmCodec([key]);
    const [enc] = await codec.encode([plain()]);
    const bad: Payload = { ...enc!, data: new Uint8Array(enc!.data!) };
    bad.data![20] = bad.data![20]! ^ 1;
    await assert.rejects(codec.decode([bad]), /failed authentication/);
    const other = new AesGcmCodec([randomBytes(32)]);
    await assert.rejects(other.decode([enc!]), new RegExp(`key ${keyId(key)}.*POLYGLOT_CODEC_OLD_KEYS`));
  });

  it('decodes with an old key after rotation and encrypts with the new one', async () => {
    const oldKey = generateKey();
    const newKey = generateKey();
    const before = codecFromEnv({ POLYGLOT_CODEC_KEY: oldKey })!;
    const [enc] = await before.encode([plain()]);
    const after = codecFromEnv({ POLYGLOT_CODEC_KEY: newKey, POLYGLOT_CODEC_OLD_KEYS: oldKey })!;
    assert.deepEqual(defaultPayloadConverter.fromPayload((await after.decode([enc!]))[0]!), value);
    const [fresh] = await after.encode([plain()]);
    assert.equal(text(fresh!.metadata!['encryption-key-id']), keyId(Buffer.from(newKey, 'base64')));
  });

  it('is off without a key, and names the variable and the fix for a malformed one', () => {
    assert.equal(codecFromEnv({}), undefined);
    assert.throws(
      () => codecFromEnv({ POLYGLOT_CODEC_KEY: 'c2hvcnQ=' }),
      (e: unknown) => {
        assert.ok(e instanceof CodecKeyError);
        assert.match(e.message, /POLYGLOT_CODEC_KEY: not a base64-encoded 32-byte key.*polyglot codec keygen/);
        return true;
      },
    );
    assert.throws(() => codecFromEnv({ POLYGLOT_CODEC_OLD_KEYS: generateKey() }), /set the current key too/);
    assert.throws(
      () => codecFromEnv({ POLYGLOT_CODEC_KEY: generateKey(), POLYGLOT_CODEC_OLD_KEYS: 'nope' }),
      /POLYGLOT_CODEC_OLD_KEYS\[0\]/,
    );
  });
});

import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';

/**
 * Optional encryption of every workflow payload (inputs, results, signals, queries, heartbeats) before
 * it reaches the Temporal server, so the server's database and its Web UI hold ciphertext only. Polyglot
 * already keeps secrets out of payloads (they are referenced by name); this codec is for teams whose
 * cell ids, model names or prompts must not be readable by whoever runs the Temporal cluster.
 *
 *   POLYGLOT_CODEC_KEY       base64 of 32 random bytes (`polyglot codec keygen`); unset = no encryption
 *   POLYGLOT_CODEC_OLD_KEYS  comma-separated older keys, still accepted for decoding after a rotation
 *
 * The worker, the CLI and the codec server (`polyglot codec serve`, for the Web UI) must all see the
 * same key. Payloads written without encryption still decode, so switching it on keeps old histories
 * readable. AES-256-GCM with a random 96-bit IV per payload; the key id is authenticated with it.
 */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
const KEY_ID = 'encryption-key-id';
const CIPHER = 'encryption-cipher';
const ALGORITHM = 'AES-256-GCM';

export class CodecKeyError extends Error {}

/** A key's id: a short fingerprint, so no separate id has to be configured and kept in step. */
export function keyId(key: Buffer): string {
  return `k-${createHash('sha256').update(key).digest('hex').slice(0, 12)}`;
}

function parseKey(b64: string, variable: string): Buffer {
  const key = Buffer.from(b64.trim(), 'base64');
  if (key.length !== 32 || key.toString('base64') !== b64.trim()) {
    throw new CodecKeyError(
      `${variable}: not a base64-encoded 32-byte key (got ${key.length} bytes); create one with \`polyglot codec keygen\``,
    );
  }
  return key;
}

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | null | undefined) => (b ? new TextDecoder().decode(b) : undefined);

/** A payload (metadata map + data) as bytes: u32 entry count, then per entry u32-length-prefixed key and value, then data. */
function serialize(p: Payload): Buffer {
  const parts: Buffer[] = [];
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const entries = Object.entries(p.metadata ?? {}).sort(([a], [b]) => (a < b ? -1 : 1));
  parts.push(u32(entries.length));
  for (const [k, v] of entries) {
    const kb = Buffer.from(k, 'utf8');
    parts.push(u32(kb.length), kb, u32(v.length), Buffer.from(v));
  }
  parts.push(Buffer.from(p.data ?? new Uint8Array()));
  return Buffer.concat(parts);
}

function deserialize(b: Buffer): Payload {
  let at = 0;
  const u32 = () => {
    if (at + 4 > b.length) throw new Error('truncated payload');
    const n = b.readUInt32BE(at);
    at += 4;
    return n;
  };
  const take = (n: number) => {
    if (at + n > b.length) throw new Error('truncated payload');
    const s = b.subarray(at, at + n);
    at += n;
    return s;
  };
  const metadata: Record<string, Uint8Array> = {};
  for (let i = u32(); i > 0; i--) {
    const k = take(u32()).toString('utf8');
    metadata[k] = new Uint8Array(take(u32()));
  }
  return { metadata, data: new Uint8Array(b.subarray(at)) };
}

export class AesGcmCodec implements PayloadCodec {
  private readonly current: { id: string; key: Buffer };
  private readonly keys = new Map<string, Buffer>();

  /** `keys[0]` encrypts; all of them decrypt (rotation: put the new key first). */
  constructor(keys: Buffer[]) {
    if (!keys.length) throw new CodecKeyError('the codec needs at least one key');
    for (const key of keys) {
      if (key.length !== 32) throw new CodecKeyError(`codec keys are 32 bytes, got ${key.length}`);
      this.keys.set(keyId(key), key);
    }
    this.current = { id: keyId(keys[0]!), key: keys[0]! };
  }

  // async: a failure is a rejected promise, as the SDK expects, never a synchronous throw.
  async encode(payloads: Payload[]): Promise<Payload[]> {
    return await Promise.resolve(
      payloads.map((p) => {
        const iv = randomBytes(12);
        const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
        cipher.setAAD(Buffer.from(this.current.id));
        const body = Buffer.concat([cipher.update(serialize(p)), cipher.final()]);
        return {
          metadata: { encoding: enc(ENCRYPTED_ENCODING), [KEY_ID]: enc(this.current.id), [CIPHER]: enc(ALGORITHM) },
          data: new Uint8Array(Buffer.concat([iv, body, cipher.getAuthTag()])),
        };
      }),
    );
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return await Promise.resolve(
      payloads.map((p) => {
        if (dec(p.metadata?.encoding) !== ENCRYPTED_ENCODING) return p; // written before encryption was on
        const id = dec(p.metadata?.[KEY_ID]) ?? '';
        const key = this.keys.get(id);
        if (!key) {
          throw new CodecKeyError(
            `payload encrypted with key ${id}, which is not configured; add it to POLYGLOT_CODEC_OLD_KEYS`,
          );
        }
        const data = Buffer.from(p.data ?? new Uint8Array());
        if (data.length < 28) throw new CodecKeyError(`encrypted payload too short (${data.length} bytes)`);
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, 12));
        decipher.setAAD(Buffer.from(id));
        decipher.setAuthTag(data.subarray(data.length - 16));
        let plain: Buffer;
        try {
          plain = Buffer.concat([decipher.update(data.subarray(12, data.length - 16)), decipher.final()]);
        } catch {
          throw new CodecKeyError(`encrypted payload (key ${id}) failed authentication: corrupted or tampered with`);
        }
        return deserialize(plain);
      }),
    );
  }
}

/** The codec the environment asks for, or undefined when POLYGLOT_CODEC_KEY is unset. */
export function codecFromEnv(env: NodeJS.ProcessEnv = process.env): AesGcmCodec | undefined {
  const current = env.POLYGLOT_CODEC_KEY?.trim();
  if (!current) {
    if (env.POLYGLOT_CODEC_OLD_KEYS?.trim())
      throw new CodecKeyError('POLYGLOT_CODEC_OLD_KEYS is set but POLYGLOT_CODEC_KEY is not; set the current key too');
    return undefined;
  }
  const old = (env.POLYGLOT_CODEC_OLD_KEYS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((k, i) => parseKey(k, `POLYGLOT_CODEC_OLD_KEYS[${i}]`));
  return new AesGcmCodec([parseKey(current, 'POLYGLOT_CODEC_KEY'), ...old]);
}

/** For `Client` and `Worker.create`: the payload codec when encryption is configured. */
export function dataConverterFromEnv(env: NodeJS.ProcessEnv = process.env): DataConverter | undefined {
  const codec = codecFromEnv(env);
  return codec ? { payloadCodecs: [codec] } : undefined;
}

export function generateKey(): string {
  return randomBytes(32).toString('base64');
}

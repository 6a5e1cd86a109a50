import { createHash } from 'node:crypto';
import { ErrorType, PolyglotError } from '../common/errors';
import { digestOf } from '../common/hash';
import type { S3Store } from './s3';
export { MAX_REPAIRS_SHOWN, type Repair } from './repairs';

/**
 * Integrity of stored artifacts. Every artifact a later step trusts is checked before use:
 * - a file that another record points to (a shard file, a selection, a job's result.json) is verified
 *   against the `{size, sha256}` that the pointing record holds (`Digest`);
 * - a JSON record that nothing else points to (a shard marker, a dataset manifest, a metric result, an
 *   intrinsic record, a sweep summary) carries its own seal: `integrity.sha256` is the digest of the
 *   record's other fields in canonical JSON (`digestOf`), so a truncated, edited or bit-flipped record
 *   is told from a good one;
 * - a part-file line carries the first 16 hex digits of the digest of its own content (checkpoint.ts).
 * Artifacts written before this scheme have no digest: they are "unverified", accepted when they parse
 * and have the expected shape. Stored bytes are hashed with node:crypto (shards can be large); a seal
 * uses `digestOf` (common/hash.ts, pure SHA-256 over canonical JSON, the same digest workflows compute).
 * Activities and the CLI import this module, workflows never do (they take `Repair` from repairs.ts).
 */

/** Size in bytes and SHA-256 (hex) of a stored object, as recorded by whatever points to it. */
export interface Digest {
  size: number;
  sha256: string;
}

/** SHA-256 (hex) of stored bytes; equal to common/hash.ts `sha256Hex`, which the unit tests check. */
export function sha256OfBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function digestBytes(body: string | Uint8Array): Digest {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  return { size: bytes.byteLength, sha256: sha256OfBytes(bytes) };
}

/** Why `bytes` do not match `expected`, or undefined when they do. */
export function digestMismatch(bytes: Uint8Array, expected: Digest): string | undefined {
  if (bytes.byteLength !== expected.size) return `size ${bytes.byteLength} bytes, expected ${expected.size}`;
  const sha = sha256OfBytes(bytes);
  if (sha !== expected.sha256) return `sha256 ${sha.slice(0, 12)}…, expected ${expected.sha256.slice(0, 12)}…`;
  return undefined;
}

/** Parse JSON, or throw an error that names the object and the line and column of the problem. */
export function parseJsonAt<T>(text: string, where: string, line?: number): T {
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const at = line !== undefined ? ` line ${line}` : positionOf(text, msg);
    throw new PolyglotError(ErrorType.CorruptArtifact, `${where}${at}: not valid JSON (${msg})`);
  }
}

/** " line L" for the position V8 reports in a JSON.parse message ("… at position N …"), when it does. */
function positionOf(text: string, msg: string): string {
  const m = /position (\d+)/.exec(msg);
  if (!m) return text.includes('\n') ? ` line ${text.split('\n').length}` : ' line 1';
  return ` line ${text.slice(0, Number(m[1])).split('\n').length}`;
}

/** Every non-empty line of a JSONL text, parsed; an error names the object and the (1-based) line. */
export function parseJsonLines<T>(text: string, where: string): T[] {
  const out: T[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) if (lines[i]!.trim()) out.push(parseJsonAt<T>(lines[i]!, where, i + 1));
  return out;
}

export type Sealed<T> = T & { integrity: { sha256: string } };

/** The record with its seal: the digest of its canonical JSON without the seal. */
export function seal<T extends object>(value: T): Sealed<T> {
  const { integrity: _old, ...rest } = value as T & { integrity?: unknown };
  return { ...(rest as T), integrity: { sha256: digestOf(rest) } };
}

/**
 * Check a parsed record's seal. 'ok': sealed and intact; 'unsealed': written before seals existed
 * (the caller checks its shape); otherwise the reason it is damaged.
 */
export function checkSeal(value: unknown): 'ok' | 'unsealed' | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const { integrity, ...rest } = value as { integrity?: { sha256?: unknown } };
  if (integrity === undefined) return 'unsealed';
  if (typeof integrity?.sha256 !== 'string') return 'malformed integrity field';
  return digestOf(rest) === integrity.sha256 ? 'ok' : 'content does not match its integrity.sha256';
}

/** The outcome of reading an artifact whose integrity is checked. */
export type Checked<T> =
  /** `file`: the stored object's own size and digest, for a record that points to it (getSealed sets it). */
  | { state: 'ok'; value: T; verified: boolean; file?: Digest }
  | { state: 'missing' }
  | { state: 'damaged'; reason: string };

/** Write bytes as one whole object and return the digest a pointing record keeps. */
export async function putVerified(
  store: S3Store,
  key: string,
  body: string | Uint8Array,
  contentType?: string,
): Promise<Digest> {
  const bytes = typeof body === 'string' ? new TextEncoder().encode(body) : body;
  await store.putText(key, bytes, contentType);
  return digestBytes(bytes);
}

/** Read an object and check it against the digest recorded for it (none recorded: unverified). */
export async function getVerified(store: S3Store, key: string, expected?: Digest): Promise<Checked<Uint8Array>> {
  const bytes = await store.getBytes(key);
  if (bytes === undefined) return { state: 'missing' };
  if (!expected) return { state: 'ok', value: bytes, verified: false };
  const why = digestMismatch(bytes, expected);
  return why ? { state: 'damaged', reason: why } : { state: 'ok', value: bytes, verified: true };
}

/** Write a sealed JSON record whole; returns its digest (for a record that points to it). */
export function putSealed<T extends object>(store: S3Store, key: string, value: T): Promise<Digest> {
  return putVerified(store, key, JSON.stringify(seal(value), null, 2) + '\n', 'application/json');
}

/**
 * Read a sealed JSON record. Unparseable or failing its seal: damaged. Unsealed (older): accepted
 * when `shape` says it looks right, else damaged. The seal is removed from the returned value.
 */
export async function getSealed<T>(
  store: S3Store,
  key: string,
  shape: (v: unknown) => boolean = () => true,
): Promise<Checked<T>> {
  const bytes = await store.getBytes(key);
  if (bytes === undefined) return { state: 'missing' };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return { state: 'damaged', reason: 'not valid UTF-8' };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { state: 'damaged', reason: `not valid JSON (${e instanceof Error ? e.message : String(e)})` };
  }
  const s = checkSeal(value);
  if (s !== 'ok' && s !== 'unsealed') return { state: 'damaged', reason: s };
  const { integrity: _seal, ...rest } = value as { integrity?: unknown };
  if (!shape(rest)) return { state: 'damaged', reason: 'unexpected shape' };
  return { state: 'ok', value: rest as T, verified: s === 'ok', file: digestBytes(bytes) };
}

/** The value of a checked read, or a clear error naming the object (for readers that cannot repair). */
export function mustBeIntact<T>(c: Checked<T>, uri: string, fix: string): T | undefined {
  if (c.state === 'ok') return c.value;
  if (c.state === 'missing') return undefined;
  throw new PolyglotError(ErrorType.CorruptArtifact, `${uri} is damaged (${c.reason}); ${fix}`);
}

/** What `checkShard` needs to know of a shard: where, and what its marker recorded. */
export interface ShardExpectation {
  key: string;
  /** The digest the marker or manifest recorded (absent: written before digests; check what we can). */
  file?: Digest;
  /** Rows the marker counted: an unverified shard must parse into exactly that many. */
  rows?: number;
}

/** Why a shard file cannot be trusted, or undefined when it can. */
export async function checkShard(store: S3Store, want: ShardExpectation): Promise<string | undefined> {
  const got = await getVerified(store, want.key, want.file);
  if (got.state === 'missing') return 'missing';
  if (got.state === 'damaged') return got.reason;
  if (got.verified) return undefined;
  // Unverified (older marker): every line must parse, and there must be as many as the marker counted.
  const lines = new TextDecoder().decode(got.value).split('\n');
  let rows = 0;
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.trim()) continue;
    try {
      JSON.parse(lines[i]!);
    } catch {
      return `line ${i + 1} is not valid JSON`;
    }
    rows++;
  }
  if (want.rows !== undefined && rows !== want.rows) return `${rows} rows, its marker counted ${want.rows}`;
  return undefined;
}

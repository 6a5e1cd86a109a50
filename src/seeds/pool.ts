import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ErrorType, PolyglotError } from '../common/errors';
import { LANGUAGES } from '../common/languages';
import { STRATEGIES } from '../spec/sweep';
import { getSealed, putSealed } from '../storage/integrity';
import { keys } from '../storage/layout';
import type { S3Store } from '../storage/s3';

/**
 * Seed pools: the rows teachers start from (docs/method.md, "Seed rows and synthetic rows"). A pool is imported once,
 * stored content-addressed as canonical JSONL, and referenced from specs by its S3 URI.
 */

export const SeedRowSchema = z.strictObject({
  id: z.string().min(1).max(128),
  source: z.string().min(1).max(256),
  language: z
    .string()
    .refine((l) => LANGUAGES[l] !== undefined, { error: 'must be an ISO 639-1 code such as en, de, es' }),
  strategy: z.array(z.enum(STRATEGIES)).min(1, { error: 'must list at least one of generate, translate, respond' }),
  source_id: z.string().max(256),
  prompt: z.string().trim().min(1, { error: 'must be a non-empty string' }).max(100_000),
  response: z.string().max(100_000),
});
export type SeedRow = z.infer<typeof SeedRowSchema>;

export interface SeedPoolManifest {
  digest: string;
  rows: number;
  /** rows per `<language>/<strategy>` */
  counts: Record<string, number>;
  source: string;
  importedAt: string;
}

const MAX_PROBLEMS = 20;

/** Validate raw records; throws one InvalidInput error listing up to 20 problems with line numbers. */
export function validateSeedRows(records: unknown[], origin: string): SeedRow[] {
  const problems: string[] = [];
  const rows: SeedRow[] = [];
  const seen = new Map<string, number>();
  records.forEach((rec, i) => {
    const r = SeedRowSchema.safeParse(rec);
    if (!r.success) {
      for (const issue of r.error.issues) {
        const field = issue.path.join('.') || '(row)';
        const msg = issue.code === 'unrecognized_keys' ? `unknown field(s) ${issue.keys.join(', ')}` : issue.message;
        problems.push(`${origin} row ${i + 1}: ${field}: ${msg}`);
      }
      return;
    }
    const first = seen.get(r.data.id);
    if (first !== undefined)
      problems.push(
        `${origin} row ${i + 1}: id: duplicate id "${r.data.id}" (first at row ${first}); ids must be unique`,
      );
    else seen.set(r.data.id, i + 1);
    rows.push(r.data);
  });
  if (records.length === 0) problems.push(`${origin}: the seed pool is empty; it needs at least one row`);
  if (problems.length) {
    const more = problems.length > MAX_PROBLEMS ? `\n  … and ${problems.length - MAX_PROBLEMS} more` : '';
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `invalid seed file:\n  ${problems.slice(0, MAX_PROBLEMS).join('\n  ')}${more}`,
    );
  }
  return rows;
}

/** Decode bytes as UTF-8, refusing invalid sequences instead of silently replacing them. */
export function decodeUtf8(bytes: Uint8Array, origin: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolyglotError(ErrorType.InvalidInput, `${origin}: not valid UTF-8; re-encode the file as UTF-8`);
  }
}

export function parseJsonl(text: string, origin: string): unknown[] {
  const out: unknown[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    try {
      out.push(JSON.parse(line));
    } catch (e) {
      throw new PolyglotError(
        ErrorType.InvalidInput,
        `${origin} line ${i + 1}: not valid JSON (${(e as Error).message})`,
      );
    }
  });
  return out;
}

export async function parseParquet(bytes: Uint8Array, origin: string): Promise<unknown[]> {
  const { parquetReadObjects } = await import('hyparquet');
  try {
    const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
    return (await parquetReadObjects({ file: buf })) as unknown[];
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `${origin}: cannot read Parquet (${(e as Error).message})`);
  }
}

/** Canonical serialization: rows sorted by id, fixed key order; the digest does not depend on input order. */
export function canonicalSeedJsonl(rows: SeedRow[]): string {
  return rows
    .slice()
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    .map((r) =>
      JSON.stringify({
        id: r.id,
        source: r.source,
        language: r.language,
        strategy: r.strategy,
        source_id: r.source_id,
        prompt: r.prompt,
        response: r.response,
      }),
    )
    .join('\n')
    .concat('\n');
}

export function poolDigest(canonical: string): string {
  return `sha256-${createHash('sha256').update(canonical).digest('hex')}`;
}

const isPoolManifest = (v: unknown): boolean =>
  typeof (v as SeedPoolManifest).digest === 'string' && typeof (v as SeedPoolManifest).rows === 'number';

/**
 * A pool's manifest (sealed; older unsealed ones accepted when they have its shape) and its rows checked
 * against the digest the manifest records, the digest the pool is addressed by.
 */
async function readPool(
  store: S3Store,
  poolKey: string,
): Promise<
  | { state: 'missing' }
  | { state: 'damaged'; reason: string }
  | { state: 'ok'; manifest: SeedPoolManifest; text: string }
> {
  const read = await getSealed<SeedPoolManifest>(store, keys.seedManifest(poolKey), isPoolManifest);
  if (read.state === 'missing') return read;
  if (read.state === 'damaged') return { state: 'damaged', reason: `manifest ${read.reason}` };
  const text = await store.getText(keys.seedRows(poolKey));
  if (text === undefined) return { state: 'damaged', reason: 'it has a manifest but no rows' };
  const got = poolDigest(text);
  if (got !== read.value.digest)
    return {
      state: 'damaged',
      reason: `rows digest ${got.slice(0, 19)}…, its manifest records ${read.value.digest.slice(0, 19)}…`,
    };
  return { state: 'ok', manifest: read.value, text };
}

/**
 * Import rows into the store; idempotent: an intact pool with the same digest is left as is, a damaged
 * one is written again (the fix a damaged pool's error names).
 */
export async function importSeedPool(
  store: S3Store,
  prefix: string,
  rows: SeedRow[],
  source: string,
): Promise<{ uri: string; manifest: SeedPoolManifest; created: boolean }> {
  const canonical = canonicalSeedJsonl(rows);
  const digest = poolDigest(canonical);
  const poolKey = keys.seedPool(prefix, digest);
  const existing = await readPool(store, poolKey);
  if (existing.state === 'ok') return { uri: store.uri(poolKey), manifest: existing.manifest, created: false };
  const counts: Record<string, number> = {};
  for (const r of rows)
    for (const s of r.strategy) counts[`${r.language}/${s}`] = (counts[`${r.language}/${s}`] ?? 0) + 1;
  const manifest: SeedPoolManifest = {
    digest,
    rows: rows.length,
    counts,
    source,
    importedAt: new Date().toISOString(),
  };
  await store.ensureBucket();
  // A damaged pool's manifest goes first: a crash before the rows are rewritten leaves "absent", not "damaged".
  if (existing.state === 'damaged') await store.delete(keys.seedManifest(poolKey));
  await store.putText(keys.seedRows(poolKey), canonical, 'application/x-ndjson');
  // The manifest is the completion marker: written last, so a pool is either complete or absent. Sealed.
  await putSealed(store, keys.seedManifest(poolKey), manifest);
  return { uri: store.uri(poolKey), manifest, created: true };
}

export async function readSeedFile(path: string, bytes: Uint8Array): Promise<SeedRow[]> {
  const records = /\.parquet$/i.test(path)
    ? await parseParquet(bytes, path)
    : parseJsonl(decodeUtf8(bytes, path), path);
  return validateSeedRows(records, path);
}

/** Load a pool's rows from S3, checked against the pool's digest (and validated again: the store is outside our control). */
export async function loadSeedPool(store: S3Store, poolKey: string): Promise<SeedRow[]> {
  const pool = await readPool(store, poolKey);
  if (pool.state === 'missing') {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `no seed pool at ${store.uri(poolKey)}; import one with \`polyglot seeds import <file>\``,
    );
  }
  if (pool.state === 'damaged')
    throw new PolyglotError(
      ErrorType.CorruptArtifact,
      `seed pool ${store.uri(poolKey)} is damaged (${pool.reason}); import its seed file again with \`polyglot seeds import <file>\``,
    );
  return validateSeedRows(parseJsonl(pool.text, store.uri(poolKey)), store.uri(poolKey));
}

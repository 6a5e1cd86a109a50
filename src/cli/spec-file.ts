import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ErrorType, PolyglotError } from '../common/errors';
import { canonicalSeedJsonl, decodeUtf8, importSeedPool, poolDigest, readSeedFile } from '../seeds/pool';
import { parseSweepSpec, type SweepSpec } from '../spec/sweep';
import type { StoreRegistry } from '../storage/s3';

/** Read a YAML or JSON spec file into a plain object (no validation yet). */
export async function readSpecFile(file: string): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `cannot read spec file ${file}: ${(e as Error).message}`);
  }
  const text = decodeUtf8(bytes, file);
  let doc: unknown;
  try {
    doc = /\.json$/i.test(file) ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `${file}: not valid ${/\.json$/i.test(file) ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new PolyglotError(ErrorType.InvalidInput, `${file}: the spec must be a mapping (object) at the top level`);
  }
  return doc as Record<string, unknown>;
}

/**
 * Load a spec for the CLI. A `seedPool` that names a local file (relative to the spec) is imported
 * first — content-addressed, so importing again is free — and replaced by its S3 URI, which is what
 * the workflow sees. Everything else is validated exactly as the workflow validates it.
 */
export async function loadSpec(
  file: string,
  stores: StoreRegistry,
  opts: { importSeeds: boolean },
): Promise<SweepSpec> {
  const doc = await readSpecFile(file);
  const pool = doc.seedPool;
  if (typeof pool === 'string' && !pool.startsWith('s3://')) {
    const local = path.resolve(path.dirname(file), pool.replace(/^file:/, ''));
    const storage = (doc.storage ?? {}) as { bucket?: unknown; prefix?: unknown };
    // Validate the rest first so a typo in storage is reported before anything is written.
    parseSweepSpec({ ...doc, seedPool: placeholderPool(storage) });
    const rows = await readSeedFile(
      local,
      await readFile(local).catch(() => {
        throw new PolyglotError(
          ErrorType.InvalidInput,
          `seedPool: cannot read seed file ${local}; give an existing JSONL/Parquet file or an s3:// URI`,
        );
      }),
    );
    if (opts.importSeeds) {
      const store = stores.for(String(storage.bucket));
      doc.seedPool = (
        await importSeedPool(store, String(storage.prefix ?? 'polyglot'), rows, path.basename(local))
      ).uri;
    } else {
      // Same digest as an import would give, so `plan` shows the keys `start` will use.
      doc.seedPool = `s3://${String(storage.bucket)}/${String(storage.prefix ?? 'polyglot')}/seeds/${poolDigest(canonicalSeedJsonl(rows))}`;
    }
  }
  return parseSweepSpec(doc);
}

function placeholderPool(storage: { bucket?: unknown; prefix?: unknown }): string {
  return `s3://${String(storage.bucket)}/${String(storage.prefix ?? 'polyglot')}/seeds/sha256-${'0'.repeat(64)}`;
}

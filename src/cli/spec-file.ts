import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ErrorType, PolyglotError } from '../common/errors';
import { canonicalSeedJsonl, decodeUtf8, importSeedPool, poolDigest, readSeedFile } from '../seeds/pool';
import { SPEC_LIMITS, formatPath, parseSweepSpec, type SweepSpec } from '../spec/sweep';
import { digestLocalAsset, importAsset } from '../storage/assets';
import { sha256OfBytes } from '../storage/integrity';
import { STORED_TEMPLATE_URI, keys } from '../storage/layout';
import { parseS3Uri, type StoreRegistry } from '../storage/s3';
import { TEMPLATE_PARTS, templateProblems } from '../spec/templates';

/** Read a YAML or JSON spec file into a plain object (no validation yet). */
export async function readSpecFile(file: string): Promise<Record<string, unknown>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new PolyglotError(ErrorType.InvalidInput, `cannot read spec file ${file}: ${(e as Error).message}`);
  }
  if (bytes.length > SPEC_LIMITS.bytes) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `${file}: the spec file is ${bytes.length} bytes; the limit is ${SPEC_LIMITS.bytes} (1 MiB). Long texts and lists belong in S3 (seed pools, benchmark data), not in the spec`,
    );
  }
  const text = decodeUtf8(bytes, file);
  const json = /\.json$/i.test(file);
  let doc: unknown;
  try {
    // YAML refuses duplicate keys itself (uniqueKeys is on by default).
    doc = json ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `${file}: not valid ${json ? 'JSON' : 'YAML'}: ${(e as Error).message}`,
    );
  }
  const dups = json ? duplicateJsonKeys(text) : [];
  if (dups.length) {
    throw new PolyglotError(
      ErrorType.InvalidInput,
      `${file}: duplicate key(s) ${dups.join(', ')}; JSON readers silently keep the last one, so write each key once`,
    );
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new PolyglotError(ErrorType.InvalidInput, `${file}: the spec must be a mapping (object) at the top level`);
  }
  return doc as Record<string, unknown>;
}

/**
 * The paths of keys written twice in one object of a JSON text that JSON.parse accepted (so the text is
 * well-formed and this walk can be simple). JSON.parse keeps the last value without a word.
 */
export function duplicateJsonKeys(text: string): string[] {
  const dups: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++;
  };
  const readString = (): string => {
    const start = i++;
    while (text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const value = (path: (string | number)[]): void => {
    skipSpace();
    const c = text[i];
    if (c === '{' || c === '[') {
      i++;
      skipSpace();
      if (text[i] === (c === '{' ? '}' : ']')) {
        i++;
        return;
      }
      const seen = new Set<string>();
      for (let n = 0; ; n++) {
        if (c === '{') {
          skipSpace();
          const key = readString();
          if (seen.has(key)) dups.push(formatPath([...path, key]));
          seen.add(key);
          skipSpace();
          i++; // ':'
          value([...path, key]);
        } else value([...path, n]);
        skipSpace();
        if (text[i++] !== ',') return; // '}' or ']'
      }
    }
    if (c === '"') readString();
    else while (i < text.length && !' \t\n\r,]}'.includes(text[i]!)) i++;
  };
  value([]);
  return dups;
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
    parseSweepSpec({ ...withAssetPlaceholders(doc), seedPool: placeholderPool(storage) });
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
      doc.seedPool = keys.uri(
        String(storage.bucket),
        keys.seedPool(String(storage.prefix ?? 'polyglot'), poolDigest(canonicalSeedJsonl(rows))),
      );
    }
  }
  await importLocalAssets(file, doc, stores, opts.importSeeds);
  await storeTemplateFiles(file, doc, stores, opts.importSeeds);
  return parseSweepSpec(doc);
}

/**
 * The spec's own prompt files (`templates.<part>`): a local path (relative to the spec) or any s3:// object is read
 * here, in the CLI — never on a worker —, checked for the placeholders its part needs, and stored content-addressed
 * in the sweep's bucket; the spec then names the stored file, whose URI carries its SHA-256. Without `upload`
 * (plan), only the URI is computed.
 */
async function storeTemplateFiles(
  file: string,
  doc: Record<string, unknown>,
  stores: StoreRegistry,
  upload: boolean,
): Promise<void> {
  const t = doc.templates;
  if (!t || typeof t !== 'object' || Array.isArray(t)) return;
  const storage = (doc.storage ?? {}) as { bucket?: unknown; prefix?: unknown };
  const prefix = String(storage.prefix ?? 'polyglot');
  const parts = t as Record<string, unknown>;
  for (const part of TEMPLATE_PARTS) {
    const ref = parts[part];
    if (typeof ref !== 'string' || STORED_TEMPLATE_URI.test(ref)) continue;
    const field = `templates.${part}`;
    let bytes: Uint8Array | undefined;
    let origin: string;
    if (ref.startsWith('s3://')) {
      origin = ref;
      const { bucket, key } = parseS3Uri(ref);
      bytes = await stores.for(bucket).getBytes(key);
      if (bytes === undefined)
        throw new PolyglotError(ErrorType.InvalidInput, `${field}: ${ref} does not exist; give an existing object`);
    } else {
      origin = path.resolve(path.dirname(file), ref.replace(/^file:(\/\/)?/, ''));
      bytes = await readFile(origin).catch(() => {
        throw new PolyglotError(
          ErrorType.InvalidInput,
          `${field}: cannot read ${origin}; give an existing text file (relative to the spec) or an s3:// URI`,
        );
      });
    }
    const problems = templateProblems(part, decodeUtf8(bytes, origin));
    if (problems.length)
      throw new PolyglotError(ErrorType.InvalidInput, `${field}: ${origin}: ${problems.join('; ')}; edit the file`);
    const key = keys.template(prefix, sha256OfBytes(bytes));
    const store = stores.for(String(storage.bucket));
    if (upload && !(await store.exists(key))) await store.putText(key, bytes, 'text/plain; charset=utf-8');
    parts[part] = keys.uri(String(storage.bucket), key);
  }
}

const isLocalPath = (v: unknown): v is string =>
  typeof v === 'string' && (v.startsWith('.') || v.startsWith('/') || v.startsWith('file:'));

/**
 * Student and anchor models and the benchmark data may name local paths in a spec file (laptops, the
 * demo): each is imported into the sweep's bucket, content-addressed, and replaced by its S3 URI, so
 * jobs on any runner read the same bytes and the cache keys change when the bytes do. `random:<path>`
 * keeps its prefix. Without `importAssets` (plan), only the URI is computed.
 */
async function importLocalAssets(
  file: string,
  doc: Record<string, unknown>,
  stores: StoreRegistry,
  upload: boolean,
): Promise<void> {
  const storage = (doc.storage ?? {}) as { bucket?: unknown; prefix?: unknown };
  const prefix = String(storage.prefix ?? 'polyglot');
  const done = new Map<string, string>();
  const resolve = async (value: unknown, kind: 'models' | 'benchmarks', where: string): Promise<unknown> => {
    const random = typeof value === 'string' && value.startsWith('random:') ? 'random:' : '';
    const [ref, fragment] = typeof value === 'string' ? value.slice(random.length).split('#', 2) : [value];
    if (!isLocalPath(ref)) return value;
    const local = path.resolve(path.dirname(file), ref.replace(/^file:(\/\/)?/, ''));
    let uri = done.get(`${kind}:${local}`);
    if (!uri) {
      try {
        if (upload) uri = await importAsset(stores.for(String(storage.bucket)), prefix, kind, local);
        else
          uri = keys.folderUri(
            String(storage.bucket),
            keys.asset(prefix, kind, (await digestLocalAsset(local)).digest),
          );
      } catch (e) {
        throw new PolyglotError(
          ErrorType.InvalidInput,
          `${where}: cannot import ${local} (${(e as Error).message}); give an existing file or folder, or an s3:// URI`,
        );
      }
      done.set(`${kind}:${local}`, uri);
    }
    return `${random}${uri}${fragment !== undefined ? `#${fragment}` : ''}`;
  };
  if (Array.isArray(doc.students)) {
    for (const [i, s] of (doc.students as Record<string, unknown>[]).entries()) {
      if (!s || typeof s !== 'object') continue;
      s.model = await resolve(s.model, 'models', `students[${i}].model`);
      const a = s.anchors as Record<string, unknown> | undefined;
      if (a && typeof a === 'object') {
        a.base = await resolve(a.base, 'models', `students[${i}].anchors.base`);
        a.reference = await resolve(a.reference, 'models', `students[${i}].anchors.reference`);
      }
    }
  }
  const ev = doc.evaluation as Record<string, unknown> | undefined;
  if (ev && typeof ev === 'object') ev.dataUri = await resolve(ev.dataUri, 'benchmarks', 'evaluation.dataUri');
}

/** The spec with every local asset path replaced by an S3 placeholder: to validate before any upload. */
function withAssetPlaceholders(doc: Record<string, unknown>): Record<string, unknown> {
  const copy = JSON.parse(JSON.stringify(doc)) as Record<string, unknown>;
  const ph = (v: unknown) => {
    const random = typeof v === 'string' && v.startsWith('random:') ? 'random:' : '';
    return isLocalPath(typeof v === 'string' ? v.slice(random.length) : v)
      ? `${random}${keys.folderUri('placeholder', 'asset')}`
      : v;
  };
  for (const s of Array.isArray(copy.students) ? (copy.students as Record<string, unknown>[]) : []) {
    if (!s || typeof s !== 'object') continue;
    s.model = ph(s.model);
    const a = s.anchors as Record<string, unknown> | undefined;
    if (a && typeof a === 'object') Object.assign(a, { base: ph(a.base), reference: ph(a.reference) });
  }
  const ev = copy.evaluation as Record<string, unknown> | undefined;
  if (ev && typeof ev === 'object') ev.dataUri = ph(ev.dataUri);
  return copy;
}

function placeholderPool(storage: { bucket?: unknown; prefix?: unknown }): string {
  return keys.uri(
    String(storage.bucket),
    keys.seedPool(String(storage.prefix ?? 'polyglot'), `sha256-${'0'.repeat(64)}`),
  );
}

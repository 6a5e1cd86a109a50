/**
 * Content-addressed folders in S3 (models, benchmark data) imported from a local path named in a spec
 * file. The key is the SHA-256 of every file's relative path and bytes, so importing again is free, a
 * changed file gives a new key (and with it new cache keys downstream), and jobs read `_COMPLETE` to
 * know the folder is whole: it is written last. storage/layout.ts (`keys.asset`) names the folder.
 */
import { createHash } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { keys } from './layout';
import type { S3Store } from './s3';

async function listFiles(root: string): Promise<string[]> {
  const s = await stat(root);
  if (s.isFile()) return [root];
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = path.join(root, e.name);
    if (e.isDirectory()) out.push(...(await listFiles(p)));
    else if (e.isFile()) out.push(p);
  }
  return out.sort();
}

export interface LocalAsset {
  digest: string;
  files: { rel: string; abs: string }[];
}

export async function digestLocalAsset(local: string): Promise<LocalAsset> {
  const base = (await stat(local)).isFile() ? path.dirname(local) : local;
  const files = (await listFiles(local)).map((abs) => ({
    rel: path.relative(base, abs).split(path.sep).join('/'),
    abs,
  }));
  if (!files.length) throw new Error(`${local}: no files to import`);
  const h = createHash('sha256');
  for (const f of files) {
    h.update(`${f.rel}\0`);
    h.update(
      createHash('sha256')
        .update(await readFile(f.abs))
        .digest(),
    );
  }
  return { digest: `sha256-${h.digest('hex')}`, files };
}

/** Upload a local file or folder once; returns its `s3://…/` folder URI. */
export async function importAsset(
  store: S3Store,
  prefix: string,
  kind: 'models' | 'benchmarks',
  local: string,
): Promise<string> {
  const asset = await digestLocalAsset(local);
  const key = keys.asset(prefix, kind, asset.digest);
  if (!(await store.exists(keys.assetComplete(key)))) {
    for (const f of asset.files) await store.putText(keys.assetFile(key, f.rel), await readFile(f.abs));
    await store.putText(keys.assetComplete(key), '');
  }
  return keys.folderUri(store.bucket, key);
}

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { scanForKeyBuilding } from '../support/layout-scan';

/**
 * Every S3 key, key prefix and s3:// URI is built in src/storage/layout.ts (docs/s3-layout.md), and no key is
 * taken apart again. This fails, naming file:line, when code anywhere else in src/ builds one by hand.
 */
const ROOT = path.resolve(__dirname, '../../..');
const LAYOUT = 'src/storage/layout.ts';

/**
 * Known exceptions, `file: text the finding starts with`, each with its reason. Keep it short: a key that
 * belongs in layout.ts goes there instead.
 */
const ALLOWED: { file: string; startsWith: string; why: string }[] = [];

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = path.posix.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(rel);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [rel] : [];
  });
}

describe('S3 keys are built in src/storage/layout.ts only', function () {
  this.timeout(60_000);

  it('finds no key, prefix or s3:// URI built, and none taken apart, anywhere else in src/', () => {
    const files = sourceFiles('src').filter((f) => f !== LAYOUT);
    assert.ok(files.length > 50, `only ${files.length} source files found under src/`);
    const found: string[] = [];
    for (const file of files)
      for (const f of scanForKeyBuilding(readFileSync(path.join(ROOT, file), 'utf8'), file)) {
        if (ALLOWED.some((a) => a.file === file && f.text.startsWith(a.startsWith))) continue;
        found.push(`${file}:${f.line}: ${f.why}: ${f.text}`);
      }
    assert.deepEqual(found, [], `build these keys with \`keys\` in ${LAYOUT}:\n${found.join('\n')}`);
  });

  it('the scanner sees every folder key that layout.ts itself builds (so the same code elsewhere fails)', () => {
    const text = readFileSync(path.join(ROOT, LAYOUT), 'utf8');
    const lines = new Set(scanForKeyBuilding(text, LAYOUT).map((f) => f.line));
    const expected = text
      .split('\n')
      .flatMap((l, i) =>
        !/^\s*(?:\*|\/\*|\/\/)/.test(l) &&
        /`[^`]*(?:s3:\/\/|\/(?:seeds|templates|datasets|metrics|students|anchors|sweeps|reports|index|shards|logs)\/)/.test(
          l,
        )
          ? [i + 1]
          : [],
      );
    assert.ok(expected.length >= 15, `only ${expected.length} key lines found in ${LAYOUT}`);
    const unseen = expected.filter((n) => !lines.has(n));
    assert.deepEqual(unseen, [], `the scanner misses ${LAYOUT} lines ${unseen.join(', ')}`);
  });

  it('flags keys and URIs built by template, by concatenation, or taken apart', () => {
    const bad = [
      // the student key as it was built before this guard
      'const out = `s3://${storage.bucket}/${storage.prefix}/students/${input.datasetKey}/${student.id}-${k}/`;',
      'const key = `${prefix}/metrics/${datasetKey}/${metric}-${digest}.json`;',
      'const k = `${outKey}/result.json`;',
      'const logs = `${outKey}/logs/${name}`;',
      'const uri = `s3://${bucket}`;',
      "const uri = 's3://' + bucket + '/' + key;",
      "const key = prefix + '/reports/' + sweepId;",
      'const ds = `datasets/${key}`;',
      "const digest = input.datasetKey.split('/').pop();",
      "const [bucket] = uri.split('/');",
      'const m = /seeds\\/(sha256-[0-9a-f]{64})\\/?$/.exec(u);',
      'const n = /templates\\/sha256-([0-9a-f]{64})/.exec(u);',
    ];
    for (const code of bad) assert.equal(scanForKeyBuilding(code).length, 1, `not flagged: ${code}`);
  });

  it('leaves prose, comments, workflow ids and plain paths alone', () => {
    const good = [
      '// the result lives at s3://bucket/polyglot/metrics/<key>/judge-<digest>.json',
      '/** `s3://<bucket>/<prefix>/seeds/sha256-<hex>` */ const x = 1;',
      'throw new Error(`${field}: give an existing file or an s3:// URI`);',
      'const m = `not an s3:// URI: ${uri}`;',
      'const id = `sweep/${sweepId}/anchors/f=${family}/l=${language}`;',
      'const cell = `${base}/eval`;',
      'const where = `${teacher}/${language}`;',
      "const parts = line.split('/');",
      'const p = readFileSync(`/proc/${pid}/stat`);',
      "const metrics = 'metrics/';",
      'const re = /\\/dataset$/;',
      'throw new Error(`metric ${name} computed ${x}, not among its outputs (src/metrics/defs)`);',
    ];
    for (const code of good) assert.deepEqual(scanForKeyBuilding(code), [], `flagged: ${code}`);
  });
});

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Code and docs cite only documents that live in this repository: the project's docs are docs/*.md.
 * Fails, naming file:line, on a citation of a document kept outside the repository, on a reference to a
 * docs file that does not exist, and on a quoted section of a docs file that has no such heading.
 */
const ROOT = path.resolve(__dirname, '../../..');
const SCANNED = ['src', 'test', 'jobs', 'scripts', 'bench', 'tools/local-llm/server.mjs', 'README.md', 'docs'];
const SKIP_DIRS = new Set(['node_modules', '__pycache__', '.git', 'lib', '.tools', '.data']);

// Documents that live outside the repository; built from pieces so this file does not cite them itself.
const OUTSIDE = ['paper' + '-spec', 'des' + 'ign', 'in' + 'fra'];
const OUTSIDE_RE = new RegExp(`(?<![\\w-])(?:${OUTSIDE.join('|')})\\.md\\b`, 'g');
const DOC_REF_RE = /\bdocs\/([A-Za-z0-9_.-]+?)\.md(#[A-Za-z0-9_-]+)?(?:,\s*"([^"\n]+)"(?:\s+and\s+"([^"\n]+)")?)?/g;

interface Line {
  file: string;
  line: number;
  text: string;
}

/** Tracked and not-ignored files under the scanned paths; a plain walk where git is not available. */
function scannedFiles(): string[] {
  try {
    const out = execFileSync(
      'git',
      ['ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...SCANNED],
      {
        cwd: ROOT,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    const files = out.split('\0').filter((f) => f && !f.split('/').some((part) => SKIP_DIRS.has(part)));
    if (files.length) return [...new Set(files)].filter((f) => fs.existsSync(path.join(ROOT, f)));
  } catch {
    // not a git checkout: walk instead
  }
  const files: string[] = [];
  const walk = (rel: string): void => {
    const abs = path.join(ROOT, rel);
    if (!fs.existsSync(abs)) return;
    if (fs.statSync(abs).isFile()) {
      files.push(rel);
      return;
    }
    for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
      if (entry.isDirectory() && SKIP_DIRS.has(entry.name)) continue;
      walk(path.posix.join(rel, entry.name));
    }
  };
  for (const p of SCANNED) walk(p);
  return files;
}

/** Every line of every scanned text file (binary files, those with a NUL byte, are skipped). */
function scannedLines(): Line[] {
  const lines: Line[] = [];
  for (const file of scannedFiles()) {
    const buf = fs.readFileSync(path.join(ROOT, file));
    if (buf.includes(0)) continue;
    buf
      .toString('utf8')
      .split(/\r?\n/)
      .forEach((text, i) => lines.push({ file, line: i + 1, text }));
  }
  return lines;
}

/** GitHub-style anchor of a Markdown heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function headingsOf(docFile: string): string[] {
  return fs
    .readFileSync(docFile, 'utf8')
    .split(/\r?\n/)
    .map((l) => /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(l)?.[1])
    .filter((h): h is string => h !== undefined);
}

describe('documentation references', () => {
  const lines = scannedLines();

  it('scans the source and docs trees', () => {
    const files = new Set(lines.map((l) => l.file));
    for (const must of ['README.md', 'src/storage/layout.ts', 'docs/method.md', 'test/unit/docs.test.ts']) {
      assert.ok(files.has(must), `expected ${must} among the scanned files`);
    }
  });

  it('cites no document that lives outside the repository', () => {
    const bad = lines
      .filter((l) => !l.file.startsWith('docs/'))
      .flatMap((l) => [...l.text.matchAll(OUTSIDE_RE)].map((m) => `${l.file}:${l.line}: ${m[0]}`));
    assert.deepEqual(bad, [], `cite docs/*.md instead:\n${bad.join('\n')}`);
  });

  it('refers only to docs files, sections and anchors that exist', () => {
    const headings = new Map<string, string[]>();
    const bad: string[] = [];
    for (const l of lines) {
      for (const m of l.text.matchAll(DOC_REF_RE)) {
        const name = `docs/${m[1]}.md`;
        const abs = path.join(ROOT, name);
        if (!fs.existsSync(abs)) {
          bad.push(`${l.file}:${l.line}: ${name} does not exist`);
          continue;
        }
        if (!headings.has(name)) headings.set(name, headingsOf(abs));
        const hs = headings.get(name)!;
        const anchor = m[2]?.slice(1);
        if (anchor !== undefined && !hs.some((h) => slug(h) === anchor)) {
          bad.push(`${l.file}:${l.line}: ${name} has no heading for #${anchor}`);
        }
        for (const section of [m[3], m[4]]) {
          if (section !== undefined && !hs.includes(section)) {
            bad.push(`${l.file}:${l.line}: ${name} has no section "${section}"`);
          }
        }
      }
    }
    assert.deepEqual(bad, [], bad.join('\n'));
  });
});

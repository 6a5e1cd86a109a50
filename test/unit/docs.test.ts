import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SweepSpecSchema } from '../../src/spec/sweep';

/**
 * Code and docs cite only documents that live in this repository: the project's docs are docs/*.md.
 * Fails, naming file:line, on a citation of a document kept outside the repository, on a reference to a
 * docs file that does not exist, on a quoted section or anchor of a docs file (or of the README) that has no
 * such heading, and on a spec field that the spec reference (docs/spec.md) does not document.
 */
const ROOT = path.resolve(__dirname, '../../..');
const SCANNED = [
  'src',
  'test',
  'jobs',
  'scripts',
  'bench',
  'deploy',
  'examples',
  'bin',
  '.ci',
  'tools/local-llm/server.mjs',
  'README.md',
  'docs',
];
const SKIP_DIRS = new Set(['node_modules', '__pycache__', '.git', 'lib', '.tools', '.data']);

// Documents that live outside the repository; built from pieces so this file does not cite them itself.
const OUTSIDE = ['paper' + '-spec', 'des' + 'ign', 'in' + 'fra', 'sty' + 'le'];
const OUTSIDE_RE = new RegExp(`(?<![\\w-])(?:${OUTSIDE.join('|')})\\.md\\b`, 'g');
const DOC_REF_RE = /\bdocs\/([A-Za-z0-9_.-]+?)\.md(#[A-Za-z0-9_-]+)?(?:,\s*"([^"\n]+)"(?:\s+and\s+"([^"\n]+)")?)?/g;
// A Markdown link inside docs/ to a sibling page or to a heading of the same page: `](spec.md#x)`, `](#x)`.
const RELATIVE_LINK_RE = /\]\((?:([A-Za-z0-9_.-]+?)\.md)?(#[A-Za-z0-9_-]+)?\)/g;
// A README section cited by name: README.md (or README), an optional comma, then the heading in quotes.
const README_REF_RE = /\bREADME(?:\.md)?,?\s*\(?"([^"\n]+)"/g;

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

/** Every field path of a zod schema (objects, lists, optional, default and preprocessed fields), e.g. `teachers[].sampling.topP`. */
function fieldPaths(schema: unknown, prefix = ''): string[] {
  const def = (schema as { _zod: { def: Record<string, unknown> & { type: string } } })._zod.def;
  switch (def.type) {
    case 'object':
      return Object.entries(def.shape as Record<string, unknown>).flatMap(([key, sub]) => {
        const p = prefix ? `${prefix}.${key}` : key;
        return [p, ...fieldPaths(sub, p)];
      });
    case 'optional':
    case 'default':
    case 'nullable':
      return fieldPaths(def.innerType, prefix);
    case 'pipe':
      return fieldPaths(def.out, prefix);
    case 'array':
      return fieldPaths(def.element, `${prefix}[]`);
    default:
      return [];
  }
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
    const bad = lines.flatMap((l) => [...l.text.matchAll(OUTSIDE_RE)].map((m) => `${l.file}:${l.line}: ${m[0]}`));
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

  it('links between docs pages and to their own headings only where the page and heading exist', () => {
    const bad: string[] = [];
    for (const l of lines.filter((x) => /^docs\/[^/]+\.md$/.test(x.file) || x.file === 'README.md')) {
      for (const m of l.text.matchAll(RELATIVE_LINK_RE)) {
        if (m[1] === undefined && m[2] === undefined) continue;
        // README.md links into docs/ with the docs/ prefix, checked above; here: its own anchors only.
        if (l.file === 'README.md' && m[1] !== undefined) continue;
        const target = m[1] === undefined ? l.file : `docs/${m[1]}.md`;
        const abs = path.join(ROOT, target);
        if (!fs.existsSync(abs)) {
          bad.push(`${l.file}:${l.line}: ${target} does not exist`);
          continue;
        }
        const anchor = m[2]?.slice(1);
        if (anchor !== undefined && !headingsOf(abs).some((h) => slug(h) === anchor)) {
          bad.push(`${l.file}:${l.line}: ${target} has no heading for #${anchor}`);
        }
      }
    }
    assert.deepEqual(bad, [], bad.join('\n'));
  });

  it('cites only README sections that exist', () => {
    const readme = headingsOf(path.join(ROOT, 'README.md'));
    const bad = lines.flatMap((l) =>
      [...l.text.matchAll(README_REF_RE)]
        .filter((m) => !readme.includes(m[1]!))
        .map((m) => `${l.file}:${l.line}: README.md has no section "${m[1]}"`),
    );
    assert.deepEqual(bad, [], bad.join('\n'));
  });

  it('documents every field of the sweep spec in docs/spec.md', () => {
    const doc = fs.readFileSync(path.join(ROOT, 'docs/spec.md'), 'utf8');
    // The page's `## ` sections by heading, each with the field names it writes in backticks (alone, in a
    // dotted path or inside an object literal such as `{input, output}`).
    const sections = new Map<string, Set<string>>();
    for (const part of doc.split(/^## /m).slice(1)) {
      const [heading, ...body] = part.split('\n');
      const names = [...body.join('\n').matchAll(/`([^`\n]+)`/g)].flatMap(
        (m) => m[1]!.match(/[A-Za-z][A-Za-z0-9]*/g) ?? [],
      );
      sections.set(heading!.trim(), new Set(names));
    }
    // Where each top-level field's own fields are documented; any other top-level field: in "Top level".
    const SECTION: Record<string, string> = {
      storage: 'Storage',
      providers: 'Providers',
      teachers: 'Teachers',
      templates: 'Templates',
      students: 'Students',
      training: 'Training',
      evaluation: 'Evaluation',
      metrics: 'Metrics',
      scoring: 'Scoring',
      timeouts: 'Timeouts and retry',
      retry: 'Timeouts and retry',
    };
    const paths = fieldPaths(SweepSpecSchema);
    assert.ok(
      paths.includes('training.hyper.loraTargets'),
      `the schema walk missed nested fields: ${paths.join(', ')}`,
    );
    const missing = paths.filter((p) => {
      const top = p.split(/[.[]/)[0]!;
      const section = p === top ? 'Top level' : (SECTION[top] ?? 'Top level');
      const leaf = p.split('.').pop()!.replace('[]', '');
      return !sections.get(section)?.has(leaf);
    });
    assert.deepEqual(missing, [], `spec fields missing from their section of docs/spec.md:\n${missing.join('\n')}`);
    // Every top-level field has its own row in the "Top level" table.
    const top = Object.keys((SweepSpecSchema as unknown as { shape: Record<string, unknown> }).shape);
    const noRow = top.filter((k) => !doc.includes(`| \`${k}\` |`));
    assert.deepEqual(noRow, [], `top-level spec fields without a row in docs/spec.md:\n${noRow.join('\n')}`);
  });
});

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ESLint } from 'eslint';
import ts from 'typescript';

/**
 * The layers of src/: no import cycles between its top-level folders, and workflow code importing only what
 * eslint.config.mjs allows (WORKFLOW_IMPORTS), all of it pure down to its last import.
 */
const ROOT = path.resolve(__dirname, '../../..');
const SRC = path.join(ROOT, 'src');

interface Import {
  /** As written: `../spec/sweep`, `zod`. */
  source: string;
  /** Repository path of a relative import's file (`src/spec/sweep.ts`), when it resolves. */
  file?: string;
  /** `import type`, `export type`, or every named binding `type`: erased from the compiled code. */
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) =>
      e.isDirectory() ? sourceFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
    );
}

const rel = (abs: string) => path.relative(ROOT, abs).split(path.sep).join('/');

function resolve(from: string, source: string): string | undefined {
  const base = path.resolve(path.dirname(from), source);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts'), base.replace(/\.js$/, '.ts')])
    if (candidate.endsWith('.ts') && fs.existsSync(candidate)) return candidate;
  return undefined;
}

/** Every import, re-export and dynamic import() of a file, read with the TypeScript parser (comments are not imports). */
function importsOf(file: string): Import[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, true);
  const out: Import[] = [];
  const add = (spec: ts.Expression | undefined, typeOnly: boolean) => {
    if (!spec || !ts.isStringLiteral(spec)) return;
    const resolved = spec.text.startsWith('.') ? resolve(file, spec.text) : undefined;
    out.push({ source: spec.text, typeOnly, ...(resolved ? { file: rel(resolved) } : {}) });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const c = node.importClause;
      const named = c?.namedBindings && ts.isNamedImports(c.namedBindings) ? c.namedBindings.elements : undefined;
      const typeOnly =
        !!c && (c.isTypeOnly || (!c.name && !!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
      add(node.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(node)) {
      const named = node.exportClause && ts.isNamedExports(node.exportClause) ? node.exportClause.elements : undefined;
      add(node.moduleSpecifier, node.isTypeOnly || (!!named && named.length > 0 && named.every((e) => e.isTypeOnly)));
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node.arguments[0], false);
    } else if (ts.isImportTypeNode(node)) {
      const arg = node.argument;
      if (ts.isLiteralTypeNode(arg)) add(arg.literal as ts.StringLiteral, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

const FILES = new Map(sourceFiles(SRC).map((f) => [rel(f), importsOf(f)]));
const folderOf = (file: string) => file.split('/')[1]!;

describe('layers', function () {
  // Loading ESLint and its TypeScript parser takes seconds on a busy machine.
  this.timeout(120_000);
  it('has no import cycle between the top-level folders of src/', () => {
    // folder → folder → the imports that make the edge, for the message.
    const edges = new Map<string, Map<string, string[]>>();
    for (const [file, imports] of FILES) {
      for (const imp of imports) {
        if (!imp.file?.startsWith('src/')) continue;
        const [a, b] = [folderOf(file), folderOf(imp.file)];
        if (a === b || file.split('/').length < 3 || imp.file.split('/').length < 3) continue;
        if (!edges.has(a)) edges.set(a, new Map());
        const why = edges.get(a)!;
        why.set(b, [...(why.get(b) ?? []), `${file} imports '${imp.source}'`]);
      }
    }
    assert.ok(edges.size >= 5, `read the import graph of src/ (${edges.size} folders with imports)`);
    // A cycle, if any, as a path folder → … → folder, found by depth-first search.
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const dfs = (v: string): void => {
      state.set(v, 'open');
      stack.push(v);
      for (const w of edges.get(v)?.keys() ?? []) {
        if (state.get(w) === 'open') {
          const loop = [...stack.slice(stack.indexOf(w)), w];
          const because = loop.slice(0, -1).map((x, i) => `    ${edges.get(x)!.get(loop[i + 1]!)![0]}`);
          cycles.push(`  ${loop.join(' → ')}\n${because.join('\n')}`);
        } else if (!state.has(w)) dfs(w);
      }
      stack.pop();
      state.set(v, 'done');
    };
    for (const v of [...edges.keys()].sort()) if (!state.has(v)) dfs(v);
    assert.deepEqual(cycles, [], `import cycles between folders of src/:\n${cycles.join('\n')}`);
  });

  it('keeps what workflows may import pure, down to its last import', async () => {
    const { WORKFLOW_IMPORTS } = (await import(pathToFileURL(path.join(ROOT, 'eslint.config.mjs')).href)) as {
      WORKFLOW_IMPORTS: { packages: string[]; modules: string[]; typeOnly: string[] };
    };
    const fileOf = (mod: string) => [`${mod}.ts`, `${mod}/index.ts`].find((f) => FILES.has(f));
    const packages = new Set(['zod', ...WORKFLOW_IMPORTS.packages]);
    const problems: string[] = [];
    const seen = new Set<string>();
    const walk = (file: string, via: string[]): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const imp of FILES.get(file) ?? []) {
        if (imp.typeOnly) continue;
        if (imp.file) walk(imp.file, [...via, file]);
        else if (!imp.source.startsWith('.') && !packages.has(imp.source))
          problems.push(`${[...via, file].join(' → ')} imports '${imp.source}'`);
        else if (imp.source.startsWith('.')) problems.push(`${file}: cannot resolve '${imp.source}'`);
      }
    };
    for (const mod of WORKFLOW_IMPORTS.modules) {
      const file = fileOf(mod);
      assert.ok(file, `WORKFLOW_IMPORTS names ${mod}, which does not exist`);
      walk(file, []);
    }
    for (const file of FILES.keys()) if (file.startsWith('src/workflows/')) walk(file, []);
    assert.deepEqual(problems, [], `workflow code reaches modules that are not pure:\n  ${problems.join('\n  ')}`);
  });

  describe('workflow imports (ESLint, eslint.config.mjs)', () => {
    let eslint: ESLint;
    before(() => {
      // The probe is not a file of the TypeScript project: lint it without type information.
      eslint = new ESLint({
        cwd: ROOT,
        overrideConfig: {
          files: ['**/*.ts'],
          languageOptions: { parserOptions: { project: null, projectService: false } },
          rules: {
            '@typescript-eslint/no-floating-promises': 'off',
            '@typescript-eslint/no-misused-promises': 'off',
            '@typescript-eslint/no-unused-vars': 'off',
          },
        },
      });
    });
    const lint = async (code: string) => {
      const [result] = await eslint.lintText(code, { filePath: path.join(SRC, 'workflows', 'layers-probe.ts') });
      return result!.messages;
    };

    it('refuses an activity, a Node built-in or another package in a workflow', async () => {
      for (const line of [
        "import { createDatasetActivities } from '../activities/dataset';",
        "import { readFileSync } from 'node:fs';",
        "import { S3Client } from '@aws-sdk/client-s3';",
        "import { Client } from '@temporalio/client';",
        "import { Activities } from '../activities';",
        "export { LocalJobRunner } from '../jobs/local';",
        "const load = () => import('../storage/s3');",
      ]) {
        const messages = await lint(`${line}\nexport const probe = 1;\n`);
        const errors = messages.filter((m) => m.ruleId === 'polyglot/workflow-imports');
        assert.equal(errors.length, 1, `${line}: ${JSON.stringify(messages)}`);
        assert.equal(errors[0]!.severity, 2);
        assert.match(errors[0]!.message, /workflow code may not import .*WORKFLOW_IMPORTS \(eslint\.config\.mjs\)/);
      }
    });

    it('accepts @temporalio/workflow, other workflows, the listed pure modules and types', async () => {
      const messages = await lint(
        [
          "import { proxyActivities } from '@temporalio/workflow';",
          "import type { Activities } from '../activities';",
          "import { type RunJobInput } from '../activities';",
          "import { NON_RETRYABLE } from '../common/errors';",
          "import { parseSweepSpec } from '../spec/sweep';",
          "import { keptAlive } from './shared';",
          'export const probe = [proxyActivities, NON_RETRYABLE, parseSweepSpec, keptAlive];',
          'export type Probe = Activities | RunJobInput;',
        ].join('\n'),
      );
      assert.deepEqual(
        messages.filter((m) => m.ruleId === 'polyglot/workflow-imports'),
        [],
      );
    });
  });
});

// @ts-check
import path from 'node:path';
import tseslint from 'typescript-eslint';

/**
 * What workflow code (src/workflows/**) may import. It runs in Temporal's deterministic sandbox: no Node
 * built-ins, no I/O, no clock or randomness, so only modules that are pure — and whose own imports are pure
 * (test/unit/layers.test.ts checks that) — are on this list. Anything else is an error, so a new dependency
 * of a workflow is a decision made here, not an accident.
 */
export const WORKFLOW_IMPORTS = {
  /** Packages, by exact name. */
  packages: ['@temporalio/workflow', '@temporalio/common'],
  /** Modules of this repository, by path from the root without extension (`index` files by their folder). */
  modules: [
    'src/activities/types', // types only
    'src/common/env', // task-queue names; reads nothing at import
    'src/common/errors',
    'src/common/hash',
    'src/common/job-template',
    'src/common/workflow-ids', // every workflow id; imports nothing
    'src/jobs/spec',
    'src/metrics/registry', // metric definitions: names, zod schemas, queues, outputs
    'src/scoring/runs',
    'src/spec/plan',
    'src/spec/sweep',
    'src/spec/templates',
    'src/storage/layout',
    'src/storage/repairs',
  ],
  /** Modules a workflow may import types from only (`import type`): erased from the bundle. */
  typeOnly: ['src/activities'],
};

/** @type {import('eslint').Rule.RuleModule} */
const workflowImportsRule = {
  meta: {
    type: 'problem',
    docs: { description: 'workflow code imports only @temporalio/workflow, other workflows and WORKFLOW_IMPORTS' },
    schema: [],
    messages: {
      notAllowed:
        "workflow code may not import '{{source}}'{{resolved}}: only @temporalio/workflow, src/workflows and the pure modules of WORKFLOW_IMPORTS (eslint.config.mjs); move I/O into an activity, or add a module there only if it is pure{{typeHint}}",
    },
  },
  create(context) {
    const root = import.meta.dirname;
    const dir = path.dirname(context.filename);
    /** @param {any} node @param {string} source @param {boolean} typeOnly */
    const check = (node, source, typeOnly) => {
      let ok;
      let resolved = '';
      if (source.startsWith('.')) {
        const mod = path
          .relative(root, path.resolve(dir, source))
          .split(path.sep)
          .join('/')
          .replace(/\.(ts|js)$/, '')
          .replace(/\/index$/, '');
        resolved = ` (${mod})`;
        ok =
          mod.startsWith('src/workflows/') ||
          WORKFLOW_IMPORTS.modules.includes(mod) ||
          (typeOnly && WORKFLOW_IMPORTS.typeOnly.includes(mod));
      } else ok = WORKFLOW_IMPORTS.packages.includes(source);
      if (!ok) {
        const typeHint =
          !typeOnly && resolved && WORKFLOW_IMPORTS.typeOnly.includes(resolved.slice(2, -1))
            ? '; from this module only `import type` is allowed'
            : '';
        context.report({ node, messageId: 'notAllowed', data: { source, resolved, typeHint } });
      }
    };
    /** @param {any} node */
    const typeOnlyImport = (node) =>
      node.importKind === 'type' ||
      (node.specifiers.length > 0 && node.specifiers.every((/** @type {any} */ s) => s.importKind === 'type'));
    return {
      ImportDeclaration: (node) => check(node, String(node.source.value), typeOnlyImport(node)),
      ExportNamedDeclaration: (node) => {
        if (node.source) check(node, String(node.source.value), /** @type {any} */ (node).exportKind === 'type');
      },
      ExportAllDeclaration: (node) =>
        check(node, String(node.source.value), /** @type {any} */ (node).exportKind === 'type'),
      ImportExpression: (node) => {
        if (node.source.type === 'Literal') check(node, String(node.source.value), false);
        else
          context.report({ node, messageId: 'notAllowed', data: { source: '(computed)', resolved: '', typeHint: '' } });
      },
    };
  },
};

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', '.tools/**', '.data/**', 'tools/**', 'jobs/**', 'eslint.config.mjs'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/workflows/**/*.ts'],
    plugins: { polyglot: { rules: { 'workflow-imports': workflowImportsRule } } },
    rules: { 'polyglot/workflow-imports': 'error' },
  },
);

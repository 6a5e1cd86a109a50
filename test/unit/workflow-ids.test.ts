import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ErrorType } from '../../src/common/errors';
import * as ids from '../../src/common/workflow-ids';

const ROOT = path.resolve(__dirname, '../../..');
const IDS_MODULE = 'src/common/workflow-ids.ts';
const ERRORS_MODULE = 'src/common/errors.ts';

const cell = { sweepId: '<sweepId>', teacherId: '<teacher>', language: '<language>' };
const anchor = { sweepId: '<sweepId>', family: '<family>', language: '<language>' };
/** Every builder of the ids module, with placeholders for its parts: each form the docs must list. */
const FORMS: Record<keyof typeof ids, string[]> = {
  sweepWorkflowId: [ids.sweepWorkflowId('<sweepId>')],
  datasetWorkflowId: [ids.datasetWorkflowId(cell)],
  metricsWorkflowId: [ids.metricsWorkflowId(cell)],
  studentWorkflowId: [ids.studentWorkflowId(cell, '<student>')],
  trainJobId: [ids.trainJobId(cell, '<student>')],
  evalJobId: [ids.evalJobId(cell, '<student>')],
  anchorWorkflowId: [ids.anchorWorkflowId(anchor)],
  anchorJobId: [ids.anchorJobId(anchor, 'base'), ids.anchorJobId(anchor, 'reference')],
};

/**
 * Lines of a source file that build a workflow id outside the ids module, or name a failure type by a
 * string literal outside the taxonomy: one `file:line: what` each.
 */
function scanSource(file: string, text: string): string[] {
  const rules: [RegExp, string][] = [];
  if (file !== IDS_MODULE) {
    rules.push(
      [/workflowId:\s*[`'"]/, 'a workflow id written as a literal'],
      [/workflowId:[^,\n]*\.replace\(/, 'a workflow id derived by replace'],
      [/\b\w*(?:Id|ID)\b[\w.!?]*\.replace\(/, 'an id derived from another by replace'],
      [/sweep\/\$\{/, 'a `sweep/${…}` id built outside workflow-ids.ts'],
      [/\/(?:t|l|s|f)=\$\{/, 'an id segment (t=, l=, s=, f=) built outside workflow-ids.ts'],
    );
  }
  if (file !== ERRORS_MODULE) {
    const names = Object.values(ErrorType).join('|');
    rules.push([new RegExp(`['"](?:${names})['"]`), 'a failure type as a string literal (use ErrorType)']);
  }
  const out: string[] = [];
  text.split('\n').forEach((line, i) => {
    for (const [re, what] of rules) if (re.test(line)) out.push(`${file}:${i + 1}: ${what}: ${line.trim()}`);
  });
  return out;
}

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory()) return sourceFiles(rel);
    return e.name.endsWith('.ts') ? [rel] : [];
  });
}

describe('workflow ids: one module builds them all', () => {
  it('builds the documented forms', () => {
    assert.equal(ids.sweepWorkflowId('s1'), 'sweep/s1');
    const c = { sweepId: 's1', teacherId: 'a', language: 'de' };
    assert.equal(ids.datasetWorkflowId(c), 'sweep/s1/t=a/l=de/dataset');
    assert.equal(ids.metricsWorkflowId(c), 'sweep/s1/t=a/l=de/metrics');
    assert.equal(ids.studentWorkflowId(c, 'olmo'), 'sweep/s1/t=a/l=de/s=olmo/student');
    assert.equal(ids.trainJobId(c, 'olmo'), 'sweep/s1/t=a/l=de/s=olmo/train');
    assert.equal(ids.evalJobId(c, 'olmo'), 'sweep/s1/t=a/l=de/s=olmo/eval');
    const a = { sweepId: 's1', family: 'olmo', language: 'es' };
    assert.equal(ids.anchorWorkflowId(a), 'sweep/s1/anchors/f=olmo/l=es');
    assert.equal(ids.anchorJobId(a, 'reference'), 'sweep/s1/anchors/f=olmo/l=es/reference');
  });

  it('docs/workflow-ids.md lists every form the module builds, and no other', () => {
    const exported = Object.keys(ids).filter((k) => typeof (ids as Record<string, unknown>)[k] === 'function');
    assert.deepEqual(exported.sort(), Object.keys(FORMS).sort(), 'every builder has its forms in FORMS');
    const doc = fs.readFileSync(path.join(ROOT, 'docs/workflow-ids.md'), 'utf8');
    const listed = new Set([...doc.matchAll(/`(sweep\/[^`]*)`/g)].map((m) => m[1]!));
    const built = new Set(Object.values(FORMS).flat());
    for (const form of built) assert.ok(listed.has(form), `docs/workflow-ids.md lacks \`${form}\``);
    for (const form of listed)
      assert.ok(built.has(form), `docs/workflow-ids.md lists \`${form}\`, which no builder makes`);
    for (const name of Object.keys(FORMS)) assert.ok(doc.includes(`\`${name}\``), `docs name the builder ${name}`);
  });

  it('the scanner finds an id built outside workflow-ids.ts and a failure type written as a literal', () => {
    const bad = [
      "workflowId: cell.cellId.replace(/\\/dataset$/, '/metrics'),",
      '  const base = input.cellId.replace(/\\/dataset$/, `/s=${student.id}`);',
      '  workflowId: `sweep/${plan.sweepId}/anchors/f=${family}/l=${language}`,',
      "  const id = 'sweep/' + sweepId + `/t=${teacher}`;",
      "  throw ApplicationFailure.nonRetryable(message, 'CellsFailed');",
      "  if (cause.type === 'JobFailed') continue;",
    ];
    for (const line of bad) assert.ok(scanSource('src/workflows/x.ts', line).length > 0, line);
    // The same text is allowed where it belongs.
    assert.deepEqual(scanSource(IDS_MODULE, bad[2]!), []);
    assert.deepEqual(scanSource(ERRORS_MODULE, bad[4]!), []);
    const good = [
      '  workflowId: metricsWorkflowId(cellRef(run, cell)),',
      '  workflowId: info.workflowId,',
      '  throw ApplicationFailure.nonRetryable(message, ErrorType.CellsFailed);',
      '  // `sweep/<sweepId>/t=<teacher>/l=<lang>/dataset`',
    ];
    for (const line of good) assert.deepEqual(scanSource('src/workflows/x.ts', line), [], line);
  });

  it('no source file outside workflow-ids.ts builds a workflow id, none outside errors.ts names a failure type', () => {
    const files = sourceFiles('src');
    assert.ok(files.includes(IDS_MODULE) && files.includes('src/workflows/sweep.ts'), 'scanned src/');
    const problems = files.flatMap((f) => scanSource(f, fs.readFileSync(path.join(ROOT, f), 'utf8')));
    assert.deepEqual(problems, []);
  });
});

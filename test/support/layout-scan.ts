import ts from 'typescript';

/**
 * Finds S3 keys, key prefixes and s3:// URIs built, or taken apart, outside src/storage/layout.ts. It reads
 * the TypeScript syntax tree, so comments and plain messages are never flagged: only
 *  - a template literal with substitutions whose text holds `s3://`, a layout segment (`<seg>/` at its start,
 *    after a `/` or right after a substitution) or a layout file name after a `/` (`${k}/result.json`);
 *  - a string literal joined with `+` that holds the same;
 *  - a regular expression that matches a layout segment (`seeds\/`), i.e. reads a key or URI back;
 *  - `<something key/uri/prefix>.split('/')`, i.e. takes a key or URI apart.
 */
export interface LayoutFinding {
  line: number;
  text: string;
  why: string;
}

/** The folders of the layout (docs/s3-layout.md): a key naming one of them is a key. */
export const LAYOUT_SEGMENTS = [
  'datasets',
  'metrics',
  'reports',
  'sweeps',
  'students',
  'anchors',
  'jobs',
  'seeds',
  'templates',
  'index',
  'models',
  'benchmarks',
  'shards',
  'selection',
  'parts',
  'logs',
  'eval',
  'runs',
  'summary-pages',
];

/** The fixed file names of the layout. */
export const LAYOUT_FILES = [
  'result.json',
  'result.integrity.json',
  'manifest.json',
  'key.json',
  'spec.json',
  'summary.json',
  'latest.json',
  'seeds.jsonl',
  'integrity.json',
  '_COMPLETE',
];

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
/** `\0` stands for a substitution in a template's text. */
const SEGMENT_RE = new RegExp(`(?:^|[/\\0])(?:${LAYOUT_SEGMENTS.map(esc).join('|')})/`);
const FILE_RE = new RegExp(`/(?:${LAYOUT_FILES.map(esc).join('|')})(?![\\w.-])`);
const REGEX_SEGMENT_RE = new RegExp(`(?:^|[^\\w-])(?:${LAYOUT_SEGMENTS.map(esc).join('|')})\\\\/`);
const KEYISH_RE = /(?:key|uri|prefix)s?$/i;

/**
 * Temporal workflow ids are `sweep/<id>/...` (src/spec/plan.ts, src/workflows): they are not S3 keys, though
 * they share words (`sweep/<id>/anchors/f=<family>`). Whoever owns workflow ids keeps them in their own place.
 */
const WORKFLOW_ID_RE = /^sweep\//;

/**
 * A path into this repository named in a message (`src/metrics/defs`, `docs/s3-layout.md`) is not a key, though
 * it may pass through a folder named like a layout folder. Only `src/`, `test/` and `docs/` are taken: `jobs/`
 * is itself a layout folder.
 */
const REPO_PATH_RE = /(?<![\w/\0-])(?:src|test|docs)\/[\w./-]+/g;

function keyProblem(raw: string): string | undefined {
  const text = raw.replace(REPO_PATH_RE, '');
  // `s3://` followed by a substitution or a bucket name; "an s3:// URI" in a message is prose.
  if (/s3:\/\/[\0a-z0-9]/.test(text)) return 'builds an s3:// URI';
  if (SEGMENT_RE.test(text)) return `builds a key under a layout folder (${SEGMENT_RE.exec(text)![0]})`;
  if (FILE_RE.test(text)) return `builds a key of a layout file (${FILE_RE.exec(text)![0]})`;
  return undefined;
}

export function scanForKeyBuilding(source: string, fileName = 'x.ts'): LayoutFinding[] {
  const sf = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const found: LayoutFinding[] = [];
  const add = (node: ts.Node, why: string) =>
    found.push({
      line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1,
      text: node.getText(sf).slice(0, 160),
      why,
    });
  const isConcatenated = (node: ts.Node) =>
    ts.isBinaryExpression(node.parent) && node.parent.operatorToken.kind === ts.SyntaxKind.PlusToken;
  const visit = (node: ts.Node): void => {
    if (ts.isTemplateExpression(node)) {
      const text = [node.head.text, ...node.templateSpans.map((s) => s.literal.text)].join('\0');
      const why = WORKFLOW_ID_RE.test(text) ? undefined : keyProblem(text);
      if (why) add(node, why);
    } else if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && isConcatenated(node)) {
      const why = WORKFLOW_ID_RE.test(node.text) ? undefined : keyProblem(`\0${node.text}\0`);
      if (why) add(node, `${why} by concatenation`);
    } else if (node.kind === ts.SyntaxKind.RegularExpressionLiteral) {
      const source = node.getText(sf);
      if (REGEX_SEGMENT_RE.test(source)) add(node, 'reads a key or URI back with a regular expression');
    } else if (
      ts.isCallExpression(node) &&
      ts.isPropertyAccessExpression(node.expression) &&
      node.expression.name.text === 'split' &&
      node.arguments.length >= 1 &&
      ts.isStringLiteralLike(node.arguments[0]!) &&
      node.arguments[0].text === '/'
    ) {
      const receiver = node.expression.expression;
      const last = ts.isPropertyAccessExpression(receiver)
        ? receiver.name.text
        : ts.isIdentifier(receiver)
          ? receiver.text
          : '';
      if (KEYISH_RE.test(last)) add(node, 'takes a key or URI apart');
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

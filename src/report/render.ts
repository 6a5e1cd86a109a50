/**
 * Renders a scored cohort as a Markdown leaderboard, one self-contained HTML page (inline CSS and SVG, no
 * network), CSV tables and JSON. Pure: the caller passes the time and writes the files (see write.ts).
 */
import type { CellFlag, CohortScores, Provenance, ScoredCell, TeacherScore } from '../scoring/types';
import { barChart, esc, fmt, heatmap, pct, smallMultiples, varianceChart, type Panel } from './svg';

export interface IntrinsicRow {
  teacher: string;
  language: string;
  values: Record<string, number>;
  uri?: string;
  workflowId?: string;
  runId?: string;
}

export interface ReportInput {
  sweepId: string;
  title?: string;
  /** ISO time, passed in (no clock inside). */
  generatedAt: string;
  scores: CohortScores;
  /** Per data cell (teacher|language) intrinsic metrics to show in panels (optional). */
  intrinsic?: IntrinsicRow[];
  /** Temporal Web UI base URL, e.g. http://127.0.0.1:8233/namespaces/default, used to link workflow runs. */
  webUiBase?: string;
  /** Turns an s3:// URI into a link the reader can open (e.g. a local file path); default: leave s3://. */
  linkForUri?: (uri: string) => string;
}

export interface RenderedReport {
  markdown: string;
  html: string;
  /** File name → CSV text: `cells.csv`, `teachers.csv` and, when intrinsic rows are given, `intrinsic.csv`. */
  csv: Record<string, string>;
  json: string;
}

/** One sentence per flag, shown next to flagged cells. */
export const FLAG_MEANING: Record<CellFlag, string> = {
  'sign-inversion':
    'The reference anchor scores below the base anchor on this language (R − B ≤ 0), so PGR’s sign is inverted: a weaker student gets a higher PGR.',
  'small-anchor-gap':
    'The base and reference anchors are closer than the threshold, so PGR divides by a tiny gap and swings far outside [0, 1].',
  'missing-anchor':
    'No base/reference anchor scores exist for this family and language, so PGR (and PG) cannot be computed.',
  'missing-result': 'No student result exists for this cell, so it has a z-score but no PGR or PG.',
  'missing-intrinsic': 'No intrinsic metrics exist for this cell, so its z-score is not data-driven.',
};

// ---------- links and escaping ----------

/** A formatted number with its artifact link and workflow-run link. */
type Val = { text: string; href?: string; run?: string };

function safeHref(u: string): string | undefined {
  return /^(s3|file|https?):/i.test(u) || !/^[a-z][a-z0-9+.-]*:/i.test(u) ? u : undefined;
}

/** Temporal Web UI link of a workflow run. */
export function runUrl(webUiBase: string | undefined, p: { workflowId?: string; runId?: string }): string | undefined {
  if (!webUiBase || !p.workflowId || !p.runId) return undefined;
  return `${webUiBase.replace(/\/+$/, '')}/workflows/${encodeURIComponent(p.workflowId)}/${encodeURIComponent(p.runId)}/history`;
}

const mdEsc = (s: string): string => s.replace(/\s+/g, ' ').replace(/[\\`*_[\]<>|~&]/g, '\\$&');
const mdUrl = (u: string): string =>
  u.replace(/[ ()<>"\\]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
const mdVal = (v: Val): string =>
  (v.href ? `[${mdEsc(v.text)}](${mdUrl(v.href)})` : mdEsc(v.text)) +
  (v.run ? ` [↗](${mdUrl(v.run)} "workflow run")` : '');
const htmlVal = (v: Val): string =>
  (v.href ? `<a href="${esc(v.href)}">${esc(v.text)}</a>` : esc(v.text)) +
  (v.run ? ` <a class="run" href="${esc(v.run)}" title="Temporal workflow run">↗</a>` : '');

function mdTable(head: string[], right: boolean[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(head.map(mdEsc)), line(right.map((r) => (r ? '---:' : '---'))), ...rows.map(line)].join('\n');
}

function htmlTable(head: string[], right: boolean[], rows: string[][]): string {
  const td = (c: string, i: number, tag: string): string => `<${tag}${right[i] ? ' class="n"' : ''}>${c}</${tag}>`;
  return (
    `<div class="scroll"><table><thead><tr>${head.map((h, i) => td(esc(h).replace(/_/g, '_<wbr>'), i, 'th')).join('')}</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c, i) => td(c, i, 'td')).join('')}</tr>`).join('\n')}</tbody></table></div>`
  );
}

// ---------- model ----------

const famLabel = (f: string | undefined): string => f ?? 'all students';
const uniq = <T>(xs: T[]): T[] => [...new Set(xs)];
const mean = (xs: number[]): number | undefined => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : undefined);

function buildModel(input: ReportInput) {
  const { scores } = input;
  const families = uniq([
    ...scores.teachers.map((t) => t.family),
    ...scores.cells.filter((c) => c.family !== undefined).map((c) => c.family),
  ]);
  const board = (f: string | undefined): TeacherScore[] =>
    scores.teachers.filter((t) => t.family === f).sort((a, b) => a.rank - b.rank || a.teacher.localeCompare(b.teacher));
  const ranked = uniq(families.flatMap((f) => board(f).map((t) => t.teacher)));
  const others = [...scores.cells.map((c) => c.teacher), ...(input.intrinsic ?? []).map((r) => r.teacher)];
  const teacherOrder = uniq([...ranked, ...uniq(others).sort()]);
  const matrix = (f: string | undefined) => {
    const cells = scores.cells.filter((c) => c.family === f);
    const teachers = uniq([...board(f).map((t) => t.teacher), ...uniq(cells.map((c) => c.teacher)).sort()]);
    const languages = uniq(cells.map((c) => c.language)).sort();
    const at = new Map(cells.map((c) => [`${c.teacher}\u0000${c.language}`, c]));
    return { teachers, languages, cells: teachers.map((t) => languages.map((l) => at.get(`${t}\u0000${l}`))) };
  };
  const val = (v: number | undefined, digits: number, prov?: Provenance): Val => {
    const out: Val = { text: fmt(v, digits) };
    if (!prov || v === undefined) return out;
    const href = prov.uri ? safeHref(input.linkForUri ? input.linkForUri(prov.uri) : prov.uri) : undefined;
    if (href) out.href = href;
    const run = runUrl(input.webUiBase, prov);
    if (run) out.run = run;
    return out;
  };
  return { families, board, matrix, teacherOrder, val };
}

type Model = ReturnType<typeof buildModel>;

function flagGroups(scores: CohortScores): { flag: CellFlag; cells: number; where: string[] }[] {
  const flags = uniq(scores.cells.flatMap((c) => c.flags));
  return flags.map((flag) => {
    const hit = scores.cells.filter((c) => c.flags.includes(flag));
    const perLanguage = flag === 'sign-inversion' || flag === 'small-anchor-gap' || flag === 'missing-anchor';
    const where = uniq(
      hit.map((c) => (perLanguage ? `${famLabel(c.family)} · ${c.language}` : `${c.teacher} × ${c.language}`)),
    );
    return { flag, cells: hit.length, where };
  });
}

function analysisLines(scores: CohortScores): string[] {
  const { pca, regression, robustness, families } = scores.analyses;
  const out: string[] = [];
  if (pca && pca.explainedVarianceRatio.length > 0) {
    const k = Math.min(4, pca.explainedVarianceRatio.length);
    const each = pca.explainedVarianceRatio.slice(0, k).map((r, i) => `PC${i + 1} ${pct(r)}`);
    out.push(
      `PCA: the first ${k} components explain ${pct(pca.cumulative[k - 1])} of the variance (${each.join(', ')}).`,
    );
  }
  if (regression) {
    out.push(
      `Regression of ${regression.target}: R² = ${fmt(regression.r2)}, RMSE = ${fmt(regression.rmse)}, n = ${regression.n}.`,
    );
  }
  if (robustness) {
    let min: { rho: number; a: number; b: number } | undefined;
    robustness.spearman.forEach((row, i) =>
      row.forEach((rho, j) => {
        if (j > i && Number.isFinite(rho) && (!min || rho < min.rho)) min = { rho, a: i, b: j };
      }),
    );
    const pair = min ? ` (α = ${robustness.alphas[min.a]} vs ${robustness.alphas[min.b]})` : '';
    out.push(
      `Robustness: min Spearman ρ between α rankings = ${fmt(min?.rho)}${pair}; ρ(z, PGR) = ${fmt(robustness.zVsPgr.rho)} (p = ${fmt(robustness.zVsPgr.p, 4)}).`,
    );
  }
  for (const f of families) {
    out.push(`Family transfer ${f.a} vs ${f.b}: ρ = ${fmt(f.rho)} (p = ${fmt(f.p, 4)}, ${f.teachers} teachers).`);
  }
  return out;
}

/** The leaderboard "family" used when no student results exist yet: teachers ranked by mean intrinsic z. */
export const INTRINSIC_ONLY = 'intrinsic z (no student results yet)';
const scoreName = (family: string | undefined): string => (family === INTRINSIC_ONLY ? 'Mean intrinsic z' : 'PG-Score');

const CELL_HEAD = ['Teacher', 'Language', 'Family', 'Result', 'PGR', 'z', 'PG-Score', 'Flags'];
const CELL_RIGHT = [false, false, false, true, true, true, true, false];

/** Result, PGR and PG link to the student's eval; z links to the intrinsic metrics. */
function cellVals(m: Model, c: ScoredCell): Val[] {
  const [res, intr] = [c.provenance?.result, c.provenance?.intrinsic];
  return [m.val(c.result, 3, res), m.val(c.pgr, 3, res), m.val(c.z_score, 3, intr), m.val(c.pg_score, 3, res)];
}

const sortedCells = (s: CohortScores): ScoredCell[] =>
  [...s.cells].sort(
    (a, b) =>
      famLabel(a.family).localeCompare(famLabel(b.family)) ||
      a.teacher.localeCompare(b.teacher) ||
      a.language.localeCompare(b.language),
  );

// ---------- markdown ----------

function renderMarkdown(input: ReportInput, m: Model): string {
  const { scores } = input;
  const title = input.title ?? `Polyglot leaderboard — ${input.sweepId}`;
  const out: string[] = [`# ${mdEsc(title)}`, ''];
  out.push(
    `Sweep ${mdEsc(input.sweepId)} · generated ${mdEsc(input.generatedAt)} · α = ${scores.options.alpha} · small-gap threshold ${scores.options.smallGapThreshold}`,
    '',
    'Linked numbers open their artifact; ↗ opens the Temporal workflow run that produced them.',
    '',
    '## Leaderboard',
  );
  for (const f of m.families) {
    const rows = m.board(f).map((t) => [String(t.rank), mdEsc(t.teacher), fmt(t.pg_score), String(t.languages)]);
    out.push(
      '',
      `### Student family: ${mdEsc(famLabel(f))}`,
      '',
      mdTable(['Rank', 'Teacher', scoreName(f), '# languages'], [true, false, true, true], rows),
    );
    const mx = m.matrix(f);
    if (mx.languages.length === 0) continue;
    const pgRows = mx.teachers.map((t, i) => [
      mdEsc(t),
      ...mx.languages.map((_, j) => {
        const c = mx.cells[i]?.[j];
        return c ? mdVal(m.val(c.pg_score, 3, c.provenance?.result)) + (c.flags.length ? ' ⚑' : '') : '—';
      }),
    ]);
    out.push('', `Teacher × language PG-Score (${mdEsc(famLabel(f))}); ⚑ marks a flagged cell:`, '');
    out.push(mdTable(['Teacher', ...mx.languages], [false, ...mx.languages.map(() => true)], pgRows));
  }
  out.push('', '## Flags and warnings', '');
  const groups = flagGroups(scores);
  if (groups.length === 0 && scores.warnings.length === 0) out.push('No flags or warnings.');
  for (const g of groups) {
    const where =
      g.where.slice(0, 12).map(mdEsc).join(', ') + (g.where.length > 12 ? `, … (${g.where.length - 12} more)` : '');
    out.push(`- **${g.flag}** (${g.cells} cells): ${mdEsc(FLAG_MEANING[g.flag])} Affected: ${where}.`);
  }
  for (const w of scores.warnings) out.push(`- ${mdEsc(w)}`);
  out.push('', '## Analyses', '');
  const lines = analysisLines(scores);
  out.push(...(lines.length ? lines.map((l) => `- ${mdEsc(l)}`) : ['No analyses were computed.']));
  const rows = sortedCells(scores).map((c) => {
    const names = [c.teacher, c.language, c.family ?? '—'].map(mdEsc);
    return [...names, ...cellVals(m, c).map(mdVal), mdEsc(c.flags.join('; '))];
  });
  out.push('', '## Cells', '', mdTable(CELL_HEAD, CELL_RIGHT, rows), '');
  return out.join('\n');
}

// ---------- HTML ----------

const CSS = `
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;max-width:1120px;margin:2rem auto;padding:0 1rem}
h1{font-size:1.7rem;margin:0 0 .2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.4rem}h3{margin:1.6rem 0 .4rem}
.meta{color:#555;margin:0}nav{margin:1rem 0;font-size:.9rem}nav a{margin-right:1rem}
table{border-collapse:collapse;font-size:.85rem;font-variant-numeric:tabular-nums;margin:.4rem 0 1rem}
th,td{border-bottom:1px solid #e5e5e5;padding:.22rem .6rem;text-align:left;vertical-align:top;white-space:nowrap}th{white-space:normal}.n{text-align:right}
thead th{background:#f3f4f6}.scroll{overflow-x:auto}
figure{margin:1rem 0;break-inside:avoid}figcaption{font-size:.85rem;color:#555}svg.chart{max-width:100%;height:auto}
a{color:#0b5cad;text-decoration:none}a:hover{text-decoration:underline}a.run{font-size:.8em;color:#888}
.flag{display:inline-block;padding:0 .35em;border-radius:3px;background:#fde8d7;color:#8a3b00;font-size:.75rem;margin:0 .2em .1em 0}
.note{color:#555;font-size:.9rem}li{margin:.2rem 0}
@media print{body{max-width:none;margin:0;font-size:10.5pt}.scroll{overflow:visible}nav,a.run{display:none}a{color:inherit}h2,h3{break-after:avoid}tr{break-inside:avoid}}
`;

const flagMark = (c: ScoredCell): string =>
  c.flags.length
    ? ` <span class="flag" title="${esc(c.flags.map((f) => `${f}: ${FLAG_MEANING[f]}`).join(' '))}">⚑</span>`
    : '';
const flagSpans = (c: ScoredCell): string =>
  c.flags.map((f) => `<span class="flag" title="${esc(FLAG_MEANING[f])}">${esc(f)}</span>`).join('');

function renderHtml(input: ReportInput, m: Model): string {
  const { scores } = input;
  const title = input.title ?? `Polyglot leaderboard — ${input.sweepId}`;
  const s: string[] = [];
  const figure = (svg: string, caption: string): string =>
    `<figure>${svg}<figcaption>${esc(caption)}</figcaption></figure>`;
  s.push('<section id="leaderboard"><h2>Leaderboard</h2>');
  for (const f of m.families) {
    const board = m.board(f);
    s.push(`<h3>Student family: ${esc(famLabel(f))}</h3>`);
    const rows = board.map((t) => [String(t.rank), esc(t.teacher), esc(fmt(t.pg_score)), String(t.languages)]);
    s.push(htmlTable(['Rank', 'Teacher', scoreName(f), '# languages'], [true, false, true, true], rows));
    const bars = board.map((t) => ({ label: t.teacher, value: t.pg_score }));
    const [xLabel, yLabel] = [`${scoreName(f)} (mean over languages)`, 'Teacher'];
    const svg = barChart({ title: `Teacher ranking — ${famLabel(f)}`, bars, xLabel, yLabel });
    if (bars.length) s.push(figure(svg, `Teachers by ${scoreName(f)}; bars left of the zero line are negative.`));
    const mx = m.matrix(f);
    if (mx.languages.length === 0) continue;
    const [teachers, cols, values] = [mx.teachers, mx.languages, mx.cells.map((r) => r.map((c) => c?.pg_score))];
    const hm = heatmap({
      title: `PG-Score by teacher × language — ${famLabel(f)}`,
      rows: teachers,
      cols,
      values,
      xLabel: 'Language',
      yLabel,
    });
    s.push(figure(hm, 'Diverging scale centred on 0: blue above, red below. Hover a cell for its exact value.'));
    const linked = mx.teachers.map((t, i) => [
      esc(t),
      ...mx.languages.map((_, j) => {
        const c = mx.cells[i]?.[j];
        return c ? htmlVal(m.val(c.pg_score, 3, c.provenance?.result)) + flagMark(c) : '—';
      }),
    ]);
    s.push('<p class="note">PG-Score per cell; ⚑ marks a flagged cell (hover for why).</p>');
    s.push(htmlTable(['Teacher', ...mx.languages], [false, ...mx.languages.map(() => true)], linked));
  }
  s.push('</section><section id="intrinsic"><h2>Intrinsic metrics</h2>');
  const rows = input.intrinsic ?? [];
  if (rows.length === 0) s.push('<p class="note">No intrinsic metrics were given.</p>');
  else {
    const metrics = uniq(rows.flatMap((r) => Object.keys(r.values)));
    const teachers = m.teacherOrder.filter((t) => rows.some((r) => r.teacher === t));
    const panels: Panel[] = metrics.map((k) => ({
      title: k,
      bars: teachers.map((t) => ({
        label: t,
        value: mean(rows.filter((r) => r.teacher === t && Number.isFinite(r.values[k])).map((r) => r.values[k] ?? 0)),
      })),
    }));
    const xLabel = 'Mean over languages (each panel has its own scale)';
    const sm = smallMultiples({ title: 'Intrinsic metrics per teacher', panels, xLabel, yLabel: 'Teacher' });
    s.push(figure(sm, 'One panel per metric; teachers in leaderboard order.'));
    const table = [...rows]
      .sort((a, b) => a.teacher.localeCompare(b.teacher) || a.language.localeCompare(b.language))
      .map((r) => [esc(r.teacher), esc(r.language), ...metrics.map((k) => htmlVal(m.val(r.values[k], 3, r)))]);
    s.push(htmlTable(['Teacher', 'Language', ...metrics], [false, false, ...metrics.map(() => true)], table));
  }
  s.push('</section><section id="analyses"><h2>Analyses</h2>');
  const lines = analysisLines(scores);
  s.push(
    lines.length
      ? `<ul>${lines.map((l) => `<li>${esc(l)}</li>`).join('')}</ul>`
      : '<p class="note">No analyses were computed.</p>',
  );
  const { pca, robustness } = scores.analyses;
  if (pca && pca.explainedVarianceRatio.length > 0) {
    const [ratios, cumulative] = [pca.explainedVarianceRatio, pca.cumulative];
    const [xLabel, yLabel] = ['Principal component', 'Share of variance'];
    const ev = varianceChart({ title: 'PCA explained variance', ratios, cumulative, xLabel, yLabel });
    s.push(figure(ev, 'Bars: variance explained by each component; line: cumulative share.'));
    const lrows = pca.loadings.map((row, i) => [`PC${i + 1}`, ...pca.features.map((_, j) => esc(fmt(row[j])))]);
    s.push(
      '<h3>PCA loadings</h3>',
      htmlTable(['Component', ...pca.features], [false, ...pca.features.map(() => true)], lrows),
    );
  }
  if (robustness && robustness.alphas.length > 0) {
    const labels = robustness.alphas.map((a) => `α = ${a}`);
    const [title, values] = ['Rank robustness across α (Spearman ρ)', robustness.spearman];
    const rh = heatmap({ title, rows: labels, cols: labels, values, domain: 1, xLabel: 'α', yLabel: 'α' });
    s.push(figure(rh, 'Spearman ρ between cell rankings under PG(α) = α·z + (1 − α)·PGR.'));
  }
  s.push('</section><section id="warnings"><h2>Flags and warnings</h2>');
  const groups = flagGroups(scores);
  const items = [
    ...groups.map(
      (g) =>
        `<li><span class="flag">${esc(g.flag)}</span> ${g.cells} cells — ${esc(FLAG_MEANING[g.flag])} Affected: ${esc(g.where.join(', '))}.</li>`,
    ),
    ...scores.warnings.map((w) => `<li>${esc(w)}</li>`),
  ];
  s.push(items.length ? `<ul>${items.join('')}</ul>` : '<p class="note">No flags or warnings.</p>');
  s.push('</section><section id="cells"><h2>All cells</h2>');
  const cellRows = sortedCells(scores).map((c) => {
    const names = [c.teacher, c.language, c.family ?? '—'].map((x) => esc(x));
    return [...names, ...cellVals(m, c).map(htmlVal), flagSpans(c)];
  });
  s.push(htmlTable(CELL_HEAD, CELL_RIGHT, cellRows), '</section>');
  const nav = ['leaderboard', 'intrinsic', 'analyses', 'warnings', 'cells']
    .map((id) => `<a href="#${id}">${id}</a>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title><style>${CSS}</style></head>
<body><header><h1>${esc(title)}</h1><p class="meta">Sweep <code>${esc(input.sweepId)}</code> · generated <time datetime="${esc(input.generatedAt)}">${esc(input.generatedAt)}</time> · α = ${esc(scores.options.alpha)} · small-gap threshold ${esc(scores.options.smallGapThreshold)}</p>
<p class="note">Linked numbers open their artifact; ↗ opens the Temporal workflow run that produced them.</p></header>
<nav>${nav}</nav><main>
${s.join('\n')}
</main></body></html>
`;
}

// ---------- CSV and JSON ----------

export function csvField(v: string): string {
  return /[",\r\n]/.test(v) || v !== v.trim() ? `"${v.replace(/"/g, '""')}"` : v;
}

const num = (v: number | undefined): string => (v === undefined ? '' : String(v));
const toCsv = (rows: string[][]): string => rows.map((r) => r.map(csvField).join(',')).join('\n') + '\n';

function renderCsv(input: ReportInput): Record<string, string> {
  const { scores } = input;
  const out: Record<string, string> = {
    'cells.csv': toCsv([
      ['teacher', 'language', 'family', 'result', 'pgr', 'z_score', 'pg_score', 'flags'],
      ...sortedCells(scores).map((c) => {
        const nums = [c.result, c.pgr, c.z_score, c.pg_score].map(num);
        return [c.teacher, c.language, c.family ?? '', ...nums, c.flags.join(';')];
      }),
    ]),
    'teachers.csv': toCsv([
      ['family', 'rank', 'teacher', 'pg_score', 'languages'],
      ...scores.teachers.map((t) => [t.family ?? '', String(t.rank), t.teacher, num(t.pg_score), String(t.languages)]),
    ]),
  };
  if (input.intrinsic) {
    const metrics = uniq(input.intrinsic.flatMap((r) => Object.keys(r.values)));
    out['intrinsic.csv'] = toCsv([
      ['teacher', 'language', ...metrics, 'uri', 'workflow_id', 'run_id'],
      ...input.intrinsic.map((r) => {
        const prov = [r.uri, r.workflowId, r.runId].map((v) => v ?? '');
        return [r.teacher, r.language, ...metrics.map((k) => num(r.values[k])), ...prov];
      }),
    ]);
  }
  return out;
}

export function renderReport(input: ReportInput): RenderedReport {
  const m = buildModel(input);
  const { sweepId, generatedAt, scores, intrinsic } = input;
  const json = JSON.stringify({ sweepId, generatedAt, scores, intrinsic }, null, 2);
  return { markdown: renderMarkdown(input, m), html: renderHtml(input, m), csv: renderCsv(input), json: `${json}\n` };
}

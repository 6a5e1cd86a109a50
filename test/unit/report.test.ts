import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { renderReport, runUrl, type IntrinsicRow, type ReportInput } from '../../src/report/render';
import { barChart, heatmap } from '../../src/report/svg';
import { writeReportFiles } from '../../src/report/write';
import type { CellFlag, CohortScores, ScoredCell, TeacherScore } from '../../src/scoring/types';

export const WEB_UI = 'http://127.0.0.1:8233/namespaces/default';
export const EVIL = 'evil<&"teacher';
const TEACHERS = ['gpt-4o-mini', 'llama-3.3-70b', 'qwen-2.5-72b', 'gemma-3-27b', 'mistral-large', EVIL];
TEACHERS.push('acme/model, v2', 'aya-expanse-32b', 'phi-4', 'tiny-teacher');
const LANGS = ['ar', 'cs', 'de', 'es', 'id', 'ja'];
const FAMILIES: [string, string[]][] = [
  ['olmo-3-7b', LANGS],
  ['qwen-3-4b', ['ar', 'de', 'id']],
];

/** Deterministic value in [-1, 1) from a few integers. */
function noise(...k: number[]): number {
  const x = Math.sin(k.reduce((a, b) => a * 31 + b + 7, 17)) * 10_000;
  return 2 * (x - Math.floor(x)) - 1;
}

function prov(kind: string, teacher: string, language: string, family = '') {
  const workflowId = `${kind}-${teacher}-${language}${family ? `-${family}` : ''}`;
  const runId = `run-${kind}-${TEACHERS.indexOf(teacher)}-${language}`;
  return { uri: `s3://polyglot/sweeps/sw1/${kind}/${teacher}/${language}.json`, workflowId, runId };
}

/** ≥ 10 teachers × 6 languages, two student families, flags and a negative PG-Score. */
export function fixtureInput(): ReportInput {
  const cells: ScoredCell[] = [];
  const teachers: TeacherScore[] = [];
  FAMILIES.forEach(([family, langs], f) => {
    const perTeacher = TEACHERS.map((teacher, t) => {
      const pgs = langs.map((language, l) => {
        const z = 1.2 - 0.25 * t + 0.3 * noise(t, l, 1);
        const pgr = 0.9 - 0.12 * t + 0.25 * noise(t, l, 2 + f) + (language === 'cs' ? 1.8 : 0);
        const flags: CellFlag[] =
          language === 'cs' ? ['sign-inversion'] : language === 'ja' ? ['small-anchor-gap'] : [];
        const result = 0.45 + 0.1 * noise(t, l, 3);
        const provenance = {
          intrinsic: prov('intrinsic', teacher, language),
          result: prov('eval', teacher, language, family),
        };
        cells.push({ teacher, language, family, result, pgr, z_score: z, pg_score: (pgr + z) / 2, flags, provenance });
        return (pgr + z) / 2;
      });
      return {
        teacher,
        family,
        pg_score: pgs.reduce((a, b) => a + b, 0) / pgs.length,
        languages: langs.length,
        rank: 0,
      };
    });
    perTeacher.sort((a, b) => b.pg_score - a.pg_score).forEach((t, i) => teachers.push({ ...t, rank: i + 1 }));
  });
  const ratios = [0.45, 0.25, 0.12, 0.1, 0.05, 0.03];
  const features = ['prompts_distinct_ri', 'responses_distinct_ri', 'average_perplexity', 'average_rubric_score'];
  features.push('prompts_average_length', 'responses_average_length');
  const alphas = [0, 0.25, 0.5, 0.75, 1];
  const scores: CohortScores = {
    options: { alpha: 0.5, smallGapThreshold: 0.02 },
    cells,
    teachers,
    analyses: {
      pca: {
        features,
        explainedVarianceRatio: ratios,
        cumulative: ratios.map((_, i) => ratios.slice(0, i + 1).reduce((a, b) => a + b, 0)),
        loadings: ratios.map((_, i) => features.map((__, j) => noise(i, j, 9))),
      },
      regression: { target: 'pg_score', r2: 0.412, rmse: 0.31, intercept: 0.1, coefficients: [0.2, -0.1], n: 60 },
      robustness: {
        alphas,
        spearman: alphas.map((a) => alphas.map((b) => 1 - 0.6 * Math.abs(a - b))),
        pValues: alphas.map(() => alphas.map(() => 0.001)),
        zVsPgr: { rho: 0.55, p: 0.0001 },
      },
      families: [{ a: 'olmo-3-7b', b: 'qwen-3-4b', rho: 0.83, p: 0.003, teachers: 10 }],
    },
    warnings: ['olmo-3-7b · cs: reference anchor below base (R − B = −0.013) <check>'],
  };
  const intrinsic: IntrinsicRow[] = TEACHERS.flatMap((teacher, t) =>
    LANGS.map((language, l) => ({
      teacher,
      language,
      values: {
        prompts_distinct_ri: 0.8 + 0.1 * noise(t, l, 4),
        responses_distinct_ri: 0.7 + 0.15 * noise(t, l, 5),
        average_rubric_score: 3.5 + noise(t, l, 6),
        average_perplexity: 8 + 3 * noise(t, l, 7),
        prompts_average_length: 120 + 40 * noise(t, l, 8),
        responses_average_length: 400 + 150 * noise(t, l, 10),
      },
      ...prov('intrinsic', teacher, language),
    })),
  );
  return {
    sweepId: 'sw1-demo',
    title: 'Polyglot demo leaderboard',
    generatedAt: '2025-01-02T03:04:05.000Z',
    scores,
    intrinsic,
    webUiBase: WEB_UI,
    linkForUri: (u) => u.replace(/^s3:\/\//, '../artifacts/'),
  };
}

/** RFC 4180 CSV: quoted fields may hold commas, quotes ("") and newlines. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted && c === '"' && text[i + 1] === '"') {
      field += '"';
      i++;
    } else if (c === '"') {
      quoted = !quoted;
    } else if (quoted || (c !== ',' && c !== '\n' && c !== '\r')) {
      field += c;
    } else if (c !== '\r') {
      row.push(field);
      field = '';
      if (c === '\n') {
        rows.push(row);
        row = [];
      }
    }
  }
  if (field !== '' || row.length > 0) rows.push([...row, field]);
  return rows;
}

const svgs = (html: string): string[] => [...html.matchAll(/<svg\b[^>]*>[\s\S]*?<\/svg>/g)].map((m) => m[0]);

describe('report rendering', () => {
  const input = fixtureInput();
  const out = renderReport(input);
  const olmo = input.scores.teachers.filter((t) => t.family === 'olmo-3-7b').sort((a, b) => a.rank - b.rank);

  it('ranks teachers per family in the markdown leaderboard, incl. a negative PG-Score', () => {
    const md = out.markdown;
    const start = md.indexOf('### Student family: olmo-3-7b');
    assert.ok(start >= 0);
    const lines = md
      .slice(start)
      .split('\n')
      .filter((l) => /^\| \d+ \|/.test(l))
      .slice(0, 10);
    const parsed = lines.map((l) => l.split(' | ').map((c) => c.replace(/^\| | \|$/g, '')));
    assert.deepEqual(
      parsed.map((r) => Number(r[0])),
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    );
    const pg = parsed.map((r) => Number(r[2]));
    assert.deepEqual(
      [...pg].sort((a, b) => b - a),
      pg,
    );
    assert.ok(
      pg.some((v) => v < 0),
      'fixture has a negative PG-Score',
    );
    assert.equal(parsed[0]?.[1], olmo[0]?.teacher.replace(/[<&]/g, '\\$&'));
    assert.ok(parsed.every((r) => r[3] === '6'));
    assert.match(md, /## Student family: qwen-3-4b|### Student family: qwen-3-4b/);
    assert.match(md, /\*\*sign-inversion\*\* \(\d+ cells\): The reference anchor scores below/);
    assert.match(md, /\*\*small-anchor-gap\*\*/);
    assert.match(md, /first 4 components explain 92\.0% of the variance/);
    assert.match(md, /R² = 0\.412/);
    assert.match(md, /min Spearman ρ between α rankings = 0\.400 \(α = 0 vs 1\)/);
  });

  it('links numbers to their artifact and workflow run', () => {
    const cell = input.scores.cells.find((c) => c.teacher === EVIL && c.language === 'de' && c.family === 'olmo-3-7b');
    const res = cell?.provenance?.result;
    assert.ok(cell && res?.workflowId && res.runId);
    const run = `${WEB_UI}/workflows/${encodeURIComponent(res.workflowId)}/${res.runId}/history`;
    assert.equal(runUrl(`${WEB_UI}/`, res), run);
    const artifact = `../artifacts/polyglot/sweeps/sw1/eval/${EVIL}/de.json`;
    const md = `[${cell.pg_score?.toFixed(3)}](${artifact.replace(/[ ()<>"]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}) [↗](${run} "workflow run")`;
    assert.ok(out.markdown.includes(md), md);
    assert.ok(out.html.includes(`href="${run.replace(/&/g, '&amp;')}"`));
    const zRun = runUrl(WEB_UI, cell.provenance?.intrinsic ?? {});
    assert.ok(zRun && out.markdown.includes(zRun) && out.html.includes(zRun.replace(/&/g, '&amp;')));
  });

  it('escapes every text in markdown and HTML', () => {
    assert.ok(!out.markdown.includes(EVIL));
    assert.ok(out.markdown.includes('evil\\<\\&"teacher'));
    assert.ok(!out.html.includes(EVIL));
    assert.ok(out.html.includes('evil&lt;&amp;&quot;teacher'));
    assert.ok(out.html.includes('&lt;check&gt;'));
    const tags = 'html|head|meta|title|style|body|header|h1|h2|h3|p|code|time|nav|a|main|section|figure|figcaption|div';
    const more = 'table|thead|tbody|tr|th|td|span|ul|li|wbr|svg|desc|rect|text|line|g|path|circle';
    const stray = out.html.match(new RegExp(`<(?!/?(?:${tags}|${more})\\b|!doctype html>)`, 'g'));
    assert.equal(stray, null);
    assert.equal(out.html.match(/&(?!(?:amp|lt|gt|quot|#39);)/g), null);
  });

  it('makes one self-contained HTML page with non-empty, accessible charts', () => {
    const charts = svgs(out.html);
    assert.equal(charts.length, 2 * 2 + 3, 'per family ranking + heatmap; intrinsic panels; PCA; robustness');
    for (const svg of charts) {
      assert.match(svg, /^<svg [^>]*role="img" aria-label="[^"]+"/);
      assert.match(svg, /<title>[^<]+<\/title>/);
      assert.ok((svg.match(/<(rect|path|circle)\b/g) ?? []).length >= 3);
      assert.ok((svg.match(/<text\b/g) ?? []).length >= 3, 'axis labels');
    }
    assert.ok(!/<script|<link|<img|@import|url\(/i.test(out.html));
    const refs = out.html.match(/https?:\/\/[^"]*/gi) ?? [];
    assert.ok(refs.length > 60);
    for (const r of refs) assert.ok(r.startsWith(`${WEB_UI}/workflows/`), r);
    assert.equal((out.html.match(/http(?!:\/\/127\.0\.0\.1:8233\/namespaces\/default\/workflows\/)/g) ?? []).length, 1);
    assert.match(out.html, /http-equiv="Content-Security-Policy"/);
    for (const id of ['leaderboard', 'intrinsic', 'analyses', 'warnings', 'cells'])
      assert.match(out.html, new RegExp(`id="${id}"`));
    assert.match(out.html, /<h3>PCA loadings<\/h3>/);
  });

  it('writes CSV that parses back to the inputs', () => {
    const cells = parseCsv(out.csv['cells.csv'] ?? '');
    assert.deepEqual(cells[0], ['teacher', 'language', 'family', 'result', 'pgr', 'z_score', 'pg_score', 'flags']);
    assert.equal(cells.length - 1, input.scores.cells.length);
    for (const c of input.scores.cells) {
      const row = cells.find((r) => r[0] === c.teacher && r[1] === c.language && r[2] === c.family);
      assert.ok(row, `${c.teacher} ${c.language}`);
      assert.deepEqual(row.slice(3, 7).map(Number), [c.result, c.pgr, c.z_score, c.pg_score]);
      assert.equal(row[7], c.flags.join(';'));
    }
    assert.ok((out.csv['cells.csv'] ?? '').includes('"evil<&""teacher"'));
    const teachers = parseCsv(out.csv['teachers.csv'] ?? '');
    assert.equal(teachers.length - 1, input.scores.teachers.length);
    assert.ok(teachers.some((r) => r[2] === 'acme/model, v2' && r[0] === 'olmo-3-7b'));
    const intrinsic = parseCsv(out.csv['intrinsic.csv'] ?? '');
    const head = intrinsic[0] ?? [];
    const first = input.intrinsic?.[0];
    const row = intrinsic.find((r) => r[0] === first?.teacher && r[1] === first?.language);
    assert.ok(first && row);
    assert.equal(Number(row[head.indexOf('average_perplexity')]), first.values.average_perplexity);
    assert.equal(row[head.indexOf('run_id')], first.runId);
    assert.deepEqual(JSON.parse(out.json).scores, JSON.parse(JSON.stringify(input.scores)));
    assert.equal(renderReport({ ...input, intrinsic: undefined }).csv['intrinsic.csv'], undefined);
  });

  it('writes all files atomically into a new directory', async () => {
    const dir = path.join(await mkdtemp(path.join(os.tmpdir(), 'report-')), 'a', 'b');
    try {
      const paths = await writeReportFiles(dir, out);
      const names = ['leaderboard.md', 'report.html', 'cells.csv', 'teachers.csv', 'intrinsic.csv', 'scores.json'];
      assert.deepEqual(
        paths,
        names.map((n) => path.join(dir, n)),
      );
      assert.deepEqual((await readdir(dir)).sort(), [...names].sort(), 'no temp files left');
      assert.equal(await readFile(path.join(dir, 'report.html'), 'utf8'), out.html);
      await writeReportFiles(dir, out);
    } finally {
      await rm(path.dirname(path.dirname(dir)), { recursive: true, force: true });
    }
  });

  it('draws edge cases: all-negative bars, missing and non-finite values', () => {
    const bars = barChart({
      title: 't',
      bars: [
        { label: 'a', value: -1 },
        { label: 'b', value: -0.5 },
        { label: 'c', value: NaN },
      ],
      xLabel: 'x',
      yLabel: 'y',
    });
    assert.match(bars, /fill="#d95f02"/);
    assert.doesNotMatch(bars, /NaN|Infinity/);
    const hm = heatmap({
      title: 't',
      rows: ['r'],
      cols: ['c1', 'c2'],
      values: [[undefined, 0]],
      xLabel: 'x',
      yLabel: 'y',
    });
    assert.doesNotMatch(hm, /NaN|Infinity/);
    assert.match(hm, />—</);
  });
});

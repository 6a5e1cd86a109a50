import assert from 'node:assert/strict';
import { renderGrid } from '../../src/cli/sweep';
import { INTRINSIC_ONLY } from '../../src/report/render';
import {
  displayWidth,
  fmtCost,
  fmtScore,
  formatGrid,
  formatLeaderboard,
  formatTable,
  truncate,
  wantsColor,
  type Column,
} from '../../src/report/terminal';
import type { CohortScores, ScoredCell, TeacherScore } from '../../src/scoring/types';
import type { CellProgress, SweepProgress } from '../../src/workflows/shared';

const strip = (s: string): string => s.replace(/\u001b\[[0-9;]*m/g, '');
/** Any ANSI escape (not global: `test` keeps no state between calls). */
const ANSI = /\u001b\[/;

describe('terminal tables', () => {
  describe('displayWidth and truncate', () => {
    it('counts terminal cells, not UTF-16 units: accents 0, CJK and emoji 2', () => {
      assert.equal(displayWidth('teacher'), 7);
      assert.equal(displayWidth('Müller'), 6);
      assert.equal(displayWidth('Mu\u0308ller'), 6, 'u + combining diaeresis is one cell');
      assert.equal(displayWidth('日本語'), 6);
      assert.equal(displayWidth('한국어'), 6);
      assert.equal(displayWidth('🚀x'), 3);
      assert.equal(displayWidth('a\u200db'), 2, 'a zero-width joiner takes no cell');
    });

    it('cuts long names to the width, ending in …, never splitting a letter from its accent', () => {
      assert.equal(truncate('short', 10), 'short');
      assert.equal(truncate('exactly-10', 10), 'exactly-10');
      const cut = truncate('meta-llama/Llama-3.1-70B-Instruct', 12);
      assert.equal(cut, 'meta-llama/…');
      assert.equal(displayWidth(cut), 12);
      assert.equal(truncate('Mu\u0308ller-Lüdenscheidt', 3), 'Mu\u0308…');
      // A wide character that would cross the limit is left out rather than overflow it.
      const cjk = truncate('日本語モデル', 6);
      assert.equal(cjk, '日本…');
      assert.ok(displayWidth(cjk) <= 6);
      assert.equal(truncate('abc', 0), '');
    });
  });

  describe('formatTable', () => {
    const columns: Column[] = [
      { header: 'Rank', align: 'right' },
      { header: 'Teacher' },
      { header: 'Score', align: 'right' },
    ];

    it('aligns columns for ASCII and unicode names alike; numbers right, names left', () => {
      const lines = formatTable(columns, [
        ['1', 'gpt-4o', '0.812'],
        ['2', 'Qwen2.5-日本語', '0.5'],
        ['10', 'Mu\u0308ller-7B', '-0.031'],
      ]);
      assert.equal(lines.length, 5, 'header, rule and three rows');
      assert.match(lines[1]!, /^-+ {2}-+ {2}-+$/);
      // Every line ends at the same display column: CJK counts two cells, the combining accent none.
      assert.deepEqual(lines, [
        'Rank  Teacher          Score',
        '----  --------------  ------',
        '   1  gpt-4o           0.812',
        '   2  Qwen2.5-日本語     0.5',
        '  10  Mu\u0308ller-7B       -0.031',
      ]);
      const widths = lines.map(displayWidth);
      assert.ok(widths.every((w) => w === widths[0]));
    });

    it('shows missing values as -, cuts at maxWidth, leaves no trailing spaces', () => {
      const lines = formatTable(
        [{ header: 'Teacher', maxWidth: 8 }, { header: 'PG' }],
        [
          ['a-very-long-teacher-name', undefined],
          ['b', '0.1'],
        ],
      );
      assert.equal(lines[2], 'a-very-…  -');
      assert.equal(lines[3], 'b         0.1');
      for (const l of lines) assert.equal(l, l.trimEnd());
    });

    it('an empty table is its header and rule', () => {
      assert.deepEqual(formatTable(columns, []), ['Rank  Teacher  Score', '----  -------  -----']);
    });

    it('turns control characters in values into spaces (a name cannot move the cursor)', () => {
      const [, , row] = formatTable([{ header: 'x' }], [['evil\u001b[2Jname\nnext']]);
      assert.equal(row, 'evil [2Jname next');
    });

    it('colours only when asked; the colour codes change no width', () => {
      const rows = [['1', { text: 'gpt-4o', tone: 'bold' as const }, undefined]];
      const plain = formatTable(columns, rows);
      assert.ok(plain.every((l) => !ANSI.test(l)));
      const coloured = formatTable(columns, rows, { color: true });
      assert.ok(coloured.some((l) => /\u001b\[1mgpt-4o\u001b\[22m/.test(l)));
      assert.deepEqual(coloured.map(strip), plain);
    });

    it('wantsColor: a terminal without NO_COLOR (set and non-empty) or TERM=dumb', () => {
      assert.equal(wantsColor({ isTTY: true }, {}), true);
      assert.equal(wantsColor({ isTTY: false }, {}), false);
      assert.equal(wantsColor({}, {}), false);
      assert.equal(wantsColor({ isTTY: true }, { NO_COLOR: '1' }), false);
      assert.equal(wantsColor({ isTTY: true }, { NO_COLOR: '' }), true);
      assert.equal(wantsColor({ isTTY: true }, { TERM: 'dumb' }), false);
    });
  });

  describe('formatGrid', () => {
    it('an empty grid says so in one line', () => {
      assert.deepEqual(formatGrid({ rowHeader: 'teacher', rows: [], cols: ['de'], cell: () => 'x' }), ['(no cells)']);
      assert.deepEqual(formatGrid({ rowHeader: 'teacher', rows: ['a'], cols: [], cell: () => 'x' }), ['(no cells)']);
    });

    it('puts a missing cell as - and cuts long teacher names', () => {
      const lines = formatGrid({
        rowHeader: 'teacher',
        rows: ['x'.repeat(40), 'b'],
        cols: ['de', 'fr'],
        cell: (r, c) => (r === 'b' && c === 'fr' ? undefined : `${r[0]}/${c}`),
        maxRowWidth: 10,
      });
      assert.equal(lines[0], 'teacher     de    fr');
      assert.equal(lines[2], 'xxxxxxxxx…  x/de  x/fr');
      assert.equal(lines[3], 'b           b/de  -');
    });
  });

  it('formats scores and costs with fixed decimals; NaN and missing are missing', () => {
    assert.equal(fmtScore(0.41234), '0.412');
    assert.equal(fmtScore(-1), '-1.000');
    assert.equal(fmtScore(NaN), undefined);
    assert.equal(fmtScore(undefined), undefined);
    assert.equal(fmtCost(0.001234), '$0.0012');
    assert.equal(fmtCost(12.3456), '$12.35');
    assert.equal(fmtCost(undefined), undefined);
  });
});

const teacher = (t: string, rank: number, pg: number, family = 'qwen', languages = 2): TeacherScore => ({
  teacher: t,
  family,
  rank,
  pg_score: pg,
  languages,
});
const scored = (t: string, language: string, pg: number | undefined, flags: ScoredCell['flags'] = []): ScoredCell => ({
  teacher: t,
  language,
  family: 'qwen',
  z_score: 0.25,
  ...(pg !== undefined ? { pg_score: pg } : {}),
  flags,
  provenance: { result: { uri: 's3://bucket/very/long/key/result.json', workflowId: 'w', runId: 'r' } },
});
const cohort = (teachers: TeacherScore[], cells: ScoredCell[]): CohortScores => ({
  options: { alpha: 0.5, smallGapThreshold: 0.02 } as CohortScores['options'],
  cells,
  teachers,
  analyses: { families: [] } as unknown as CohortScores['analyses'],
  warnings: [],
});

describe('terminal leaderboard', () => {
  it('ranks teachers per family with score, languages and flagged cells, and no links', () => {
    const scores = cohort(
      [teacher('beta', 2, -0.1), teacher('alpha-with-a-rather-long-name-indeed-yes', 1, 0.4321)],
      [scored('beta', 'de', -0.2, ['small-anchor-gap']), scored('beta', 'fr', 0), scored('alpha', 'de', 0.4)],
    );
    const lines = formatLeaderboard(scores, { maxTeacherWidth: 20 });
    assert.equal(lines[0], 'Leaderboard — student family qwen');
    assert.equal(lines[1], 'Rank  Teacher               PG-Score  Langs  Flagged');
    assert.equal(lines[3], '   1  alpha-with-a-rather…     0.432      2        0');
    assert.equal(lines[4], '   2  beta                    -0.100      2        1');
    assert.ok(!lines.join('\n').includes('s3://'));
  });

  it('one board per family; the intrinsic-only board says what its score is', () => {
    const scores = cohort(
      [teacher('a', 1, 0.3, 'qwen'), teacher('a', 1, 0.1, 'llama'), teacher('b', 1, 0.2, INTRINSIC_ONLY)],
      [],
    );
    const text = formatLeaderboard(scores).join('\n');
    assert.match(text, /student family qwen/);
    assert.match(text, /student family llama/);
    assert.match(text, /teachers by mean intrinsic z \(no student results yet\)\nRank {2}Teacher {2}Mean z/);
    assert.deepEqual(formatLeaderboard(cohort([], [])), ['(no teachers scored)']);
  });
});

describe('sweep status grid', () => {
  const cell = (teacherId: string, language: string, over: Partial<CellProgress> = {}): CellProgress => ({
    cellId: `sweep/x/t=${teacherId}/l=${language}/dataset`,
    teacherId,
    language,
    status: 'done',
    shardsDone: 3,
    shardsTotal: 3,
    examples: 60,
    tokens: 1000,
    costUsd: 0.0123,
    manifestUri: 's3://bucket/datasets/long/manifest.json',
    ...over,
  });
  const progress = (cells: CellProgress[]): SweepProgress => ({
    sweepId: 'x',
    stage: 'students',
    paused: false,
    cells,
    totals: { tokens: 2000, costUsd: 0.0246, examples: 120 },
    report: { htmlUri: 's3://bucket/reports/x/report.html', markdownUri: 's3://bucket/reports/x/leaderboard.md' },
  });

  it('per cell: stage, shards, examples and cost until scored; aligned; no links', () => {
    const grid = renderGrid(
      progress([cell('a', 'de'), cell('a', 'fr', { status: 'students', examples: 7, costUsd: 1.5 }), cell('bb', 'de')]),
    );
    const lines = grid.split('\n');
    assert.equal(lines[0], 'teacher  de                          fr');
    assert.equal(lines[2], 'a        done 3/3 · 60 ex · $0.0123  students 3/3 · 7 ex · $1.50');
    assert.equal(lines[3], 'bb       done 3/3 · 60 ex · $0.0123  -');
    assert.match(grid, /^stage students; 120 examples, 2000 tokens, \$0\.0246$/m);
    assert.doesNotMatch(grid, /s3:\/\/|https?:\/\//);
    assert.doesNotMatch(grid, ANSI);
  });

  it('once scored, the cell shows its PG-Score (z where the family has none) instead of the cost', () => {
    const scores = cohort([teacher('a', 1, 0.3)], [scored('a', 'de', 0.3125), scored('a', 'fr', undefined)]);
    const grid = renderGrid(progress([cell('a', 'de'), cell('a', 'fr')]), { scores });
    assert.match(grid, /done 3\/3 · 60 ex · PG 0\.313 +done 3\/3 · 60 ex · z 0\.250/);
    assert.match(grid, /^scores: PG-Score per cell for student family qwen$/m);
  });

  it('colours cell stages on a terminal without changing the layout', () => {
    const p = progress([cell('a', 'de'), cell('a', 'fr', { status: 'failed', error: 'boom' })]);
    const coloured = renderGrid(p, { color: true });
    assert.match(coloured, /\u001b\[31mfailed 3\/3/);
    assert.equal(strip(coloured), renderGrid(p));
  });
});

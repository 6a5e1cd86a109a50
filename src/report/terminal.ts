/**
 * Tables for the terminal: fixed-width aligned columns, long names cut with an ellipsis, colour only where
 * the caller says the output is a terminal that wants it. Pure: no I/O, no clock; links and full numbers
 * stay in the report files (render.ts).
 */
import type { CohortScores } from '../scoring/types';
import { INTRINSIC_ONLY } from './render';

export type Align = 'left' | 'right';
export type Tone = 'bold' | 'dim' | 'red' | 'green' | 'yellow';

export interface Column {
  header: string;
  align?: Align;
  /** Widest the column may be, in terminal cells; longer values are cut and end in `…`. */
  maxWidth?: number;
}

/** A table cell: text, text with a tone, or missing (shown as `-`). */
export type Cell = string | { text: string; tone?: Tone } | undefined;

export interface TableOptions {
  /** ANSI colours and bold headers; decide with `wantsColor` (off for pipes, files and NO_COLOR). */
  color?: boolean;
  /** Spaces between columns. */
  gap?: number;
}

export const MISSING = '-';
const ELLIPSIS = '…';

/**
 * Whether to colour output written to `stream`: only a terminal, and never when NO_COLOR is set to
 * anything non-empty (no-color.org) or TERM is `dumb`.
 */
export function wantsColor(stream: { isTTY?: boolean }, env: Record<string, string | undefined>): boolean {
  return stream.isTTY === true && !env.NO_COLOR && env.TERM !== 'dumb';
}

const SGR: Record<Tone, [number, number]> = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
};

export function paint(text: string, tone: Tone | undefined, color: boolean): string {
  if (!color || !tone || text === '') return text;
  const [on, off] = SGR[tone];
  return `\u001b[${on}m${text}\u001b[${off}m`;
}

// Marks, format characters and variation selectors take no cell; controls are never printed as such.
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}\p{Cc}]$/u;

/** East Asian Wide and Fullwidth code points: two terminal cells each. */
function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0x303e) ||
    (cp >= 0x3041 && cp <= 0x33ff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0xa000 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

// Emoji shown as pictures by default: terminals give them two cells.
const EMOJI = /^\p{Emoji_Presentation}$/u;

function charWidth(ch: string): number {
  if (ZERO_WIDTH.test(ch)) return 0;
  return isWide(ch.codePointAt(0)!) || EMOJI.test(ch) ? 2 : 1;
}

/** Columns `s` takes in a terminal (not its UTF-16 length: `é` as e + accent is 1, `日` is 2). */
export function displayWidth(s: string): number {
  let w = 0;
  for (const ch of s) w += charWidth(ch);
  return w;
}

/** `s` cut to at most `max` terminal cells, ending in `…` when cut; accents stay with their letter. */
export function truncate(s: string, max: number): string {
  if (displayWidth(s) <= max) return s;
  if (max <= 0) return '';
  let out = '';
  let w = 0;
  for (const ch of s) {
    const cw = charWidth(ch);
    if (w + cw > max - 1) {
      if (cw === 0 && out !== '') out += ch;
      else break;
    } else {
      out += ch;
      w += cw;
    }
  }
  return out + ELLIPSIS;
}

function pad(s: string, width: number, align: Align): string {
  const fill = ' '.repeat(Math.max(0, width - displayWidth(s)));
  return align === 'right' ? fill + s : s + fill;
}

const textOf = (c: Cell): string => (c === undefined ? MISSING : typeof c === 'string' ? c : c.text);
const toneOf = (c: Cell): Tone | undefined => (c === undefined ? 'dim' : typeof c === 'string' ? undefined : c.tone);

/**
 * Rows under a header and a rule, each column as wide as its widest value (capped at `maxWidth`),
 * without trailing spaces. Control characters in values become spaces: a name cannot move the cursor.
 */
export function formatTable(columns: Column[], rows: Cell[][], opts: TableOptions = {}): string[] {
  const color = opts.color ?? false;
  const gap = ' '.repeat(opts.gap ?? 2);
  const clean = (s: string): string => s.replace(/[\p{Cc}]/gu, ' ');
  const cap = (s: string, j: number): string => truncate(clean(s), columns[j]?.maxWidth ?? Infinity);
  const texts = rows.map((r) => columns.map((_, j) => cap(textOf(r[j]), j)));
  const heads = columns.map((c, j) => cap(c.header, j));
  const widths = columns.map((_, j) => Math.max(displayWidth(heads[j]!), ...texts.map((t) => displayWidth(t[j]!))));
  const line = (cells: string[], tones: (Tone | undefined)[]): string => {
    const last = cells.length - 1;
    return cells
      .map((t, j) => {
        const align = columns[j]!.align ?? 'left';
        // The last column, left-aligned, needs no padding: nothing follows it.
        const padded = j === last && align === 'left' ? t : pad(t, widths[j]!, align);
        // Padding stays outside the colour codes so the widths hold with colour on.
        const lead = padded.length - padded.trimStart().length;
        const body = padded.trim();
        return padded.slice(0, lead) + paint(body, tones[j], color) + padded.slice(lead + body.length);
      })
      .join(gap)
      .trimEnd();
  };
  return [
    line(
      heads,
      heads.map(() => 'bold'),
    ),
    line(
      widths.map((w) => '-'.repeat(w)),
      widths.map(() => 'dim'),
    ),
    ...texts.map((t, i) =>
      line(
        t,
        columns.map((_, j) => toneOf(rows[i]![j])),
      ),
    ),
  ];
}

export interface Grid {
  rowHeader: string;
  rows: string[];
  cols: string[];
  /** The cell of `row` × `col`; undefined shows as missing. */
  cell: (row: string, col: string) => Cell;
  /** Cap on the row-name column (default 24). */
  maxRowWidth?: number;
  /** Cap on each cell (default 40). */
  maxCellWidth?: number;
}

/** A row × column grid (teacher × language) as a table; an empty grid says so in one line. */
export function formatGrid(g: Grid, opts: TableOptions = {}): string[] {
  if (g.rows.length === 0 || g.cols.length === 0) return ['(no cells)'];
  const columns: Column[] = [
    { header: g.rowHeader, maxWidth: g.maxRowWidth ?? 24 },
    ...g.cols.map((c) => ({ header: c, maxWidth: g.maxCellWidth ?? 40 })),
  ];
  return formatTable(
    columns,
    g.rows.map((r) => [r, ...g.cols.map((c) => g.cell(r, c))]),
    opts,
  );
}

/** A score with a fixed number of decimals; missing and NaN show as missing. */
export function fmtScore(v: number | undefined, digits = 3): string | undefined {
  return v === undefined || !Number.isFinite(v) ? undefined : v.toFixed(digits);
}

/** Dollars: cents once above a dollar, else four decimals (small sweeps cost fractions of a cent). */
export function fmtCost(usd: number | undefined): string | undefined {
  if (usd === undefined || !Number.isFinite(usd)) return undefined;
  return `$${usd.toFixed(usd >= 1 ? 2 : 4)}`;
}

/** The family whose score stands for a cell in the grid: the leaderboard's first. */
export function primaryFamily(scores: CohortScores): string | undefined {
  return scores.teachers[0]?.family;
}

/**
 * The leaderboards of a scored cohort, one per student family: rank, teacher, score, languages scored and
 * flagged cells. Names are cut to `maxTeacherWidth`; no links (the report files have them).
 */
export function formatLeaderboard(
  scores: CohortScores,
  opts: TableOptions & { maxTeacherWidth?: number } = {},
): string[] {
  const families = [...new Set(scores.teachers.map((t) => t.family))];
  if (families.length === 0) return ['(no teachers scored)'];
  const out: string[] = [];
  for (const family of families) {
    const board = scores.teachers
      .filter((t) => t.family === family)
      .sort((a, b) => a.rank - b.rank || a.teacher.localeCompare(b.teacher));
    const flagged = (teacher: string): number =>
      scores.cells.filter((c) => c.teacher === teacher && c.family === family && c.flags.length > 0).length;
    const columns: Column[] = [
      { header: 'Rank', align: 'right' },
      { header: 'Teacher', maxWidth: opts.maxTeacherWidth ?? 32 },
      { header: family === INTRINSIC_ONLY ? 'Mean z' : 'PG-Score', align: 'right' },
      { header: 'Langs', align: 'right' },
      { header: 'Flagged', align: 'right' },
    ];
    const rows: Cell[][] = board.map((t) => {
      const n = flagged(t.teacher);
      return [
        String(t.rank),
        t.rank === 1 ? { text: t.teacher, tone: 'bold' } : t.teacher,
        fmtScore(t.pg_score),
        String(t.languages),
        n ? { text: String(n), tone: 'yellow' } : '0',
      ];
    });
    if (out.length) out.push('');
    const title =
      family === INTRINSIC_ONLY
        ? 'Leaderboard — teachers by mean intrinsic z (no student results yet)'
        : `Leaderboard — student family ${family ?? 'all students'}`;
    out.push(paint(title, 'bold', opts.color ?? false));
    out.push(...formatTable(columns, rows, opts));
  }
  return out;
}

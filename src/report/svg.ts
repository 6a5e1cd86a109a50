/**
 * Hand-written SVG charts for the report: pure functions returning inline SVG strings (no xmlns, so the
 * HTML page carries no http reference). Every piece of text goes through `esc`.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML/SVG element content and attribute values. */
export function esc(s: string | number): string {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/** Fixed-point number, `—` for missing or non-finite values, no `-0.000`. */
export function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  const s = v.toFixed(digits);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

export function pct(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '—' : `${fmt(v * 100, digits)}%`;
}

/** Round "nice" tick values (1, 2, 2.5, 5 × 10^k) covering [min, max]. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max) || !(max > min)) return [Number.isFinite(min) ? min : 0];
  const raw = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let i = Math.ceil(min / step - 1e-9); i * step <= max + step * 1e-9; i++)
    out.push(Number((i * step).toFixed(12)));
  return out;
}

function tickDigits(ticks: number[]): number {
  const step = ticks.length > 1 ? Math.abs((ticks[1] ?? 0) - (ticks[0] ?? 0)) : 1;
  return step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step) + 1e-9) + (Number.isInteger(step * 10 ** 6) ? 0 : 1));
}

function textWidth(s: string, size = 12): number {
  return Array.from(s).length * size * 0.6;
}

function truncate(s: string, max: number): string {
  const chars = Array.from(s);
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : s;
}

const n1 = (v: number): string => String(Math.round(v * 10) / 10);

function open(width: number, height: number, title: string, summary: string): string {
  return (
    `<svg class="chart" viewBox="0 0 ${n1(width)} ${n1(height)}" width="${n1(width)}" height="${n1(height)}" ` +
    `role="img" aria-label="${esc(`${title}. ${summary}`)}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12">` +
    `<title>${esc(title)}</title><desc>${esc(summary)}</desc>` +
    `<rect class="bg" x="0" y="0" width="${n1(width)}" height="${n1(height)}" fill="#fff"/>` +
    `<text x="12" y="20" font-size="14" font-weight="600" fill="#111">${esc(title)}</text>`
  );
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${n1(x)}" y="${n1(y)}"${attrs ? ` ${attrs}` : ''}>${esc(s)}</text>`;
}

function yAxisLabel(x: number, y: number, s: string): string {
  return `<text transform="translate(${n1(x)} ${n1(y)}) rotate(-90)" text-anchor="middle" fill="#333">${esc(s)}</text>`;
}

export interface Bar {
  label: string;
  value: number | undefined;
  /** Tooltip text; defaults to `label: value`. */
  tooltip?: string;
}

interface HBarsLayout {
  x: number;
  y: number;
  labelW: number;
  plotW: number;
  rowH: number;
  fontSize: number;
  digits: number;
  labelChars: number;
}

const POS = '#2c7fb8';
const NEG = '#d95f02';

/** Horizontal bars with row labels, zero line, gridlines and a tick axis; returns SVG and height used. */
function hbars(bars: Bar[], l: HBarsLayout): { svg: string; height: number } {
  const vals = bars.map((b) => b.value).filter((v): v is number => v !== undefined && Number.isFinite(v));
  let lo = Math.min(0, ...vals);
  let hi = Math.max(0, ...vals);
  if (hi === lo) hi = lo + 1;
  const pad = 0.16 * (hi - lo);
  if (lo < 0) lo -= pad;
  if (hi > 0) hi += pad;
  const px = l.x + l.labelW;
  const sx = (v: number): number => px + ((v - lo) / (hi - lo)) * l.plotW;
  const plotH = bars.length * l.rowH;
  const ticks = niceTicks(lo, hi, Math.max(2, Math.round(l.plotW / 70)));
  const td = tickDigits(ticks);
  const parts: string[] = [];
  for (const t of ticks) {
    parts.push(`<line x1="${n1(sx(t))}" y1="${n1(l.y)}" x2="${n1(sx(t))}" y2="${n1(l.y + plotH)}" stroke="#e3e3e3"/>`);
    parts.push(text(sx(t), l.y + plotH + 14, fmt(t, td), `text-anchor="middle" font-size="10" fill="#555"`));
  }
  bars.forEach((b, i) => {
    const y = l.y + i * l.rowH;
    const barH = l.rowH * 0.72;
    const cy = y + l.rowH / 2 + l.fontSize * 0.35;
    const lab = truncate(b.label, l.labelChars);
    parts.push(text(px - 6, cy, lab, `text-anchor="end" font-size="${l.fontSize}" fill="#222"`));
    const v = b.value;
    const tip = b.tooltip ?? `${b.label}: ${fmt(v, l.digits)}`;
    if (v === undefined || !Number.isFinite(v)) {
      parts.push(
        `<g><title>${esc(tip)}</title>${text(sx(0) + 4, cy, '—', `font-size="${l.fontSize}" fill="#888"`)}</g>`,
      );
      return;
    }
    const x0 = Math.min(sx(0), sx(v));
    const w = Math.max(Math.abs(sx(v) - sx(0)), 0.5);
    const labelX = v < 0 ? x0 - 3 : x0 + w + 3;
    parts.push(
      `<g><title>${esc(tip)}</title>` +
        `<rect x="${n1(x0)}" y="${n1(y + (l.rowH - barH) / 2)}" width="${n1(w)}" height="${n1(barH)}" fill="${v < 0 ? NEG : POS}"/>` +
        text(
          labelX,
          cy,
          fmt(v, l.digits),
          `text-anchor="${v < 0 ? 'end' : 'start'}" font-size="${l.fontSize - 1}" fill="#333"`,
        ) +
        `</g>`,
    );
  });
  parts.push(
    `<line x1="${n1(sx(0))}" y1="${n1(l.y - 2)}" x2="${n1(sx(0))}" y2="${n1(l.y + plotH + 2)}" stroke="#222"/>`,
  );
  parts.push(
    `<line x1="${n1(px)}" y1="${n1(l.y + plotH)}" x2="${n1(px + l.plotW)}" y2="${n1(l.y + plotH)}" stroke="#999"/>`,
  );
  return { svg: parts.join(''), height: plotH + 18 };
}

export interface BarChartOptions {
  title: string;
  bars: Bar[];
  xLabel: string;
  yLabel: string;
  width?: number;
  digits?: number;
}

/** Horizontal bar chart (e.g. teacher ranking); bars in the given order, negatives drawn left of zero. */
export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 760;
  const labelW = Math.min(220, Math.max(60, ...o.bars.map((b) => textWidth(truncate(b.label, 34)))) + 10);
  const layout: HBarsLayout = {
    ...{ x: 30, y: 40, labelW, plotW: width - 30 - labelW - 24, rowH: 24 },
    ...{ fontSize: 12, digits: o.digits ?? 3, labelChars: 34 },
  };
  const body = hbars(o.bars, layout);
  const height = layout.y + body.height + 34;
  const summary = `${o.bars.length} bars; x axis: ${o.xLabel}; y axis: ${o.yLabel}`;
  return (
    open(width, height, o.title, summary) +
    body.svg +
    text(layout.x + labelW + layout.plotW / 2, height - 10, o.xLabel, 'text-anchor="middle" fill="#333"') +
    yAxisLabel(14, layout.y + body.height / 2, o.yLabel) +
    '</svg>'
  );
}

export interface Panel {
  title: string;
  bars: Bar[];
}

export interface SmallMultiplesOptions {
  title: string;
  panels: Panel[];
  xLabel: string;
  yLabel: string;
  columns?: number;
  digits?: number;
}

/** A grid of small horizontal bar panels, each with its own scale (metrics have different units). */
export function smallMultiples(o: SmallMultiplesOptions): string {
  const cols = Math.max(1, Math.min(o.columns ?? 3, o.panels.length));
  const panelW = 300;
  const rows = Math.ceil(o.panels.length / cols);
  const maxBars = Math.max(1, ...o.panels.map((p) => p.bars.length));
  const labelW = Math.min(
    110,
    Math.max(40, ...o.panels.flatMap((p) => p.bars.map((b) => textWidth(truncate(b.label, 16), 10)))) + 8,
  );
  const panelH = 24 + maxBars * 16 + 18 + 12;
  const top = 36;
  const width = 30 + cols * panelW + 10;
  const height = top + rows * panelH + 30;
  const parts: string[] = [
    open(width, height, o.title, `${o.panels.length} panels; x axis: ${o.xLabel}; y axis: ${o.yLabel}`),
  ];
  o.panels.forEach((p, i) => {
    const px = 30 + (i % cols) * panelW;
    const py = top + Math.floor(i / cols) * panelH;
    parts.push(`<g class="panel">`);
    parts.push(
      `<rect x="${n1(px + 2)}" y="${n1(py)}" width="${panelW - 8}" height="${panelH - 8}" fill="#fafafa" stroke="#ddd"/>`,
    );
    parts.push(text(px + 10, py + 16, truncate(p.title, 40), 'font-size="12" font-weight="600" fill="#222"'));
    const layout: HBarsLayout = {
      ...{ x: px + 4, y: py + 24, labelW, plotW: panelW - labelW - 24, rowH: 16 },
      ...{ fontSize: 10, digits: o.digits ?? 2, labelChars: 16 },
    };
    parts.push(hbars(p.bars, layout).svg, '</g>');
  });
  parts.push(text(30 + (cols * panelW) / 2, height - 10, o.xLabel, 'text-anchor="middle" fill="#333"'));
  parts.push(yAxisLabel(14, top + (rows * panelH) / 2, o.yLabel), '</svg>');
  return parts.join('');
}

export interface HeatmapOptions {
  title: string;
  rows: string[];
  cols: string[];
  /** rows × cols; undefined = missing. */
  values: (number | undefined)[][];
  xLabel: string;
  yLabel: string;
  /** Symmetric color domain [-domain, domain]; default max |value|. */
  domain?: number;
  digits?: number;
}

const LOW: [number, number, number] = [178, 24, 43];
const MID: [number, number, number] = [247, 247, 247];
const HIGH: [number, number, number] = [33, 102, 172];

/** Diverging color: t in [-1, 1], red (low) → light grey (0) → blue (high). */
export function diverging(t: number): string {
  const c = Math.max(-1, Math.min(1, Number.isFinite(t) ? t : 0));
  const end = c < 0 ? LOW : HIGH;
  const a = Math.abs(c);
  const rgb = MID.map((m, i) => Math.round(m + ((end[i] ?? m) - m) * a));
  return `rgb(${rgb.join(',')})`;
}

function inkFor(t: number): string {
  return Math.abs(t) > 0.55 ? '#fff' : '#111';
}

/** Heatmap with value labels and a discrete diverging legend. */
export function heatmap(o: HeatmapOptions): string {
  const digits = o.digits ?? 2;
  const flat = o.values.flat().filter((v): v is number => v !== undefined && Number.isFinite(v));
  const dom = o.domain ?? Math.max(1e-9, ...flat.map(Math.abs));
  const rowLabelW = Math.min(200, Math.max(40, ...o.rows.map((r) => textWidth(truncate(r, 30)))) + 10);
  const cellW = Math.max(60, Math.min(90, Math.max(0, ...o.cols.map((c) => textWidth(c) + 10))));
  const cellH = 28;
  const rotate = o.cols.some((c) => textWidth(c) > cellW - 6);
  const colLabelH = rotate ? Math.min(110, Math.max(...o.cols.map((c) => textWidth(truncate(c, 18)))) * 0.72 + 14) : 18;
  const gx = 30 + rowLabelW;
  const gy = 36;
  const gridW = o.cols.length * cellW;
  const gridH = o.rows.length * cellH;
  const legendX = gx + gridW + 24;
  const width = legendX + 80;
  const height = Math.max(gy + gridH + colLabelH + 32, gy + 11 * 14 + 40);
  const parts: string[] = [
    open(width, height, o.title, `${o.rows.length} × ${o.cols.length} cells; x axis: ${o.xLabel}; y axis: ${o.yLabel}`),
  ];
  o.rows.forEach((r, i) => {
    const y = gy + i * cellH;
    parts.push(text(gx - 6, y + cellH / 2 + 4, truncate(r, 30), 'text-anchor="end" fill="#222"'));
    o.cols.forEach((c, j) => {
      const v = o.values[i]?.[j];
      const x = gx + j * cellW;
      const ok = v !== undefined && Number.isFinite(v);
      const t = ok ? v / dom : 0;
      parts.push(
        `<g><title>${esc(`${r} × ${c}: ${fmt(v, 3)}`)}</title>` +
          `<rect x="${n1(x)}" y="${n1(y)}" width="${cellW}" height="${cellH}" fill="${ok ? diverging(t) : '#e6e6e6'}" stroke="#fff"/>` +
          text(
            x + cellW / 2,
            y + cellH / 2 + 4,
            fmt(v, digits),
            `text-anchor="middle" font-size="11" fill="${ok ? inkFor(t) : '#777'}"`,
          ) +
          '</g>',
      );
    });
  });
  o.cols.forEach((c, j) => {
    const x = gx + j * cellW + cellW / 2;
    const y = gy + gridH + 14;
    const lab = truncate(c, 18);
    parts.push(
      rotate
        ? `<text transform="translate(${n1(x)} ${n1(y)}) rotate(-40)" text-anchor="end" fill="#222">${esc(lab)}</text>`
        : text(x, y, lab, 'text-anchor="middle" fill="#222"'),
    );
  });
  parts.push(text(gx + gridW / 2, height - 10, o.xLabel, 'text-anchor="middle" fill="#333"'));
  parts.push(yAxisLabel(14, gy + gridH / 2, o.yLabel));
  parts.push(text(legendX, gy - 4, 'scale', 'font-size="10" fill="#555"'));
  for (let k = 0; k < 11; k++) {
    const t = 1 - k / 5;
    const y = gy + k * 14;
    parts.push(`<rect x="${n1(legendX)}" y="${n1(y)}" width="16" height="14" fill="${diverging(t)}"/>`);
    if (k % 5 === 0) parts.push(text(legendX + 22, y + 11, fmt(t * dom, digits), 'font-size="10" fill="#333"'));
  }
  parts.push(`<rect x="${n1(legendX)}" y="${gy}" width="16" height="154" fill="none" stroke="#999"/>`, '</svg>');
  return parts.join('');
}

export interface VarianceChartOptions {
  title: string;
  /** Explained variance ratio per component (0–1). */
  ratios: number[];
  cumulative: number[];
  labels?: string[];
  xLabel: string;
  yLabel: string;
}

/** Vertical bars of explained variance per component with the cumulative share as a line. */
export function varianceChart(o: VarianceChartOptions): string {
  const n = o.ratios.length;
  const bw = Math.max(36, Math.min(70, 480 / Math.max(1, n)));
  const gx = 70;
  const gy = 56;
  const plotW = n * bw;
  const plotH = 220;
  const width = Math.max(gx + plotW + 30, 420);
  const height = gy + plotH + 56;
  const sy = (v: number): number => gy + plotH - Math.max(0, Math.min(1, v)) * plotH;
  const parts: string[] = [open(width, height, o.title, `${n} components; x axis: ${o.xLabel}; y axis: ${o.yLabel}`)];
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    parts.push(`<line x1="${gx}" y1="${n1(sy(t))}" x2="${n1(gx + plotW)}" y2="${n1(sy(t))}" stroke="#e3e3e3"/>`);
    parts.push(text(gx - 6, sy(t) + 4, pct(t, 0), 'text-anchor="end" font-size="10" fill="#555"'));
  }
  const pts: [number, number][] = [];
  o.ratios.forEach((r, i) => {
    const x = gx + i * bw;
    const lab = o.labels?.[i] ?? `PC${i + 1}`;
    parts.push(
      `<g><title>${esc(`${lab}: ${pct(r)} (cumulative ${pct(o.cumulative[i])})`)}</title>` +
        `<rect x="${n1(x + bw * 0.15)}" y="${n1(sy(r))}" width="${n1(bw * 0.7)}" height="${n1(gy + plotH - sy(r))}" fill="${POS}"/>` +
        (gy + plotH - sy(r) > 18
          ? text(x + bw / 2, sy(r) + 13, pct(r, 1), 'text-anchor="middle" font-size="10" fill="#fff"')
          : text(x + bw / 2, sy(r) - 4, pct(r, 1), 'text-anchor="middle" font-size="10" fill="#333"')) +
        '</g>',
    );
    parts.push(text(x + bw / 2, gy + plotH + 14, truncate(lab, 8), 'text-anchor="middle" font-size="11" fill="#222"'));
    const c = o.cumulative[i];
    if (c !== undefined && Number.isFinite(c)) pts.push([x + bw / 2, sy(c)]);
  });
  if (pts.length > 0) {
    const d = pts.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${n1(x)} ${n1(y)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${NEG}" stroke-width="2"/>`);
    for (const [x, y] of pts) parts.push(`<circle cx="${n1(x)}" cy="${n1(y)}" r="3.5" fill="${NEG}"/>`);
  }
  parts.push(`<line x1="${gx}" y1="${n1(gy + plotH)}" x2="${n1(gx + plotW)}" y2="${n1(gy + plotH)}" stroke="#222"/>`);
  parts.push(
    `<rect x="${gx}" y="30" width="12" height="10" fill="${POS}"/>`,
    text(gx + 16, 39, 'explained', 'font-size="11"'),
  );
  parts.push(`<line x1="${gx + 90}" y1="35" x2="${gx + 110}" y2="35" stroke="${NEG}" stroke-width="2"/>`);
  parts.push(text(gx + 114, 39, 'cumulative', 'font-size="11"'));
  parts.push(text(gx + plotW / 2, height - 10, o.xLabel, 'text-anchor="middle" fill="#333"'));
  parts.push(yAxisLabel(16, gy + plotH / 2, o.yLabel), '</svg>');
  return parts.join('');
}

/**
 * The heatmap: rows = size, columns = path (per target). Each cell shows delivered/total — as the terminal table
 * does — and is coloured by what happened to its probes (delivered, a stall of each kind, rejection, timeout, other
 * failure; pale when some delivered), with a legend. The stall rate stays available as a second view (a toggle).
 */
import type { CellStats } from '../analyze/cells.js';
import { formatPct } from '../analyze/stats.js';
import type { ProbeResult } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import type { RuleSet } from './styles.js';
import { esc, gkey, group, numAttr, probesByCell, uniq } from './util.js';
import { type CellWhat, WHATS, WHAT_COLOR, WHAT_LABEL, cellWhat } from './what.js';

export interface Column {
  target: string;
  path: string;
}

export interface Grid<T extends GridCell = CellStats> {
  targets: string[];
  paths: string[];
  sizes: number[];
  cols: Column[];
  byKey: Map<string, T>;
}

/** What a grid lays out: anything of one (path, target, size) — a cell, or verify's comparison of one. */
export interface GridCell {
  target: string;
  path: string;
  sizeBytes: number;
}

export function gridOf<T extends GridCell>(cells: readonly T[]): Grid<T> {
  const targets = uniq(cells.map((c) => c.target));
  // paths in order of first appearance (the profile's order when cells come from computeCells)
  const paths = uniq(cells.map((c) => c.path));
  const sizes = uniq(cells.map((c) => c.sizeBytes)).sort((a, b) => a - b);
  const byKey = new Map(cells.map((c) => [gkey(c.target, c.path, c.sizeBytes), c]));
  const cols: Column[] = [];
  for (const t of targets) for (const p of paths) if (cells.some((c) => c.target === t && c.path === p)) cols.push({ target: t, path: p });
  return { targets, paths, sizes, cols, byKey };
}

/** Sequential scale for the stall rate: pale green (0) → yellow → orange → dark red (1). */
const STOPS: Array<[number, [number, number, number]]> = [
  [0, [237, 247, 237]],
  [0.0001, [255, 244, 196]],
  [0.25, [253, 190, 110]],
  [0.5, [240, 118, 62]],
  [0.75, [209, 48, 38]],
  [1, [140, 10, 20]],
];

export function stallColor(rate: number): string {
  const x = Math.min(1, Math.max(0, Number.isFinite(rate) ? rate : 0));
  for (let i = 1; i < STOPS.length; i++) {
    const [x1, c1] = STOPS[i]!;
    const [x0, c0] = STOPS[i - 1]!;
    if (x <= x1) {
      const t = x1 === x0 ? 1 : (x - x0) / (x1 - x0);
      const c = c0.map((v, k) => Math.round(v + (c1[k]! - v) * t));
      return `rgb(${c[0]},${c[1]},${c[2]})`;
    }
  }
  return 'rgb(140,10,20)';
}

export function failureText(c: CellStats): string {
  const f = c.dominantFailure;
  if (!f) return '';
  return `${f.count} ${f.outcome}${f.code ? ` ${f.code}` : ''}${f.stage ? `@${f.stage}` : ''}`;
}

function cellTitle(c: CellStats, w: CellWhat, multiTarget: boolean): string {
  const lines: string[] = [];
  lines.push(`${c.path}${multiTarget ? ` → ${c.target}` : ''}, ${formatSize(c.sizeBytes)} (${group(c.sizeBytes)} bytes)`);
  lines.push(`delivered ${c.delivered}/${c.total}${c.medianTotalMs !== undefined ? `, median ${formatMs(c.medianTotalMs)}` : ''}`);
  lines.push(`stalled ${c.stalled}/${c.total} (${formatPct(c.stallRate)}; 95% CI ${formatPct(c.stallRateCi[0])}–${formatPct(c.stallRateCi[1])})`);
  const others = WHATS.filter((x) => x !== 'delivered' && (w.counts[x] ?? 0) > 0).map((x) => `${w.counts[x]} ${WHAT_LABEL[x]}`);
  if (others.length) lines.push(`not delivered: ${others.join(', ')}`);
  if (c.dominantFailure?.stage) lines.push(`most failures in stage ${c.dominantFailure.stage}`);
  if (c.stallOffset) {
    const o = c.stallOffset;
    const which = o.source === 'sink' ? 'received by the sink' : o.source === 'bytesAcked' ? 'acknowledged (kernel)' : 'written (overstates)';
    lines.push(`stalled at ${formatSize(o.minBytes)}–${formatSize(o.maxBytes)} ${which}, median ${formatSize(o.medianBytes)}`);
  }
  if (c.bodyThroughputBps) lines.push(`body throughput ${formatSize(Math.round(c.bodyThroughputBps))}/s`);
  return lines.join('\n');
}

/** The line under delivered/total: the median time, or the dominant way probes did not deliver. */
function subLine(c: CellStats, w: CellWhat): string {
  if (w.what === 'delivered') return c.medianTotalMs !== undefined ? `✓ ${formatMs(c.medianTotalMs)}` : '✓';
  const stage = c.dominantFailure?.stage ? `@${c.dominantFailure.stage}` : '';
  const kind = w.what === 'no-ack' || w.what === 'window-closed' || w.what === 'no-reply' ? `stalled ${w.what}` : w.what === 'rejected' && c.dominantFailure?.code ? `rejected ${c.dominantFailure.code}` : w.what;
  const rest = c.total - c.delivered - w.count;
  return `${w.count} ${kind}${stage}${rest > 0 ? ` +${rest}` : ''}`;
}

/** The classes of the colour palette (what happened; stall rate in tenths), written once into the report's CSS. */
export function heatmapCss(): string {
  const what = WHATS.flatMap((w) => {
    const [full, pale] = WHAT_COLOR[w];
    return [`td.hm.w-${w}{background:${full}}`, `td.hm.w-${w}.mixed{background:${pale}}`, `.sw.w-${w}{background:${full}}`, `.sw.w-${w}.mixed{background:${pale}}`];
  });
  const rate = Array.from({ length: 11 }, (_, i) => `.view-rate td.hm.sr-${i}{background:${stallColor(i / 10)};color:${i >= 5 ? '#fff' : 'inherit'}}`);
  const views = ['.legend-rate{display:none}', '.view-rate .legend-rate{display:block}', '.view-rate .legend-what{display:none}'];
  return [...what, 'td.hm.dark{color:#fff}', 'td.hm.mixed{color:inherit}', ...rate, ...views].join('\n');
}

function cellTd(c: CellStats, rs: readonly ProbeResult[], multiTarget: boolean): string {
  const w = cellWhat(c, rs);
  const dark = w.what !== 'delivered' && !w.mixed;
  const cls = ['hm', `w-${w.what}`, w.mixed ? 'mixed' : '', dark ? 'dark' : '', `sr-${Math.round(c.stallRate * 10)}`].filter(Boolean).join(' ');
  return (
    `<td class="${cls}" tabindex="0"` +
    ` data-cell="${esc(`${c.path}|${c.target}|${c.sizeBytes}`)}" data-path="${esc(c.path)}" data-target="${esc(c.target)}"` +
    ` data-size="${numAttr(c.sizeBytes)}" data-what="${esc(w.what)}" data-delivered="${numAttr(c.delivered)}" data-total="${numAttr(c.total)}"` +
    ` data-stalled="${numAttr(c.stalled)}" data-stall-rate="${numAttr(c.stallRate)}"` +
    ` title="${esc(cellTitle(c, w, multiTarget))}">` +
    `<div class="hm-main">${numAttr(c.delivered)}/${numAttr(c.total)}</div><div class="hm-sub">${esc(subLine(c, w))}</div></td>`
  );
}

function legend(present: Set<string>, rules: RuleSet): string {
  const items = WHATS.filter((w) => present.has(w)).map((w) => `<span class="lg-item"><i class="sw w-${w}"></i>${esc(WHAT_LABEL[w])}</span>`);
  const stops = [0, 0.0001, 0.25, 0.5, 0.75, 1].map((x) => `${stallColor(x)} ${x * 100}%`).join(', ');
  return `
<div class="legend" aria-label="legend">
  <div class="legend-what">${items.join('')}<span class="lg-item"><i class="sw w-no-ack mixed"></i>pale: some probes delivered</span></div>
  <div class="legend-rate"><div class="legend-bar ${rules.cls(`background:linear-gradient(to right, ${stops})`)}"></div>
  <div class="legend-ticks"><span>0%</span><span>25%</span><span>50%</span><span>75%</span><span>100% stalled</span></div></div>
  <p class="legend-note">Each cell: delivered/total probes of one path and size (as in the terminal table), coloured by
  what happened to the probes that did not deliver (the most frequent way); below, the median time when every probe was
  delivered, or that way with its stage. "Stall rate" colours the cells by stalled/total instead. Hover a cell for the
  numbers; click it to show its probes in the table below.</p>
</div>`;
}

export function renderHeatmap(cells: readonly CellStats[], results: readonly ProbeResult[], rules: RuleSet): string {
  if (cells.length === 0) return '<p class="empty">No probes: nothing to map.</p>';
  const g = gridOf(cells);
  const multiTarget = g.targets.length > 1;
  const byCell = probesByCell(results);
  const head: string[] = [];
  if (multiTarget) {
    head.push('<tr><th class="corner"></th>');
    for (let i = 0; i < g.cols.length; ) {
      const t = g.cols[i]!.target;
      let j = i;
      while (j < g.cols.length && g.cols[j]!.target === t) j++;
      head.push(`<th class="tgt" colspan="${j - i}" scope="colgroup">→ ${esc(t)}</th>`);
      i = j;
    }
    head.push('</tr>');
  }
  head.push(`<tr><th class="corner">size \\ path</th>${g.cols.map((c) => `<th scope="col">${esc(c.path)}</th>`).join('')}</tr>`);
  const present = new Set<string>();
  const rows = g.sizes.map((s) => {
    const tds = g.cols.map((col) => {
      const c = g.byKey.get(gkey(col.target, col.path, s));
      if (!c) return '<td class="hm-empty" title="not probed">–</td>';
      const rs = byCell.get(gkey(c.target, c.path, c.sizeBytes)) ?? [];
      present.add(cellWhat(c, rs).what);
      return cellTd(c, rs, multiTarget);
    });
    return `<tr><th scope="row" class="size">${esc(formatSize(s))}</th>${tds.join('')}</tr>`;
  });
  return `
<div class="hm-view" role="radiogroup" aria-label="colour the cells by">
  <label><input type="radio" name="hmview" value="what" checked> what happened</label>
  <label><input type="radio" name="hmview" value="rate"> stall rate</label>
</div>
<div class="hm-wrap" id="hm-wrap">
<table class="heatmap" id="heatmap-table">
<thead>${head.join('')}</thead>
<tbody>${rows.join('\n')}</tbody>
</table>${legend(present, rules)}
</div>`;
}

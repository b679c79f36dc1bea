/**
 * The HTML report: one self-contained file (inline CSS, inline JS, inline SVG, the data embedded as JSON; no
 * external URL of any kind, and a Content-Security-Policy that forbids loading anything), readable offline by
 * a person: the verdict on top, a heatmap (rows = size, columns = path per target) of delivered/total coloured by what
 * happened (stall rate as a second view), the findings with their evidence, a waterfall of the median time of each
 * stage per cell, the stall offsets plotted against the message size, every probe on a time axis, and every probe in a
 * filterable table.
 *
 * The Content-Security-Policy has no 'unsafe-inline': the one <style> and the one <script> are allowed by their
 * sha256 hashes, and there is no style attribute (computed positions and colours are classes, see styles.ts).
 *
 * `renderReport` is a pure function (no I/O, no clock); `writeReport` (in ./index.ts) puts it in a file.
 * Everything that comes from results is escaped: path and target names are user input.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { ackedBodyOffset, sinkBodyBytes, type CellStats } from '../analyze/cells.js';
import { formatP } from '../analyze/stats.js';
import type { CellComparison, CellVerdict, ThresholdResult, VerifyResult } from '../analyze/verify.js';
import { STAGES, type Finding, type ProbeResult, type Stage } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import { failureText, gridOf, heatmapCss, renderHeatmap } from './heatmap.js';
import { type CaptureGraph, renderCaptureGraphs } from './captures.js';
import { RuleSet } from './styles.js';
import { TSG_CSS } from './tsg.js';
import { renderTimeline } from './timeline.js';
import { bytesText, esc, finite, gkey, group, labelRows, median, niceTicks, numAttr, plural, probesByCell, r1, uniq, jsonForScript } from './util.js';

export { esc, jsonForScript } from './util.js';
export { stallColor } from './heatmap.js';
import { transcriptDetails } from './transcript.js';
import { ARRIVAL_CSS, renderArrival } from './arrival.js';
import { describeArrival } from '../arrival/record.js';

/** What `verify` adds to a report: the baseline comparison per cell and the thresholds. */
export interface ReportVerify {
  /** The baseline results file (for the header). */
  baseline?: string;
  /** The new run (file, or "run of PROFILE"). */
  after?: string;
  /** Probes in the baseline. */
  baselineProbes?: number;
  result: VerifyResult;
  thresholds?: ThresholdResult[];
  expectFixed?: boolean;
}

export interface ReportInput {
  /** Heading and <title>. Default "mxprobe report". */
  title?: string;
  /** A line under the title: what produced the report (command, files). */
  subtitle?: string;
  results: readonly ProbeResult[];
  cells: readonly CellStats[];
  findings: readonly Finding[];
  /** The comparator's verdict (or verify's summary), shown on top in large type. */
  verdict: string;
  /** How the verdict reads: default from the findings (a stall finding → `bad`, other failures → `warn`). */
  tone?: 'good' | 'warn' | 'bad';
  verify?: ReportVerify;
  /** When the report was made (ISO 8601); shown in the footer. Omitted: not shown (the function is pure). */
  generatedAt?: string;
  /** Time-sequence graphs of the probes with a packet capture (read by `loadCaptureGraphs`). */
  captures?: readonly CaptureGraph[];
}

const require = createRequire(import.meta.url);
let VERSION = '';
try {
  VERSION = (require('../../package.json') as { version: string }).version;
} catch {
  VERSION = '';
}

const STAGE_COLORS: Record<Stage, string> = {
  dns: '#8da0cb',
  connect: '#66c2a5',
  tls: '#a6d854',
  greeting: '#e5c494',
  ehlo: '#b3b3b3',
  starttls: '#a6cee3',
  auth: '#cab2d6',
  mail: '#80b1d3',
  rcpt: '#bebada',
  data: '#fdb462',
  body: '#1f78b4',
  dataAck: '#6a3d9a',
  quit: '#d9d9d9',
};

const PATH_COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22'];

const VERIFY_TONE: Record<CellVerdict, string> = {
  fixed: 'good',
  'still-failing': 'bad',
  regressed: 'bad',
  unchanged: 'neutral',
  inconclusive: 'warn',
  'not-probed': 'muted',
  new: 'muted',
};

// ---------------------------------------------------------------------------------------------- sections

function renderFindings(findings: readonly Finding[]): string {
  if (findings.length === 0) return '<p class="empty">No findings.</p>';
  const items = findings.map((f) => {
    const where = [f.path ? `path ${f.path}` : '', f.target ? `target ${f.target}` : '', f.sizeBytes !== undefined ? `size ${formatSize(f.sizeBytes)}` : '']
      .filter(Boolean)
      .join(' · ');
    const p = f.pValue !== undefined ? `<span class="pval">${esc(formatP(f.pValue))}</span>` : '';
    return (
      `<li class="finding ${f.stall ? 'stall' : 'nostall'}" data-kind="${esc(f.kind)}">` +
      `<div class="f-head"><span class="badge ${f.stall ? 'bad' : 'neutral'}">${esc(f.kind)}</span>` +
      `${where ? `<span class="f-where">${esc(where)}</span>` : ''}${p}</div>` +
      `<p class="f-statement">${esc(f.statement)}</p>` +
      `<details><summary>evidence</summary><pre>${esc(JSON.stringify(f.evidence, null, 2))}</pre></details></li>`
    );
  });
  return `<ol class="findings">${items.join('\n')}</ol>`;
}

interface WfSeg {
  stage: Stage;
  start: number;
  ms: number;
  title: string;
  failed?: boolean;
}

function waterfallRow(c: CellStats, rs: readonly ProbeResult[]): { segs: WfSeg[]; fail?: WfSeg; end: number; note: string } {
  const segs: WfSeg[] = [];
  const startOf = new Map<Stage, number>();
  let t = 0;
  for (const st of STAGES) {
    startOf.set(st, t);
    const s = c.stages[st];
    if (!s) continue;
    segs.push({ stage: st, start: t, ms: s.p50, title: `${st}: median ${formatMs(s.p50)}, p95 ${formatMs(s.p95)}, n=${s.n}` });
    t += s.p50;
  }
  let end = t;
  // how the failed probes ended: the dominant (outcome, stage), with the median partial time of that stage
  const groups = new Map<string, { outcome: string; stage: Stage; times: number[] }>();
  for (const r of rs) {
    if (r.outcome === 'delivered' || !r.stage) continue;
    const v = r.stages?.[r.stage];
    const k = `${r.outcome}|${r.stage}`;
    let gr = groups.get(k);
    if (!gr) groups.set(k, (gr = { outcome: r.outcome, stage: r.stage, times: [] }));
    if (typeof v === 'number' && Number.isFinite(v)) gr.times.push(v);
  }
  let fail: WfSeg | undefined;
  let best: { outcome: string; stage: Stage; times: number[] } | undefined;
  for (const gr of groups.values()) if (!best || gr.times.length > best.times.length) best = gr;
  const failedN = c.total - c.delivered;
  if (best) {
    const m = median(best.times) ?? 0;
    const start = startOf.get(best.stage) ?? 0;
    fail = {
      stage: best.stage,
      start,
      ms: m,
      failed: true,
      title: `${best.times.length} ${best.outcome} in ${best.stage} after a median ${formatMs(m)} in that stage (started at ${formatMs(start)} by the medians before it)`,
    };
    end = Math.max(end, start + m);
  }
  let note: string;
  if (failedN === 0) note = c.medianTotalMs !== undefined ? `${formatMs(c.medianTotalMs)} total` : '';
  else if (c.delivered === 0) note = best ? `${best.outcome} @ ${best.stage} after ${formatMs(fail!.ms)}` : failureText(c);
  else note = `${c.delivered}/${c.total} delivered${best ? `; ${best.times.length} ${best.outcome} @ ${best.stage}` : ''}`;
  return { segs, fail, end, note };
}

function renderWaterfall(cells: readonly CellStats[], results: readonly ProbeResult[], rules: RuleSet): string {
  if (cells.length === 0) return '<p class="empty">No probes.</p>';
  const byCell = probesByCell(results);
  const multiTarget = uniq(cells.map((c) => c.target)).length > 1;
  const rows = cells.map((c) => ({ c, ...waterfallRow(c, byCell.get(gkey(c.target, c.path, c.sizeBytes)) ?? []) }));
  // The shared scale fits the stages of the probes that completed them; a failed probe's partial time (a 10 s
  // stall next to 100 ms transactions) would flatten everything else, so it is cut at the edge and labelled.
  const stageEnd = (r: (typeof rows)[number]): number => r.segs.reduce((m, s) => Math.max(m, s.start + s.ms), 0);
  let max = Math.max(0, ...rows.map(stageEnd));
  if (!(max > 0)) max = Math.max(1e-6, ...rows.map((r) => r.end));
  const ticks = niceTicks(max);
  const axisMax = ticks[ticks.length - 1]! || max;
  const pct = (v: number, of: number): string => `${r1((finite(v) / of) * 100 * 10) / 10}%`;
  const stagesUsed = STAGES.filter((st) => cells.some((c) => c.stages[st]));
  const anyFail = rows.some((r) => r.fail);
  const seg = (s: WfSeg, rowMax: number): string => {
    const start = Math.min(s.start, axisMax);
    const w = Math.min(s.ms, axisMax - start);
    const clipped = s.start + s.ms > axisMax * 1.0001;
    const decl =
      `--l:${pct(start, axisMax)};--w:${pct(w, axisMax)};--lr:${pct(s.start, rowMax)};--wr:${pct(s.ms, rowMax)}` +
      (s.failed ? '' : `;background:${STAGE_COLORS[s.stage]}`);
    const cls = `seg${s.failed ? ' fail' : ''}${clipped ? ' clipped' : ''} ${rules.cls(decl)}`;
    return `<div class="${cls}" title="${esc(s.title)}"></div>`;
  };
  const body = rows
    .map((r) => {
      const rowMax = Math.max(1e-6, r.end);
      const label = `${r.c.path} · ${formatSize(r.c.sizeBytes)}${multiTarget ? ` → ${r.c.target}` : ''}`;
      return (
        `<div class="wf-row" data-wf-cell="${esc(`${r.c.path}|${r.c.target}|${r.c.sizeBytes}`)}">` +
        `<div class="wf-label" title="${esc(label)}">${esc(label)}</div>` +
        `<div class="wf-track"><div class="lane">${r.segs.map((s) => seg(s, rowMax)).join('')}</div>` +
        (r.fail ? `<div class="lane lane-fail">${seg(r.fail, rowMax)}</div>` : '') +
        `</div><div class="wf-note">${esc(r.note)}</div></div>`
      );
    })
    .join('\n');
  const axis = ticks.map((v) => `<span class="${rules.cls(`left:${pct(v, axisMax)}`)}">${esc(v === 0 ? '0' : formatMs(v))}</span>`).join('');
  const legend =
    stagesUsed.map((st) => `<span class="lg"><i class="${rules.cls(`background:${STAGE_COLORS[st]}`)}"></i>${esc(st)}</span>`).join('') +
    (anyFail ? '<span class="lg"><i class="fail"></i>stage a failed probe ended in (median partial time)</span>' : '');
  return `
<div class="wf-controls">
  <label><input type="radio" name="wfscale" value="shared" checked> one time scale for all rows (compare cells)</label>
  <label><input type="radio" name="wfscale" value="row"> each row to its own length (see every stage)</label>
</div>
<div class="wf-legend">${legend}</div>
<div class="waterfall" id="waterfall">
<div class="wf-row wf-axis"><div class="wf-label"></div><div class="wf-track axis">${axis}</div><div class="wf-note"></div></div>
${body}
</div>
<p class="note">Bars are the median time of each stage over the probes that completed it, laid end to end (medians do
not add up exactly to the median total). A hatched bar below shows where failed probes ended, and how long they spent in
that stage before giving up; on the shared scale it is cut at the right edge (▸) when it is longer than every completed
transaction — the time is on the right and in the hover text.</p>`;
}

interface OffsetPoint {
  path: string;
  target: string;
  sizeBytes: number;
  offset: number;
  source: 'sink' | 'bytesAcked' | 'bytesWritten';
  probeId: string;
  stage?: Stage;
}

/** Where each stalled probe stopped: the sink's count, else the kernel's acked bytes, else bytes written. */
export function stallPoints(results: readonly ProbeResult[]): OffsetPoint[] {
  const pts: OffsetPoint[] = [];
  for (const r of results) {
    if (r.outcome !== 'stalled') continue;
    let offset: number | undefined;
    let source: OffsetPoint['source'] | undefined;
    const sink = sinkBodyBytes(r);
    const acked = ackedBodyOffset(r);
    if (sink !== undefined) [offset, source] = [sink, 'sink'];
    else if (acked && acked[1] === 'body') [offset, source] = [acked[0], 'bytesAcked'];
    else if (typeof r.bodyBytesWritten === 'number') [offset, source] = [r.bodyBytesWritten, 'bytesWritten'];
    if (offset === undefined || source === undefined) continue;
    const p: OffsetPoint = { path: r.path, target: r.target, sizeBytes: r.sizeBytes, offset, source, probeId: r.probeId };
    if (r.stage) p.stage = r.stage;
    pts.push(p);
  }
  return pts;
}

function renderScatter(results: readonly ProbeResult[], paths: readonly string[], sizes: readonly number[]): string {
  const pts = stallPoints(results);
  if (pts.length === 0) {
    const stalled = results.filter((r) => r.outcome === 'stalled').length;
    return `<p class="empty">${stalled ? `${plural(stalled, 'stalled probe')}, none with a byte count to plot.` : 'No probe stalled: nothing to plot.'}</p>`;
  }
  const W = 820;
  const H = 392;
  const m = { l: 78, r: 150, t: 16, b: 60 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const xs = sizes.length ? sizes : uniq(pts.map((p) => p.sizeBytes)).sort((a, b) => a - b);
  const lo = Math.max(1, Math.min(...xs, ...pts.map((p) => p.sizeBytes)));
  const hi = Math.max(...xs, ...pts.map((p) => p.sizeBytes), lo * 2);
  const xmin = Math.log2(lo) - 0.5;
  const xmax = Math.log2(hi) + 0.5;
  const X = (b: number): number => m.l + ((Math.log2(Math.max(1, b)) - xmin) / (xmax - xmin)) * pw;
  const nonzero = pts.map((p) => p.offset).filter((v) => v > 0);
  const ylo = Math.max(1, Math.min(hi, ...nonzero) / 2);
  const ymin = Math.log2(ylo);
  const ymax = Math.log2(hi) + 0.5;
  const Y = (b: number): number => (b <= 0 ? m.t + ph : m.t + ph - ((Math.log2(Math.max(ylo, b)) - ymin) / (ymax - ymin)) * ph);
  const parts: string[] = [];
  parts.push(`<svg class="scatter" viewBox="0 0 ${W} ${H}" role="img" aria-label="stall offset against message size">`);
  // grid and ticks: sizes close together on the log scale (48KiB, 64KiB) get their labels on a second row, never dropped
  const rows = labelRows(xs.map(X), xs.map((s) => formatSize(s).length * 6.5));
  xs.forEach((s, i) => {
    parts.push(`<line class="grid" x1="${r1(X(s))}" x2="${r1(X(s))}" y1="${m.t}" y2="${m.t + ph}"/>`);
    parts.push(`<text class="tick" x="${r1(X(s))}" y="${m.t + ph + 16 + rows[i]! * 12}" text-anchor="middle">${esc(formatSize(s))}</text>`);
  });
  // every power of two over a narrow range, every other one (1KiB, 4KiB, 16KiB, …) over a wide one
  const ystep = ymax - ymin < 7 ? 1 : 2;
  for (let e = Math.ceil(ymin / ystep) * ystep; e <= ymax; e += ystep) {
    const v = 2 ** e;
    parts.push(`<line class="grid" x1="${m.l}" x2="${m.l + pw}" y1="${r1(Y(v))}" y2="${r1(Y(v))}"/>`);
    parts.push(`<text class="tick" x="${m.l - 8}" y="${r1(Y(v)) + 4}" text-anchor="end">${esc(formatSize(v))}</text>`);
  }
  if (pts.some((p) => p.offset <= 0)) parts.push(`<text class="tick" x="${m.l - 8}" y="${m.t + ph + 4}" text-anchor="end">0</text>`);
  parts.push(`<rect class="frame" x="${m.l}" y="${m.t}" width="${pw}" height="${ph}"/>`);
  // the diagonal: the whole message got through
  const d0 = Math.max(lo / 2, ylo);
  parts.push(`<line class="diag" x1="${r1(X(d0))}" y1="${r1(Y(d0))}" x2="${r1(X(hi * 1.4))}" y2="${r1(Y(hi * 1.4))}"/>`);
  parts.push(`<text class="diag-label" x="${r1(X(hi) - 6)}" y="${r1(Y(hi) - 8)}" text-anchor="end">whole message</text>`);
  parts.push(`<text class="axis-label" x="${m.l + pw / 2}" y="${H - 8}" text-anchor="middle">message size</text>`);
  parts.push(`<text class="axis-label" transform="translate(16 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle">bytes of the message that got through</text>`);
  // points, jittered per path so they do not hide each other
  const np = Math.max(1, paths.length);
  const seen = new Map<string, number>();
  for (const p of pts) {
    const pi = Math.max(0, paths.indexOf(p.path));
    const color = PATH_COLORS[pi % PATH_COLORS.length]!;
    const k = `${p.path}|${p.sizeBytes}|${Math.round(Math.log2(Math.max(1, p.offset)) * 8)}`;
    const n = seen.get(k) ?? 0;
    seen.set(k, n + 1);
    const jx = (pi - (np - 1) / 2) * 9 + ((n % 5) - 2) * 2;
    const cx = r1(X(p.sizeBytes) + jx);
    const cy = r1(Y(p.offset) - Math.floor(n / 5) * 2);
    const filled = p.source !== 'bytesWritten';
    const which = p.source === 'sink' ? 'received by the sink' : p.source === 'bytesAcked' ? 'acknowledged by the peer (kernel)' : 'written to the socket (overstates)';
    const title = `${p.path} → ${p.target}, ${formatSize(p.sizeBytes)} message: stalled${p.stage ? ` in ${p.stage}` : ''} at ${bytesText(p.offset)} ${which}\nprobe ${p.probeId}`;
    parts.push(
      `<circle class="pt" data-point="${esc(p.path)}" cx="${cx}" cy="${cy}" r="5" stroke="${color}" fill="${filled ? color : 'white'}"><title>${esc(title)}</title></circle>`,
    );
  }
  // legend
  let ly = m.t + 8;
  const lx = m.l + pw + 18;
  for (const [i, path] of paths.entries()) {
    if (!pts.some((p) => p.path === path)) continue;
    const color = PATH_COLORS[i % PATH_COLORS.length]!;
    parts.push(`<circle cx="${lx}" cy="${ly}" r="5" stroke="${color}" fill="${color}"/><text class="lg-text" x="${lx + 12}" y="${ly + 4}">${esc(path)}</text>`);
    ly += 20;
  }
  ly += 8;
  parts.push(`<circle cx="${lx}" cy="${ly}" r="5" class="lg-dot"/><text class="lg-text" x="${lx + 12}" y="${ly + 4}">acked / received</text>`);
  ly += 20;
  parts.push(`<circle cx="${lx}" cy="${ly}" r="5" class="lg-dot hollow"/><text class="lg-text" x="${lx + 12}" y="${ly + 4}">only written</text>`);
  parts.push('</svg>');
  const sources = uniq(pts.map((p) => p.source));
  return `${parts.join('\n')}
<p class="note">One dot per stalled probe (${plural(pts.length, 'probe')}). Dots on a horizontal line at the same height for
every size mean something stops passing data after a fixed number of bytes; dots on the diagonal mean the whole message
was sent but no final reply came. Counts: ${esc(
    sources.map((s) => (s === 'sink' ? 'bytes the receiving sink saw' : s === 'bytesAcked' ? "the kernel's bytes_acked" : 'bytes written to the socket (the send buffer holds more than the network moved)')).join('; '),
  )}.</p>`;
}

const RAW_STAGES = STAGES;

function renderRaw(results: readonly ProbeResult[]): string {
  if (results.length === 0) return '<p class="empty">No probes.</p>';
  const stages = RAW_STAGES.filter((st) => results.some((r) => typeof r.stages?.[st] === 'number'));
  const withArrival = results.some((r) => r.arrival);
  const head =
    '<tr><th data-sort="n">#</th><th>started</th><th>path</th><th>target</th><th data-sort="n">size</th><th>outcome</th><th>stage</th>' +
    `<th data-sort="n">total</th>${stages.map((s) => `<th data-sort="n">${esc(s)}</th>`).join('')}` +
    `<th data-sort="n">body written</th><th data-sort="n">acked</th><th data-sort="n">retrans</th><th>reply</th><th>error</th>${withArrival ? '<th>arrival</th>' : ''}<th>probe id</th></tr>`;
  const rows = results.map((r, i) => {
    const tds: string[] = [];
    const num = (v: unknown, text: string): string => `<td class="num"${numAttr(v) === '' ? '' : ` data-v="${numAttr(v)}"`}>${esc(text)}</td>`;
    tds.push(num(i + 1, String(i + 1)));
    tds.push(`<td class="nowrap">${esc(r.startedAt?.replace('T', ' ').replace(/\.\d+Z$/, 'Z') ?? '')}</td>`);
    tds.push(`<td>${esc(r.path)}</td><td>${esc(r.target)}</td>`);
    tds.push(num(r.sizeBytes, formatSize(finite(r.sizeBytes))));
    tds.push(`<td class="oc oc-${esc(r.outcome)}">${esc(r.outcome)}</td><td>${esc(r.stage ?? '')}</td>`);
    tds.push(num(r.durationMs, Number.isFinite(r.durationMs) ? formatMs(r.durationMs) : ''));
    for (const st of stages) {
      const v = r.stages?.[st];
      const partial = r.outcome !== 'delivered' && r.stage === st;
      tds.push(typeof v === 'number' && Number.isFinite(v) ? `<td class="num${partial ? ' partial' : ''}" data-v="${numAttr(v)}"${partial ? ' title="partial: the probe ended in this stage"' : ''}>${esc(formatMs(v))}</td>` : '<td></td>');
    }
    const acked = ackedBodyOffset(r);
    tds.push(num(r.bodyBytesWritten, r.bodyBytesWritten !== undefined ? group(r.bodyBytesWritten) : ''));
    tds.push(num(acked?.[0], acked ? `${group(acked[0])}${acked[1] === 'connection' ? ' (conn)' : ''}` : ''));
    tds.push(num(r.tcp?.retransTotal, r.tcp?.retransTotal !== undefined ? String(r.tcp.retransTotal) : ''));
    tds.push(`<td>${esc(r.reply ? `${r.reply.code}${r.reply.enhanced ? ` ${r.reply.enhanced}` : ''} ${r.reply.text}`.trim() : '')}</td>`);
    tds.push(`<td>${esc(r.error ? `${r.error.code}: ${r.error.message}` : '')}</td>`);
    if (withArrival) tds.push(`<td>${esc(r.arrival ? describeArrival(r.arrival) : '')}</td>`);
    tds.push(`<td class="mono">${esc(r.probeId)}${transcriptDetails(r)}</td>`);
    return (
      `<tr data-path="${esc(r.path)}" data-target="${esc(r.target)}" data-size="${numAttr(r.sizeBytes)}" data-size-label="${esc(formatSize(finite(r.sizeBytes)))}" data-outcome="${esc(r.outcome)}">` +
      `${tds.join('')}</tr>`
    );
  });
  return `
<div class="raw-controls">
  <input type="search" id="raw-filter" placeholder="filter: words, or path=via-lb size=64KiB outcome=stalled" aria-label="filter probes" size="48">
  <span id="raw-count">${plural(results.length, 'probe')}</span>
  <button type="button" id="download-jsonl">download results (.jsonl)</button>
</div>
<div class="raw-wrap"><table class="raw" id="raw-table"><thead>${head}</thead><tbody>
${rows.join('\n')}
</tbody></table></div>
<p class="note">Stage times in <i>italics</i> are partial: the probe ended in that stage. "acked" is the message bytes the
peer acknowledged (the kernel's bytes_acked minus the commands before the body); "(conn)" when only the connection-wide
count is known. Click a column heading to sort.</p>`;
}

function renderVerify(v: ReportVerify): string {
  const res = v.result;
  const { targets, sizes, cols, byKey } = gridOf(res.cells);
  const multiTarget = targets.length > 1;
  const side = (s: CellComparison['before']): string => (s ? `${s.failed}/${s.total}` : '–');
  const rows = sizes.map((s) => {
    const tds = cols.map((col) => {
      const c = byKey.get(gkey(col.target, col.path, s));
      if (!c) return '<td class="hm-empty">–</td>';
      const title = [c.test, c.note ?? '', c.probesPerCellNeeded ? `about ${c.probesPerCellNeeded} probes per cell would decide` : '']
        .filter(Boolean)
        .join('\n');
      return (
        `<td class="vf vf-${VERIFY_TONE[c.status]}" data-verify-cell="${esc(`${c.path}|${c.target}|${c.sizeBytes}`)}" data-status="${esc(c.status)}" title="${esc(title)}">` +
        `<div class="hm-main">${esc(c.status)}</div><div class="hm-sub">failed ${side(c.before)} → ${side(c.after)}${c.pValue !== undefined ? `, ${esc(formatP(c.pValue))}` : ''}</div></td>`
      );
    });
    return `<tr><th scope="row" class="size">${esc(formatSize(s))}</th>${tds.join('')}</tr>`;
  });
  const head =
    (multiTarget ? `<tr><th class="corner"></th>${cols.map((c) => `<th class="tgt">→ ${esc(c.target)}</th>`).join('')}</tr>` : '') +
    `<tr><th class="corner">size \\ path</th>${cols.map((c) => `<th>${esc(c.path)}</th>`).join('')}</tr>`;
  const counts = Object.entries(res.counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${n} ${k}`)
    .join(', ');
  const th = v.thresholds?.length
    ? `<h3>Thresholds on the new run</h3><ul class="thresholds">${v.thresholds
        .map(
          (t) =>
            `<li class="${t.ok ? 'ok' : 'failed'}"><span class="badge ${t.ok ? 'good' : 'bad'}">${t.ok ? 'pass' : 'FAIL'}</span> ${esc(t.message)}</li>`,
        )
        .join('')}</ul>`
    : '';
  const from = v.baseline ? `<p class="muted">baseline ${esc(v.baseline)}${v.baselineProbes !== undefined ? ` (${plural(v.baselineProbes, 'probe')})` : ''} → new run ${esc(v.after ?? '')}</p>` : '';
  return `${from}
<p>Per cell: failed probes (not delivered) before → after, ${esc(res.test)}, ${esc(res.correction)}-corrected over ${plural(res.hypotheses, 'cell')} compared (the p shown is adjusted). ${esc(counts)}.</p>
<div class="hm-wrap"><table class="heatmap verify"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table></div>
${th}`;
}

function metaLine(results: readonly ProbeResult[], cells: readonly CellStats[]): string {
  const paths = uniq(cells.map((c) => c.path));
  const targets = uniq(cells.map((c) => c.target));
  const sizes = uniq(cells.map((c) => c.sizeBytes)).sort((a, b) => a - b);
  const runs = uniq(results.map((r) => r.runId).filter((x): x is string => !!x));
  const times = results.map((r) => Date.parse(r.startedAt)).filter((t) => Number.isFinite(t));
  const bits = [
    plural(results.length, 'probe'),
    `${plural(paths.length, 'path')} (${paths.join(', ')})`,
    `${plural(targets.length, 'target')} (${targets.join(', ')})`,
    `${plural(sizes.length, 'size')} (${sizes.map((s) => formatSize(s)).join(', ')})`,
  ];
  if (runs.length === 1) bits.push(`run ${runs[0]}`);
  else if (runs.length > 1) bits.push(plural(runs.length, 'run'));
  if (times.length) {
    const a = new Date(Math.min(...times)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    const b = new Date(Math.max(...times)).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
    bits.push(a === b ? a : `${a} – ${b.slice(0, 10) === a.slice(0, 10) ? b.slice(11) : b}`);
  }
  return bits.map(esc).join(' · ');
}

function defaultTone(input: ReportInput): 'good' | 'warn' | 'bad' {
  if (input.verify) {
    const r = input.verify.result;
    if (r.regressed > 0 || input.verify.thresholds?.some((t) => !t.ok)) return 'bad';
    if (r.baselineFailing > r.fixed) return 'warn';
    return 'good';
  }
  if (input.findings.some((f) => f.stall)) return 'bad';
  if (input.cells.some((c) => c.delivered < c.total)) return 'warn';
  return 'good';
}

// ----------------------------------------------------------------------------------------------- document

/** Render the whole report: one HTML document, no external resources. */
export function renderReport(input: ReportInput): string {
  const title = input.title ?? 'mxprobe report';
  const tone = input.tone ?? defaultTone(input);
  const paths = uniq(input.cells.map((c) => c.path));
  const sizes = uniq(input.cells.map((c) => c.sizeBytes)).sort((a, b) => a - b);
  const stallFindings = input.findings.filter((f) => f.stall).length;
  const data = {
    generator: `mxprobe ${VERSION}`.trim(),
    generatedAt: input.generatedAt,
    title,
    verdict: input.verdict,
    findings: input.findings,
    cells: input.cells,
    verify: input.verify,
    results: input.results,
  };
  const toneWord = tone === 'bad' ? 'problem found' : tone === 'warn' ? 'look closer' : 'clean';
  const rules = new RuleSet();
  const sections = {
    heatmap: renderHeatmap(input.cells, input.results, rules),
    stages: renderWaterfall(input.cells, input.results, rules),
    arrival: renderArrival(input.results),
  };
  const css = `${CSS}\n${heatmapCss()}\n${ARRIVAL_CSS}\n${input.captures?.length ? `${TSG_CSS}\n` : ''}${rules.css()}\n`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src '${sha256(css)}'; script-src '${sha256(JS)}'; img-src data:">
<meta name="generator" content="${esc(data.generator)}">
<title>${esc(title)}</title>
<style>${css}</style>
</head>
<body>
<header class="top">
  <h1>${esc(title)}</h1>
  ${input.subtitle ? `<p class="sub">${esc(input.subtitle)}</p>` : ''}
  <p class="meta">${metaLine(input.results, input.cells)}</p>
</header>
<main>
<section id="verdict" class="verdict ${tone}" aria-label="verdict">
  <div class="verdict-label">${input.verify ? 'Verify' : 'Verdict'} · ${esc(toneWord)}${stallFindings ? ` · ${plural(stallFindings, 'stall finding')}` : ''}</div>
  <p class="verdict-text">${esc(input.verdict)}</p>
</section>
${input.verify ? `<section id="verify"><h2>Before → after, per cell</h2>${renderVerify(input.verify)}</section>` : ''}
<section id="heatmap">
  <h2>Delivered by size and path${input.verify ? ' (new run)' : ''}</h2>
  ${sections.heatmap}
</section>
${sections.arrival ? `<section id="arrival">\n  <h2>Did it arrive: accepted probes found in the mailbox (IMAP)</h2>\n  ${sections.arrival}\n</section>` : ''}
<section id="findings">
  <h2>Findings (${input.findings.length})</h2>
  ${renderFindings(input.findings)}
</section>
<section id="stages">
  <h2>Where the time goes: median time of each stage, per cell</h2>
  ${sections.stages}
</section>
<section id="offsets">
  <h2>Where stalled transfers stop</h2>
  ${renderScatter(input.results, paths, sizes)}
</section>
<section id="timeline">
  <h2>Over time: every probe at its start, per path</h2>
  ${renderTimeline(input.results)}
</section>
${input.captures?.length ? `<section id="captures">
  <h2>Captured connections: sequence and ACKs against time (${input.captures.length})</h2>
  ${renderCaptureGraphs(input.captures, formatSize)}
</section>` : ''}
<section id="raw">
  <h2>All probes (${input.results.length})</h2>
  ${renderRaw(input.results)}
</section>
</main>
<footer>${esc(data.generator)}${input.generatedAt ? ` · ${esc(input.generatedAt)}` : ''} · self-contained: this file loads nothing from the network; the data is embedded (download it above).</footer>
<script type="application/json" id="mxprobe-data">${jsonForScript(data)}</script>
<script>${JS}</script>
</body>
</html>
`;
}

// ------------------------------------------------------------------------------------------------ CSS, JS

/** A CSP source for an inline element's exact content. */
function sha256(text: string): string {
  return `sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}`;
}

const CSS = `
:root { --fg:#1d2330; --muted:#5c6575; --line:#d8dde6; --bg:#ffffff; --soft:#f5f7fa; --good:#1a7f37; --warn:#b26b00; --bad:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color:var(--fg); background:var(--bg); }
header.top { padding:18px 28px 10px; border-bottom:1px solid var(--line); background:var(--soft); }
h1 { margin:0 0 4px; font-size:20px; }
h2 { font-size:17px; margin:0 0 12px; }
h3 { font-size:15px; margin:18px 0 8px; }
.sub { margin:0; color:var(--muted); }
.meta { margin:4px 0 0; color:var(--muted); font-size:13px; }
main { padding:8px 28px 28px; max-width:1400px; }
section { margin:22px 0 30px; }
.verdict { border-left:8px solid var(--good); background:#eef8f0; padding:14px 20px 16px; border-radius:6px; }
.verdict.warn { border-color:var(--warn); background:#fff6e5; }
.verdict.bad { border-color:var(--bad); background:#fdeeee; }
.verdict-label { text-transform:uppercase; letter-spacing:.06em; font-size:12px; font-weight:700; color:var(--muted); }
.verdict-text { font-size:22px; line-height:1.4; margin:6px 0 0; font-weight:500; max-width:75em; }
.empty, .muted, .note { color:var(--muted); }
.note { font-size:12.5px; max-width:80em; }
.hm-wrap { display:flex; flex-wrap:wrap; gap:24px; align-items:flex-start; }
table.heatmap { border-collapse:separate; border-spacing:3px; }
table.heatmap th { font-weight:600; padding:4px 8px; text-align:center; white-space:nowrap; }
table.heatmap th.size { text-align:right; font-variant-numeric:tabular-nums; }
table.heatmap th.corner { color:var(--muted); font-weight:400; font-size:12px; }
table.heatmap th.tgt { border-bottom:2px solid var(--line); color:var(--muted); }
td.hm, td.vf { min-width:118px; padding:7px 10px; border-radius:5px; text-align:center; cursor:pointer; border:2px solid transparent; }
td.hm:hover, td.hm:focus, td.hm.selected { outline:3px solid #1d2330; outline-offset:1px; }
td.hm-empty { color:var(--muted); text-align:center; }
.hm-main { font-size:18px; font-weight:700; font-variant-numeric:tabular-nums; }
.hm-sub { font-size:12px; opacity:.9; white-space:nowrap; }
td.vf { cursor:default; }
td.vf-good { background:#d7f0dc; } td.vf-bad { background:#f6c9c4; } td.vf-warn { background:#ffe7b3; }
td.vf-neutral { background:#eceff3; } td.vf-muted { background:#fff; border:2px dashed var(--line); }
.legend { width:360px; }
.hm-view { display:flex; gap:16px; font-size:13px; margin-bottom:6px; }
.legend-what { display:flex; flex-direction:column; gap:3px; font-size:12.5px; margin-bottom:6px; }
#timeline .legend-what { flex-direction:row; flex-wrap:wrap; gap:4px 14px; }
.lg-item .sw { display:inline-block; width:14px; height:12px; border-radius:2px; margin-right:6px; vertical-align:-2px; border:1px solid #0002; }
.legend-bar { height:14px; border-radius:3px; border:1px solid var(--line); }
.legend-ticks { display:flex; justify-content:space-between; font-size:11.5px; color:var(--muted); }
.legend-note { font-size:12.5px; color:var(--muted); }
ol.findings { padding-left:22px; margin:0; }
li.finding { margin:0 0 12px; }
.f-head { display:flex; gap:10px; align-items:center; flex-wrap:wrap; }
.f-where { color:var(--muted); font-size:12.5px; }
.pval { font-size:12.5px; font-variant-numeric:tabular-nums; }
.f-statement { margin:3px 0 2px; max-width:80em; }
details summary { cursor:pointer; color:var(--muted); font-size:12.5px; }
details pre { background:var(--soft); padding:8px 10px; border-radius:4px; overflow:auto; max-height:320px; font-size:12px; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; font-weight:600; background:#e6e9ef; }
.badge.bad { background:#f6c9c4; color:#7a1010; } .badge.good { background:#d7f0dc; color:#0e5a25; } .badge.neutral { background:#e6e9ef; }
.wf-controls { display:flex; gap:18px; flex-wrap:wrap; font-size:13px; margin-bottom:6px; }
.wf-legend { display:flex; gap:12px; flex-wrap:wrap; font-size:12px; color:var(--muted); margin-bottom:8px; }
.wf-legend .lg i { display:inline-block; width:12px; height:12px; border-radius:2px; margin-right:4px; vertical-align:-2px; }
.waterfall { display:flex; flex-direction:column; gap:3px; }
.wf-row { display:grid; grid-template-columns:minmax(140px, 220px) 1fr minmax(120px, 230px); gap:10px; align-items:center; padding:1px 0; }
.wf-row.selected { background:#fff3c4; }
.wf-label { text-align:right; white-space:nowrap; overflow:hidden; text-overflow:ellipsis; font-size:12.5px; }
.wf-note { font-size:12px; color:var(--muted); white-space:nowrap; overflow:hidden; text-overflow:ellipsis; }
.wf-track { position:relative; background:var(--soft); border-radius:3px; min-height:16px; }
.wf-track.axis { background:none; height:16px; border-bottom:1px solid var(--line); }
.wf-track.axis span { position:absolute; transform:translateX(-50%); font-size:11px; color:var(--muted); top:0; }
.wf-track.axis span:first-child { transform:none; }
.lane { position:relative; height:14px; }
.lane-fail { height:9px; margin-top:1px; }
.seg { position:absolute; top:0; bottom:0; left:var(--l); width:var(--w); min-width:1px; }
.waterfall.per-row .seg { left:var(--lr); width:var(--wr); }
.waterfall.per-row .wf-axis { visibility:hidden; }
.seg.clipped::after { content:'▸'; position:absolute; right:-9px; top:-4px; font-size:12px; color:#b42318; }
.waterfall.per-row .seg.clipped::after { content:none; }
.seg.fail, .wf-legend i.fail { background:repeating-linear-gradient(135deg, #b42318 0 4px, #f3b7b0 4px 8px); }
svg.scatter, svg.timeline { width:100%; max-width:900px; height:auto; font-family:inherit; }
svg.timeline .grid { stroke:#eceff3; stroke-width:1; }
svg.timeline .tick { font-size:11px; fill:var(--muted); }
svg.timeline .tl-pt { stroke:#fff; stroke-width:.8; }
svg.scatter .grid { stroke:#eceff3; stroke-width:1; }
svg.scatter .frame { fill:none; stroke:var(--line); }
svg.scatter .tick { font-size:11px; fill:var(--muted); }
svg.scatter .axis-label { font-size:12px; fill:var(--fg); }
svg.scatter .diag { stroke:#9aa3b2; stroke-dasharray:5 4; }
svg.scatter .diag-label { font-size:11px; fill:var(--muted); }
svg.scatter .pt { stroke-width:2; fill-opacity:.8; }
svg.scatter .lg-text { font-size:12px; fill:var(--fg); }
svg.scatter .lg-dot { fill:#5c6575; stroke:#5c6575; stroke-width:2; } svg.scatter .lg-dot.hollow { fill:#fff; }
.raw-controls { display:flex; gap:12px; align-items:center; margin-bottom:8px; flex-wrap:wrap; }
.raw-controls input { padding:4px 8px; font:inherit; }
.raw-controls button { font:inherit; padding:3px 10px; cursor:pointer; }
#raw-count { color:var(--muted); font-size:12.5px; }
.raw-wrap { overflow:auto; max-height:70vh; border:1px solid var(--line); border-radius:4px; }
table.raw { border-collapse:collapse; font-size:12px; width:max-content; }
table.raw th { position:sticky; top:0; background:var(--soft); border-bottom:1px solid var(--line); padding:4px 7px; text-align:left; cursor:pointer; white-space:nowrap; }
table.raw td { padding:3px 7px; border-bottom:1px solid #eef0f4; vertical-align:top; max-width:420px; }
table.raw td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.raw td.partial { font-style:italic; color:#8a1c10; }
table.raw td.nowrap { white-space:nowrap; }
table.raw td.mono { font-family:ui-monospace, SFMono-Regular, Menlo, monospace; font-size:11px; }
td.oc-delivered { color:var(--good); } td.oc-stalled, td.oc-reset, td.oc-timeout { color:var(--bad); font-weight:600; } td.oc-rejected { color:var(--warn); font-weight:600; }
ul.thresholds { padding-left:0; list-style:none; }
ul.thresholds li { margin:4px 0; }
footer { padding:14px 28px; color:var(--muted); font-size:12px; border-top:1px solid var(--line); }
@media print { .raw-wrap { max-height:none; overflow:visible; } .wf-controls, .raw-controls { display:none; } }
`;

/** Progressive enhancement only: the report reads fully without it. */
const JS = `
(function () {
  'use strict';
  var $ = function (s, el) { return (el || document).querySelector(s); };
  var $$ = function (s, el) { return Array.prototype.slice.call((el || document).querySelectorAll(s)); };

  // heatmap colours: what happened, or the stall rate
  var hm = $('#hm-wrap');
  $$('input[name="hmview"]').forEach(function (r) {
    r.addEventListener('change', function () { if (hm) hm.classList.toggle('view-rate', r.value === 'rate' && r.checked); });
  });

  // waterfall scale toggle
  var wf = $('#waterfall');
  $$('input[name="wfscale"]').forEach(function (r) {
    r.addEventListener('change', function () { if (wf) wf.classList.toggle('per-row', r.value === 'row' && r.checked); });
  });

  // raw table filter: plain words match anywhere; key=value matches a column exactly (path, target, size, outcome)
  var table = $('#raw-table');
  var input = $('#raw-filter');
  var count = $('#raw-count');
  function applyFilter() {
    if (!table) return;
    var q = (input && input.value || '').trim().toLowerCase();
    var toks = q ? q.split(/\\s+/) : [];
    var shown = 0;
    $$('tbody tr', table).forEach(function (tr) {
      var text = tr.textContent.toLowerCase();
      var ok = toks.every(function (t) {
        var i = t.indexOf('=');
        if (i > 0) {
          var k = t.slice(0, i), v = t.slice(i + 1);
          if (k === 'size') return (tr.getAttribute('data-size-label') || '').toLowerCase() === v || tr.getAttribute('data-size') === v;
          var a = tr.getAttribute('data-' + k);
          if (a !== null) return a.toLowerCase() === v;
        }
        return text.indexOf(t) >= 0;
      });
      tr.style.display = ok ? '' : 'none';
      if (ok) shown++;
    });
    if (count) count.textContent = shown + ' of ' + $$('tbody tr', table).length + ' probes';
  }
  if (input) input.addEventListener('input', applyFilter);

  // heatmap cell → filter the table to its probes and mark its waterfall row
  function selectCell(td) {
    $$('td.hm.selected').forEach(function (x) { x.classList.remove('selected'); });
    $$('.wf-row.selected').forEach(function (x) { x.classList.remove('selected'); });
    td.classList.add('selected');
    var key = td.getAttribute('data-cell');
    $$('.wf-row').forEach(function (row) { if (row.getAttribute('data-wf-cell') === key) row.classList.add('selected'); });
    if (input) {
      var p = td.getAttribute('data-path') || '', t = td.getAttribute('data-target') || '';
      input.value = (/\\s/.test(p) ? p : 'path=' + p) + ' ' + (/\\s/.test(t) ? '' : 'target=' + t) + ' size=' + td.getAttribute('data-size');
      applyFilter();
    }
  }
  $$('td.hm').forEach(function (td) {
    td.addEventListener('click', function () { selectCell(td); });
    td.addEventListener('keydown', function (e) { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); selectCell(td); } });
  });

  // sort the raw table by a column (numbers by their data-v)
  if (table) {
    $$('thead th', table).forEach(function (th, idx) {
      var dir = 1;
      th.addEventListener('click', function () {
        var numeric = th.getAttribute('data-sort') === 'n';
        var body = $('tbody', table);
        var rows = $$('tr', body);
        rows.sort(function (a, b) {
          var x = a.children[idx], y = b.children[idx];
          if (numeric) {
            var xv = parseFloat(x && x.getAttribute('data-v')), yv = parseFloat(y && y.getAttribute('data-v'));
            xv = isNaN(xv) ? -Infinity : xv; yv = isNaN(yv) ? -Infinity : yv;
            return (xv - yv) * dir;
          }
          return (x ? x.textContent : '').localeCompare(y ? y.textContent : '') * dir;
        });
        rows.forEach(function (r) { body.appendChild(r); });
        dir = -dir;
      });
    });
  }

  // the embedded results as a JSONL download (no network: a Blob URL)
  var dl = $('#download-jsonl');
  if (dl) dl.addEventListener('click', function () {
    var el = document.getElementById('mxprobe-data');
    if (!el) return;
    var data = JSON.parse(el.textContent || '{}');
    var lines = (data.results || []).map(function (r) { return JSON.stringify(r); }).join('\\n') + '\\n';
    var a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([lines], { type: 'application/x-ndjson' }));
    a.download = 'mxprobe-results.jsonl';
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
  });
})();
`;

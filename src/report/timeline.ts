/**
 * The time axis: every probe at its start time, one lane per path (per target), coloured by what happened — so
 * drift over a long run (a path that degrades at 03:00, a target that greylists after the first hour) is visible
 * and not mistaken for a difference between paths. SVG with presentation attributes only (no style attributes).
 */
import type { ProbeResult } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import { esc, finite, labelRows, niceTicks, r1, uniq } from './util.js';
import { WHATS, WHAT_COLOR, WHAT_LABEL, whatOf } from './what.js';

interface Placed {
  r: ProbeResult;
  t: number;
  lane: number;
}

/** Milliseconds since the first probe started; probes without a readable start time are left out. */
function placed(results: readonly ProbeResult[], lanes: string[], laneOf: (r: ProbeResult) => string): { pts: Placed[]; t0: number; span: number } {
  const times = results.map((r) => (typeof r.startedAt === 'string' ? Date.parse(r.startedAt) : NaN));
  const ok = times.filter((t) => Number.isFinite(t));
  const t0 = ok.length ? Math.min(...ok) : 0;
  const span = ok.length ? Math.max(...ok) - t0 : 0;
  const pts: Placed[] = [];
  results.forEach((r, i) => {
    if (Number.isFinite(times[i]!)) pts.push({ r, t: times[i]! - t0, lane: lanes.indexOf(laneOf(r)) });
  });
  return { pts, t0, span };
}

export function renderTimeline(results: readonly ProbeResult[]): string {
  const multiTarget = uniq(results.map((r) => r.target)).length > 1;
  const laneOf = (r: ProbeResult): string => (multiTarget ? `${r.path} → ${r.target}` : r.path);
  const lanes = uniq(results.map(laneOf));
  const { pts, t0, span } = placed(results, lanes, laneOf);
  if (!pts.length) return '<p class="empty">No probe has a start time: nothing to plot.</p>';
  const W = 820;
  const m = { l: 150, r: 20, t: 12, b: 40 };
  const laneH = 26;
  const H = m.t + m.b + lanes.length * laneH;
  const pw = W - m.l - m.r;
  const ticks = niceTicks(Math.max(span, 1));
  const max = ticks[ticks.length - 1]! || 1;
  const X = (t: number): number => m.l + (t / max) * pw;
  const parts: string[] = [`<svg class="timeline" viewBox="0 0 ${W} ${H}" role="img" aria-label="probe start time against outcome, per path">`];
  lanes.forEach((name, i) => {
    const y = m.t + i * laneH + laneH / 2;
    parts.push(`<line class="grid" x1="${m.l}" x2="${m.l + pw}" y1="${y}" y2="${y}"/>`);
    parts.push(`<text class="tick" x="${m.l - 8}" y="${y + 4}" text-anchor="end">${esc(name)}</text>`);
  });
  const xs = ticks.map(X);
  const rows = labelRows(xs, ticks.map((v) => (v === 0 ? 1 : formatMs(v).length) * 6.5));
  ticks.forEach((v, i) => {
    const y = m.t + lanes.length * laneH + 16 + rows[i]! * 12;
    parts.push(`<line class="grid" x1="${r1(xs[i]!)}" x2="${r1(xs[i]!)}" y1="${m.t}" y2="${m.t + lanes.length * laneH}"/>`);
    parts.push(`<text class="tick" x="${r1(xs[i]!)}" y="${y}" text-anchor="middle">${esc(v === 0 ? '0' : `+${formatMs(v)}`)}</text>`);
  });
  for (const p of pts) {
    const w = whatOf(p.r);
    const y = m.t + p.lane * laneH + laneH / 2 + ((p.r.sizeBytes % 7) - 3) * 2;
    const title = `${laneOf(p.r)}, ${formatSize(finite(p.r.sizeBytes))}: ${WHAT_LABEL[w]}${p.r.stage && w !== 'delivered' ? ` @${p.r.stage}` : ''} at +${formatMs(p.t)}\nprobe ${p.r.probeId}`;
    parts.push(`<circle class="tl-pt" data-what="${esc(w)}" cx="${r1(X(p.t))}" cy="${r1(y)}" r="4" fill="${WHAT_COLOR[w][0]}"><title>${esc(title)}</title></circle>`);
  }
  parts.push('</svg>');
  const present = WHATS.filter((w) => pts.some((p) => whatOf(p.r) === w));
  const legend = present.map((w) => `<span class="lg-item"><i class="sw w-${w}"></i>${esc(WHAT_LABEL[w])}</span>`).join('');
  const start = new Date(t0).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return `${parts.join('\n')}
<div class="legend-what">${legend}</div>
<p class="note">One dot per probe at the time it started (from ${esc(start)}, over ${esc(formatMs(span))}), one lane per
path; dots are spread a little vertically by size. A colour that appears only in one stretch of time is drift in the
network or at the target, not a difference between paths (the probes of all cells are interleaved).</p>`;
}

/**
 * slow: a path that delivers but takes far longer from the first body byte to the final reply than another path
 * to the same target and size (Mann–Whitney U on the transfer time relative to the reference median), with both
 * rates. Slow is never a stall.
 */
import type { Finding, ProbeResult } from '../../model.js';
import { formatMs, formatSize } from '../../units.js';
import { cellKey } from '../cells.js';
import { score } from '../ranking.js';
import { formatP, mannWhitney, median } from '../stats.js';
import { approxSize, pushTo } from '../text.js';
import type { Context } from './context.js';

/** Time from the first body byte to the final reply: what a slow path costs per message. */
function transferMs(r: ProbeResult): number | undefined {
  const b = r.stages.body;
  const d = r.stages.dataAck;
  return typeof b === 'number' && typeof d === 'number' ? b + d : undefined;
}

interface SlowCell {
  target: string;
  sizeBytes: number;
  ms: number;
  refMs: number;
}

function against(ctx: Context, byCell: Map<string, number[]>, p: string, q: string): Finding | undefined {
  const xs: number[] = [];
  const ys: number[] = [];
  const slowCells: SlowCell[] = [];
  for (const c of ctx.cells) {
    if (c.path !== p) continue;
    const mine = byCell.get(cellKey(c));
    const ref = byCell.get(cellKey({ path: q, target: c.target, sizeBytes: c.sizeBytes }));
    if (!mine?.length || !ref?.length) continue;
    const m = median(ref) || 1e-3;
    for (const v of mine) xs.push(v / m);
    for (const v of ref) ys.push(v / m);
    const mm = median(mine);
    if (mm >= 3 * m && mm - m >= 200) slowCells.push({ target: c.target, sizeBytes: c.sizeBytes, ms: mm, refMs: m });
  }
  if (!slowCells.length) return undefined;
  const { p: pv } = mannWhitney(xs, ys);
  if (pv >= ctx.alpha) return undefined;
  const worst = slowCells.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
  const rate = (ms: number): string => `${approxSize((worst.sizeBytes / ms) * 1000)}/s`;
  const toT = ctx.targets.length > 1 ? ` to ${worst.target}` : '';
  return {
    kind: 'slow',
    stall: false,
    score: score('slow', pv),
    path: p,
    sizeBytes: Math.min(...slowCells.map((c) => c.sizeBytes)),
    statement: `Path ${p} is slow but delivers: at ${formatSize(worst.sizeBytes)}${toT} the message takes ${formatMs(worst.ms)} from first body byte to final reply vs ${formatMs(worst.refMs)} on ${q} (≈${rate(worst.ms)} vs ${rate(worst.refMs)}), ${formatP(pv)} — slow, not stalled.`,
    evidence: { reference: q, cells: slowCells, pValue: pv, test: 'Mann-Whitney U on transfer time relative to the reference median' },
    pValue: pv,
  };
}

export function slow(ctx: Context): Finding[] {
  if (ctx.paths.length < 2) return [];
  const byCell = new Map<string, number[]>();
  for (const r of ctx.results) {
    const ms = r.outcome === 'delivered' ? transferMs(r) : undefined;
    if (ms !== undefined) pushTo(byCell, cellKey(r), ms);
  }
  const out: Finding[] = [];
  for (const p of ctx.paths) {
    const best = ctx.paths
      .filter((q) => q !== p)
      .map((q) => against(ctx, byCell, p, q))
      .filter((f): f is Finding => !!f)
      .sort((a, b) => (a.pValue ?? 1) - (b.pValue ?? 1))[0];
    if (best) out.push(best);
  }
  return out;
}

/** timeout: probes that ran out of a stage's deadline while data still moved — slow, not stalled. */
import type { Finding, ProbeResult } from '../../model.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { approxSize, pushTo, sizeList } from '../text.js';
import type { Context } from './context.js';

function finding(ctx: Context, rs: ProbeResult[]): Finding {
  const r0 = rs[0]!;
  const sizes = [...new Set(rs.map((r) => r.sizeBytes))];
  const total = ctx.cells.filter((c) => c.path === r0.path && c.target === r0.target && sizes.includes(c.sizeBytes)).reduce((s, c) => s + c.total, 0);
  const written = rs.map((r) => r.bodyBytesWritten).filter((v): v is number => typeof v === 'number');
  const rates = rs.map((r) => r.ackedBytesPerSec).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
  const toT = ctx.targets.length > 1 ? ` to ${r0.target}` : '';
  // "while data still moved" only when a rate was measured: a deadline can also catch a silent far end first
  // (the engine records the rate of a moving transfer; a kernel-judged timeout without one moved nothing; results
  // without the kernel's view keep the old reading)
  const moving = rates.some((x) => x > 0) || rs.some((r) => r.progressFrom !== 'kernel');
  const wrote = written.length ? ` (median ${approxSize(median(written))} of the body written when the deadline passed${rates.length ? `, acknowledged at ${approxSize(median(rates))}/s` : ''})` : '';
  return {
    kind: 'timeout',
    stall: false,
    score: score('timeout'),
    path: r0.path,
    target: r0.target,
    sizeBytes: Math.min(...sizes),
    statement: moving
      ? `${rs.length}/${total} probes on ${r0.path}${toT} at ${sizeList(sizes)} ran out of time in ${r0.stage ?? 'an unknown stage'} while data still moved: slow, not stalled${wrote}.`
      : `${rs.length}/${total} probes on ${r0.path}${toT} at ${sizeList(sizes)} ran out of time in ${r0.stage ?? 'an unknown stage'}${wrote}; no movement was measured in the stage (no acknowledged rate): a silent far end that the deadline caught before the watchdog's windows — not a stall finding.`,
    evidence: { count: rs.length, total, stage: r0.stage, sizes, medianBodyBytesWritten: written.length ? median(written) : undefined, ...(rates.length ? { medianAckedBytesPerSec: median(rates) } : {}) },
  };
}

export function timeout(ctx: Context): Finding[] {
  const grouped = new Map<string, ProbeResult[]>();
  for (const r of ctx.results) if (r.outcome === 'timeout') pushTo(grouped, `${r.path}\u0000${r.target}\u0000${r.stage ?? ''}`, r);
  return [...grouped.values()].map((rs) => finding(ctx, rs));
}

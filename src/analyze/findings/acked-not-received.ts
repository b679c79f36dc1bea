/**
 * `acked-not-received` (two ends): on a path's failed probes (stalled, timed out, or given up by the receiver with a
 * 421 while the sender still waited for the final reply) the sender's kernel saw more of the message acknowledged
 * than the receiver got. The ACKs came from something that is not the receiver: a TCP-terminating
 * device (a proxy, a relay, a load balancer in full-proxy mode) that took the data and did not pass it on. Needs
 * sink records (the receiver's byte count).
 */
import type { Finding } from '../../model.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { sizeList } from '../text.js';
import type { Context } from './context.js';
import { ackedNotReceived } from './two-ended.js';

const n = (v: number) => v.toLocaleString('en-US');

function finding(ctx: Context, path: string, target: string): Finding | undefined {
  const failed = ctx.results.filter((r) => r.path === path && r.target === target && r.outcome !== 'delivered' && (r as { sink?: unknown }).sink);
  const gaps = failed.map((r) => ({ r, g: ackedNotReceived(r) })).filter((x) => x.g !== undefined);
  if (!gaps.length || gaps.length * 2 <= failed.length) return undefined;
  const acked = Math.round(median(gaps.map((x) => x.g!.acked)));
  const received = Math.round(median(gaps.map((x) => x.g!.received)));
  const toT = ctx.targets.length > 1 ? ` to ${target}` : '';
  return {
    kind: 'acked-not-received',
    stall: true,
    score: score('acked-not-received'),
    path,
    target,
    statement: `On path ${path}${toT} the data is acknowledged by something that is not the receiver: the sender's kernel saw ${n(acked)} message bytes acknowledged, the receiver got ${n(received)} (medians of ${gaps.length}/${failed.length} failed probes with a sink record, ${sizeList(gaps.map((x) => x.r.sizeBytes))}) — a TCP-terminating device on ${path} took the data and did not pass it on.`,
    evidence: { mechanism: 'tcp-terminating-device', medianAckedBytes: acked, medianReceivedBytes: received, probes: gaps.length, failedWithRecord: failed.length },
  };
}

export function ackedNotReceivedRule(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const t of ctx.targets) for (const p of ctx.paths) {
    const f = finding(ctx, p, t);
    if (f) out.push(f);
  }
  return out;
}

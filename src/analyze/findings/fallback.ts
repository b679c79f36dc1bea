/**
 * fallback: a target whose first MX host (or address) keeps failing while a later one takes the mail — what an MTA
 * does silently and every message pays for ("mx1 refused 12/12; delivered through mx2"). From the attempt chain
 * the engine records (`attempts`). Not a stall.
 */
import type { Attempt, Finding, ProbeResult } from '../../model.js';
import { formatMs } from '../../units.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { countBy, pushTo, top } from '../text.js';
import type { Context } from './context.js';

const endpoint = (a: Attempt): string => (a.address && a.address !== a.server ? `${a.server} (${a.address.includes(':') ? `[${a.address}]` : a.address})` : a.server);

function finding(rs: readonly ProbeResult[], total: number): Finding | undefined {
  const r0 = rs[0]!;
  const failedFirst = rs.map((r) => r.attempts![0]!);
  const where = top(countBy(failedFirst, endpoint))!;
  const same = failedFirst.filter((a) => endpoint(a) === where);
  const how = top(countBy(same, (a) => `${a.outcome}${a.stage ? ` at ${a.stage}` : ''}${a.reply ? ` (${a.reply.code})` : ''}`))!;
  const delivered = rs.filter((r) => r.outcome === 'delivered');
  const through = top(countBy(delivered, (r) => endpoint(r.attempts!.at(-1)!)));
  const lostMs = median(rs.map((r) => r.attempts!.slice(0, -1).reduce((s, a) => s + a.ms, 0)));
  const via = delivered.length ? `; delivered through ${through || 'a later endpoint'} (${delivered.length}/${rs.length})` : '; none delivered through another';
  const lost = delivered.length
    ? ` Each such message lost ${formatMs(lostMs)} (median) before the endpoint that answered; an MTA moves on the same way, silently.`
    : ` The endpoints tried after it failed too (${formatMs(lostMs)} lost before the last one, median).`;
  return {
    kind: 'fallback',
    stall: false,
    score: score('fallback') + (same.length === total ? 2 : 0),
    path: r0.path,
    target: r0.target,
    statement:
      `On ${r0.path} to ${r0.target}: ${where} was ${how} in ${same.length}/${total} probes${via}.${lost}`,
    evidence: { endpoint: where, outcome: how, failed: same.length, total, deliveredThrough: through, lostMsMedian: lostMs },
  };
}

export function fallback(ctx: Context): Finding[] {
  const groups = new Map<string, ProbeResult[]>();
  const totals = new Map<string, number>();
  for (const r of ctx.results) {
    const k = `${r.path}\u0000${r.target}`;
    totals.set(k, (totals.get(k) ?? 0) + 1);
    if ((r.attempts?.length ?? 0) > 1) pushTo(groups, k, r);
  }
  const out: Finding[] = [];
  for (const [k, rs] of groups) {
    const f = finding(rs, totals.get(k)!);
    if (f) out.push(f);
  }
  return out;
}

/**
 * `mss-clamp` (two ends): the MSS one end's kernel sends with is below what the other end advertised, and below
 * what the path MTU allows — a device on the path rewrote the MSS option of the handshake (`TCPMSS --set-mss`,
 * "ip tcp adjust-mss"). Not a failure by itself (it is how tunnels avoid fragmentation); worth knowing when a path
 * stalls at full-size segments, or when one path is clamped and another is not. Needs sink records.
 */
import type { Finding } from '../../model.js';
import { score } from '../ranking.js';
import { joinAnd } from '../text.js';
import type { Context } from './context.js';
import { bothEnds, type MssClamp, mssClamps } from './two-ended.js';

const n = (v: number) => v.toLocaleString('en-US');

/** The clamp most probes show in one direction, with how many. */
function commonClamp(cs: readonly MssClamp[]): { c: MssClamp; count: number } {
  const counts = new Map<string, { c: MssClamp; count: number }>();
  for (const c of cs) {
    const k = `${c.clampedTo}/${c.advertised}`;
    const e = counts.get(k) ?? { c, count: 0 };
    e.count++;
    counts.set(k, e);
  }
  return [...counts.values()].sort((a, b) => b.count - a.count)[0]!;
}

function finding(ctx: Context, path: string, target: string): Finding | undefined {
  const both = ctx.results.filter((r) => r.path === path && r.target === target && bothEnds(r));
  const clamped = both.filter((r) => mssClamps(r).length > 0);
  if (!clamped.length || clamped.length * 2 <= both.length) return undefined;
  const ways = (['sender → receiver', 'receiver → sender'] as const)
    .map((d) => clamped.flatMap(mssClamps).filter((c) => c.direction === d))
    .filter((cs) => cs.length > 0)
    .map(commonClamp);
  const to = Math.min(...ways.map((w) => w.c.clampedTo));
  const numbers = (c: MssClamp) => `got MSS ${n(c.clampedTo)} where the other end advertised ${n(c.advertised)}${c.pmtu !== undefined ? ` (path MTU ${n(c.pmtu)})` : ''}`;
  const same = ways.length === 2 && numbers(ways[0]!.c) === numbers(ways[1]!.c);
  const parts = same ? [`in both directions the sending end's kernel ${numbers(ways[0]!.c)}`] : ways.map(({ c }) => `${c.direction}: the sending end's kernel ${numbers(c)}`);
  const toT = ctx.targets.length > 1 ? ` to ${target}` : '';
  return {
    kind: 'mss-clamp',
    stall: false,
    score: score('mss-clamp'),
    path,
    target,
    statement: `MSS clamped to ${n(to)} on path ${path}${toT}: ${joinAnd(parts)}, in ${clamped.length}/${both.length} probes seen from both ends — a device on ${path} rewrites the MSS option, not path MTU discovery.`,
    evidence: { mechanism: 'mss-clamp', clampedTo: to, directions: ways.map(({ c, count }) => ({ ...c, probes: count })), probes: clamped.length, withBothEnds: both.length },
  };
}

export function mssClamp(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const t of ctx.targets) for (const p of ctx.paths) {
    const f = finding(ctx, p, t);
    if (f) out.push(f);
  }
  return out;
}

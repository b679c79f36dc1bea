/**
 * `window-scale-rewrite` (two ends): the sender's kernel and the receiver's disagree on TCP window scaling for the
 * probes of a path — one negotiated it, the other did not, or their shifts differ. The option was removed from (or
 * rewritten in) one of the handshake segments by a device on that path (incident 2): the end that believes scaling
 * is off reads the other's scaled window as bytes. Needs sink records with the receiver's snapshot.
 */
import type { Finding, ProbeResult } from '../../model.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import type { Context } from './context.js';
import { bothEnds, wscaleDisagrees, wscaleText } from './two-ended.js';

/** The most frequent text of a reading over these probes. */
function modeOf(rs: readonly ProbeResult[], f: (r: ProbeResult) => string): string {
  const counts = new Map<string, number>();
  for (const r of rs) counts.set(f(r), (counts.get(f(r)) ?? 0) + 1);
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]![0];
}

function finding(ctx: Context, path: string, target: string): Finding | undefined {
  const both = ctx.results.filter((r) => r.path === path && r.target === target && bothEnds(r));
  const off = both.filter(wscaleDisagrees);
  if (!off.length || off.length * 2 <= both.length) return undefined;
  const sender = modeOf(off, (r) => wscaleText(r.tcp!.wscale));
  const receiver = modeOf(off, (r) => wscaleText(bothEnds(r)!.receiver.wscale));
  // a misread window stalls a transfer, or lets it crawl a window probe at a time until a deadline
  const stalled = off.filter((r) => r.outcome === 'stalled' || r.outcome === 'timeout').length;
  const wnds = off.map((r) => r.tcp!.sndWnd).filter((x): x is number => x !== undefined);
  const wnd = wnds.length ? Math.round(median(wnds)) : undefined;
  const toT = ctx.targets.length > 1 ? ` to ${target}` : '';
  const effect = sender === 'none' && wnd !== undefined ? `; the sender reads the receiver's scaled window as bytes: send window ${wnd.toLocaleString('en-US')} bytes` : '';
  return {
    kind: 'window-scale-rewrite',
    stall: stalled > 0,
    score: score('window-scale-rewrite'),
    path,
    target,
    statement: `A device on path ${path} removes or rewrites the TCP window-scale option${toT} (sender: ${sender}, receiver: ${receiver}): the two ends' kernels disagree in ${off.length}/${both.length} probes seen from both ends${effect}; ${stalled} of them stalled or timed out.`,
    evidence: { mechanism: 'window-scale-rewrite', senderWscale: sender, receiverWscale: receiver, probes: off.length, withBothEnds: both.length, stalled, ...(wnd !== undefined ? { medianSndWnd: wnd } : {}) },
  };
}

export function windowScaleRewrite(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const t of ctx.targets) for (const p of ctx.paths) {
    const f = finding(ctx, p, t);
    if (f) out.push(f);
  }
  return out;
}

/**
 * mechanism `no-window-scaling`: a path whose send window stayed below one segment and that negotiates no TCP
 * window scaling, while the other paths to the same target negotiate it — a middlebox on the path strips or
 * mishandles the window-scale option (RFC 7323; incident 2).
 */
import type { Finding, TcpSnapshot } from '../../model.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { joinAnd } from '../text.js';
import type { Context } from './context.js';
import { windowClosed } from './stall-kind.js';
import { bothEnds, wscaleDisagrees } from './two-ended.js';

/**
 * What the receiver's side adds, or would: with sink records the receiver's own kernel says whether it negotiated
 * scaling (when the two ends disagree the two-ended rule `window-scale-rewrite` names it and this rule stays
 * silent); without them, what a sink would tell.
 */
function receiverSide(ctx: Context, path: string, target: string): string | undefined {
  const both = ctx.results.filter((r) => r.path === path && r.target === target && bothEnds(r));
  if (both.some(wscaleDisagrees)) return undefined;
  if (both.length) {
    return ` The receiver's kernel negotiated no window scaling either (${both.length} probes seen from both ends): the option is removed from the SYN on the way out, or in both directions.`;
  }
  return ' From the sender alone it cannot be told which way: a sink at the receiver (mxprobe sink, then compare --sink) would say whether the receiver believes scaling is on (the option removed from its SYN-ACK on the way back: the ends disagree) or off too (removed from the SYN on the way out).';
}

function snapshotsOf(ctx: Context, path: string, target: string): TcpSnapshot[] {
  return ctx.results.filter((r) => r.path === path && r.target === target && r.tcp).map((r) => r.tcp!);
}

function finding(ctx: Context, path: string, target: string): Finding | undefined {
  const mine = ctx.results.filter((r) => r.path === path && r.target === target);
  // stalled, or timed out crawling a window-probe's worth at a time (a 64-byte window is slow, not always stalled)
  const stalled = mine.filter((r) => r.outcome === 'stalled' || r.outcome === 'timeout');
  const failedWord = stalled.every((r) => r.outcome === 'stalled') ? 'stalled' : 'stalled or timed-out';
  const closed = stalled.filter((r) => r.tcp && (ctx.kinds.get(r) === 'window-closed' || windowClosed(r.tcp, ctx.segmentBytes)));
  if (!closed.length || closed.length * 2 <= stalled.length) return undefined;
  if (snapshotsOf(ctx, path, target).some((t) => t.wscale)) return undefined;
  const others = ctx.paths.filter((q) => q !== path);
  const theirs = others.flatMap((q) => snapshotsOf(ctx, q, target));
  const scaled = theirs.filter((t) => t.wscale).length;
  if (!scaled || scaled * 2 <= theirs.length) return undefined;
  const receiver = receiverSide(ctx, path, target);
  if (receiver === undefined) return undefined;
  const wnd = Math.round(median(closed.map((r) => r.tcp!.sndWnd ?? 0)));
  const toT = ctx.targets.length > 1 ? ` to ${target}` : '';
  return {
    kind: 'mechanism',
    stall: true,
    score: score('mechanism') + 1,
    path,
    target,
    statement: `Path ${path} negotiates no TCP window scaling${toT} (other paths: ${scaled}/${theirs.length} connections do, ${joinAnd(others)}); its send window stayed at ${wnd} bytes in ${closed.length}/${stalled.length} ${failedWord} probes: a middlebox on ${path} strips or mishandles window scaling (RFC 7323).${receiver}`,
    evidence: { mechanism: 'no-window-scaling', probes: closed.length, stalled: stalled.length, medianSndWnd: wnd, otherPathsScaled: scaled, otherPathsSnapshots: theirs.length, otherPaths: others },
  };
}

export function windowScaling(ctx: Context): Finding[] {
  if (ctx.paths.length < 2) return [];
  const out: Finding[] = [];
  for (const t of ctx.targets) for (const p of ctx.paths) {
    const f = finding(ctx, p, t);
    if (f) out.push(f);
  }
  return out;
}

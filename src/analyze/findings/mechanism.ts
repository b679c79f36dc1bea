/**
 * mechanism: the kernel's account of a stall group's stalled probes — segments lost on the way (data outstanding,
 * retransmissions, ACKs that really stopped) or a window closed below one segment with nothing retransmitted.
 * One end alone cannot tell lost data from lost ACKs; with the receiver's count (a sink record) the direction is
 * named.
 */
import type { Finding, ProbeResult, TcpSnapshot } from '../../model.js';
import { dataOutstanding } from '../../probe/evidence.js';
import { formatMs } from '../../units.js';
import { ackedBodyOffset, sinkBodyBytes } from '../cells.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { approxSize } from '../text.js';
import { type Context, type StallGroup, stalledOf } from './context.js';
import { acksStopped, retransmitting, windowClosed } from './stall-kind.js';

type Snapped = ProbeResult & { tcp: TcpSnapshot };

const num = (xs: Array<number | undefined>): number[] => xs.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
const med = (xs: Array<number | undefined>): number | undefined => {
  const v = num(xs);
  return v.length ? median(v) : undefined;
};

export function isLost(r: Snapped, ctx: Context): boolean {
  const t = r.tcp;
  // the engine's no-ack saw the head retransmitted with bytes_acked frozen; an old result is read from its snapshot
  const sent = r.stallKind === 'no-ack' || (retransmitting(t) && dataOutstanding(t));
  return sent && ctx.kinds.get(r) !== 'no-reply' && !windowClosed(t, ctx.segmentBytes) && acksStopped(t, r.stallMs);
}

export function isClosed(r: Snapped, ctx: Context): boolean {
  return ctx.kinds.get(r) === 'window-closed' || windowClosed(r.tcp, ctx.segmentBytes);
}

/** With sink records: did the receiver get more than the sender saw acknowledged (the ACKs are lost) or not (the data is)? */
function direction(lost: Snapped[], mss: number): { direction?: 'to-receiver' | 'to-sender'; withSink: number } {
  let more = 0;
  let withSink = 0;
  for (const r of lost) {
    const got = sinkBodyBytes(r);
    const acked = ackedBodyOffset(r);
    if (got === undefined || !acked || acked[1] !== 'body') continue;
    withSink++;
    if (got > acked[0] + mss) more++;
  }
  if (!withSink) return { withSink };
  return { direction: more * 2 > withSink ? 'to-sender' : 'to-receiver', withSink };
}

function lostFinding(lost: Snapped[], snaps: number, stalled: number, mss: number): Omit<Finding, 'path'> {
  const s = lost.map((r) => r.tcp);
  const dir = direction(lost, mss);
  const ev = {
    mechanism: 'lost-segments', probes: lost.length, snapshots: snaps, stalled,
    medianRetrans: med(s.map((t) => t.retrans)), medianRetransTotal: med(s.map((t) => t.retransTotal)),
    medianUnacked: med(s.map((t) => t.unacked)), medianBytesAcked: med(s.map((t) => t.bytesAcked)),
    medianLastAckMs: med(s.map((t) => t.lastAckMs)), medianRttMs: med(s.map((t) => t.rttMs)), medianRtoMs: med(s.map((t) => t.rtoMs)),
    ...dir,
  };
  const bits: string[] = [];
  if (ev.medianRetransTotal !== undefined) bits.push(`${Math.round(ev.medianRetransTotal)} retransmissions`);
  else if (ev.medianRetrans !== undefined) bits.push(`retrans ${Math.round(ev.medianRetrans)}`);
  if (ev.medianUnacked !== undefined) bits.push(`${Math.round(ev.medianUnacked)} segments unacknowledged`);
  if (ev.medianBytesAcked !== undefined) bits.push(`bytes_acked frozen at ${approxSize(ev.medianBytesAcked)}`);
  if (ev.medianLastAckMs !== undefined) bits.push(`last ACK ${formatMs(ev.medianLastAckMs)} before`);
  const why =
    dir.direction === 'to-sender'
      ? `the receiver got more than the sender saw acknowledged (${dir.withSink} with a sink record): the ACKs are lost on the way back, receiver → sender`
      : dir.direction === 'to-receiver'
        ? `the receiver got no more than was acknowledged (${dir.withSink} with a sink record): the data is lost on the way to the receiver, sender → receiver`
        : 'segments or their ACKs are lost between sender and receiver — something on the way drops them';
  return {
    kind: 'mechanism', stall: true, score: score('mechanism'),
    statement: `${lost.length}/${snaps} stalled probes with TCP evidence show segments sent but not acknowledged (median ${bits.join(', ')}): ${why}.`,
    evidence: ev,
  };
}

function closedFinding(closed: Snapped[], snaps: number, stalled: number, segment: number): Omit<Finding, 'path'> {
  const s = closed.map((r) => r.tcp);
  const ws = s.map((t) => t.wscale).find((w) => !!w);
  const ev = {
    mechanism: 'window-closed', probes: closed.length, snapshots: snaps, stalled,
    medianSndWnd: med(s.map((t) => t.sndWnd)), mssBytes: med(s.map((t) => t.mss)) ?? segment,
    medianBytesAcked: med(s.map((t) => t.bytesAcked)), medianNotSent: med(s.map((t) => t.notSent)),
    medianRwndLimitedMs: med(s.map((t) => t.rwndLimitedMs)), wscale: ws,
  };
  const wnd = ev.medianSndWnd === 0 || ev.medianSndWnd === undefined ? 'send window 0' : `send window ${Math.round(ev.medianSndWnd)} bytes, below one ${ev.mssBytes}-byte segment`;
  const bits: string[] = [wnd, 'no retransmissions'];
  if (ev.medianBytesAcked !== undefined) bits.push(`bytes_acked ${approxSize(ev.medianBytesAcked)}`);
  if (ev.medianRwndLimitedMs !== undefined) bits.push(`held back by the peer's window for ${formatMs(ev.medianRwndLimitedMs)}`);
  if (ev.medianNotSent !== undefined) bits.push(`${approxSize(ev.medianNotSent)} waiting unsent`);
  if (ev.wscale) bits.push(`wscale ${ev.wscale.snd},${ev.wscale.rcv}`);
  return {
    kind: 'mechanism', stall: true, score: score('mechanism'),
    statement: `${closed.length}/${snaps} stalled probes with TCP evidence show the receiver's window closed (${bits.join(', ')}): the receiver — or a middlebox rewriting TCP windows or mishandling window scaling — stopped the flow; nothing was lost.`,
    evidence: ev,
  };
}

function groupMechanism(ctx: Context, g: StallGroup): Finding | undefined {
  const stalled = stalledOf(ctx, g.cells);
  const snapped = stalled.filter((r): r is Snapped => !!r.tcp);
  if (!snapped.length) return undefined;
  const on = g.by === 'path' ? `On ${g.name}` : `On the way to ${g.name}`;
  const where = g.by === 'path' ? { path: g.name } : { target: g.name };
  const mss = median(num(snapped.map((r) => r.tcp.mss))) || ctx.segmentBytes;
  const lost = snapped.filter((r) => isLost(r, ctx));
  const closed = snapped.filter((r) => isClosed(r, ctx));
  const m =
    lost.length > 0 && lost.length * 2 >= snapped.length
      ? lostFinding(lost, snapped.length, stalled.length, mss)
      : closed.length > 0 && closed.length * 2 >= snapped.length
        ? closedFinding(closed, snapped.length, stalled.length, ctx.segmentBytes)
        : undefined;
  return m && { ...m, ...where, statement: `${on}: ${m.statement}` };
}

export function mechanism(ctx: Context): Finding[] {
  return ctx.groups.map((g) => groupMechanism(ctx, g)).filter((f): f is Finding => !!f);
}

/**
 * Per-probe readings of the two ends of one connection: the sender's kernel snapshot (`r.tcp`) against the
 * receiver's (`r.sink.tcp`, joined from a sink record by probe id). What one end negotiated, advertised or counted
 * and the other did not is something on the path rewriting TCP. Pure; the rules in this folder group them by path.
 */
import type { ProbeResult, TcpSnapshot } from '../../model.js';
import { ackedBodyOffset, sinkBodyBytes } from '../cells.js';

type WithReceiver = ProbeResult & { sink?: { tcp?: TcpSnapshot } };

/** The receiver's snapshot of this probe's connection, when a sink record with one was joined in. */
export function receiverTcp(r: ProbeResult): TcpSnapshot | undefined {
  return (r as WithReceiver).sink?.tcp;
}

/** A snapshot of a live socket (ss printed its TCP info), so an absent `wscale` means "none negotiated". */
const hasInfo = (t: TcpSnapshot | undefined): t is TcpSnapshot => t !== undefined && t.mss !== undefined;

/** Both ends' snapshots of this probe, when both are live readings. */
export function bothEnds(r: ProbeResult): { sender: TcpSnapshot; receiver: TcpSnapshot } | undefined {
  const sender = r.tcp;
  const receiver = receiverTcp(r);
  return hasInfo(sender) && hasInfo(receiver) ? { sender, receiver } : undefined;
}

/** `none`, `7`, or `7 (peer 9)`: one end's window scaling as its kernel has it (own shift, the peer's shift). */
export function wscaleText(w: TcpSnapshot['wscale']): string {
  if (!w) return 'none';
  return w.snd === w.rcv ? String(w.rcv) : `${w.rcv} (peer ${w.snd})`;
}

/**
 * The ends disagree on window scaling: one negotiated it and the other did not, or the shift one end uses is not
 * the one the other applies (sender's own shift ≠ the receiver's idea of it, and the other way round).
 */
export function wscaleDisagrees(r: ProbeResult): boolean {
  const ends = bothEnds(r);
  if (!ends) return false;
  const a = ends.sender.wscale;
  const b = ends.receiver.wscale;
  if (!a && !b) return false;
  return !a || !b || a.snd !== b.rcv || a.rcv !== b.snd;
}

/** TCP timestamps cost 12 bytes of every segment: the kernel's `mss` and `advmss` are net of them. */
const tsBytes = (t: TcpSnapshot): number => (t.options?.includes('ts') ? 12 : 0);

/** IP + TCP header bytes without options, by the address family of the connection. */
const headerBytes = (r: ProbeResult): number => ((r.remoteAddress ?? '').includes(':') ? 60 : 40);

/** The MSS option one end's kernel must have received: its send MSS plus the timestamp bytes taken off it. */
export interface MssClamp {
  /** Which way the segments go. */
  direction: 'sender → receiver' | 'receiver → sender';
  /** The MSS option value the sending end received (its `mss` + timestamps). */
  clampedTo: number;
  /** The MSS option value the receiving end advertised (its `advmss` + timestamps). */
  advertised: number;
  /** The sending end's path MTU: the clamp is not path MTU discovery when `clampedTo + headers < pmtu`. */
  pmtu?: number;
}

function clampOneWay(from: TcpSnapshot, to: TcpSnapshot, headers: number, direction: MssClamp['direction']): MssClamp | undefined {
  if (from.mss === undefined || to.advMss === undefined || from.options === undefined || to.options === undefined) return undefined;
  const clampedTo = from.mss + tsBytes(from);
  const advertised = to.advMss + tsBytes(to);
  if (clampedTo >= advertised) return undefined;
  // a lower path MTU lowers the send MSS too (PMTU discovery): only a segment size below what the MTU allows is a clamp
  if (from.pmtu !== undefined && clampedTo + headers >= from.pmtu) return undefined;
  // Linux bounds the send MSS by half the largest window the peer offered (tcp_bound_to_half_wnd): loopback's 32,768
  if (from.sndWnd !== undefined && from.mss * 2 >= from.sndWnd) return undefined;
  return { direction, clampedTo, advertised, ...(from.pmtu !== undefined ? { pmtu: from.pmtu } : {}) };
}

/** The MSS each end sends with, against what the other advertised: lowered on the way (both directions checked). */
export function mssClamps(r: ProbeResult): MssClamp[] {
  const ends = bothEnds(r);
  if (!ends) return [];
  const h = headerBytes(r);
  return [
    clampOneWay(ends.sender, ends.receiver, h, 'sender → receiver'),
    clampOneWay(ends.receiver, ends.sender, h, 'receiver → sender'),
  ].filter((c): c is MssClamp => c !== undefined);
}

/**
 * The sender's kernel saw more of the message acknowledged than the receiver got (two segments of slack): an ACK
 * came from something that is not the receiver — a TCP-terminating device. Body bytes on both sides (the sink's
 * count of message bytes, the acknowledged body offset), so the SMTP dialogue before DATA does not enter.
 */
export function ackedNotReceived(r: ProbeResult): { acked: number; received: number } | undefined {
  const received = sinkBodyBytes(r);
  const acked = ackedBodyOffset(r);
  if (received === undefined || !acked || acked[1] !== 'body') return undefined;
  const slack = 2 * (r.tcp?.mss ?? 1448);
  return acked[0] > received + slack ? { acked: acked[0], received } : undefined;
}

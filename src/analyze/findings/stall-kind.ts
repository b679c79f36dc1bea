/**
 * Which of the three stalls a stalled probe was: the engine's `stallKind`, or, for results written before it
 * recorded one, the same reading of the TCP snapshot (so old JSONL files still compare). Pure.
 */
import { STALL_KINDS, type ProbeResult, type StallKind, type TcpSnapshot } from '../../model.js';
import { dataOutstanding, windowClosed } from '../../probe/evidence.js';

/** The peer's window is below one segment (0, 64, 1174 bytes against a 1448-byte MSS) and nothing is retransmitted. */
export { windowClosed };

/**
 * The peer's ACKs really stopped: no `lastack` reported (never an ACK), or the last one long enough before the
 * snapshot. A last ACK 36 ms before the call is a moving transfer, not a frozen one. "Long enough": a third of
 * the stall window (the earliest a stall is called on backoff evidence), at most one second.
 */
export function acksStopped(t: TcpSnapshot, stallMs: number | undefined): boolean {
  if (t.lastAckMs === undefined) return true;
  return t.lastAckMs >= Math.min(1000, (stallMs ?? 10_000) / 3);
}

/** Retransmissions (or RTO backoff) on the connection. */
export function retransmitting(t: TcpSnapshot): boolean {
  return Math.max(t.retrans ?? 0, t.backoff ?? 0) > 0 || (t.retransTotal ?? 0) > 0;
}

/** The stall kind of a stalled probe; undefined for other outcomes and for stalls without any evidence. */
export function stallKindOf(r: ProbeResult, segmentBytes: number): StallKind | undefined {
  if (r.outcome !== 'stalled') return undefined;
  // a results file is input: only the three kinds are kinds (anything else is read from the snapshot)
  if (r.stallKind && (STALL_KINDS as readonly string[]).includes(r.stallKind)) return r.stallKind;
  const t = r.tcp;
  if (!t) return undefined;
  if (windowClosed(t, segmentBytes)) return 'window-closed';
  if (dataOutstanding(t)) return 'no-ack';
  return 'no-reply';
}

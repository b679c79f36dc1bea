/** Pure readings of a TCP snapshot, shared by the engine's watchdog and the comparator. */
import type { StallKind, TcpSnapshot } from '../model.js';

/**
 * Data sent but not yet acknowledged: unacked segments, or sent (less retransmitted) bytes beyond the acknowledged
 * ones. Both signs are read because ss omits zero counters (`unacked` may be absent with data in flight), and
 * `bytes_acked` counts the SYN.
 */
export function dataOutstanding(t: TcpSnapshot): boolean {
  return (t.unacked ?? 0) > 0 || (t.bytesSent ?? 0) - (t.bytesRetrans ?? 0) > (t.bytesAcked ?? 0) - 1;
}

/** A segment's size when the snapshot names none: Ethernet's 1500-byte MTU less IPv4, TCP and timestamps. */
export const DEFAULT_MSS_BYTES = 1448;

/**
 * The peer's window cannot take one full segment (`snd_wnd` below the MSS — 0, or 64 bytes when a middlebox
 * stripped window scaling, or 1,174 against 1,448) while nothing is being retransmitted: flow control stopped the
 * transfer, nothing was lost.
 */
export function windowClosed(t: TcpSnapshot, segmentBytes = DEFAULT_MSS_BYTES): boolean {
  return typeof t.sndWnd === 'number' && t.sndWnd < (t.mss ?? segmentBytes) && (t.retrans ?? 0) === 0;
}

/**
 * The peer's window cannot take one full segment, whatever was retransmitted before: nothing can move until it
 * opens. (`windowClosed` adds "nothing retransmitted", for reading a snapshot on its own.)
 */
export function windowShut(t: TcpSnapshot, segmentBytes = DEFAULT_MSS_BYTES): boolean {
  return typeof t.sndWnd === 'number' && t.sndWnd < (t.mss ?? segmentBytes);
}

/**
 * The peer's TCP still answers: an ACK came within `ms` (window probes of a shut window are answered too). A far
 * end that answers but takes nothing is holding up, like one that takes everything and does not reply.
 */
export function peerAnswering(t: TcpSnapshot, ms: number): boolean {
  return t.lastAckMs !== undefined && t.lastAckMs < ms;
}

/**
 * Data the network has yet to move for us: unacknowledged or not yet sent by the kernel (`notsent`), or still
 * queued in our own socket (`queuedBytes`: the stream's buffer above the kernel).
 */
export function awaitingNetwork(t: TcpSnapshot, queuedBytes: number): boolean {
  return queuedBytes > 0 || (t.notSent ?? 0) > 0 || dataOutstanding(t);
}

/**
 * Which stall a quiet connection is in (DESIGN.md "stall kind"): nothing awaiting the network → the far end owes us
 * a reply (`no-reply`); a window below one segment → `window-closed` (a shut window explains the quiet, whatever
 * was retransmitted before it shut); else `no-ack`.
 */
export function stallKindOf(t: TcpSnapshot, queuedBytes: number): StallKind {
  if (!awaitingNetwork(t, queuedBytes)) return 'no-reply';
  return windowShut(t) && !inFlightUnanswered(t) ? 'window-closed' : 'no-ack';
}

/**
 * Data in flight that the kernel is retransmitting or backing off on: segments lost (or their ACKs), whatever the
 * window says. A shut window with nothing in flight only has window probes outstanding (they add no bytes_sent).
 */
export function inFlightUnanswered(t: TcpSnapshot): boolean {
  return dataOutstanding(t) && ((t.retrans ?? 0) > 0 || (t.backoff ?? 0) > 0);
}

/**
 * How long a quiet connection of this kind may stay quiet: the stall window when the network is failing us (data
 * unacknowledged, or a shut window whose peer stopped answering); the no-reply window when the far end's TCP is
 * there but holds up — it took everything and does not reply, or it answers and keeps its window shut (a receiver
 * reading slowly through a large buffer shuts its window for seconds at a time: slow, not stalled).
 */
export function quietLimit(kind: StallKind, t: TcpSnapshot, w: { stallMs: number; noReplyMs: number }): number {
  if (kind === 'no-reply') return w.noReplyMs;
  if (kind === 'window-closed' && peerAnswering(t, w.stallMs)) return w.noReplyMs;
  return w.stallMs;
}

/**
 * The latest moment the network can have moved anything, as seen at `nowMs` (clockMs) in this
 * snapshot: `bytes_acked` only rises on an ACK and `bytes_received` only on a data segment, so progress is no later
 * than the most recent of `lastack` / `lastrcv`. When the counters equal the previous reading's, nothing moved in
 * between and the previous bound still holds (window probes are answered by ACKs that acknowledge nothing: the
 * counters, not `lastack`, tell). An upper bound: it can make a stall later, never earlier.
 */
export function latestProgressAt(
  cur: TcpSnapshot,
  nowMs: number,
  prev?: { snapshot: TcpSnapshot; progressAt: number },
): number {
  const lastSeg = Math.min(cur.lastAckMs ?? 0, cur.lastRecvMs ?? 0);
  const bound = nowMs - Math.max(0, lastSeg);
  if (!prev) return bound;
  const moved =
    (cur.bytesAcked ?? 0) !== (prev.snapshot.bytesAcked ?? 0) || (cur.bytesReceived ?? 0) !== (prev.snapshot.bytesReceived ?? 0);
  return moved ? bound : Math.min(bound, prev.progressAt);
}

/**
 * Segments are being lost and no ACK will come (incident 1): data outstanding, the head retransmitted, the kernel
 * in RTO backoff (≥ 3: the same segment sent four times unanswered), and the ACKs really stopped — the last one at
 * least `quietMs` ago (a last ACK 36 ms before the look is a moving transfer, however many retransmits it had).
 */
export function lossEvident(t: TcpSnapshot, quietMs: number): boolean {
  return (
    // data in flight, retransmitted: zero-window probes raise `backoff` too, but carry no data (nothing in flight)
    dataOutstanding(t) &&
    ((t.retrans ?? 0) > 0 || (t.retransTotal ?? 0) > 0) &&
    (t.backoff ?? 0) >= 3 &&
    (t.lastAckMs ?? Infinity) >= quietMs
  );
}

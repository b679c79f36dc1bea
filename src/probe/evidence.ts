/** Pure readings of a TCP snapshot, shared by the engine's watchdog and the comparator. */
import type { TcpSnapshot } from '../model.js';

/**
 * Data sent but not yet acknowledged: unacked segments, or sent (less retransmitted) bytes beyond the acknowledged
 * ones. Both signs are read because ss omits zero counters (`unacked` may be absent with data in flight), and
 * `bytes_acked` counts the SYN.
 */
export function dataOutstanding(t: TcpSnapshot): boolean {
  return (t.unacked ?? 0) > 0 || (t.bytesSent ?? 0) - (t.bytesRetrans ?? 0) > (t.bytesAcked ?? 0) - 1;
}

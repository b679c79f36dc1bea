/**
 * The receiver's kernel view of one session's socket: the same `ss` snapshot module the sender uses, read on the
 * sink's side (the tuple is the reverse of the sender's). Requests of one event-loop turn share one `ss` process
 * (tcpSnapshot batches them), so 200 sessions reaching DATA together cost a handful of `ss` runs, not 200.
 */
import type net from 'node:net';
import type { TcpSnapshot } from '../model.js';
import { tcpSnapshot } from '../probe/tcpinfo.js';

/** The snapshot of this socket now, or undefined when the kernel cannot be read (not Linux, no ss, socket gone). */
export async function sinkSnapshot(socket: net.Socket, at: TcpSnapshot['at'], tMs: number): Promise<TcpSnapshot | undefined> {
  const { localAddress, localPort, remoteAddress, remotePort } = socket;
  if (!localAddress || !remoteAddress || localPort === undefined || remotePort === undefined) return undefined;
  const r = await tcpSnapshot({ localAddress, localPort, remoteAddress, remotePort }, at, tMs);
  // a socket already closed when ss ran (a client that quit at once) has no TCP info left: nothing worth keeping
  if (!r.snapshot || r.snapshot.mss === undefined) return undefined;
  const { raw: _raw, ...kept } = r.snapshot;
  return kept;
}

/** The snapshots that resolved, in the order taken (a failed read is left out). */
export async function settledSnapshots(ps: ReadonlyArray<Promise<TcpSnapshot | undefined> | undefined>): Promise<TcpSnapshot[]> {
  const out: TcpSnapshot[] = [];
  for (const p of ps) {
    const s = p ? await p.catch(() => undefined) : undefined;
    if (s) out.push(s);
  }
  return out;
}

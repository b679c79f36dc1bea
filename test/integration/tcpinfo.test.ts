import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { tcpInfoAvailable, tcpSnapshot, type SocketTuple } from '../../src/probe/tcpinfo.js';

const avail = await tcpInfoAvailable();
if (!avail.ok) console.warn(`tcpinfo integration tests skipped: ${avail.reason}`);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tuple = (s: net.Socket): SocketTuple => ({
  localAddress: s.localAddress!,
  localPort: s.localPort!,
  remoteAddress: s.remoteAddress!,
  remotePort: s.remotePort!,
});

/**
 * Snapshots of `t` until `done` holds (every 50 ms, up to `ms`): the kernel settles when it settles, and a busy
 * machine is slower; the last snapshot is returned either way, for the assertions to say what it was.
 */
async function settled(t: SocketTuple, done: (s: NonNullable<Awaited<ReturnType<typeof tcpSnapshot>>['snapshot']>) => boolean, ms = 5000) {
  const end = performance.now() + ms;
  for (;;) {
    const { snapshot } = await tcpSnapshot(t, 'end', 1);
    if ((snapshot && done(snapshot)) || performance.now() > end) return snapshot!;
    await sleep(50);
  }
}

/** What the kernel promises about bytes_sent: it counts retransmitted bytes too, so only this is exact. */
const uniqueSent = (s: { bytesSent?: number; bytesRetrans?: number }): number => (s.bytesSent ?? 0) - (s.bytesRetrans ?? 0);

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

/** A server on `host` whose accepted sockets are handed to `onConn`; a client connected to it. */
async function pair(host: string, connectTo: string, onConn: (s: net.Socket) => void) {
  const server = net.createServer(onConn);
  await new Promise<void>((r) => server.listen(0, host, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as net.AddressInfo).port, connectTo);
  await new Promise<void>((r, j) => client.once('connect', r).once('error', j));
  const serverSide = await accepted;
  cleanups.push(() => {
    client.destroy();
    serverSide.destroy();
    server.close();
  });
  return { client, serverSide };
}

describe.skipIf(!avail.ok)('tcpSnapshot on real loopback sockets', () => {
  it('reads bytes_acked and the other fields of a connection that moved data', async () => {
    const { client } = await pair('127.0.0.1', '127.0.0.1', (s) => s.resume());
    await new Promise<void>((r) => client.write(Buffer.alloc(256 * 1024, 120), () => r()));
    await settled(tuple(client), (x) => x.bytesAcked === 256 * 1024 + 1);
    const t0 = performance.now();
    const { snapshot, unavailable } = await tcpSnapshot(tuple(client), 'end', 123.5);
    console.log(`one snapshot took ${(performance.now() - t0).toFixed(1)} ms`);
    expect(unavailable).toBeUndefined();
    expect(snapshot).toBeDefined();
    const s = snapshot!;
    expect(s.at).toBe('end');
    expect(s.tMs).toBe(123.5);
    expect(s.state).toBe('ESTAB');
    // bytes_acked counts the SYN too: 256 KiB of payload acknowledged → 262145
    expect(s.bytesAcked).toBe(256 * 1024 + 1);
    // bytes_sent also counts retransmissions (a tail-loss probe on a busy machine): sent − retransmitted is exact
    expect(uniqueSent(s)).toBe(256 * 1024);
    expect(s.bytesSent).toBeGreaterThanOrEqual(256 * 1024);
    expect(s.retrans).toBe(0); // nothing outstanding, so nothing being retransmitted now
    expect(s.unacked).toBe(0);
    expect(s.mss).toBeGreaterThan(0);
    expect(s.rtoMs).toBeGreaterThan(0);
    expect(s.rttMs).toBeGreaterThanOrEqual(0);
    expect(s.cwnd).toBeGreaterThan(0);
    expect(s.wscale?.snd).toBeGreaterThanOrEqual(0);
    expect(s.raw).toMatch(new RegExp(`127\\.0\\.0\\.1:${client.localPort} 127\\.0\\.0\\.1:${client.remotePort}`));
  });

  it('shows a closed window when the server stops reading: acked frozen, bytes queued, snd_wnd 0', async () => {
    const { client, serverSide } = await pair('127.0.0.1', '127.0.0.1', (s) => s.pause());
    let written = 0;
    const chunk = Buffer.alloc(64 * 1024, 97);
    // Write until the socket buffers are full (write() returns false), then a bit more.
    while (client.write(chunk)) written += chunk.length;
    written += chunk.length;
    // the receive buffer fills (autotuning may grow it for a while first): wait for the window to close
    await settled(tuple(client), (x) => x.sndWnd === 0 || (x.sndWnd === undefined && (x.notSent ?? 0) > 0), 10_000);
    const a = (await tcpSnapshot(tuple(client), 'stall', 1500)).snapshot!;
    await sleep(700);
    const b = (await tcpSnapshot(tuple(client), 'stall', 2200)).snapshot!;
    const srv = (await tcpSnapshot(tuple(serverSide), 'stall', 2200)).snapshot!;
    const pick = (s: typeof a) =>
      JSON.stringify({ bytesAcked: s.bytesAcked, sndWnd: s.sndWnd, unacked: s.unacked, notSent: s.notSent, retrans: s.retrans, retransTotal: s.retransTotal, backoff: s.backoff, lastAckMs: s.lastAckMs, rwndLimitedMs: s.rwndLimitedMs });
    console.log(`paused server, client wrote ${written} B into the socket:\n  client t=1.5s ${pick(a)}\n  client t=2.2s ${pick(b)}\n  server: bytesReceived=${srv.bytesReceived} rcvWnd=${srv.rcvWnd}`);
    expect(a.bytesAcked).toBeGreaterThan(0);
    expect(a.bytesAcked!).toBeLessThan(written);
    // no progress between the two snapshots: the flow is stopped, not slow
    expect(b.bytesAcked).toBe(a.bytesAcked);
    // what the server's kernel received (and holds unread) is what the client's kernel saw acknowledged
    expect(srv.bytesReceived).toBe(b.bytesAcked! - 1);
    // bytes stuck in the client's send buffer
    expect((b.notSent ?? 0) + (b.unacked ?? 0)).toBeGreaterThan(0);
    // ss ≥ 5.18 on kernel ≥ 5.4 reports the window; zero-filled because ss omits it when 0
    if (b.sndWnd !== undefined) expect(b.sndWnd).toBe(0);
    else console.warn('this ss/kernel does not report snd_wnd; window state not asserted');
  });

  it('matches a dual-stack server socket (IPv4-mapped IPv6 addresses)', async () => {
    const { serverSide, client } = await pair('::', '127.0.0.1', (s) => s.resume());
    expect(serverSide.localAddress).toBe('::ffff:127.0.0.1');
    client.write('hello');
    await settled(tuple(serverSide), (x) => x.bytesReceived === 5);
    const { snapshot, unavailable } = await tcpSnapshot(tuple(serverSide), 'end', 1);
    expect(unavailable).toBeUndefined();
    expect(snapshot!.bytesReceived).toBe(5);
    expect(snapshot!.raw).toContain(`[::ffff:127.0.0.1]:${serverSide.localPort}`);
  });

  it('works over IPv6 loopback when the host has ::1', async (ctx) => {
    const probe = net.createServer();
    const ok = await new Promise<boolean>((r) => probe.once('error', () => r(false)).listen(0, '::1', () => r(true)));
    probe.close();
    if (!ok) ctx.skip();
    const { client } = await pair('::1', '::1', (s) => s.resume());
    client.write('x'.repeat(1000));
    const snapshot = await settled(tuple(client), (x) => x.bytesAcked === 1001);
    expect(uniqueSent(snapshot)).toBe(1000);
    expect(snapshot.bytesSent).toBeGreaterThanOrEqual(1000);
    expect(snapshot.raw).toContain(`[::1]:${client.localPort}`);
  });

  it('says why when the socket is gone', async () => {
    const { client } = await pair('127.0.0.1', '127.0.0.1', (s) => s.resume());
    const t = tuple(client);
    client.destroy();
    await sleep(100);
    // the client closed first, so its side may linger in FIN-WAIT/TIME-WAIT; a port nobody uses is surely gone
    const r = await tcpSnapshot({ ...t, localAddress: '127.0.0.9' }, 'end', 1);
    expect(r.snapshot).toBeUndefined();
    expect(r.unavailable).toMatch(/^no TCP socket 127\.0\.0\.9:\d+ → 127\.0\.0\.1:\d+ in ss/);
  });
});

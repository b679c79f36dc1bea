/**
 * The fault-injecting relay with plain `net` sockets on 127.0.0.1: for each fault, a sink/echo server behind the
 * relay, exact byte counts, and what the sender's socket sees. Timing assertions are lower bounds only.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { once } from 'node:events';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConnectionReport,
  type FaultEvent,
  type FaultSpec,
  type Relay,
  formatFault,
  parseFault,
  startRelay,
} from '../../src/lab/relay.js';
import { UnitError } from '../../src/units.js';

const KiB = 1024;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// helpers

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface SinkConn {
  socket: net.Socket;
  bytes: number;
  hash: Hash;
  /** arrival time and data of every chunk (with `keepChunks`) */
  chunks: Array<{ at: number; data: Buffer }>;
  ended: boolean;
  closed: boolean;
  error?: NodeJS.ErrnoException;
}

interface Sink {
  port: number;
  conns: SinkConn[];
}

/** A server that counts (and optionally echoes) what it receives; ends its side when the peer does. */
async function startSink(opts: { echo?: boolean; keepChunks?: boolean; onConnection?: (c: SinkConn) => void } = {}): Promise<Sink> {
  const conns: SinkConn[] = [];
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    const c: SinkConn = { socket, bytes: 0, hash: createHash('sha256'), chunks: [], ended: false, closed: false };
    conns.push(c);
    socket.on('data', (d: Buffer) => {
      c.bytes += d.length;
      c.hash.update(d);
      if (opts.keepChunks) c.chunks.push({ at: performance.now(), data: d });
      if (opts.echo) socket.write(d);
    });
    socket.on('end', () => {
      c.ended = true;
      socket.end();
    });
    socket.on('error', (e) => (c.error = e));
    socket.on('close', () => (c.closed = true));
    opts.onConnection?.(c);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const c of conns) c.socket.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, conns };
}

async function relayTo(port: number, c2s?: FaultSpec | string, s2c?: FaultSpec | string): Promise<Relay> {
  const f = (x?: FaultSpec | string): FaultSpec | undefined => (typeof x === 'string' ? parseFault(x) : x);
  const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: port, clientToServer: f(c2s), serverToClient: f(s2c) });
  cleanups.push(() => relay.close());
  return relay;
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  cleanups.push(() => s.destroy());
  s.on('error', () => {}); // asserted through explicit listeners where it matters
  await once(s, 'connect');
  return s;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const t0 = performance.now();
  while (!cond()) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Write `total` pseudo-random bytes with backpressure; returns their sha256. `accepted` counts bytes the kernel took. */
async function push(socket: net.Socket, total: number, progress?: { accepted: number }): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(64 * KiB);
  let sent = 0;
  let n = 0;
  while (sent < total) {
    const len = Math.min(block.length, total - sent);
    const buf = Buffer.from(block.subarray(0, len));
    buf.writeUInt32BE(n++, 0); // no two blocks alike
    hash.update(buf);
    sent += len;
    const ok = socket.write(buf, (err) => {
      if (!err && progress) progress.accepted += len;
    });
    if (!ok) await once(socket, 'drain');
  }
  return hash.digest('hex');
}

function nextReport(relay: Relay): Promise<ConnectionReport> {
  return new Promise((resolve) => relay.once('connection', resolve));
}

// ---------------------------------------------------------------------------------------------------------------

describe('parseFault / formatFault', () => {
  it('parses every valid form', () => {
    expect(parseFault('none')).toEqual({ kind: 'none' });
    expect(parseFault('blackhole-after=64KiB')).toEqual({ kind: 'blackhole-after', bytes: 65536 });
    expect(parseFault('freeze-after=65536')).toEqual({ kind: 'freeze-after', bytes: 65536 });
    expect(parseFault('reset-after=1MiB')).toEqual({ kind: 'reset-after', bytes: MiB });
    expect(parseFault('close-after=0')).toEqual({ kind: 'close-after', bytes: 0 });
    expect(parseFault(' Blackhole-After = 1.5MB ')).toEqual({ kind: 'blackhole-after', bytes: 1_500_000 });
    expect(parseFault('delay=200ms')).toEqual({ kind: 'delay', ms: 200 });
    expect(parseFault('delay=1.5s')).toEqual({ kind: 'delay', ms: 1500 });
    expect(parseFault('throttle=128KiB/s')).toEqual({ kind: 'throttle', bytesPerSec: 131072 });
    expect(parseFault('throttle=1000/s')).toEqual({ kind: 'throttle', bytesPerSec: 1000 });
    expect(parseFault('throttle=1MiB / sec')).toEqual({ kind: 'throttle', bytesPerSec: MiB });
  });

  it('formats so that parsing gives the same fault back', () => {
    const faults: FaultSpec[] = [
      { kind: 'none' },
      { kind: 'blackhole-after', bytes: 65536 },
      { kind: 'freeze-after', bytes: 65537 },
      { kind: 'reset-after', bytes: 1536 * KiB },
      { kind: 'close-after', bytes: 0 },
      { kind: 'delay', ms: 250 },
      { kind: 'delay', ms: 2000 },
      { kind: 'throttle', bytesPerSec: 64 * KiB },
      { kind: 'throttle', bytesPerSec: 1000 },
    ];
    for (const f of faults) expect(parseFault(formatFault(f))).toEqual(f);
    expect(formatFault({ kind: 'blackhole-after', bytes: 65536 })).toBe('blackhole-after=64KiB');
    expect(formatFault({ kind: 'throttle', bytesPerSec: MiB })).toBe('throttle=1MiB/s');
    expect(formatFault({ kind: 'delay', ms: 200 })).toBe('delay=200ms');
  });

  it.each([
    ['', /empty/],
    ['bogus', /unknown fault "bogus"/],
    ['blackhole-after', /needs a byte count/],
    ['blackhole-after=lots', /not a byte size: "lots"/],
    ['freeze-after=-1', /not a byte size/],
    ['delay=200', /give the delay a unit: delay=200ms/],
    ['delay=soon', /not a duration/],
    ['throttle=64KiB', /not a rate in bytes per second/],
    ['throttle=0/s', /more than 0/],
    ['none=1', /takes no value/],
  ])('rejects %j, naming the problem and listing the valid forms', (text, why) => {
    let err: unknown;
    try {
      parseFault(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UnitError);
    const msg = (err as Error).message;
    expect(msg).toMatch(why);
    for (const form of ['none', 'blackhole-after=SIZE', 'freeze-after=SIZE', 'reset-after=SIZE', 'close-after=SIZE', 'delay=DURATION', 'throttle=SIZE/s']) {
      expect(msg).toContain(form);
    }
  });
});

describe('relay: none', () => {
  it('passes 64 MiB byte-exact with bounded memory, pausing the sender while the receiver does not read', async () => {
    const PAUSE_MS = 1500;
    const sink = await startSink({
      onConnection: (c) => {
        c.socket.pause();
        setTimeout(() => c.socket.resume(), PAUSE_MS);
      },
    });
    const relay = await relayTo(sink.port, 'none', 'none');
    const client = await connect(relay.port);
    const report = nextReport(relay);

    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    let rssPeak = rss0;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 20);
    cleanups.push(() => clearInterval(sampler));

    const progress = { accepted: 0 };
    const total = 64 * MiB;
    const sent = push(client, total, progress);
    // While the sink reads nothing, only kernel buffers (a few MiB each) may fill: a relay that ignored
    // backpressure would swallow the whole 64 MiB into its own memory.
    await sleep(PAUSE_MS - 300);
    const acceptedDuringPause = progress.accepted;
    expect(acceptedDuringPause).toBeLessThan(40 * MiB);

    const sentHash = await sent;
    client.end();
    await waitFor('the sink to see the end of the stream', () => sink.conns[0]?.ended === true, 60_000);
    clearInterval(sampler);
    const conn = sink.conns[0]!;
    expect(conn.bytes).toBe(total);
    expect(conn.hash.digest('hex')).toBe(sentHash);
    // this process holds the client, the relay and the sink (and garbage from 64 MiB of test buffers);
    // the relay alone is measured in its own process in relay-cli.test.ts
    expect(rssPeak - rss0).toBeLessThan(96 * MiB);

    const r = await report;
    expect(r.c2sBytes).toBe(total);
    expect(r.clientToServer.droppedBytes).toBe(0);
    expect(r.endedBy).toBe('client-closed');
    expect(relay.stats()).toMatchObject({ connections: 1, active: 0, bytesClientToServer: total, bytesServerToClient: 0 });
  });

  it('relays both directions and half-closes like TCP (echo through the relay)', async () => {
    const sink = await startSink({ echo: true });
    const relay = await relayTo(sink.port);
    const client = await connect(relay.port);
    const report = nextReport(relay);
    const got: Buffer[] = [];
    client.on('data', (d: Buffer) => got.push(d));
    const payload = randomBytes(300 * KiB);
    client.end(payload); // FIN right after the data; the echo must still come back in full
    await once(client, 'end');
    expect(Buffer.concat(got).equals(payload)).toBe(true);
    const r = await report;
    expect(r.c2sBytes).toBe(payload.length);
    expect(r.s2cBytes).toBe(payload.length);
  });
});

describe('relay: blackhole-after', () => {
  it('forwards exactly 64 KiB of 1 MiB while every write of the sender completes; replies still flow back', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'blackhole-after=64KiB');
    const faults: FaultEvent[] = [];
    relay.on('fault', (e) => faults.push(e));
    const client = await connect(relay.port);
    const report = nextReport(relay);

    const progress = { accepted: 0 };
    await push(client, MiB, progress);
    await waitFor('all writes to complete', () => progress.accepted === MiB);
    expect(client.writableLength).toBe(0);

    await waitFor('64 KiB at the sink', () => (sink.conns[0]?.bytes ?? 0) >= 64 * KiB);
    await sleep(300); // nothing more may trickle through
    expect(sink.conns[0]!.bytes).toBe(64 * KiB);
    expect(relay.stats().bytesClientToServer).toBe(64 * KiB);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ id: 1, direction: 'clientToServer', afterBytes: 65536, fault: { kind: 'blackhole-after', bytes: 65536 } });

    // the other direction is healthy, as the SMTP dialogue was in incident 1
    sink.conns[0]!.socket.write('421 4.4.2 timeout\r\n');
    const [reply] = (await once(client, 'data')) as [Buffer];
    expect(reply.toString()).toBe('421 4.4.2 timeout\r\n');

    client.end();
    const r = await report;
    expect(r.c2sBytes).toBe(64 * KiB);
    expect(r.clientToServer.droppedBytes).toBe(MiB - 64 * KiB);
    expect(r.clientToServer.triggeredAtMs).toBeGreaterThanOrEqual(0);
    expect(r.s2cBytes).toBe(19);
    expect(r.endedBy).toBe('client-closed');
  });

  it('acts per direction: server→client blackhole-after=1KiB leaves client→server untouched', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'none', 'blackhole-after=1KiB');
    const client = await connect(relay.port);
    let clientGot = 0;
    client.on('data', (d: Buffer) => (clientGot += d.length));
    await waitFor('the relay to reach the sink', () => sink.conns.length === 1);
    sink.conns[0]!.socket.write(randomBytes(64 * KiB));
    client.write(randomBytes(100 * KiB));
    await waitFor('100 KiB at the sink', () => sink.conns[0]!.bytes === 100 * KiB);
    await waitFor('1 KiB at the client', () => clientGot >= KiB);
    await sleep(200);
    expect(clientGot).toBe(KiB);
    expect(relay.stats()).toMatchObject({ bytesClientToServer: 100 * KiB, bytesServerToClient: KiB });
  });

  it('setFaults changes the fault for new connections only', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'blackhole-after=10');
    const a = await connect(relay.port);
    a.write(Buffer.alloc(100));
    await waitFor('10 bytes at the sink', () => (sink.conns[0]?.bytes ?? 0) >= 10);
    relay.setFaults({ kind: 'none' });
    expect(relay.faults()).toEqual({ clientToServer: { kind: 'none' }, serverToClient: { kind: 'none' } });
    const b = await connect(relay.port);
    b.write(Buffer.alloc(100));
    a.write(Buffer.alloc(100));
    await waitFor('100 bytes on the second connection', () => (sink.conns[1]?.bytes ?? 0) >= 100);
    await sleep(100);
    expect(sink.conns[0]!.bytes).toBe(10);
    expect(sink.conns[1]!.bytes).toBe(100);
  });
});

describe('relay: freeze-after', () => {
  it('forwards exactly 64 KiB, then the sender\'s writes stop draining', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'freeze-after=64KiB');
    const client = await connect(relay.port);
    let drained = false;
    client.on('drain', () => (drained = true));
    const ok = client.write(randomBytes(16 * MiB));
    expect(ok).toBe(false);
    await waitFor('64 KiB at the sink', () => (sink.conns[0]?.bytes ?? 0) >= 64 * KiB);
    await sleep(1000);
    expect(drained).toBe(false);
    expect(client.writableLength).toBeGreaterThan(0);
    expect(sink.conns[0]!.bytes).toBe(64 * KiB);
    expect(relay.stats()).toMatchObject({ active: 1, bytesClientToServer: 64 * KiB });

    const report = nextReport(relay);
    await relay.close();
    const r = await report;
    expect(r.endedBy).toBe('relay-closed');
    expect(r.c2sBytes).toBe(64 * KiB);
    expect(r.clientToServer.triggeredAtMs).toBeGreaterThanOrEqual(0);
  });
});

describe('relay: reset-after', () => {
  it('forwards exactly 64 KiB, then resets both sides', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'reset-after=64KiB');
    const client = await connect(relay.port);
    const report = nextReport(relay);
    const clientError = new Promise<NodeJS.ErrnoException>((resolve) => client.once('error', resolve));
    client.write(randomBytes(MiB));
    const err = await clientError;
    expect(err.code).toBe('ECONNRESET');
    await waitFor('the sink connection to close', () => sink.conns[0]?.closed === true);
    expect(sink.conns[0]!.bytes).toBe(64 * KiB);
    expect(sink.conns[0]!.error?.code).toBe('ECONNRESET');
    const r = await report;
    expect(r.endedBy).toBe('fault-reset');
    expect(r.c2sBytes).toBe(64 * KiB);
  });
});

describe('relay: close-after', () => {
  it('forwards exactly 64 KiB, then ends both sides cleanly (FIN, no reset)', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'close-after=64KiB');
    const client = await connect(relay.port);
    const report = nextReport(relay);
    let clientError: Error | undefined;
    client.on('error', (e) => (clientError = e));
    client.on('end', () => client.end());
    client.write(randomBytes(200 * KiB));
    await once(client, 'close');
    await waitFor('the sink connection to close', () => sink.conns[0]?.closed === true);
    expect(sink.conns[0]!.bytes).toBe(64 * KiB);
    expect(sink.conns[0]!.ended).toBe(true);
    expect(sink.conns[0]!.error).toBeUndefined();
    expect(clientError).toBeUndefined();
    const r = await report;
    expect(r.endedBy).toBe('fault-closed');
    expect(r.c2sBytes).toBe(64 * KiB);
  });
});

describe('relay: delay', () => {
  it('holds every chunk for the delay and keeps order', async () => {
    const DELAY = 300;
    const sink = await startSink({ keepChunks: true });
    const relay = await relayTo(sink.port, `delay=${DELAY}ms`);
    const client = await connect(relay.port);
    await waitFor('the relay to reach the sink', () => sink.conns.length === 1);
    const t0 = performance.now();
    client.write('hello\r\n');
    await waitFor('hello at the sink', () => sink.conns[0]!.bytes >= 7);
    expect(sink.conns[0]!.chunks[0]!.at - t0).toBeGreaterThanOrEqual(DELAY - 2);

    // many small writes, spaced: all arrive, in order, each no sooner than DELAY after it was sent
    const sentAt: number[] = [];
    let text = '';
    for (let i = 0; i < 20; i++) {
      const line = `line ${i}\r\n`;
      text += line;
      sentAt.push(performance.now());
      client.write(line);
      await sleep(10);
    }
    await waitFor('all lines', () => sink.conns[0]!.bytes >= 7 + text.length);
    const received = Buffer.concat(sink.conns[0]!.chunks.map((c) => c.data)).toString();
    expect(received).toBe('hello\r\n' + text);
    const lastArrival = sink.conns[0]!.chunks.at(-1)!.at;
    expect(lastArrival - sentAt.at(-1)!).toBeGreaterThanOrEqual(DELAY - 2);
  });

  it('delays both directions independently: an echo round trip takes at least both delays', async () => {
    const sink = await startSink({ echo: true });
    const relay = await relayTo(sink.port, 'delay=200ms', 'delay=150ms');
    const client = await connect(relay.port);
    const t0 = performance.now();
    client.write('ping');
    await once(client, 'data');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(350 - 2);
  });
});

describe('relay: throttle', () => {
  it('256 KiB at 128 KiB/s takes well over a second and arrives byte-exact', async () => {
    const sink = await startSink();
    const relay = await relayTo(sink.port, 'throttle=128KiB/s');
    const client = await connect(relay.port);
    const report = nextReport(relay);
    const t0 = performance.now();
    const hash = await push(client, 256 * KiB);
    client.end();
    await waitFor('the sink to see the end', () => sink.conns[0]?.ended === true);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(1500);
    expect(sink.conns[0]!.bytes).toBe(256 * KiB);
    expect(sink.conns[0]!.hash.digest('hex')).toBe(hash);
    expect((await report).c2sBytes).toBe(256 * KiB);
  });
});

describe('relay: failures and cleanup', () => {
  it('resets the client and reports the failure when the target refuses', async () => {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const deadPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));

    const relay = await relayTo(deadPort);
    const report = nextReport(relay);
    const client = net.connect({ host: '127.0.0.1', port: relay.port });
    cleanups.push(() => client.destroy());
    const err = await new Promise<NodeJS.ErrnoException | undefined>((resolve) => {
      client.once('error', resolve);
      client.once('close', () => resolve(undefined));
    });
    expect(err?.code).toBe('ECONNRESET');
    const r = await report;
    expect(r.endedBy).toBe('connect-failed');
    expect(r.error).toMatch(/ECONNREFUSED/);
    expect(r.c2sBytes).toBe(0);
  });

  it('reports EADDRINUSE when the listen address is taken', async () => {
    const sink = await startSink();
    await expect(startRelay({ listenPort: sink.port, targetHost: '127.0.0.1', targetPort: sink.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
  });

  it('rejects impossible faults given as objects', async () => {
    await expect(startRelay({ targetHost: '127.0.0.1', targetPort: 25, clientToServer: { kind: 'blackhole-after', bytes: -1 } })).rejects.toThrow(/whole number of bytes/);
    await expect(startRelay({ targetHost: '127.0.0.1', targetPort: 0 })).rejects.toThrow(/targetPort/);
  });

  it('close() destroys every socket and timer, even mid-delay and frozen', async () => {
    const counts = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout').length;
    const baseline = counts();

    const sink = await startSink({ echo: true });
    const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: sink.port, clientToServer: parseFault('delay=30s'), serverToClient: parseFault('freeze-after=0') });
    const reports: ConnectionReport[] = [];
    relay.on('connection', (r) => reports.push(r));
    const clients = await Promise.all([connect(relay.port), connect(relay.port), connect(relay.port)]);
    for (const c of clients) c.write(randomBytes(10 * KiB)); // sits in the 30 s delay queue (a live timer)
    await waitFor('three upstream connections', () => sink.conns.length === 3);
    expect(relay.stats().active).toBe(3);
    expect(counts()).toBeGreaterThan(baseline);

    await relay.close();
    expect(relay.stats().active).toBe(0);
    expect(reports.map((r) => r.endedBy)).toEqual(['relay-closed', 'relay-closed', 'relay-closed']);
    expect(reports.every((r) => r.clientToServer.droppedBytes === 10 * KiB)).toBe(true);
    await relay.close(); // idempotent

    // what remains is ours: the clients (whose peer the relay closed), the sink and its connections
    await Promise.all(clients.map((c) => (c.readableEnded || c.destroyed ? undefined : Promise.race([once(c, 'end'), once(c, 'close')]))));
    while (cleanups.length) await cleanups.pop()!();
    await waitFor('handles back to baseline', () => counts() <= baseline, 5000);
  });
});

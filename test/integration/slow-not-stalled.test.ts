/**
 * "Slow is not stalled" (DESIGN.md): throttled transfers, a server that answers late, a handshake that trickles
 * are measurements of a healthy-but-slow thing and must never be called stalled. And the three stalls that are
 * real are told apart: no-ack, window-closed, no-reply. Real sockets on 127.0.0.1, the lab relay, the sink.
 *
 * Nothing here depends on the machine being quiet: the windows are several times the longest gap the slow
 * thing leaves (a 64 KiB window update every ~2 s at 32 KiB/s), and the assertions are about outcomes.
 */
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import { DEFAULT_TIMEOUTS, type ProbeResult } from '../../src/model.js';
import { probe } from '../../src/probe/index.js';
import { startRelay } from '../../src/lab/relay.js';
import { startSink } from '../../src/sink/index.js';
import { tcpInfoAvailable } from '../../src/probe/tcpinfo.js';
import { scriptedSmtp, spec, startRawServer } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

const KiB = 1024;
const kernel = await tcpInfoAvailable();
if (!kernel.ok) console.warn(`slow-not-stalled tests skipped: ${kernel.reason}`);

const summary = (rs: ProbeResult[]) => rs.filter((r) => r.outcome !== 'delivered').map((r) => `${r.outcome}@${r.stage} ${r.stallKind ?? ''}: ${r.error?.message}`);

describe.skipIf(!kernel.ok)('slow is not stalled', () => {
  // A receiver that reads slowly keeps its window shut until a good part of its buffer is free (receiver-side
  // silly-window avoidance; the relay's buffer autotunes to megabytes while it reads its first burst fast): the
  // network moves nothing for 4–12 s at a time, and the receiver's TCP answers every window probe meanwhile. A far
  // end that answers but holds up gets the no-reply window, so these run with the default windows (10 s / 100 s).
  // Each size takes ~32 s at its rate: our own socket is quiet far longer than the stall window (the old rule).
  test.concurrent.each([
    [32, 1024],
    [64, 2048],
    [128, 4096],
  ])('30 probes through a %d KiB/s throttle (%d KiB each), default windows: all delivered, none stalled', async (rate, sizeKiB) => {
    const sink = await startSink();
    const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: sink.port, clientToServer: { kind: 'throttle', bytesPerSec: rate * KiB } });
    try {
      // the message goes into the kernel's send buffer at once: our own socket then sees nothing for 8–30 s
      // (the old rule's false stall), while the kernel's bytes_acked rises at the throttle's rate
      const rs = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          probe(spec(relay.port, { sizeBytes: sizeKiB * KiB, seed: i, timeouts: { ...DEFAULT_TIMEOUTS } })),
        ),
      );
      expect(summary(rs)).toEqual([]);
      // and they were slow: the throttle held every probe to about its rate (the relay buffers ~0.8 MB up front)
      for (const r of rs) expect(r.durationMs).toBeGreaterThan(((sizeKiB - 900) / rate) * 1000 * 0.8);
    } finally {
      await relay.close();
      await sink.close();
    }
  }, 120_000);

  test('a slow body past its deadline ends timeout with the rate the peer acknowledged, not stalled', async () => {
    const sink = await startSink();
    const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: sink.port, clientToServer: { kind: 'throttle', bytesPerSec: 32 * KiB } });
    try {
      const r = await probe(spec(relay.port, { sizeBytes: 8192 * KiB, timeouts: { stallMs: 8000, noReplyMs: DEFAULT_TIMEOUTS.noReplyMs, bodyMs: 12_000 } }));
      expect(r.outcome).toBe('timeout');
      expect(r.stage).toBe('body');
      expect(r.progressFrom).toBe('kernel');
      expect(r.ackedBytesPerSec).toBeGreaterThan(8 * KiB);
      expect(r.ackedBytesPerSec).toBeLessThan(32 * KiB * 4);
      expect(r.error?.message).toMatch(/slow, not stalled/);
      expect(r.stallKind).toBeUndefined();
    } finally {
      await relay.close();
      await sink.close();
    }
  }, 30_000);

  test('a deadline that catches a silent server first is not called slow: nothing moved, said so', async () => {
    const silentRcpt = await startRawServer((s) => {
      s.write('220 hi\r\n');
      s.on('data', (d: Buffer) => {
        const line = d.toString('latin1');
        if (/^EHLO/i.test(line)) s.write('250 ok\r\n');
        else if (/^MAIL/i.test(line)) s.write('250 ok\r\n');
        // RCPT: never answered
      });
    });
    try {
      const r = await probe(spec(silentRcpt.port, { timeouts: { stallMs: 1000, noReplyMs: DEFAULT_TIMEOUTS.noReplyMs, commandMs: 2500 } }));
      expect(r.outcome).toBe('timeout');
      expect(r.stage).toBe('rcpt');
      expect(r.ackedBytesPerSec).toBeUndefined();
      expect(r.error?.message).not.toMatch(/slow, not stalled/);
      expect(r.error?.message).toMatch(/no reply came: a silent server/);
    } finally {
      await silentRcpt.close();
    }
  }, 30_000);

  test('a final reply after 12 s is delivered with the default windows', async () => {
    const sink = await startSink({ delaysMs: { dataAck: 12_000 } });
    try {
      const r = await probe(spec(sink.port, { sizeBytes: 64 * KiB, timeouts: { ...DEFAULT_TIMEOUTS } }));
      expect(r.outcome).toBe('delivered');
      expect(r.stages.dataAck).toBeGreaterThanOrEqual(11_900);
    } finally {
      await sink.close();
    }
  }, 40_000);

  test('the same server with a 2 s no-reply window: stalled, no-reply at dataAck, everything acknowledged', async () => {
    const sink = await startSink({ delaysMs: { dataAck: 12_000 } });
    try {
      const r = await probe(spec(sink.port, { sizeBytes: 64 * KiB, timeouts: { stallMs: 1000, noReplyMs: 2000 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('dataAck');
      expect(r.stallKind).toBe('no-reply');
      expect(r.progressFrom).toBe('kernel');
      expect(r.stages.dataAck).toBeGreaterThanOrEqual(1900);
      expect(r.stages.dataAck).toBeLessThan(11_000);
      expect(r.tcp?.unacked ?? 0).toBe(0);
      expect(r.error?.message).toMatch(/took the data and went silent/);
    } finally {
      await sink.close();
    }
  }, 30_000);

  test('a 5 s final reply with a 3 s stall window and the default no-reply window: delivered', async () => {
    const sink = await startSink({ delaysMs: { dataAck: 5000 } });
    try {
      const r = await probe(spec(sink.port, { sizeBytes: 16 * KiB, timeouts: { stallMs: 3000, noReplyMs: DEFAULT_TIMEOUTS.noReplyMs } }));
      expect(r.outcome).toBe('delivered');
    } finally {
      await sink.close();
    }
  }, 30_000);

  test('a TLS handshake whose bytes trickle in (a piece every 0.8 s, 2 s windows) is not a stall', async () => {
    const { key, cert } = selfSigned();
    const sink = await startSink({ tls: { key, cert, implicit: true } });
    const trickle = await startTrickleProxy(sink.port, 200, 800);
    try {
      const r = await probe(
        spec(trickle.port, { target: { host: '127.0.0.1', port: trickle.port, tls: 'implicit' }, insecure: true, timeouts: { stallMs: 2000, noReplyMs: 2000 } }),
      );
      expect(summary([r])).toEqual([]);
      expect(r.stages.tls).toBeGreaterThan(2500); // the handshake alone outlasted both windows
    } finally {
      await trickle.close();
      await sink.close();
    }
  }, 60_000);
});

describe.skipIf(!kernel.ok)('the three stalls, told apart', () => {
  test('a receiver that stops reading: window-closed in body, the connection reset afterwards', async () => {
    const srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => { s.write('354 go\r\n'); s.pause(); } }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 64 * 1024 * KiB, timeouts: { stallMs: 1500 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stallKind).toBe('window-closed');
      expect(r.stage).toBe('body');
      expect(r.tcp?.sndWnd).toBeLessThan(r.tcp?.mss ?? 1448);
      expect(r.tcp?.retrans ?? 0).toBe(0);
      expect(r.error?.message).toMatch(/window-closed/);
      // aborted with RST: the kernel holds nothing for the broken peer (no FIN-WAIT-1 feeding it for minutes)
      const left = spawnSync('ss', ['-tnH', 'state', 'all', 'sport', '=', `:${r.localPort}`], { encoding: 'utf8' }).stdout.trim();
      expect(left).toBe('');
    } finally {
      await srv.close();
    }
  }, 30_000);

  test('no greeting: no-reply in greeting, a silent server, with the implicit-TLS hint', async () => {
    const srv = await startRawServer(() => undefined);
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 500, noReplyMs: 800 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('greeting');
      expect(r.stallKind).toBe('no-reply');
      expect(r.error?.message).toMatch(/silent server, not a network stall/);
      expect(r.error?.message).toMatch(/--tls implicit/);
      expect(r.stages.greeting).toBeGreaterThanOrEqual(750);
    } finally {
      await srv.close();
    }
  });

  test('an implicit-TLS server probed in plain: no-reply in greeting, not a network stall', async () => {
    const { key, cert } = selfSigned();
    const sink = await startSink({ tls: { key, cert, implicit: true } });
    try {
      const r = await probe(spec(sink.port, { timeouts: { stallMs: 500, noReplyMs: 1000 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stallKind).toBe('no-reply');
      expect(r.stage).toBe('greeting');
      expect(r.error?.message).toMatch(/try --tls implicit/);
    } finally {
      await sink.close();
    }
  });

  test('greeting, then silence after EHLO: no-reply at ehlo (the command was acknowledged)', async () => {
    const srv = await startRawServer((s) => s.write('220 hi\r\n'));
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 400, noReplyMs: 600 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('ehlo');
      expect(r.stallKind).toBe('no-reply');
    } finally {
      await srv.close();
    }
  });
});

/**
 * A TCP proxy that forwards the client's bytes at once and the server's in pieces of `piece` bytes, one every
 * `everyMs`: a handshake whose bytes trickle in.
 */
async function startTrickleProxy(targetPort: number, piece: number, everyMs: number) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect(targetPort, '127.0.0.1');
    sockets.add(c).add(up);
    let queue = Buffer.alloc(0);
    const timer = setInterval(() => {
      if (!queue.length || c.destroyed) return;
      c.write(queue.subarray(0, piece));
      queue = queue.subarray(piece);
    }, everyMs);
    up.on('data', (d: Buffer) => (queue = Buffer.concat([queue, d])));
    c.pipe(up);
    const end = () => {
      clearInterval(timer);
      c.destroy();
      up.destroy();
    };
    for (const s of [c, up]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}


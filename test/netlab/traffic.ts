/**
 * Tiny traffic tools for the kernel lab: a byte-counting TCP server to run in `srv` and a sending client to run
 * in `cli`, both plain `node -e` scripts (nothing to build), talking JSON lines on stdout.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { SocketTuple } from '../../src/probe/tcpinfo.js';
import type { Topology } from './topology.js';

/** Counts bytes per connection; prints `{event:'count', id, remote, received, closed}` (≤ every 50 ms while data flows). On the client's FIN it replies `{"received":n}` and closes. */
const SERVER_JS = String.raw`
const net = require('net');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const [host, port] = [process.argv[1], Number(process.argv[2] || 0)];
let next = 0;
const conns = new Map();
const flush = (c) => { c.dirty = false; out({ event: 'count', id: c.id, remote: c.remote, remotePort: c.remotePort, received: c.received, closed: c.closed }); };
const srv = net.createServer((s) => {
  const c = { id: ++next, remote: s.remoteAddress, remotePort: s.remotePort, received: 0, closed: false, dirty: true };
  conns.set(c.id, c);
  s.on('data', (d) => { c.received += d.length; c.dirty = true; });
  s.on('end', () => { s.end(JSON.stringify({ received: c.received }) + '\n'); });
  s.on('error', () => {});
  s.on('close', () => { c.closed = true; flush(c); conns.delete(c.id); });
});
setInterval(() => { for (const c of conns.values()) if (c.dirty) flush(c); }, 50);
srv.listen(port, host, () => out({ event: 'listening', port: srv.address().port }));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** Connects from a source address, writes N bytes, half-closes, waits for the server's count. */
const CLIENT_JS = String.raw`
const net = require('net');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const [src, host, port, total, stallMs, delayMs] = [process.argv[1], process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6] || 0)];
const t0 = Date.now();
let last = Date.now(), written = 0, reply = '', stalled = false;
const s = net.connect({ host, port, localAddress: src });
const chunk = Buffer.alloc(65536, 88);
function pump() {
  while (written < total) {
    const n = Math.min(chunk.length, total - written);
    written += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n), () => { last = Date.now(); })) { s.once('drain', () => { last = Date.now(); pump(); }); return; }
  }
  s.end();
}
s.on('connect', () => {
  last = Date.now();
  out({ event: 'connected', localAddress: s.localAddress, localPort: s.localPort, remoteAddress: s.remoteAddress, remotePort: s.remotePort });
  setTimeout(() => { last = Date.now(); pump(); }, delayMs);
});
s.on('data', (d) => { last = Date.now(); reply += d; });
s.on('end', () => { out({ event: 'done', written, reply: JSON.parse(reply), ms: Date.now() - t0 }); s.destroy(); process.exit(0); });
s.on('error', (e) => { out({ event: 'error', code: e.code, message: e.message, written }); process.exit(0); });
const timer = setInterval(() => {
  if (!stalled && Date.now() - last >= stallMs) {
    stalled = true;
    clearInterval(timer);
    out({ event: 'stalled', written, kernelWritten: s.bytesWritten - s.writableLength, ms: Date.now() - t0 });
  }
}, 50);
// the parent closes stdin when it has looked at the stalled socket
process.stdin.on('end', () => { s.destroy(); process.exit(0); });
process.stdin.resume();
`;

/** Read JSON lines from a child's stdout; `next(pred)` resolves with the first matching line from now on (or already seen, if `seen`). */
function jsonLines(child: ChildProcess) {
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }> = [];
  let stderr = '';
  child.stderr?.on('data', (d) => (stderr += String(d)));
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(text) as Record<string, unknown>;
    } catch {
      return;
    }
    lines.push(l);
    for (const w of [...waiters]) {
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
    }
  });
  return {
    lines,
    stderr: () => stderr,
    next(pred: (l: Record<string, unknown>) => boolean, timeoutMs = 30_000): Promise<Record<string, unknown>> {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching line within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        const onExit = () => reject(new Error(`process exited before a matching line; stderr: ${stderr}`));
        child.once('close', onExit);
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer);
            child.removeListener('close', onExit);
            resolve(l);
          },
        });
      });
    },
  };
}

export interface ByteCounter {
  port: number;
  /** Latest byte count the server saw from a client port. */
  received(clientPort: number): number | undefined;
  /** Wait for the count of a client port to be reported closed (the client finished). */
  waitClosed(clientPort: number, timeoutMs?: number): Promise<number>;
  /** Every connection seen: client address and port → latest count. */
  connections(): Array<{ remote: string; remotePort: number; received: number; closed: boolean }>;
  stop(): void;
}

/** Start the byte-counting server in `srv` on the server address. */
export async function startByteCounter(topo: Topology): Promise<ByteCounter> {
  const child = topo.spawn('srv', process.execPath, ['-e', SERVER_JS, topo.addrs.server, '0']);
  const io = jsonLines(child);
  const { port } = (await io.next((l) => l['event'] === 'listening', 15_000)) as { port: number };
  const latest = (clientPort: number) =>
    [...io.lines].reverse().find((l) => l['event'] === 'count' && l['remotePort'] === clientPort) as
      | { received: number; closed: boolean }
      | undefined;
  return {
    port,
    received: (p) => latest(p)?.received,
    waitClosed: async (p, timeoutMs = 30_000) =>
      ((await io.next((l) => l['event'] === 'count' && l['remotePort'] === p && l['closed'] === true, timeoutMs)) as { received: number }).received,
    connections: () => {
      const m = new Map<number, { remote: string; remotePort: number; received: number; closed: boolean }>();
      for (const l of io.lines) if (l['event'] === 'count') m.set(l['remotePort'] as number, l as never);
      return [...m.values()];
    },
    stop: () => child.stdin?.end(),
  };
}

export type SendOutcome =
  | { event: 'done'; written: number; reply: { received: number }; ms: number }
  | { event: 'stalled'; written: number; kernelWritten: number; ms: number }
  | { event: 'error'; code: string; message: string; written: number };

export interface Sender {
  /** The client socket's 4-tuple, once connected. */
  connected: Promise<SocketTuple>;
  /** How it ended: the server's count (done), no progress for `stallMs` (stalled; socket still open), or an error. */
  outcome: Promise<SendOutcome>;
  /** Close a stalled client (it holds its socket open until then, so the kernel state can be inspected). */
  release(): void;
}

/**
 * Send `bytes` from `source` (a cli address) to the server; "stalled" after `stallMs` without progress.
 * `delayMs` keeps the connection idle (and open) that long after the handshake before writing.
 */
export function sendBytes(topo: Topology, server: ByteCounter, source: string, bytes: number, stallMs = 3000, delayMs = 0): Sender {
  const child = topo.spawn('cli', process.execPath, ['-e', CLIENT_JS, source, topo.addrs.server, String(server.port), String(bytes), String(stallMs), String(delayMs)]);
  const io = jsonLines(child);
  const timeout = 60_000 + stallMs;
  return {
    connected: io.next((l) => l['event'] === 'connected', timeout) as unknown as Promise<SocketTuple>,
    outcome: io.next((l) => l['event'] === 'done' || l['event'] === 'stalled' || l['event'] === 'error', timeout) as unknown as Promise<SendOutcome>,
    release: () => child.stdin?.end(),
  };
}

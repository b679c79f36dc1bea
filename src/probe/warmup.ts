/**
 * Warm-up before the first mark (issue 19): the first probe of a process used to measure Node's and our own first
 * run of the code (lazy compilation, first allocations, inline caches) inside its stages — `connect` read 4–5 ms
 * where the SYN → SYN-ACK took 0.02 ms, and every later stage of the first probe a little too. Once per process,
 * before the first probe starts its clock, two things run at once:
 *
 * - a throwaway probe (connect, greeting, EHLO, MAIL, RCPT, DATA, body, final dot, QUIT) through the real engine
 *   against a minimal SMTP server of our own, over an in-memory socket pair: our code and Node's stream code;
 * - one TCP connection on 127.0.0.1 that is connected to itself (bound to port P, connected to port P: TCP's
 *   simultaneous open), which writes a few lines, reads them back and resets: Node's socket code (connect,
 *   getsockname/getpeername, writes with and without cork, reads).
 *
 * Together they warm what the first real probe runs (bench/fidelity.mjs, FIDELITY_CLI=1) without a listener, which
 * a one-off `mxprobe probe` paid for (issue 16): Node has no listener without its `cluster` module (and with it
 * child_process and dgram), and the server side of such a connection is code no probe runs.
 *
 * Bounded (WARM_UP_MAX_MS) and silent: where no loopback connection can be made (no `lo` in a network namespace, no
 * descriptor left, the port taken) that half gives up and the first probe is measured as before.
 */
import net from 'node:net';
import { Duplex } from 'node:stream';
import { clockMs } from '../clock.js';
import type { OpenOptions } from './egress.js';

export const WARM_UP_MAX_MS = 500;

/** How a transaction gets its connection (egress.ts's openEgress, or the warm-up's in-memory one). */
export type SocketOpener = (o: OpenOptions) => Promise<net.Socket>;

/** What the warm-up did (for tests and diagnostics): the throwaway probe's outcome, whether the self-connection ran. */
export interface WarmUpReport {
  probe: string;
  selfConnected: boolean;
  ms: number;
}

let warm: Promise<WarmUpReport> | undefined;

/**
 * Run the warm-up once per process (later calls share the first); never rejects, resolves within WARM_UP_MAX_MS
 * (and a little: an aborted throwaway probe ends in a turn of the loop).
 */
export function warmUp(probeOnce: WarmUpProbe): Promise<WarmUpReport> {
  warm ??= runWarmUp(probeOnce);
  return warm;
}

/** The throwaway probe: over the connections `open` makes, ended by `signal`. */
export type WarmUpProbe = (open: SocketOpener, signal: AbortSignal) => Promise<{ outcome: string }>;

/**
 * One warm-up: `probeOnce` over in-memory connections to `server`, and the self-connected exchange beside it. At
 * `boundMs` the throwaway probe is aborted and the socket destroyed: nothing of the warm-up runs beside a real probe.
 */
export function runWarmUp(probeOnce: WarmUpProbe, o: { boundMs?: number; server?: (s: Duplex) => void } = {}): Promise<WarmUpReport> {
  const t0 = clockMs();
  const bound = new AbortController();
  const timer = setTimeout(() => bound.abort(), o.boundMs ?? WARM_UP_MAX_MS);
  timer.unref();
  const thrown = Promise.resolve(undefined).then(() => probeOnce(memoryOpener(o.server ?? minimalSmtpSession), bound.signal)).then(
    (r) => r.outcome,
    (e: Error) => (bound.signal.aborted ? 'aborted' : `error: ${e.message}`),
  );
  return Promise.all([thrown, selfConnected(undefined, bound.signal)]).then(async ([outcome, self]) => {
    clearTimeout(timer);
    // two more turns of the loop: what the warm-up leaves queued (its sockets' close callbacks, the in-memory pair's
    // last deliveries) runs now, not inside the first probe's `connect` (bench/fidelity.mjs: 0.5 → 0.25 ms p50)
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    return { probe: outcome, selfConnected: self, ms: clockMs() - t0 };
  });
}

/** The reply a minimal SMTP server gives to one command line (outside DATA). */
export function warmReply(line: string): string {
  const verb = line.slice(0, 4).toUpperCase();
  if (verb === 'EHLO' || verb === 'HELO') return '250-warm-up\r\n250 PIPELINING\r\n';
  if (verb === 'DATA') return '354 go ahead\r\n';
  if (verb === 'QUIT') return '221 bye\r\n';
  return '250 ok\r\n';
}

/**
 * One SMTP session of a minimal server (the warm-up's; bench/inflight.mjs's receiver; the build's code-cache run):
 * a reply per command line, the message up to its final dot, 221 to QUIT and close.
 */
export function minimalSmtpSession(s: Duplex): void {
  let buf = '';
  let inData = false;
  s.on('error', () => undefined);
  s.write('220 warm-up\r\n');
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (;;) {
      const end = inData ? buf.indexOf('\r\n.\r\n') : buf.indexOf('\r\n');
      if (end < 0) return;
      const line = buf.slice(0, end);
      buf = buf.slice(end + (inData ? 5 : 2));
      const reply = inData ? '250 queued\r\n' : warmReply(line);
      inData = !inData && reply.startsWith('354');
      if (reply.startsWith('221')) s.end(reply);
      else s.write(reply);
    }
  });
}

/**
 * One end of an in-memory connection. What is written to it arrives at the other end in a later turn of the event
 * loop (setImmediate), as bytes from a socket would, never inside the writer's own call. It has the few socket
 * properties a transaction reads; it is a Duplex, not a net.Socket, and is handed to the engine only in the
 * warm-up.
 */
export class MemorySocket extends Duplex {
  peer: MemorySocket | undefined;
  readonly localAddress = '127.0.0.1';
  readonly remoteAddress = '127.0.0.1';
  readonly localPort = 0;
  readonly remotePort = 0;

  override _read(): void {
    // data is pushed by the peer's writes
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.deliver(chunk);
    cb();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.deliver(Buffer.concat(chunks.map((c) => c.chunk)));
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    setImmediate(() => this.peer?.push(null));
    cb();
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    const peer = this.peer;
    setImmediate(() => {
      if (peer && !peer.destroyed) peer.push(null);
    });
    cb(err);
  }
  setNoDelay(): this {
    return this;
  }
  resetAndDestroy(): this {
    return this.destroy();
  }
  private deliver(chunk: Buffer): void {
    const peer = this.peer;
    setImmediate(() => {
      if (peer && !peer.destroyed) peer.push(chunk);
    });
  }
}

/** Two connected MemorySockets: [client, server]. */
export function memoryPair(): [MemorySocket, MemorySocket] {
  const a = new MemorySocket();
  const b = new MemorySocket();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * An opener whose connections go to `server` in memory, in the order openEgress keeps: `onSocket` before the
 * connection is asked for, 'connect' a turn later, then the promise.
 */
export function memoryOpener(server: (s: Duplex) => void): SocketOpener {
  return (o) => {
    const [client, end] = memoryPair();
    o.onSocket(client as unknown as net.Socket);
    return new Promise((resolve) => {
      setImmediate(() => {
        server(end);
        client.emit('connect');
        resolve(client as unknown as net.Socket);
      });
    });
  };
}

/** Ports for the self-connected socket: the usual ephemeral range, where the kernel puts client connections. */
const SELF_PORT_FIRST = 32768;
const SELF_PORT_COUNT = 28232;

/**
 * The self-connected exchange: resolves true when the lines came back, false when no such connection could be made
 * (the port in use, no loopback), something else answered, or `signal` ended it first. Never rejects.
 *
 * It first sends a random line alone and goes on only when exactly that line comes back: a connection that is not
 * our own (a transparent redirect on the way to 127.0.0.1, which getpeername would not show) gets that line and
 * nothing else. It ends with a reset, not a FIN: no TIME_WAIT is left on the port.
 */
export function selfConnected(port = SELF_PORT_FIRST + Math.floor(Math.random() * SELF_PORT_COUNT), signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const nonce = `warm-up ${Math.random().toString(36).slice(2)}\r\n`;
    // then what a probe writes: a line as a string, a message as Buffers written under cork; each with a callback
    const line = 'warm-up line\r\n';
    const body = [Buffer.from('warm-up body 1\r\n'), Buffer.from('warm-up body 2\r\n')];
    const rest = line.length + body.reduce((n, b) => n + b.length, 0);
    let got = '';
    let ok = false;
    const s = new net.Socket();
    const end = (): void => void s.resetAndDestroy();
    const until = signal ?? AbortSignal.timeout(WARM_UP_MAX_MS);
    if (until.aborted) return resolve(false);
    until.addEventListener('abort', end, { once: true });
    s.setNoDelay(true);
    s.on('error', () => undefined);
    s.on('close', () => {
      until.removeEventListener('abort', end);
      resolve(ok);
    });
    s.connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort: port }, () => {
      // getsockname/getpeername, as a probe reads them
      if (s.localAddress !== s.remoteAddress || s.localPort !== s.remotePort) return end(); // never anyone else
      // listeners attached after the connection, then resume(): as a transaction attaches to its socket
      s.on('data', (d: Buffer) => {
        got += d.toString('latin1');
        if (got.length < nonce.length) return;
        if (!got.startsWith(nonce)) return end(); // not our own bytes coming back: say nothing more
        if (got.length === nonce.length) {
          s.write(line, () => undefined);
          s.cork();
          for (const b of body) s.write(b, () => undefined);
          s.uncork();
          return;
        }
        if (got.length < nonce.length + rest) return;
        ok = got.length === nonce.length + rest;
        end();
      });
      s.resume();
      s.write(nonce);
    });
  });
}

/**
 * A fault-injecting TCP relay: listens on 127.0.0.1, forwards every accepted connection to a target, and injects
 * one fault per direction (client→server and server→client independently). It stands in for the middleboxes of
 * the two incidents (DESIGN.md): `blackhole-after` is the load balancer that dropped DATA segments (the sender's
 * writes succeed, nothing more arrives); `freeze-after` is the window-scaling family (the receiver stops reading,
 * the sender's window closes and its writes stop draining).
 *
 * Byte counts are per connection and per direction, and exact: a chunk that crosses a limit is split so exactly
 * `bytes` pass. Backpressure is honoured in every mode (the source is paused while the destination cannot take
 * more), so memory stays bounded however much is pushed through.
 *
 * Nothing here prints; connection and fault events are emitted for the CLI (or a test) to log.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { type FaultSpec, formatFault } from './fault.js';
import { clockMs } from '../clock.js';

export { type FaultSpec, type FaultKind, type LimitFaultKind, FAULT_FORMS, LIMIT_FAULTS, faultFormsText, formatFault, parseFault } from './fault.js';

export interface RelayOptions {
  /** Address to listen on (default `127.0.0.1`). */
  listenHost?: string;
  /** Port to listen on (default 0: any free port; read it back from `relay.port`). */
  listenPort?: number;
  targetHost: string;
  targetPort: number;
  /** Fault on bytes the client sends towards the target (default none). */
  clientToServer?: FaultSpec;
  /** Fault on bytes the target sends back to the client (default none). */
  serverToClient?: FaultSpec;
  /** Give up connecting to the target after this many ms (default 10000); the client is then reset. */
  connectTimeoutMs?: number;
}

export interface RelayStats {
  /** Connections accepted since start. */
  connections: number;
  /** Connections currently open. */
  active: number;
  /** Bytes written towards targets, all connections. */
  bytesClientToServer: number;
  /** Bytes written back to clients, all connections. */
  bytesServerToClient: number;
}

export type Direction = 'clientToServer' | 'serverToClient';

/**
 * What ended a connection (the first thing that did):
 * `client-closed` / `server-closed`: that side sent FIN first and the connection then wound down;
 * `client-reset` / `server-reset`: that side reset the connection (ECONNRESET); `client-error` / `server-error`:
 * another socket error on that side (see `error`); `fault-reset` / `fault-closed`: a `reset-after` / `close-after`
 * fault acted; `connect-failed`: the target could not be reached (the client was reset); `relay-closed`: `close()`.
 */
export type EndedBy =
  | 'client-closed'
  | 'server-closed'
  | 'client-reset'
  | 'server-reset'
  | 'client-error'
  | 'server-error'
  | 'fault-reset'
  | 'fault-closed'
  | 'connect-failed'
  | 'relay-closed';

export interface DirectionReport {
  fault: FaultSpec;
  /** Bytes written to the destination. */
  forwardedBytes: number;
  /** Bytes read from the source and thrown away (blackholed, or arriving after a reset/close fault acted). */
  droppedBytes: number;
  /** `freeze-after`: bytes that reached the relay past the limit before it stopped reading; never forwarded. */
  heldBytes: number;
  /** ms after the connection was accepted when a `*-after` fault acted; absent if it never did. */
  triggeredAtMs?: number;
}

export interface ConnectionReport {
  id: number;
  /** The client's address, `127.0.0.1:54321`. */
  client: string;
  /** Wall-clock time the connection was accepted, ISO 8601. */
  startedAt: string;
  durationMs: number;
  /** Bytes forwarded client→server (same as `clientToServer.forwardedBytes`). */
  c2sBytes: number;
  /** Bytes forwarded server→client (same as `serverToClient.forwardedBytes`). */
  s2cBytes: number;
  clientToServer: DirectionReport;
  serverToClient: DirectionReport;
  endedBy: EndedBy;
  /** The socket error or connect failure, when there was one. */
  error?: string;
}

export interface OpenEvent {
  id: number;
  client: string;
}

export interface FaultEvent {
  id: number;
  direction: Direction;
  fault: FaultSpec;
  /** Bytes forwarded in that direction when the fault acted (equals the fault's `bytes`). */
  afterBytes: number;
  /** ms after the connection was accepted. */
  atMs: number;
}

export interface RelayEvents {
  /** A client connected and the relay reached the target (emitted once the upstream connection is up). */
  open: [info: OpenEvent];
  /** A `*-after` fault acted on a connection. */
  fault: [info: FaultEvent];
  /** A connection ended; everything it did. */
  connection: [report: ConnectionReport];
  /** A listening-socket error after startup (rare: e.g. EMFILE on accept). The relay keeps running. */
  warning: [error: Error];
}

export interface Relay {
  readonly host: string;
  readonly port: number;
  readonly targetHost: string;
  readonly targetPort: number;
  stats(): RelayStats;
  /** The faults new connections get. */
  faults(): { clientToServer: FaultSpec; serverToClient: FaultSpec };
  /**
   * Change the faults for connections accepted from now on (open connections keep theirs).
   * An omitted argument leaves that direction as it is.
   */
  setFaults(c2s?: FaultSpec, s2c?: FaultSpec): void;
  /** Stop listening, destroy every socket and timer; resolves when all are closed. Idempotent. */
  close(): Promise<void>;
  on<K extends keyof RelayEvents>(event: K, listener: (...args: RelayEvents[K]) => void): this;
  once<K extends keyof RelayEvents>(event: K, listener: (...args: RelayEvents[K]) => void): this;
  off<K extends keyof RelayEvents>(event: K, listener: (...args: RelayEvents[K]) => void): this;
}

const NONE: FaultSpec = { kind: 'none' };
/** The end of an SMTP message: where `cut-after` resumes forwarding. */
const END_OF_DATA = Buffer.from('\r\n.\r\n');
/**
 * reset-after / close-after wait until the last forwarded byte is handed to the kernel before acting, so the
 * peer gets exactly `bytes`; if the destination is not reading at all, they act anyway after this long.
 */
const FLUSH_GRACE_MS = 2000;
/** Bytes a delay queue may hold before the source is paused. */
const DELAY_QUEUE_MAX = 8 * 1024 * 1024;

function validateFault(f: FaultSpec, label: string): FaultSpec {
  switch (f.kind) {
    case 'none':
      return f;
    case 'delay':
      if (!(f.ms >= 0) || !Number.isFinite(f.ms)) throw new RangeError(`${label}: delay must be a finite number of ms >= 0, got ${f.ms}`);
      return f;
    case 'throttle':
      if (!(f.bytesPerSec > 0) || !Number.isFinite(f.bytesPerSec)) throw new RangeError(`${label}: throttle needs bytesPerSec > 0, got ${f.bytesPerSec}`);
      return f;
    case 'blackhole-after':
    case 'freeze-after':
    case 'reset-after':
    case 'close-after':
    case 'cut-after':
      if (!Number.isSafeInteger(f.bytes) || f.bytes < 0) throw new RangeError(`${label}: ${f.kind} needs a whole number of bytes >= 0, got ${f.bytes}`);
      return f;
    default:
      throw new RangeError(`${label}: unknown fault ${JSON.stringify(f)}`);
  }
}

/** One direction of one connection: reads `src`, applies the fault, writes `dst`. */
class Pipe {
  readonly report: DirectionReport;
  private queue: Buffer[] = [];
  /** delay: when each queued chunk may go (clockMs() ms). */
  private due: number[] = [];
  private queuedBytes = 0;
  /** Bytes admitted towards a `*-after` limit. */
  private admitted = 0;
  private triggered = false;
  /** Read and throw away everything from now on. */
  private discarding = false;
  /** `cut-after`: dropping until the end of the message (CRLF.CRLF); the last bytes dropped, to find it across chunks. */
  private cutting = false;
  private cutTail: Buffer = Buffer.alloc(0);
  private frozen = false;
  private srcEnded = false;
  private endDue = 0;
  private dstEnded = false;
  private waitingDrain = false;
  private outstandingWrites = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushTimer: NodeJS.Timeout | undefined;
  private tokens = 0;
  private lastRefill = 0;
  private readonly burst: number;
  private stopped = false;
  /** `finish()` was called: the FIN goes out after the queue whatever the fault did. */
  private finishing = false;
  /** Called once the queue has flushed after a reset-after / close-after limit. */
  private afterFlush: (() => void) | undefined;
  /** Called once `dst` has been ended by `finish()`. */
  private onEnded: (() => void) | undefined;

  constructor(
    private readonly conn: Connection,
    readonly direction: Direction,
    private readonly src: net.Socket,
    private readonly dst: net.Socket,
    readonly fault: FaultSpec,
  ) {
    this.report = { fault, forwardedBytes: 0, droppedBytes: 0, heldBytes: 0 };
    this.burst = fault.kind === 'throttle' ? Math.max(1, Math.ceil(fault.bytesPerSec / 20)) : 0;
    this.tokens = this.burst;
    this.lastRefill = clockMs();
  }

  start(): void {
    this.src.on('data', (chunk: Buffer) => this.onData(chunk));
    this.src.on('end', () => this.onSourceEnd());
    const f = this.fault;
    if ('bytes' in f && f.bytes === 0) {
      this.trigger(Buffer.alloc(0));
      this.pump();
    }
  }

  private onData(chunk: Buffer): void {
    if (this.stopped || this.discarding) {
      this.report.droppedBytes += chunk.length;
      return;
    }
    if (this.frozen) {
      // data already in flight when we paused
      this.report.heldBytes += chunk.length;
      return;
    }
    if (this.cutting) {
      this.cut(chunk);
      this.pump();
      return;
    }
    const f = this.fault;
    // cut-after acts once per connection: after the cut message's end, everything is forwarded (QUIT included)
    if ('bytes' in f && !(this.triggered && f.kind === 'cut-after')) {
      const room = f.bytes - this.admitted;
      const head = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (head.length > 0) {
        this.enqueue(head);
        this.admitted += head.length;
      }
      if (this.admitted >= f.bytes) this.trigger(chunk.subarray(head.length));
    } else {
      this.enqueue(chunk);
    }
    this.pump();
  }

  /** `cut-after`: drop until the message's final CRLF.CRLF, then forward it and everything after it. */
  private cut(chunk: Buffer): void {
    const buf = this.cutTail.length ? Buffer.concat([this.cutTail, chunk]) : chunk;
    const at = buf.indexOf(END_OF_DATA);
    if (at < 0) {
      this.report.droppedBytes += chunk.length;
      this.cutTail = Buffer.from(buf.subarray(Math.max(0, buf.length - END_OF_DATA.length + 1)));
      return;
    }
    this.cutting = false;
    this.report.droppedBytes += Math.max(0, at - this.cutTail.length);
    this.cutTail = Buffer.alloc(0);
    this.enqueue(buf.subarray(at));
  }

  private enqueue(chunk: Buffer): void {
    this.queue.push(chunk);
    this.queuedBytes += chunk.length;
    if (this.fault.kind === 'delay') this.due.push(clockMs() + this.fault.ms);
  }

  /** A `*-after` limit was reached; `rest` is what was read past it. */
  private trigger(rest: Buffer): void {
    if (this.triggered) return;
    this.triggered = true;
    const f = this.fault;
    if (!('bytes' in f)) return;
    this.report.triggeredAtMs = this.conn.elapsedMs();
    switch (f.kind) {
      case 'blackhole-after':
        // keep reading, forward nothing more: the sender's writes keep succeeding
        this.discarding = true;
        this.report.droppedBytes += rest.length;
        break;
      case 'freeze-after':
        // stop reading: our receive buffer fills, the sender's window closes
        this.frozen = true;
        this.report.heldBytes += rest.length;
        this.src.pause();
        break;
      case 'cut-after':
        this.cutting = true;
        if (rest.length) this.cut(rest);
        break;
      case 'reset-after':
      case 'close-after':
        this.discarding = true;
        this.report.droppedBytes += rest.length;
        if (f.kind === 'reset-after') this.src.pause();
        this.afterFlush = f.kind === 'reset-after' ? () => this.conn.faultReset() : () => this.conn.faultClose();
        this.flushTimer = setTimeout(() => this.runAfterFlush(), FLUSH_GRACE_MS);
        break;
    }
    this.conn.emitFault({ id: this.conn.id, direction: this.direction, fault: f, afterBytes: f.bytes, atMs: this.report.triggeredAtMs });
  }

  private onSourceEnd(): void {
    this.conn.sourceEnded(this.direction);
    // A FIN is teardown, not payload: it is still relayed after a blackhole (so connections wind down when a
    // peer gives up), but not after a reset/close fault has taken over.
    if (this.srcEnded) return;
    this.srcEnded = true;
    this.endDue = this.fault.kind === 'delay' ? clockMs() + this.fault.ms : 0;
    this.pump();
  }

  /** Flush what is queued, then end `dst` and call `cb`; take nothing more from `src`. */
  finish(cb?: () => void): void {
    if (this.stopped) {
      cb?.();
      return;
    }
    this.discarding = true;
    this.finishing = true;
    this.afterFlush = undefined;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.frozen) {
      // nothing more will be forwarded; read on so the peer's FIN can arrive
      this.frozen = false;
      this.src.resume();
    }
    if (this.dstEnded) {
      cb?.();
      return;
    }
    this.onEnded = cb;
    if (!this.srcEnded) {
      this.srcEnded = true;
      this.endDue = 0;
    }
    this.pump();
  }

  /** Drop everything queued and stop all activity (timers included). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.report.droppedBytes += this.queuedBytes;
    this.queue = [];
    this.due = [];
    this.queuedBytes = 0;
    this.afterFlush = undefined;
    this.onEnded = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  private runAfterFlush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const fn = this.afterFlush;
    this.afterFlush = undefined;
    fn?.();
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(1, Math.ceil(ms)));
  }

  private pump(): void {
    if (this.stopped) return;
    const f = this.fault;
    while (this.queue.length > 0 && !this.waitingDrain) {
      if (this.dst.destroyed || this.dstEnded) {
        this.report.droppedBytes += this.queuedBytes;
        this.queue = [];
        this.due = [];
        this.queuedBytes = 0;
        break;
      }
      let chunk = this.queue[0]!;
      if (f.kind === 'delay') {
        const wait = this.due[0]! - clockMs();
        if (wait > 0) {
          this.schedule(wait);
          break;
        }
        this.due.shift();
        this.queue.shift();
      } else if (f.kind === 'throttle') {
        const now = clockMs();
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) * f.bytesPerSec) / 1000);
        this.lastRefill = now;
        const need = Math.min(chunk.length, this.burst);
        if (this.tokens < need) {
          this.schedule(((need - this.tokens) * 1000) / f.bytesPerSec);
          break;
        }
        const n = Math.min(chunk.length, Math.floor(this.tokens));
        this.tokens -= n;
        if (n < chunk.length) {
          this.queue[0] = chunk.subarray(n);
          chunk = chunk.subarray(0, n);
        } else {
          this.queue.shift();
        }
      } else {
        this.queue.shift();
      }
      this.queuedBytes -= chunk.length;
      this.write(chunk);
    }
    if (this.queue.length === 0) {
      if (this.afterFlush) {
        if (this.outstandingWrites === 0) {
          this.runAfterFlush();
          return;
        }
      } else if (this.srcEnded && !this.dstEnded && (this.finishing || !this.triggered || this.fault.kind === 'blackhole-after' || this.fault.kind === 'cut-after')) {
        const wait = this.endDue - clockMs();
        if (wait > 0) {
          this.schedule(wait);
        } else {
          this.dstEnded = true;
          if (!this.dst.destroyed && !this.dst.writableEnded) this.dst.end();
          const cb = this.onEnded;
          this.onEnded = undefined;
          cb?.();
        }
      }
    }
    this.updateFlow();
  }

  private write(chunk: Buffer): void {
    this.outstandingWrites++;
    this.report.forwardedBytes += chunk.length;
    this.conn.countForwarded(this.direction, chunk.length);
    const ok = this.dst.write(chunk, () => {
      this.outstandingWrites--;
      if (this.outstandingWrites === 0 && this.afterFlush && this.queue.length === 0) this.pump();
    });
    if (!ok) {
      this.waitingDrain = true;
      this.dst.once('drain', () => {
        this.waitingDrain = false;
        this.pump();
      });
    }
  }

  /** Pause the source while the destination (or our queue) is full; resume when there is room. */
  private updateFlow(): void {
    if (this.stopped || this.src.destroyed) return;
    let pause: boolean;
    if (this.frozen || this.afterFlush) pause = true;
    else if (this.discarding) pause = false;
    else if (this.waitingDrain) pause = true;
    else if (this.fault.kind === 'delay') pause = this.queuedBytes >= DELAY_QUEUE_MAX;
    else if (this.fault.kind === 'throttle') pause = this.queuedBytes >= Math.max(16 * 1024, this.burst);
    else pause = this.queuedBytes > 0;
    if (pause && !this.src.isPaused()) this.src.pause();
    else if (!pause && this.src.isPaused()) this.src.resume();
  }
}

class Connection {
  readonly startedAt = new Date().toISOString();
  private readonly t0 = clockMs();
  readonly clientLabel: string;
  readonly server: net.Socket;
  private readonly c2s: Pipe;
  private readonly s2c: Pipe;
  private connectTimer: NodeJS.Timeout | undefined;
  private connected = false;
  private endedBy: EndedBy | undefined;
  private error: string | undefined;
  private clientClosed = false;
  private serverClosed = false;
  private finished = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly relay: RelayImpl,
    readonly id: number,
    readonly client: net.Socket,
    target: { host: string; port: number; connectTimeoutMs: number },
    faults: { clientToServer: FaultSpec; serverToClient: FaultSpec },
  ) {
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.clientLabel = `${client.remoteAddress ?? '?'}:${client.remotePort ?? '?'}`;
    client.setNoDelay(true);
    this.server = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.c2s = new Pipe(this, 'clientToServer', client, this.server, faults.clientToServer);
    this.s2c = new Pipe(this, 'serverToClient', this.server, client, faults.serverToClient);

    client.on('error', (err) => this.onError('client', err));
    client.on('close', () => this.onClose('client'));
    this.server.on('error', (err) => (this.connected ? this.onError('server', err) : this.onConnectFailed(err.message)));
    this.server.on('close', () => this.onClose('server'));
    this.connectTimer = setTimeout(() => {
      this.connectTimer = undefined;
      this.onConnectFailed(`connect to ${target.host}:${target.port} timed out after ${target.connectTimeoutMs}ms`);
    }, target.connectTimeoutMs);
    this.server.once('connect', () => {
      if (this.connectTimer) clearTimeout(this.connectTimer);
      this.connectTimer = undefined;
      if (this.endedBy) return;
      this.connected = true;
      this.server.setNoDelay(true);
      this.relay.emit('open', { id, client: this.clientLabel });
      this.c2s.start();
      this.s2c.start();
    });
  }

  elapsedMs(): number {
    return clockMs() - this.t0;
  }

  emitFault(e: FaultEvent): void {
    this.relay.emit('fault', e);
  }

  countForwarded(dir: Direction, n: number): void {
    this.relay.countForwarded(dir, n);
  }

  sourceEnded(dir: Direction): void {
    this.endedBy ??= dir === 'clientToServer' ? 'client-closed' : 'server-closed';
  }

  private onConnectFailed(message: string): void {
    if (this.endedBy) return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.endedBy = 'connect-failed';
    this.error = message;
    this.c2s.stop();
    this.s2c.stop();
    this.server.destroy();
    reset(this.client);
  }

  private onError(side: 'client' | 'server', err: NodeJS.ErrnoException): void {
    if (!this.endedBy || this.endedBy === 'client-closed' || this.endedBy === 'server-closed') {
      this.endedBy = err.code === 'ECONNRESET' ? `${side}-reset` : `${side}-error`;
      this.error = err.code ? `${err.code}: ${err.message}` : err.message;
    }
    // a middlebox relays the reset to the other side
    this.c2s.stop();
    this.s2c.stop();
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (side === 'client' && !this.connected) this.server.destroy();
    else reset(side === 'client' ? this.server : this.client);
  }

  private onClose(side: 'client' | 'server'): void {
    if (side === 'client') this.clientClosed = true;
    else this.serverClosed = true;
    if (this.clientClosed && this.serverClosed) {
      this.finish();
      return;
    }
    if (!this.connected) {
      // the client left before the target answered
      if (side === 'client' && !this.server.destroyed) {
        this.endedBy ??= 'client-closed';
        if (this.connectTimer) clearTimeout(this.connectTimer);
        this.connectTimer = undefined;
        this.server.destroy();
      }
      return;
    }
    // One side is gone: nothing can reach it any more. Flush what is queued towards the other side,
    // end it (FIN), and close it once that is written.
    const other = side === 'client' ? this.server : this.client;
    const toOther = side === 'client' ? this.c2s : this.s2c;
    const toGone = side === 'client' ? this.s2c : this.c2s;
    toGone.stop();
    if (other.destroyed) return;
    toOther.finish(() => {
      if (!other.destroyed) other.destroySoon();
    });
  }

  /** `reset-after` acted: RST to both sides. */
  faultReset(): void {
    if (!this.endedBy || this.endedBy === 'client-closed' || this.endedBy === 'server-closed') this.endedBy = 'fault-reset';
    this.c2s.stop();
    this.s2c.stop();
    reset(this.client);
    reset(this.server);
  }

  /** `close-after` acted: FIN to both sides after what is queued, nothing more forwarded. */
  faultClose(): void {
    if (!this.endedBy || this.endedBy === 'client-closed' || this.endedBy === 'server-closed') this.endedBy = 'fault-closed';
    this.c2s.finish();
    this.s2c.finish();
  }

  /** `relay.close()`: destroy everything now. */
  abort(): void {
    this.endedBy ??= 'relay-closed';
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.c2s.stop();
    this.s2c.stop();
    this.client.destroy();
    this.server.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.c2s.stop();
    this.s2c.stop();
    const report: ConnectionReport = {
      id: this.id,
      client: this.clientLabel,
      startedAt: this.startedAt,
      durationMs: this.elapsedMs(),
      c2sBytes: this.c2s.report.forwardedBytes,
      s2cBytes: this.s2c.report.forwardedBytes,
      clientToServer: { ...this.c2s.report },
      serverToClient: { ...this.s2c.report },
      endedBy: this.endedBy ?? 'client-closed',
    };
    if (this.error !== undefined) report.error = this.error;
    this.relay.connectionDone(this, report);
    this.resolveDone();
  }
}

/** RST if we can (Node ≥ 18.3), else destroy; never throws. */
function reset(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

class RelayImpl extends EventEmitter<RelayEvents> implements Relay {
  host = '';
  port = 0;
  readonly targetHost: string;
  readonly targetPort: number;
  private c2sFault: FaultSpec;
  private s2cFault: FaultSpec;
  private readonly connectTimeoutMs: number;
  private readonly server: net.Server;
  private readonly conns = new Set<Connection>();
  private nextId = 1;
  private accepted = 0;
  private bytesC2s = 0;
  private bytesS2c = 0;
  private closing: Promise<void> | undefined;

  constructor(opts: RelayOptions) {
    super();
    this.targetHost = opts.targetHost;
    this.targetPort = opts.targetPort;
    this.c2sFault = validateFault(opts.clientToServer ?? NONE, 'clientToServer');
    this.s2cFault = validateFault(opts.serverToClient ?? NONE, 'serverToClient');
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => this.onAccept(socket));
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.emit('warning', err));
        const addr = this.server.address() as net.AddressInfo;
        this.host = addr.address;
        this.port = addr.port;
        resolve();
      });
    });
  }

  private onAccept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    this.accepted++;
    const conn = new Connection(
      this,
      this.nextId++,
      socket,
      { host: this.targetHost, port: this.targetPort, connectTimeoutMs: this.connectTimeoutMs },
      { clientToServer: this.c2sFault, serverToClient: this.s2cFault },
    );
    this.conns.add(conn);
  }

  countForwarded(dir: Direction, n: number): void {
    if (dir === 'clientToServer') this.bytesC2s += n;
    else this.bytesS2c += n;
  }

  connectionDone(conn: Connection, report: ConnectionReport): void {
    this.conns.delete(conn);
    this.emit('connection', report);
  }

  stats(): RelayStats {
    return { connections: this.accepted, active: this.conns.size, bytesClientToServer: this.bytesC2s, bytesServerToClient: this.bytesS2c };
  }

  faults(): { clientToServer: FaultSpec; serverToClient: FaultSpec } {
    return { clientToServer: this.c2sFault, serverToClient: this.s2cFault };
  }

  setFaults(c2s?: FaultSpec, s2c?: FaultSpec): void {
    if (c2s) this.c2sFault = validateFault(c2s, 'clientToServer');
    if (s2c) this.s2cFault = validateFault(s2c, 'serverToClient');
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const serverClosed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      const pending = [...this.conns].map((c) => c.done);
      for (const c of this.conns) c.abort();
      await Promise.all([serverClosed, ...pending]);
    })();
    return this.closing;
  }

  override toString(): string {
    return `relay ${this.host}:${this.port} → ${this.targetHost}:${this.targetPort} (client→server ${formatFault(this.c2sFault)}, server→client ${formatFault(this.s2cFault)})`;
  }
}

/**
 * Start a relay. Rejects with the listen error (its `code`, e.g. `EADDRINUSE`, is kept) if it cannot listen.
 * Validates the faults (RangeError for impossible values such as negative bytes).
 */
export async function startRelay(opts: RelayOptions): Promise<Relay> {
  if (!opts.targetHost) throw new RangeError('startRelay: targetHost is required');
  if (!Number.isInteger(opts.targetPort) || opts.targetPort < 1 || opts.targetPort > 65535) {
    throw new RangeError(`startRelay: targetPort must be 1-65535, got ${opts.targetPort}`);
  }
  const relay = new RelayImpl(opts);
  await relay.listen(opts.listenHost ?? '127.0.0.1', opts.listenPort ?? 0);
  return relay;
}

/**
 * The stall watchdog of one probe: "slow is not stalled" (DESIGN.md).
 *
 * Progress is what the network moved: bytes the peer's TCP acknowledged (`bytes_acked`) and bytes that arrived
 * (`bytes_received`), read from the kernel with `ss`. Our own signals — a write callback (the kernel took bytes into
 * its send buffer) or a reply byte — are only a cheap hint that nothing needs reading: as long as they keep coming
 * the kernel is never asked, so a healthy probe costs one timer and no process. Once they have been quiet for
 * `lookAfterMs`, the kernel is read (every `everyMs` after that, one `ss` shared by all probes asking in the same
 * loop turn) and decides:
 *
 * - data awaiting the network (unacked, not yet sent, or queued above the kernel) and nothing moved for the stall
 *   window → `no-ack` or `window-closed` (`stallKindOf`);
 * - everything acknowledged and no reply byte for the no-reply window → `no-reply` (a slow server looks exactly
 *   like a device that took the data and went silent; the comparator tells them apart across paths);
 * - `no-ack` is called before the window when the kernel shows loss beyond doubt (`lossEvident`: RTO backoff ≥ 3
 *   and the ACKs stopped for `lookAfterMs`), which is what makes a lossy stall known within ~2 s.
 *
 * Why read the kernel instead of capping what we queue ahead of it: Node exposes neither SO_SNDBUF nor
 * TCP_NOTSENT_LOWAT for TCP sockets, and a send buffer kept small on purpose would cost bulk throughput (the engine
 * matches smtp-source on 16 MiB probes). Reading only when our own signal is quiet keeps the kernel out of the way
 * of every healthy probe.
 *
 * Where the kernel cannot be read (not Linux, no `ss`), the watchdog says so (`progressFrom: 'socket'`) and falls
 * back to counting our own writes and reply bytes against the stall window.
 */
import type { Stage, StallKind, TcpSnapshot, Timeouts } from '../model.js';
import { latestProgressAt, lossEvident, quietLimit, stallKindOf } from './evidence.js';
import { tcpInfoAvailable, tcpSnapshot, type SocketTuple } from './tcpinfo.js';
import { clockMs } from '../clock.js';

/** What the watchdog needs to know of its transaction. */
export interface WatchTarget {
  /** The stage being watched; undefined while nothing is watched (dns, connect, quit, after the end). */
  watchedStage(): Stage | undefined;
  /** Bytes queued in our own stream(s) above the kernel. */
  queuedBytes(): number;
  tuple(): SocketTuple | undefined;
  /** ms since the probe started. */
  sinceStart(): number;
}

/** A stall the watchdog calls. `kind` is absent when the kernel could not be read. */
export interface StallCall {
  stage: Stage;
  kind?: StallKind;
  by: 'window' | 'kernel';
  idleMs: number;
  snapshot?: TcpSnapshot;
  progressFrom: 'kernel' | 'socket';
}

export interface WatchdogOptions {
  timeouts: Pick<Timeouts, 'stallMs' | 'noReplyMs'>;
  /** Call a `no-ack` stall before the window when the kernel shows loss (default true). */
  early?: boolean;
}

/** Quiet time of our own signals before the kernel is first read, and between readings after that. */
export function watchCadence(stallMs: number): { lookAfterMs: number; everyMs: number } {
  return { lookAfterMs: Math.min(1000, stallMs / 4), everyMs: Math.min(500, stallMs / 8) };
}

/**
 * When to look again at a connection that may be losing segments: just after the kernel's next retransmission
 * timeout (`rto` less the time since the last send; `rto` is already backed off) while backoff is below 3, or when
 * the ACKs will have been quiet long enough — whichever is later, and never later than `everyMs`. Looking then
 * instead of on a fixed beat is what calls a lossy stall ~1.5 s after the last ACK without reading the kernel
 * more often.
 */
export function nextLossLook(t: TcpSnapshot, quietMs: number, everyMs: number): number {
  const margin = 20;
  let at = margin;
  if ((t.backoff ?? 0) < 3 && t.rtoMs !== undefined && t.lastSendMs !== undefined) at = Math.max(at, t.rtoMs - t.lastSendMs + margin);
  if (t.lastAckMs !== undefined && t.lastAckMs < quietMs) at = Math.max(at, quietMs - t.lastAckMs + margin);
  return Math.min(everyMs, at);
}

export class Watchdog {
  private lastApp = clockMs();
  /** Upper bound of the last moment the kernel saw the network move anything. */
  private kernelAt = -Infinity;
  private prev: { snapshot: TcpSnapshot; progressAt: number } | undefined;
  private stageFirst: { stage: Stage; acked: number; received: number; at: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private reading = false;
  private stopped = false;
  private readonly cadence: { lookAfterMs: number; everyMs: number };
  /** Why the kernel cannot be read, once that is known. */
  unavailable: string | undefined;

  constructor(
    private readonly opts: WatchdogOptions,
    private readonly target: WatchTarget,
    private readonly onStall: (c: StallCall) => void,
  ) {
    this.cadence = watchCadence(opts.timeouts.stallMs);
  }

  /** Our own signal: the kernel took bytes, or bytes arrived. Cheap: one clock read (or the caller's). */
  progress(at: number = clockMs()): void {
    this.lastApp = at;
  }

  /** Start watching (idempotent): the first look comes after the cadence's quiet time. */
  start(): void {
    if (!this.timer && !this.stopped) this.arm(this.cadence.lookAfterMs);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * Did anything move in `stage`, by this final snapshot? When the watchdog read the kernel in the stage, the
   * counters since that first reading (or a reply byte after it) tell; when it never had to (our own signal never
   * went quiet for the cadence's time), the stage was moving.
   */
  movedInStage(stage: Stage, snap: TcpSnapshot): boolean {
    const f = this.stageFirst;
    if (!f || f.stage !== stage) return true;
    return (snap.bytesAcked ?? 0) > f.acked || (snap.bytesReceived ?? 0) > f.received || this.lastApp > f.at;
  }

  /** Bytes per second the peer acknowledged since the first reading of `stage` (or since `fromMs`, from 0). */
  ackedRate(snapshot: TcpSnapshot, stage: Stage, fromMs: number): number | undefined {
    const acked = snapshot.bytesAcked;
    if (acked === undefined) return undefined;
    const now = clockMs();
    const base = this.stageFirst?.stage === stage && now - this.stageFirst.at >= 1000 ? this.stageFirst : { acked: 0, at: fromMs };
    const s = (now - base.at) / 1000;
    return s > 0 ? Math.max(0, (acked - base.acked) / s) : undefined;
  }

  private arm(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tick();
    }, Math.max(1, ms));
  }

  private tick(): void {
    if (this.stopped) return;
    const stage = this.target.watchedStage();
    if (!stage) return this.arm(this.cadence.lookAfterMs);
    const now = clockMs();
    if (this.unavailable !== undefined) {
      const idle = now - this.lastApp;
      const win = this.opts.timeouts.stallMs;
      if (idle >= win) return this.call({ stage, by: 'window', idleMs: idle, progressFrom: 'socket' });
      return this.arm(win - idle);
    }
    const appIdle = now - this.lastApp;
    if (appIdle < this.cadence.lookAfterMs) return this.arm(this.cadence.lookAfterMs - appIdle);
    if (!this.reading) void this.look();
  }

  private async look(): Promise<void> {
    const tuple = this.target.tuple();
    if (!tuple) {
      this.unavailable = 'no connection to read';
      return this.tick();
    }
    this.reading = true;
    const r = await tcpSnapshot(tuple, 'watch', this.target.sinceStart());
    this.reading = false;
    if (this.stopped) return;
    if (!r.snapshot) {
      // a failed reading (ss slow on a loaded machine, a socket closing) is no evidence either way: look again, and
      // let the stage deadline end a probe whose kernel never answers. Only a machine whose kernel cannot be read
      // at all (not Linux, no ss) turns the watchdog to counting our own socket.
      if ((await tcpInfoAvailable()).ok) {
        if (!this.stopped) this.arm(this.cadence.everyMs);
        return;
      }
      this.unavailable = r.unavailable ?? 'unavailable';
      return this.tick();
    }
    this.judge(r.snapshot);
  }

  /** One reading of the kernel: move the progress bound, then stall, or look again. */
  private judge(snap: TcpSnapshot): void {
    const now = clockMs();
    const progressAt = latestProgressAt(snap, now, this.prev);
    this.prev = { snapshot: snap, progressAt };
    this.kernelAt = Math.max(this.kernelAt, progressAt);
    const stage = this.target.watchedStage();
    if (!stage) return this.arm(this.cadence.lookAfterMs);
    if (this.stageFirst?.stage !== stage) this.stageFirst = { stage, acked: snap.bytesAcked ?? 0, received: snap.bytesReceived ?? 0, at: now };
    const idle = now - Math.max(this.lastApp, this.kernelAt);
    const kind = stallKindOf(snap, this.target.queuedBytes());
    const { stallMs, noReplyMs } = this.opts.timeouts;
    const limit = quietLimit(kind, snap, { stallMs, noReplyMs });
    const base = { stage, kind, snapshot: snap, progressFrom: 'kernel' as const };
    if (idle >= limit) return this.call({ ...base, by: 'window', idleMs: idle });
    const quiet = this.cadence.lookAfterMs;
    if (this.opts.early !== false && kind === 'no-ack' && now - this.kernelAt >= quiet && lossEvident(snap, quiet)) {
      return this.call({ ...base, by: 'kernel', idleMs: idle });
    }
    // waiting for a reply, nothing can change but a reply byte (which our own signal sees): look less often
    const every = limit === noReplyMs ? Math.max(this.cadence.everyMs, noReplyMs / 10) : this.cadence.everyMs;
    const next = kind === 'no-ack' && this.opts.early !== false ? nextLossLook(snap, quiet, every) : every;
    this.arm(Math.min(next, limit - idle));
  }

  private call(c: StallCall): void {
    this.stop();
    this.onStall(c);
  }
}

const secs = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
const bytes = (n: number | undefined): string => (n === undefined ? '?' : n.toLocaleString('en-US'));

/** Ports whose servers expect TLS from the first byte (RFC 8314 submissions, and the habit of 465). */
const IMPLICIT_TLS_PORTS: ReadonlySet<number> = new Set([465, 993, 995]);

/** The error message of a stall: what the kernel showed, in words, and what it means. */
export function stallMessage(c: StallCall, opts: { tlsMode: string; port: number }): string {
  const t = c.snapshot;
  const quiet = secs(c.idleMs);
  if (!c.kind || !t) return `no progress for ${Math.round(c.idleMs)} ms in ${c.stage} (counted from our own socket: the kernel could not be read)`;
  if (c.kind === 'no-reply') {
    if (c.stage === 'greeting' && (t.bytesReceived ?? 0) > 0) {
      return `no-reply in greeting: the server began its greeting (${bytes(t.bytesReceived)} bytes) and sent nothing more for ${quiet}: a silent server, not a network stall`;
    }
    if (c.stage === 'greeting') {
      const hint =
        opts.tlsMode !== 'implicit' && IMPLICIT_TLS_PORTS.has(opts.port)
          ? `; port ${opts.port} usually expects implicit TLS: try --tls implicit`
          : opts.tlsMode !== 'implicit'
            ? '; a server that expects implicit TLS (port 465 style) is silent like this: try --tls implicit'
            : '';
      return `no-reply in greeting: connected, but the server sent no greeting for ${quiet}: a silent server, not a network stall${hint}`;
    }
    return `no-reply in ${c.stage}: everything sent was acknowledged (${bytes(t.bytesAcked)} bytes) and no reply came for ${quiet}: the far end (the server, or a device that terminates TCP) took the data and went silent`;
  }
  if (c.kind === 'window-closed') {
    const answers =
      t.lastAckMs !== undefined && t.lastAckMs < c.idleMs
        ? `its TCP still answers (last ACK ${secs(t.lastAckMs)} ago) but takes nothing`
        : `no ACK for ${secs(t.lastAckMs ?? c.idleMs)}`;
    return `window-closed in ${c.stage}: the peer's window is ${bytes(t.sndWnd)} bytes, below one ${bytes(t.mss)}-byte segment, and nothing moved for ${quiet} (${bytes(t.bytesAcked)} bytes acknowledged); ${answers}: the receiver or a device on the path stopped the flow`;
  }
  const early = c.by === 'kernel' ? '; called before the window on the kernel\'s evidence' : '';
  return `no-ack in ${c.stage}: ${bytes(t.bytesAcked)} bytes acknowledged, then no ACK for ${secs(t.lastAckMs ?? c.idleMs)} while the kernel is retransmitting (${bytes(t.retransTotal)} retransmits, RTO backoff ${t.backoff ?? 0}): segments are lost on the way${early}`;
}

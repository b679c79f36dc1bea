/**
 * ONE instrumented SMTP transaction: connect → greeting → EHLO → [STARTTLS → EHLO] → [AUTH] → MAIL → RCPT… →
 * DATA → body → final reply → QUIT, over an egress path, with a deadline per stage and a stall watchdog.
 *
 * Hand-written rather than nodemailer's SMTPConnection: we need a mark at every stage boundary, the body
 * offset the kernel accepted (write callbacks, 16 KiB granularity), the raw socket kept alive at a stall so the
 * kernel's TCP state can be read before it is destroyed, and a throughput nodemailer's transport does not reach
 * (600–700 sessions/s measured against ~2,500+ for a minimal client).
 */
import type dnsModule from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import type { Attempt, ProbeResult, ProbeSpec, QuitPoint, RecipientResult, ResolvedRecords, SmtpReply, Stage, StallKind, TargetSpec, TcpSnapshot, TlsInfo, TlsMode, TranscriptLine } from '../model.js';
import { classify, descriptorExhaustion, inWords, ProbeEnvError, ProbeError, ProbeInputError, toProbeError, type ProbeErrorCode } from './errors.js';
import { BodyPeek, replyLines } from './transcript.js';
import { openEgress, parseProxyUrl, redactProxy } from './egress.js';
import { CHUNK_BYTES, fileMessage, generatedMessage, MessageError, type MessageSource } from './message.js';
import { formatReply, ReplyParser } from './reply.js';
import { hostCounterDeltas, readHostCounters } from './hostcounters.js';
import { tcpSnapshot, type SocketTuple } from './tcpinfo.js';
import { stallMessage, Watchdog, type StallCall } from './watchdog.js';
import { awaitingNetwork } from './evidence.js';
import { dns, probeResolver, resolveAddresses, resolveMxHosts } from './endpoints.js';
import { formatSize } from '../units.js';
import { lineBreakIn, secretForms } from '../text.js';
import type { CaptureSession } from './capture.js';
import { isRealProbe, sizeRefusal } from './guards.js'; // real-target safety rules (issue 9)
import { WARM_UP_MAX_MS, warmUp, type SocketOpener } from './warmup.js';
import { clockMs } from '../clock.js';

export interface ProbeOptions {
  signal?: AbortSignal;
  /** Called when a stage starts (tMs since the probe started). */
  onStage?: (e: { probeId: string; stage: Stage; tMs: number }) => void;
  /** A run-wide capture; a stalled probe's connection is extracted from it into its own pcap. */
  capture?: CaptureSession;
  /** Called when a stage ends, however it ends (ms: its duration; tMs: since the probe started). */
  onStageEnd?: (e: { probeId: string; stage: Stage; ms: number; tMs: number }) => void;
  /** Called for every transcript line as it happens (secrets masked, the message elided), whether or not `spec.transcript` records them. */
  onTranscript?: (line: TranscriptLine) => void;
  /** Send this message instead of the spec's (generated or file): a message the caller made (`composedMessage`, `fileMessage`). */
  message?: MessageSource;
}

export const DEFAULT_TCP_SNAPSHOT_MIN_BYTES = 64 * 1024;

/** Thrown (as a rejection of `probe`) when the caller's signal aborts: not a measurement. */
export class AbortError extends Error {
  override name = 'AbortError';
  readonly code = 'ABORT_ERR';
  /** What the probe measured until the abort (outcome `aborted`); absent when it was aborted before it started. */
  result?: ProbeResult;
}

/** Thrown inside the transaction at the spec's `quitAfter` point; not a failure. */
class QuitAfter extends Error {
  constructor(readonly point: QuitPoint) {
    super(`quit after ${point}`);
  }
}

/**
 * Every value of a spec that goes into an SMTP command line or a generated header, by field name. A CR, LF or NUL
 * in one of them would end the command early and smuggle the rest in as commands of its own.
 */
export function commandLineFields(spec: ProbeSpec): Array<[string, string | undefined]> {
  return [
    ['the EHLO name (ehloName; --ehlo)', spec.ehloName],
    ['the sender (envelope.from; --from)', spec.envelope.from],
    ...spec.envelope.to.map((t, i): [string, string] => [`recipient ${i + 1} (envelope.to[${i}]; --to)`, t]),
    ['the AUTH user (auth.user; --auth-user)', spec.auth?.user],
    ['probeId', spec.probeId],
    ['runId', spec.runId],
    ['servername', spec.servername],
    ['target.host', spec.target.host],
    ['target.mx', spec.target.mx],
  ];
}

/** Throws ProbeInputError naming the field when a command-line value holds CR, LF or NUL (also checked by `probe`). */
export function refuseLineBreaks(spec: ProbeSpec): void {
  for (const [field, v] of commandLineFields(spec)) {
    const bad = v === undefined ? undefined : lineBreakIn(v);
    if (bad) throw new ProbeInputError(`${field} holds a ${bad} character: refused (it would end the SMTP command line early)`);
  }
}

/** Check what can be checked before anything is sent. Throws ProbeInputError. */
export function validateSpec(spec: ProbeSpec): void {
  refuseLineBreaks(spec);
  if (!spec.envelope.to.length) throw new ProbeInputError('no recipient: give at least one --to');
  if (!spec.target.host && !spec.target.mx && !spec.path.relay) throw new ProbeInputError('no target: give --host or --mx');
  if (spec.auth && process.env[spec.auth.passEnv] === undefined) {
    throw new ProbeInputError(`AUTH secret: environment variable ${spec.auth.passEnv} is not set`);
  }
  if (spec.path.proxy) {
    try {
      parseProxyUrl(spec.path.proxy);
    } catch (err) {
      throw new ProbeInputError((err as Error).message);
    }
  }
  if (spec.path.localAddress && !net.isIP(spec.path.localAddress)) {
    throw new ProbeInputError(`local address is not an IP address: ${spec.path.localAddress}`);
  }
  if (!spec.messageFile) {
    try {
      generatedMessage({ probeId: spec.probeId, sizeBytes: spec.sizeBytes, seed: spec.seed, from: spec.envelope.from, to: spec.envelope.to });
    } catch (err) {
      throw new ProbeInputError((err as Error).message);
    }
  }
  const t = spec.timeouts;
  for (const [k, v] of Object.entries(t)) {
    if (!(typeof v === 'number' && v > 0 && Number.isFinite(v))) throw new ProbeInputError(`timeouts.${k} must be a positive duration`);
  }
}

/** The label results and tables use for a target: its name, else `host:port`, else `mx:domain`. */
export function targetLabel(t: TargetSpec): string {
  return t.name ?? (t.mx ? `mx:${t.mx}` : t.host?.includes(':') ? `[${t.host}]:${t.port}` : `${t.host}:${t.port}`);
}

/**
 * A stage's marks. `start` is re-stamped when the stage first sends (`sending`), so a command stage is the command
 * on the wire → its reply, as the packets show it, without our own work between two stages.
 */
type Mark = { stage: Stage; start: number; end?: number; sent?: boolean };

/** One address of one host to connect to. */
interface Endpoint {
  server: string;
  address: string;
  port: number;
}

/**
 * Is this failure one an MTA moves past to the next address or MX host (RFC 5321 §5.1, Postfix's habit)? A
 * connection that fails, a lost or silent connection before the greeting, a 4xx greeting, a 421 before MAIL.
 * Not: our own source address or proxy failing (the path, not the endpoint), TLS errors, anything from MAIL on.
 */
export function worthNextEndpoint(e: { code: string; stage: Stage }, reply: SmtpReply | undefined): boolean {
  if (e.code === 'EADDRNOTAVAIL' || e.code === 'EABORTED' || e.code === 'EPROXY') return false;
  if (e.stage === 'connect' || e.stage === 'dns') return true;
  if (e.stage === 'greeting') {
    if (e.code === 'EREJECTED') return (reply?.code ?? 0) >= 400 && (reply?.code ?? 0) < 500;
    return e.code === 'ECLOSED' || e.code === 'ECONNRESET' || e.code === 'ESTALL' || e.code === 'ETIMEDOUT';
  }
  if (e.stage === 'ehlo' || e.stage === 'starttls' || e.stage === 'auth') return e.code === 'EREJECTED' && reply?.code === 421;
  return false;
}

/** The end of the message (RFC 5321 4.1.1.4), one shared buffer. */
const DOT = Buffer.from('.\r\n', 'latin1');

/** os.hostname() is a syscall: read it once. */
let HOSTNAME: string | undefined;

/** A stage's deadline in ms: its own timeout, `commandMs` for the command stages, QUIT's no longer than the stall window. */
export function stageDeadlineMs(t: ProbeSpec['timeouts'], stage: Stage): number {
  switch (stage) {
    case 'dns': return t.dnsMs;
    case 'connect': return t.connectMs;
    case 'data': return t.dataMs;
    case 'body': return t.bodyMs;
    case 'dataAck': return t.dataAckMs;
    case 'quit': return Math.min(t.commandMs, t.stallMs);
    default: return t.commandMs;
  }
}

/**
 * The body's writes: pieces gathered up to CHUNK_BYTES and written as one corked writev (an MTA's habit: a header
 * block written alone would travel as its own small segment and hide a PMTU blackhole from the smallest probes;
 * gathering, not concatenating, keeps the generator's zero-copy slices zero-copy). One callback per piece counts
 * what the kernel accepted (`accepted`); one promise per probe at most, for the last write, and one per drain.
 */
/**
 * Hand a chunk to `step` in pieces of at most CHUNK_BYTES (zero-copy views). False when `step` said stop; a
 * promise only when a piece had to wait for the socket to drain (then the rest of the chunk follows it).
 */
function feed(chunk: Buffer, step: (piece: Buffer) => Promise<void> | boolean, from = 0): boolean | Promise<boolean> {
  for (let off = from; off < chunk.length; off += CHUNK_BYTES) {
    const s = step(off === 0 && chunk.length <= CHUNK_BYTES ? chunk : chunk.subarray(off, off + CHUNK_BYTES));
    if (s === false) return false;
    if (s !== true) return s.then(() => feed(chunk, step, off + CHUNK_BYTES));
  }
  return true;
}

class BodyWriter {
  private pending: Buffer[] = [];
  private pendingLen = 0;
  /** Pieces written whose callback has not come yet, and who waits for the last of them. */
  private outstanding = 0;
  private idle: (() => void) | undefined;
  /** Index in `pending` of the final dot (not counted as body), or -1. */
  private dotAt = -1;

  constructor(
    private readonly sock: net.Socket,
    /** Called before each write goes out (the stage's first send starts it). */
    private readonly sending: () => void,
    private readonly accepted: (n: number, body: boolean) => void,
  ) {}

  /** Queue a piece; a full batch is written. Returns a promise to await when the socket asks to drain. */
  add(piece: Buffer, body: boolean): Promise<void> | undefined {
    if (!body) this.dotAt = this.pending.length;
    this.pending.push(piece);
    this.pendingLen += piece.length;
    return this.pendingLen >= CHUNK_BYTES ? this.flush() : undefined;
  }

  /** Write what is queued (one writev when more than one piece); a promise when the socket needs to drain. */
  flush(): Promise<void> | undefined {
    const pieces = this.pending;
    if (pieces.length === 0) return undefined;
    const dotAt = this.dotAt;
    this.pending = [];
    this.pendingLen = 0;
    this.dotAt = -1;
    const sock = this.sock;
    this.sending();
    if (pieces.length > 1) sock.cork();
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      const body = i !== dotAt;
      this.outstanding++;
      sock.write(piece, (err) => {
        if (!err) this.accepted(piece.length, body);
        if (--this.outstanding === 0 && this.idle) {
          const done = this.idle;
          this.idle = undefined;
          done();
        }
      });
    }
    if (pieces.length > 1) sock.uncork();
    return sock.writableNeedDrain ? new Promise<void>((resolve) => sock.once('drain', resolve)) : undefined;
  }

  /** Resolves when every piece written so far has had its callback (with or without an error). */
  written(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise<void>((resolve) => (this.idle = resolve));
  }
}

class Transaction {
  private readonly t0 = clockMs();
  private readonly startedAt = new Date().toISOString();
  private readonly marks: Mark[] = [];
  private current: Mark | undefined;
  /**
   * When the last thing a stage waited for happened: a reply complete, the connection or the TLS session up. A stage
   * that ends normally ends then (`settled`), not after our own work on it; a failure ends it when it fails.
   */
  private settledAt = -Infinity;
  /** The current stage's deadline: one timer per probe, re-armed only when a stage's deadline comes sooner. */
  private deadline: NodeJS.Timeout | undefined;
  /** When the timer fires (clockMs()); it may fire before `deadlineAt` and then re-arms for the rest. */
  private timerAt = Infinity;
  private deadlineAt = Infinity;
  private deadlineOf: { stage: Stage; ms: number } | undefined;
  /** The stall window applies once there is a connection to watch: not in dns, connect or quit. */
  private stallArmed = false;
  private watchdog: Watchdog;
  /** Endpoints tried before the one the probe ended on (with fallback), and when the last one began. */
  private readonly attempts: Attempt[] = [];
  private currentAttempt: (Endpoint & { t0: number }) | undefined;
  private readonly resolved: ResolvedRecords = {};
  private resolver: dnsModule.promises.Resolver | undefined;
  /** Set while a stall's or a deadline's evidence is read, before the socket is destroyed. */
  private evidence: Promise<void> | undefined;
  private connectedAt: number | undefined;

  private raw: net.Socket | undefined; // the TCP socket (to the server or the proxy)
  private sock: net.Socket | undefined; // what we speak SMTP on (raw, or TLS over raw)
  private parser: ReplyParser;
  private replies: SmtpReply[] = [];
  /** The command waiting for its reply: settled by the reply, or rejected with the probe's failure (`settleFailure`). */
  private replyWaiter: { resolve: (r: SmtpReply) => void; reject: (e: ProbeError) => void } | undefined;
  /** The stage in which a reply arrived that no command was waiting for (a desync: `command` ends the probe). */
  private unsolicitedAt: Stage | undefined;

  private failure: ProbeError | undefined;
  private failReject!: (e: ProbeError) => void;
  private failed: Promise<never>;
  private finishing = false;

  private bytesWritten = 0;
  private bodyBytesWritten: number | undefined;
  private bytesRead = 0;
  private lastCommand: string | undefined;
  private lastReply: SmtpReply | undefined;
  private tcp: TcpSnapshot | undefined;
  private tcpUnavailable: string | undefined;
  private stallBy: 'window' | 'kernel' | undefined;
  private stallKind: StallKind | undefined;
  private progressFrom: 'kernel' | 'socket' | undefined;
  private ackedBytesPerSec: number | undefined;
  private capturePath: string | undefined;
  /** The host's TCP counters at connect (probes that take kernel evidence), and their rise at a stall or timeout. */
  private hostBefore: Promise<Record<string, number> | undefined> | undefined;
  private hostCounters: ProbeResult['hostCounters'];
  private captureError: string | undefined;
  private tlsInfo: TlsInfo | undefined;
  private capabilities: string[] | undefined;
  private recipients: RecipientResult[] = [];
  private server: string | undefined;
  private tuple: SocketTuple | undefined;
  /** Address (or proxy-resolved name) the probe connected to: decides whether the target is real (guards.ts). */
  private connectedTo: string | undefined;

  constructor(
    private readonly spec: ProbeSpec,
    private readonly opts: ProbeOptions,
    /** How connections are made: openEgress, or the warm-up's in-memory socket (warmup.ts). */
    private readonly open: SocketOpener = openEgress,
  ) {
    // a server that echoes the AUTH secret (in any encoding) must not get it into a result
    this.parser = this.newParser();
    this.failed = new Promise<never>((_, reject) => (this.failReject = reject));
    this.failed.catch(() => undefined); // observed through guard()
    this.watchdog = this.newWatchdog();
  }

  /** The reply parser scrubs every known form of the AUTH secret from what the server says (text.ts). */
  private newParser(): ReplyParser {
    const { auth } = this.spec;
    return new ReplyParser(auth ? secretForms(process.env[auth.passEnv] ?? '', auth.user) : []);
  }

  private newWatchdog(): Watchdog {
    const { spec } = this;
    return new Watchdog(
      { timeouts: spec.timeouts, early: spec.earlyStall !== false },
      {
        watchedStage: () => (this.stallArmed && !this.failure && !this.finishing ? this.current?.stage : undefined),
        queuedBytes: () => (this.sock?.writableLength ?? 0) + (this.raw && this.raw !== this.sock ? this.raw.writableLength : 0),
        tuple: () => this.tuple,
        sinceStart: () => this.now(),
      },
      (c) => void this.onStall(c),
    );
  }

  // ------------------------------------------------------------------------------------------------ stages

  private now(): number {
    return clockMs() - this.t0;
  }

  private begin(stage: Stage, at = this.settled()): void {
    this.endStage(at);
    // a stage that sends nothing (greeting, dataAck after the gathered dot) starts where the one before it ended
    const m: Mark = { stage, start: at };
    this.marks.push(m);
    this.current = m;
    this.opts.onStage?.({ probeId: this.spec.probeId, stage, tMs: this.now() });
    this.armDeadline(stage, stageDeadlineMs(this.spec.timeouts, stage), clockMs());
    // the stall window applies once there is a connection to watch (not to dns or connect)
    // (nor to quit, whose short deadline is the stall window: QUIT never changes the outcome)
    this.stallArmed = stage !== 'dns' && stage !== 'connect' && stage !== 'quit';
    this.progress();
    if (this.stallArmed) this.watchdog.start();
  }

  /** When the current stage's awaited event happened (`settledAt`), else now. */
  private settled(): number {
    const m = this.current;
    return m && this.settledAt >= m.start ? this.settledAt : clockMs();
  }

  /** The current stage is about to put its first bytes on the wire: it starts now. */
  private sending(): void {
    const m = this.current;
    if (m && !m.sent) {
      m.sent = true;
      m.start = clockMs();
    }
  }

  private endStage(at = clockMs()): void {
    const m = this.current;
    if (m && m.end === undefined) {
      m.end = at;
      this.opts.onStageEnd?.({ probeId: this.spec.probeId, stage: m.stage, ms: m.end - m.start, tMs: this.now() });
    }
    this.current = undefined;
    this.deadlineOf = undefined;
  }

  /**
   * Arm the stage's deadline. A timer that fires no later than the new deadline is kept (it re-arms for what is
   * left when it fires): a healthy probe sets one or two timers, not one per stage.
   */
  private armDeadline(stage: Stage, ms: number, now: number): void {
    this.deadlineOf = { stage, ms };
    this.deadlineAt = now + ms;
    if (this.deadline && this.timerAt <= this.deadlineAt) return;
    clearTimeout(this.deadline);
    this.setTimer(ms, now);
  }

  private setTimer(ms: number, now: number): void {
    this.timerAt = now + ms;
    this.deadline = setTimeout(this.onTimer, ms);
  }

  private readonly onTimer = (): void => {
    this.deadline = undefined;
    const d = this.deadlineOf;
    if (!d) return;
    const now = clockMs();
    const left = this.deadlineAt - now;
    // setTimeout counts whole milliseconds of the loop's clock: under 1 ms left is the deadline, as it always was
    if (left >= 1) return this.setTimer(left, now);
    void this.onDeadline(d.stage, d.ms);
  };

  /** No stage runs any more: let go of the deadline timer. */
  private clearDeadline(): void {
    this.deadlineOf = undefined;
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  private progress(): void {
    this.watchdog.progress();
  }

  /** The watchdog called a stall: record it, keep its kernel reading as the evidence, reset the connection. */
  private async onStall(c: StallCall): Promise<void> {
    if (this.failure || this.finishing) return;
    const err = new ProbeError('ESTALL', stallMessage(c, { tlsMode: this.spec.path.relay?.tls ?? this.spec.target.tls, port: this.targetPort() }), c.stage, { lastCommand: this.lastCommand });
    this.stallBy = c.by;
    this.stallKind = c.kind;
    this.progressFrom = c.progressFrom;
    if (c.snapshot) this.tcp = { ...c.snapshot, at: 'stall' };
    else if (this.watchdog.unavailable) this.tcpUnavailable = this.watchdog.unavailable;
    await this.withEvidence(err, !c.snapshot && c.progressFrom === 'kernel' ? 'stall' : undefined);
  }

  /**
   * A stage's deadline passed. With a connection, read the kernel before letting go of it: a transfer that kept
   * moving (however slowly) ends `timeout` with the rate the peer acknowledged, not as a stall.
   */
  private async onDeadline(stage: Stage, ms: number): Promise<void> {
    const err = new ProbeError('ETIMEDOUT', `${stage} deadline of ${ms} ms passed`, stage, { lastCommand: this.lastCommand });
    if (!this.stallArmed || !this.tuple) return this.fail(err);
    if (this.failure || this.finishing) return;
    await this.withEvidence(err, 'timeout', () => {
      if (!this.tcp) return;
      this.progressFrom = 'kernel';
      const t = this.tcp;
      if (!this.watchdog.movedInStage(stage, t)) {
        // nothing moved in the whole stage: a silent far end or a dead path that its deadline caught first
        err.message += awaitingNetwork(t, 0)
          ? `; nothing was acknowledged in the stage (${(t.bytesAcked ?? 0).toLocaleString('en-US')} bytes in all)`
          : `; everything sent was acknowledged and no reply came: a silent server (the no-reply window, ${Math.round(this.spec.timeouts.noReplyMs / 1000)} s, is longer than this deadline)`;
        return;
      }
      const rate = this.watchdog.ackedRate(t, stage, this.connectedAt ?? this.t0);
      if (rate === undefined || rate <= 0) return;
      this.ackedBytesPerSec = Math.round(rate);
      err.message += `; the peer acknowledged ${formatSize(rate)}/s (${(t.bytesAcked ?? 0).toLocaleString('en-US')} bytes in all): slow, not stalled`;
    });
    if (!this.tcp && this.tcpUnavailable) this.progressFrom = 'socket';
  }


  /**
   * End the probe with `err`, keeping the socket until the kernel's view (`at`) is read and the capture extracted,
   * then reset the connection (RST): a broken path is not fed retransmissions after the probe is over.
   */
  private async withEvidence(err: ProbeError, at: TcpSnapshot['at'] | undefined, annotate?: () => void): Promise<void> {
    this.fail(err, { keepSocket: true });
    if (this.failure !== err) return;
    let done!: () => void;
    this.evidence = new Promise<void>((r) => (done = r));
    try {
      if (at) await this.snapshot(at);
      await this.readHostCounters();
      annotate?.();
      if (this.opts.capture && this.tuple) {
        try {
          this.capturePath = await this.opts.capture.extract(this.tuple, this.spec.probeId);
        } catch (e) {
          this.captureError = (e as Error).message;
        }
      }
    } finally {
      this.destroy(true);
      this.settleFailure(err);
      done();
    }
  }

  private targetPort(): number {
    return this.tuple?.remotePort ?? this.spec.target.port;
  }

  private fail(err: ProbeError, o: { keepSocket?: boolean } = {}): void {
    if (this.failure || this.finishing) return;
    this.failure = err;
    this.endStage(clockMs());
    this.clearDeadline();
    this.watchdog.stop();
    this.resolver?.cancel(); // a hung query does not outlive the probe's dns deadline
    if (!o.keepSocket) {
      this.destroy();
      this.settleFailure(err);
    }
  }

  /** `reset`: abort with RST (the kernel drops what it still holds for the peer) instead of a FIN. */
  private destroy(reset = false): void {
    if (reset && this.raw && !this.raw.destroyed) {
      try {
        this.raw.resetAndDestroy();
      } catch {
        // no TCP handle (already closed): a plain destroy below
      }
    }
    this.sock?.destroy();
    if (this.raw !== this.sock) this.raw?.destroy();
  }

  /** Await p, but reject as soon as the probe fails (deadline, stall, socket error, abort). */
  private guard<T>(p: Promise<T>): Promise<T> {
    if (this.failure) return this.failed;
    return Promise.race([p, this.failed]);
  }

  /** Host-wide counters since connect: context for a stall, labelled as the host's (hostcounters.ts). */
  private async readHostCounters(): Promise<void> {
    const before = await this.hostBefore;
    const after = before && (await readHostCounters());
    if (!before || !after || this.connectedAt === undefined) return;
    this.hostCounters = { scope: 'host', intervalMs: Math.round(clockMs() - this.connectedAt), deltas: hostCounterDeltas(before, after) };
  }

  private async snapshot(at: TcpSnapshot['at']): Promise<void> {
    if (!this.tuple) {
      this.tcpUnavailable = 'no connection';
      return;
    }
    try {
      const r = await tcpSnapshot(this.tuple, at, this.now());
      if (r.snapshot) this.tcp = r.snapshot;
      else this.tcpUnavailable = r.unavailable ?? 'unavailable';
    } catch (e) {
      this.tcpUnavailable = (e as Error).message;
    }
  }

  // ------------------------------------------------------------------------------------------------ transcript

  private readonly transcript: TranscriptLine[] = [];

  /** Whether transcript lines are kept or passed on (else they are not even formatted). */
  private noting(): boolean {
    return this.spec.transcript === true || this.opts.onTranscript !== undefined;
  }

  private note(dir: TranscriptLine['dir'], text: string): void {
    if (!this.noting()) return;
    const line: TranscriptLine = { tMs: this.now(), dir, text };
    if (this.spec.transcript) this.transcript.push(line);
    this.opts.onTranscript?.(line);
  }

  /** Quit here when the spec asks to (`--quit-after`). */
  private checkpoint(point: QuitPoint): void {
    if (this.spec.quitAfter === point) throw new QuitAfter(point);
  }

  private quitAt: QuitPoint | undefined;

  // ------------------------------------------------------------------------------------------------ socket I/O

  private readonly onData = (chunk: Buffer) => {
    if (this.failure) return; // a stall was declared: what comes while its evidence is read does not count
    const at = clockMs();
    this.bytesRead += chunk.length;
    this.watchdog.progress(at);
    let replies: SmtpReply[];
    try {
      replies = this.parser.push(chunk, this.current?.stage ?? 'greeting');
    } catch (e) {
      this.fail(toProbeError(e, this.current?.stage ?? 'greeting', this.lastCommand));
      return;
    }
    if (replies.length) this.settledAt = at;
    for (const r of replies) {
      if (this.noting()) for (const l of replyLines(r)) this.note('<', l);
      this.lastReply = r;
      if (this.replyWaiter) {
        const w = this.replyWaiter;
        this.replyWaiter = undefined;
        w.resolve(r);
      } else {
        if (!this.replies.length) this.unsolicitedAt = this.current?.stage;
        this.replies.push(r);
      }
    }
  };
  private readonly onConnected = (): void => {
    this.settledAt = clockMs();
  };
  private readonly onError = (e: Error) => {
    this.fail(toProbeError(e, this.current?.stage ?? 'connect', this.lastCommand));
  };
  private readonly onClose = () => {
    if (this.finishing) return;
    const stage = this.current?.stage ?? 'connect';
    this.fail(new ProbeError('ECLOSED', `server closed the connection during ${stage}`, stage, { lastCommand: this.lastCommand }));
  };

  private attach(s: net.Socket): void {
    s.on('data', this.onData);
    s.on('error', this.onError);
    s.on('end', this.onClose);
    s.on('close', this.onClose);
    s.resume();
  }

  private detach(s: net.Socket): void {
    s.off('data', this.onData);
    s.off('end', this.onClose);
    s.off('close', this.onClose);
    // keep onError attached: an error after detach must not become an uncaught exception
  }

  private write(data: string | Buffer): void {
    this.sending();
    const n = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.sock!.write(data, (err) => {
      if (!err) {
        this.bytesWritten += n;
        this.progress();
      }
    });
  }

  /**
   * The next reply: one promise, settled by `onData` or rejected by the probe's failure (what `guard` does for
   * other waits, without a race per reply).
   */
  private readReply(): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return this.failed;
    return new Promise<SmtpReply>((resolve, reject) => (this.replyWaiter = { resolve, reject }));
  }

  /** Reject whatever waits on the probe (`guard`, `readReply`) with its failure. */
  private settleFailure(err: ProbeError): void {
    this.failReject(err);
    const w = this.replyWaiter;
    this.replyWaiter = undefined;
    w?.reject(err);
  }

  /** Send a command and return its reply (throws synchronously on a desync: callers await it in async code). */
  private command(line: string, shown?: string): Promise<SmtpReply> {
    // a reply waiting before this command is sent answers nothing we asked: reading it as this command's reply
    // would put every later reply one late (a desync), so the probe ends here, naming the extra line
    const extra = this.replies[0];
    // RFC 5321 §3.8: a server may send 421 unasked before it closes; that is a refusal, not a desync
    if (extra?.code === 421) this.reject(this.unsolicitedAt ?? this.current?.stage ?? 'greeting', extra);
    if (extra) {
      throw new ProbeError('EPROTOCOL', `unsolicited reply after ${this.lastCommand ?? 'the greeting'}: ${formatReply(extra)}`, this.unsolicitedAt ?? this.current?.stage ?? 'greeting', {
        lastCommand: this.lastCommand,
      });
    }
    this.lastCommand = shown ?? line;
    this.note('>', shown ?? line);
    this.write(`${line}\r\n`);
    return this.readReply();
  }

  private reject(stage: Stage, r: SmtpReply): never {
    // only a 4xx/5xx reply is a rejection; a 2xx/3xx where it does not belong (354 to EHLO, 334 to MAIL, 354 to
    // the final dot) is a server not speaking SMTP properly: protocol-error, not `rejected` (hostile.test.ts)
    if (r.code < 400) throw new ProbeError('EPROTOCOL', `unexpected reply in ${stage}: ${formatReply(r)}`, stage, { lastCommand: this.lastCommand });
    throw new ProbeError('EREJECTED', `${stage}: ${formatReply(r)}`, stage, { lastCommand: this.lastCommand });
  }

  // ------------------------------------------------------------------------------------------------ the transaction

  async run(): Promise<ProbeResult> {
    const { spec } = this;
    const signal = this.opts.signal;
    const onAbort = () => this.fail(new ProbeError('EABORTED', 'aborted', this.current?.stage ?? 'connect'));
    if (signal?.aborted) throw new AbortError('aborted before start');
    refuseLineBreaks(spec);
    if (spec.auth && process.env[spec.auth.passEnv] === undefined) {
      throw new ProbeInputError(`AUTH secret: environment variable ${spec.auth.passEnv} is not set`);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    let message: MessageSource;
    try {
      message = this.opts.message ?? (spec.messageFile
        ? await fileMessage(spec.messageFile)
        : generatedMessage({ probeId: spec.probeId, sizeBytes: spec.sizeBytes, seed: spec.seed, from: spec.envelope.from, to: spec.envelope.to }));
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      throw new ProbeInputError(e instanceof MessageError ? e.message : String(e));
    }
    let delivered = false;
    try {
      await this.transact(message);
      delivered = true;
    } catch (e) {
      if (e instanceof QuitAfter && !this.failure) {
        this.quitAt = e.point;
        this.endStage(this.settled());
      } else if (e instanceof ProbeError && (e.code === 'EREJECTED' || e.code === 'ESIZE') && !this.failure) {
        // a rejection is an answer, not a broken connection: keep the socket to say QUIT
        this.failure = e;
        this.endStage(this.settled());
      } else if (!this.failure) {
        this.fail(toProbeError(e, this.current?.stage ?? 'connect', this.lastCommand));
      }
    }
    // a stall or a deadline owns the socket until its evidence is read; wait for it to finish
    if (this.evidence) await this.evidence;
    const polite = delivered || (this.quitAt !== undefined && this.quitAt !== 'connect') || this.failure?.code === 'EREJECTED' || this.failure?.code === 'ESIZE';
    if (polite) await this.quit();
    this.finishing = true;
    this.watchdog.stop();
    this.endStage();
    this.clearDeadline();
    this.destroy();
    signal?.removeEventListener('abort', onAbort);
    if (this.failure?.code === 'EABORTED') {
      const aborted = new AbortError('aborted');
      aborted.result = this.result(message);
      throw aborted;
    }
    const noFd = descriptorExhaustion(this.failure); // the machine, not the network: not a measurement
    if (noFd) throw new ProbeEnvError(noFd);
    return this.result(message);
  }

  private async transact(message: MessageSource): Promise<void> {
    const { spec } = this;
    await this.openSession(this.endpoints());
    // ---- guard (guards.ts): a real target's advertised SIZE is respected unless spec.force; nothing is sent,
    // the probe ends rejected@mail (ESIZE) and says QUIT
    const refusal = sizeRefusal({ capabilities: this.capabilities, sizeBytes: message.sizeBytes, real: isRealProbe(spec, this.connectedTo), force: spec.force });
    if (refusal) throw new ProbeError('ESIZE', refusal, 'mail', { lastCommand: this.lastCommand });

    // ---- MAIL FROM
    this.begin('mail');
    const sizeCap = this.capabilities!.find((c) => /^SIZE\b/i.test(c));
    const mailParams = sizeCap ? ` SIZE=${message.sizeBytes}` : '';
    const mr = await this.command(`MAIL FROM:<${spec.envelope.from}>${mailParams}`);
    if (mr.code < 200 || mr.code >= 300) this.reject('mail', mr);
    this.checkpoint('mail');

    // ---- RCPT TO (each)
    this.begin('rcpt');
    let accepted = 0;
    let lastRcpt: SmtpReply | undefined;
    for (const to of spec.envelope.to) {
      const rr = await this.command(`RCPT TO:<${to}>`);
      lastRcpt = rr;
      const rec: RecipientResult = { address: to, code: rr.code };
      if (rr.enhanced) rec.enhanced = rr.enhanced;
      if (rr.code >= 300) rec.text = rr.text;
      this.recipients.push(rec);
      if (rr.code >= 200 && rr.code < 300) accepted++;
    }
    if (accepted === 0) this.reject('rcpt', lastRcpt!);
    this.checkpoint('rcpt');

    // ---- DATA
    this.begin('data');
    const dr = await this.command('DATA');
    if (dr.code !== 354) {
      if (dr.code >= 400) this.reject('data', dr);
      throw new ProbeError('EPROTOCOL', `unexpected reply to DATA: ${formatReply(dr)}`, 'data', { lastCommand: 'DATA' });
    }

    // ---- body
    this.begin('body');
    this.lastCommand = '<message body>';
    this.bodyBytesWritten = 0;
    const peek = this.spec.transcript || this.opts.onTranscript ? new BodyPeek() : undefined;
    const dotSent = await this.sendBody(message, peek);
    for (const l of peek?.lines() ?? []) this.note('>', l);
    if (this.replies.length) {
      // the server answered before the body was complete (early 5xx / 421)
      const early = this.replies.shift()!;
      this.lastReply = early;
      if (early.code >= 400) this.reject('body', early);
      throw new ProbeError('EPROTOCOL', `reply before the end of the message: ${formatReply(early)}`, 'body');
    }

    // ---- final dot → reply
    this.begin('dataAck');
    this.lastCommand = '.';
    this.note('>', '.');
    if (!dotSent) this.write(DOT);
    const fr = await this.readReply();
    if (fr.code < 200 || fr.code >= 300) this.reject('dataAck', fr);
    if (message.wireBytes >= (spec.tcpSnapshotMinBytes ?? DEFAULT_TCP_SNAPSHOT_MIN_BYTES)) {
      await this.snapshot('end');
    }
    this.endStage(this.settled());
  }

  /**
   * Every endpoint to try, lazily, as an MTA orders them (endpoints.ts): the relay, the host, or the MX hosts of
   * the domain; each host's addresses. `last` marks the final one. A host whose addresses cannot be resolved is an
   * attempt of its own when another host follows (with fallback), else the probe's failure.
   */
  private async *endpoints(): AsyncGenerator<Endpoint & { last: boolean }> {
    const { spec } = this;
    const proxy = spec.path.proxy ? parseProxyUrl(spec.path.proxy) : undefined;
    const proxyResolves = proxy?.kind === 'socks5h' || proxy?.kind === 'http';
    let hosts: Array<{ host: string; port: number }>;
    if (spec.path.relay) hosts = [{ host: spec.path.relay.host, port: spec.path.relay.port }];
    else if (spec.target.mx) {
      this.begin('dns');
      const mx = await this.guard(resolveMxHosts(spec.target.mx, this.dnsResolver(), spec.seed));
      this.resolved.mx = mx.map((m) => ({ exchange: m.exchange, priority: m.priority }));
      hosts = mx.map((m) => ({ host: m.exchange, port: spec.target.port }));
    } else hosts = [{ host: spec.target.host!, port: spec.target.port }];
    for (const [i, h] of hosts.entries()) {
      const lastHost = i === hosts.length - 1;
      this.server = h.host;
      if (net.isIP(h.host) || proxyResolves) {
        yield { server: h.host, address: h.host, port: h.port, last: lastHost };
        continue;
      }
      const t0 = clockMs();
      this.currentAttempt = { server: h.host, address: '', port: h.port, t0 };
      let addrs: string[];
      try {
        this.begin('dns');
        const resolver = spec.dnsServers?.length ? this.dnsResolver() : undefined;
        addrs = await this.guard(resolveAddresses(h.host, { ...(resolver ? { resolver } : {}), ...(spec.target.family ? { family: spec.target.family } : {}) }));
      } catch (e) {
        const pe = this.failure ?? toProbeError(e, 'dns');
        if (lastHost || this.fallback() === 'none' || !worthNextEndpoint(pe, undefined)) throw e;
        this.attempts.push({ server: h.host, address: '', port: h.port, outcome: classify(pe.code, 'dns'), stage: 'dns', ms: clockMs() - t0, error: pe.message });
        this.resetAttempt(this.marks.length);
        continue;
      }
      (this.resolved.addresses ??= {})[h.host] = addrs;
      for (const [j, address] of addrs.entries()) yield { server: h.host, address, port: h.port, last: lastHost && j === addrs.length - 1 };
    }
  }

  /** `mta` (next address, next MX) or `none`: the target's choice, by default `mta` for an MX target only. */
  private fallback(): 'mta' | 'none' {
    return this.spec.target.fallback ?? (this.spec.target.mx && !this.spec.path.relay ? 'mta' : 'none');
  }

  private dnsResolver(): dnsModule.promises.Resolver {
    this.resolver ??= probeResolver(this.spec.dnsServers, this.spec.timeouts.dnsMs);
    if (this.spec.dnsServers?.length) this.resolved.servers = [...this.spec.dnsServers];
    return this.resolver;
  }

  /**
   * Connect → [TLS] → greeting → EHLO → [STARTTLS → EHLO] → [AUTH] on the first endpoint that gets that far. With
   * fallback, an endpoint that refuses, cannot be reached, answers the greeting with 4xx or says 421 before MAIL
   * is an attempt, and the next endpoint is tried; its time is the attempt's, not the probe's stages.
   */
  private async openSession(endpoints: AsyncGenerator<Endpoint & { last: boolean }>): Promise<void> {
    for await (const ep of endpoints) {
      const t0 = clockMs();
      const firstMark = this.marks.length;
      this.currentAttempt = { server: ep.server, address: ep.address, port: ep.port, t0 };
      try {
        await this.session(ep);
        return;
      } catch (e) {
        if (e instanceof QuitAfter) throw e; // the user's stop, not the endpoint's failure
        if (this.evidence) await this.evidence;
        const pe = this.failure ?? toProbeError(e, this.current?.stage ?? 'connect', this.lastCommand);
        if (ep.last || this.fallback() === 'none' || !worthNextEndpoint(pe, this.lastReply)) throw e;
        const a: Attempt = { server: ep.server, address: ep.address, port: ep.port, outcome: classify(pe.code, pe.stage), stage: pe.stage, ms: clockMs() - t0, error: pe.message };
        if (pe.code === 'EREJECTED' && this.lastReply) a.reply = this.lastReply;
        this.attempts.push(a);
        this.resetAttempt(firstMark);
      }
    }
  }

  /** Forget a failed attempt's connection and stages (its time is in `attempts`); keep the DNS stage. */
  private resetAttempt(firstMark: number): void {
    // an abort that came while this attempt was failing (its evidence being read, its DNS hanging) ends the probe:
    // it must not be forgotten with the attempt's failure
    if (this.opts.signal?.aborted) {
      this.failure = new ProbeError('EABORTED', 'aborted', this.current?.stage ?? 'connect');
      throw this.failure;
    }
    // the old connection's events belong to the old attempt: its close or a late error must not end the next one
    for (const old of new Set([this.sock, this.raw])) {
      if (!old) continue;
      this.detach(old);
      old.off('error', this.onError);
      old.on('error', () => undefined);
    }
    this.destroy();
    this.failure = undefined;
    this.replaceFailed();
    this.evidence = undefined;
    this.endStage();
    this.marks.splice(firstMark, this.marks.length - firstMark, ...this.marks.slice(firstMark).filter((m) => m.stage === 'dns'));
    this.watchdog.stop();
    this.watchdog = this.newWatchdog();
    this.raw = this.sock = undefined;
    this.tuple = undefined;
    this.connectedTo = undefined;
    this.parser = this.newParser();
    this.replies = [];
    this.replyWaiter = undefined;
    this.lastReply = undefined;
    this.lastCommand = undefined;
    this.capabilities = undefined;
    this.tlsInfo = undefined;
    this.tcp = undefined;
    this.tcpUnavailable = undefined;
    this.stallBy = this.stallKind = this.progressFrom = undefined;
    this.ackedBytesPerSec = undefined;
    this.capturePath = this.captureError = undefined;
    this.unsolicitedAt = undefined;
    this.bytesWritten = this.bytesRead = 0;
  }

  /** One endpoint: connect, TLS, greeting, EHLO, STARTTLS, AUTH. Throws what ended it. */
  private async session(ep: Endpoint): Promise<void> {
    const { spec } = this;
    const tlsMode: TlsMode = spec.path.relay?.tls ?? spec.target.tls;
    this.server = ep.server;
    this.begin('connect');
    const sock = await this.guard(
      this.open({
        host: ep.address,
        port: ep.port,
        localAddress: spec.path.localAddress,
        proxy: spec.path.proxy,
        onSocket: (s) => {
          this.raw = s;
          s.on('error', this.onError);
          // connect starts when the connection is asked for, not with our set-up before it: stamped in a microtask
          // queued just before openEgress calls connect() (net sends the SYN from a process.nextTick; which of the two
          // runs first depends on the queue we are called from: microseconds either way)
          queueMicrotask(() => this.sending());
          if (!spec.path.proxy) s.once('connect', this.onConnected);
        },
      }),
    );
    this.sock = sock;
    this.connectedTo = ep.address;
    if (spec.path.proxy) this.settledAt = clockMs(); // through a proxy: connected once it said so
    this.connectedAt = this.settledAt;
    // the same policy as the end-of-probe snapshot: probes big enough to pay for kernel evidence
    if (this.spec.sizeBytes >= (this.spec.tcpSnapshotMinBytes ?? DEFAULT_TCP_SNAPSHOT_MIN_BYTES)) this.hostBefore = readHostCounters();
    const tuple: SocketTuple = {
      localAddress: sock.localAddress ?? '',
      localPort: sock.localPort ?? 0,
      remoteAddress: sock.remoteAddress ?? '',
      remotePort: sock.remotePort ?? 0,
    };
    // port 0: a connection no kernel knows (the warm-up's in-memory one), nothing to read with ss or to capture
    this.tuple = tuple.localPort ? tuple : undefined;
    this.note('*', `connected to ${tuple.remoteAddress}:${tuple.remotePort} from ${tuple.localAddress}:${tuple.localPort}${spec.path.proxy ? ` via ${redactProxy(spec.path.proxy)}` : ''}`);
    const connected = this.settled();
    this.endStage(connected);
    this.checkpoint('connect');
    const servername = spec.servername ?? (this.server && !net.isIP(this.server) ? this.server : undefined);

    // ---- implicit TLS
    if (tlsMode === 'implicit') {
      this.begin('tls', connected);
      await this.startTls(servername);
    } else {
      this.attach(this.sock!);
    }

    // ---- greeting (from the connection, or from the TLS session, up)
    this.begin('greeting', tlsMode === 'implicit' ? this.settled() : connected);
    const greet = await this.readReply();
    if (greet.code !== 220) this.reject('greeting', greet);
    this.checkpoint('greeting');

    // ---- EHLO
    const ehloName = spec.ehloName ?? (HOSTNAME ??= os.hostname());
    this.begin('ehlo');
    await this.ehlo(ehloName);
    this.checkpoint('ehlo');

    // ---- STARTTLS
    if (tlsMode === 'starttls' || tlsMode === 'require-starttls') {
      const offered = this.capabilities!.some((c) => c.toUpperCase() === 'STARTTLS');
      if (!offered && tlsMode === 'require-starttls') {
        throw new ProbeError('ETLS', 'server does not offer STARTTLS (--tls require-starttls)', 'ehlo');
      }
      if (offered) {
        this.begin('starttls');
        const r = await this.command('STARTTLS');
        if (r.code !== 220) {
          if (tlsMode === 'require-starttls') {
            throw new ProbeError('ETLS', `STARTTLS refused: ${formatReply(r)}`, 'starttls', { lastCommand: 'STARTTLS' });
          }
          // opportunistic: carry on in plain text, as an MTA would
        } else {
          await this.startTls(servername);
          this.begin('ehlo');
          await this.ehlo(ehloName);
        }
      }
    }
    this.checkpoint('tls');

    // ---- AUTH
    if (spec.auth) {
      this.begin('auth');
      await this.auth();
    }
    this.checkpoint('auth');
  }

  /** The previous failure promise is settled; make a fresh one (used when moving on to the next MX host). */
  private replaceFailed(): void {
    this.failed = new Promise<never>((_, reject) => (this.failReject = reject));
    this.failed.catch(() => undefined);
  }

  private async ehlo(name: string): Promise<void> {
    let r = await this.command(`EHLO ${name}`);
    if (r.code >= 500 && r.code < 600) {
      r = await this.command(`HELO ${name}`);
      if (r.code !== 250) this.reject('ehlo', r);
      this.capabilities = [];
      return;
    }
    if (r.code !== 250) this.reject('ehlo', r);
    this.capabilities = r.text.split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  }

  private async startTls(servername: string | undefined): Promise<void> {
    // imported on first use, before the socket is detached: a plain-text probe never loads TLS (bench/startup.mjs)
    const { default: tls } = await import('node:tls');
    const raw = this.sock!;
    this.detach(raw);
    const ts = tls.connect({
      socket: raw,
      servername,
      rejectUnauthorized: !this.spec.insecure,
      // the certificate is checked against the name we meant, not the IP we connected to
      checkServerIdentity: (host, cert) => tls.checkServerIdentity(servername ?? this.server ?? host, cert),
    });
    this.sock = ts;
    ts.on('error', this.onError);
    await this.guard(
      new Promise<void>((resolve) => {
        ts.once('secureConnect', () => {
          this.settledAt = clockMs();
          resolve();
        });
      }),
    );
    const cipher = ts.getCipher();
    const cert = ts.getPeerCertificate();
    this.tlsInfo = {
      version: ts.getProtocol() ?? 'unknown',
      cipher: cipher?.name ?? 'unknown',
      authorized: ts.authorized,
    };
    if (!ts.authorized && ts.authorizationError) this.tlsInfo.authorizationError = String(ts.authorizationError);
    const cn = cert?.subject?.CN;
    if (cn) this.tlsInfo.peerName = Array.isArray(cn) ? cn[0] : cn;
    this.attach(ts);
    this.progress();
    this.note('*', `TLS ${this.tlsInfo.version} ${this.tlsInfo.cipher}${ts.authorized ? ', certificate verified' : ', certificate NOT verified'}`);
  }

  private async auth(): Promise<void> {
    const a = this.spec.auth!;
    const secret = process.env[a.passEnv] ?? '';
    const offered = (this.capabilities!.find((c) => /^AUTH[ =]/i.test(c)) ?? '').toUpperCase().split(/[ =]/).slice(1);
    const method = a.method ?? (offered.includes('PLAIN') || !offered.includes('LOGIN') ? 'PLAIN' : 'LOGIN');
    let r: SmtpReply;
    if (method === 'PLAIN') {
      const token = Buffer.from(`\0${a.user}\0${secret}`).toString('base64');
      r = await this.command(`AUTH PLAIN ${token}`, 'AUTH PLAIN ****');
    } else {
      r = await this.command('AUTH LOGIN');
      if (r.code === 334) r = await this.command(Buffer.from(a.user).toString('base64'), '<username>');
      if (r.code === 334) r = await this.command(Buffer.from(secret).toString('base64'), '****');
    }
    if (r.code !== 235) this.reject('auth', r);
  }

  /**
   * Stream the message in writes of about CHUNK_BYTES, gathering small chunks (the header block) with what
   * follows into one corked writev, as an MTA writes a message: a header block written alone would travel as its
   * own small segment and hide a PMTU blackhole from the smallest probes. Gathering (not concatenating) keeps the
   * generator's zero-copy slices zero-copy. Write callbacks count what the kernel accepted. The final dot goes
   * in the last write with the end of the body (one segment and one system call less per probe, as smtp-source
   * and the minimal client send it); true when it did (no early reply came before).
   */
  private async sendBody(message: MessageSource, peek?: BodyPeek): Promise<boolean> {
    const sock = this.sock!;
    const w = new BodyWriter(sock, () => this.sending(), (n, body) => {
      this.bytesWritten += n;
      if (body) this.bodyBytesWritten! += n;
      this.progress();
    });
    // one piece: false to stop (a failure, or an early reply), true to go on, a promise when the socket must drain
    const step = (piece: Buffer): Promise<void> | boolean => {
      if (this.failure || this.replies.length) return false;
      peek?.add(piece);
      const drain = w.add(piece, true);
      return drain ? this.guard(drain) : true;
    };
    const chunks = message.chunks();
    if (Symbol.iterator in chunks) {
      // a generated message is a plain iterable: walked without an await (and a promise) per chunk
      for (const chunk of chunks as Iterable<Buffer>) {
        const fed = feed(chunk, step);
        if (fed === false || (fed !== true && !(await fed))) break;
      }
    } else {
      for await (const chunk of chunks) if (!(await feed(chunk, step))) break;
    }
    if (this.failure) return this.failed;
    if (this.replies.length) return false; // early reply: stop sending (what is queued is not sent), no final dot
    const drain = w.add(DOT, false) ?? w.flush();
    if (drain) await this.guard(drain);
    // The body stage ends when the kernel has accepted the last byte. Nothing left in the socket's own buffer
    // means every write went into the kernel synchronously (the common case for small messages): no need to wait
    // a loop turn for the callback before the final dot.
    if (sock.writableLength > 0) await this.guard(w.written());
    return true;
  }

  private async quit(): Promise<void> {
    if (!this.sock || this.sock.destroyed) return;
    // QUIT never changes the outcome: a server that does not answer it has still taken (or refused) the mail
    const saved = this.failure;
    const savedReply = this.lastReply;
    const savedCommand = this.lastCommand;
    this.failure = undefined;
    this.replaceFailed();
    this.replies.length = 0; // what came unasked before QUIT (checked by command) does not matter any more
    try {
      this.begin('quit');
      await this.command('QUIT');
      this.endStage(this.settled());
    } catch {
      // ignore
    }
    this.endStage();
    this.failure = saved;
    this.lastReply = savedReply; // the reply that decided the outcome, not QUIT's
    this.lastCommand = savedCommand; // a 421 greeting was not an answer to QUIT
  }

  private result(message: MessageSource): ProbeResult {
    const { spec } = this;
    const stages: Partial<Record<Stage, number>> = {};
    for (const m of this.marks) {
      const end = m.end ?? clockMs();
      stages[m.stage] = (stages[m.stage] ?? 0) + (end - m.start);
    }
    const err = this.failure;
    const r: ProbeResult = {
      probeId: spec.probeId,
      target: targetLabel(spec.target),
      path: spec.path.name,
      sizeBytes: message.sizeBytes,
      seed: spec.seed,
      outcome: err ? classify(err.code, err.stage) : this.quitAt ? 'quit-after' : 'delivered',
      stages,
      startedAt: this.startedAt,
      durationMs: this.now(),
      bytesWritten: this.bytesWritten,
      bytesRead: this.bytesRead,
      stallMs: spec.timeouts.stallMs,
    };
    if (spec.runId) r.runId = spec.runId;
    if (err) {
      r.stage = err.stage;
      const ctx = { tlsMode: spec.path.relay?.tls ?? spec.target.tls, servername: spec.servername ?? this.server, ...(spec.path.proxy ? { proxy: redactProxy(spec.path.proxy) } : {}) };
      r.error = { code: err.code, message: inWords(err, ctx) };
      if (err.extra.lastCommand ?? this.lastCommand) r.error.lastCommand = err.extra.lastCommand ?? this.lastCommand;
    }
    if (this.bodyBytesWritten !== undefined) r.bodyBytesWritten = this.bodyBytesWritten;
    if (this.lastReply) r.reply = this.lastReply;
    if (this.recipients.length) r.recipients = this.recipients;
    if (spec.path.relay) r.server = `${spec.path.relay.host}:${spec.path.relay.port}`;
    else if (this.server && this.server !== spec.target.host) r.server = this.server;
    if (this.tuple) {
      r.localAddress = this.tuple.localAddress;
      r.localPort = this.tuple.localPort;
      r.remoteAddress = this.tuple.remoteAddress;
      r.remotePort = this.tuple.remotePort;
    }
    if (spec.path.proxy) r.proxy = redactProxy(spec.path.proxy);
    if (this.tlsInfo) r.tls = this.tlsInfo;
    if (this.capabilities) r.capabilities = this.capabilities;
    if (this.tcp) r.tcp = this.tcp;
    else if (this.tcpUnavailable) r.tcpUnavailable = this.tcpUnavailable;
    if (r.outcome === 'stalled') {
      if (this.stallBy) r.stallBy = this.stallBy;
      if (this.stallKind) r.stallKind = this.stallKind;
    }
    if (this.progressFrom && (r.outcome === 'stalled' || r.outcome === 'timeout')) r.progressFrom = this.progressFrom;
    if (this.ackedBytesPerSec !== undefined && r.outcome === 'timeout') r.ackedBytesPerSec = this.ackedBytesPerSec;
    if (this.attempts.length) {
      // more than one endpoint tried: the chain, the last one being the probe's own (its stages are `stages`)
      const c = this.currentAttempt;
      const last: Attempt | undefined = c && { server: c.server, address: c.address, port: c.port, outcome: r.outcome, ms: clockMs() - c.t0 };
      if (last && r.stage) last.stage = r.stage;
      r.attempts = last ? [...this.attempts, last] : [...this.attempts];
    }
    if (this.resolved.mx || this.resolved.addresses || this.resolved.servers) r.resolved = this.resolved;
    if (this.hostCounters) r.hostCounters = this.hostCounters;
    if (this.capturePath) r.capture = this.capturePath;
    if (this.captureError) r.captureError = this.captureError;
    if (this.quitAt && !err) r.quitAfter = this.quitAt;
    if (message.info) r.message = message.info;
    if (spec.transcript) r.transcript = this.transcript;
    return r;
  }
}

/**
 * Run one probe. Network outcomes (stall, reset, rejection…) are results, never rejections. Rejects with
 * AbortError when `opts.signal` aborts, and with ProbeInputError for bad input found before sending.
 */
export async function probe(spec: ProbeSpec, opts: ProbeOptions = {}): Promise<ProbeResult> {
  // once per process, before the first probe's clock starts: a throwaway probe in memory, a socket to itself (warmup.ts)
  await warmUp(warmUpProbe);
  // node:dns is loaded on first use (endpoints.ts): before the clock, so that the first `dns` stage is the lookup's
  if (resolvesNames(spec)) dns();
  return new Transaction(spec, opts).run();
}

/** Will this probe look anything up (MX, a host or proxy name, its own DNS servers)? */
export function resolvesNames(spec: ProbeSpec): boolean {
  if (spec.target.mx || spec.dnsServers?.length) return true;
  const hosts = [spec.path.relay?.host ?? spec.target.host];
  if (spec.path.proxy) {
    try {
      hosts.push(parseProxyUrl(spec.path.proxy).host);
    } catch {
      // a bad proxy URL fails the probe before anything is resolved
    }
  }
  return hosts.some((h) => !!h && !net.isIP(h));
}

/** The warm-up's throwaway probe, over the connections `open` makes (warmup.ts's in-memory ones), until `signal`. */
export function warmUpProbe(open: SocketOpener, signal?: AbortSignal): Promise<ProbeResult> {
  return new Transaction(warmUpSpec(), signal ? { signal } : {}, open).run();
}

/** The throwaway probe of the warm-up: every stage of a plain 1 KiB probe, each deadline within the warm-up's bound. */
export function warmUpSpec(): ProbeSpec {
  const ms = WARM_UP_MAX_MS;
  return {
    probeId: 'warm-up',
    target: { host: '127.0.0.1', port: 25, tls: 'none' }, // never dialled: the warm-up's opener connects in memory
    path: { name: 'warm-up' },
    sizeBytes: 1024,
    seed: 1,
    envelope: { from: 'warm-up@mxprobe.invalid', to: ['warm-up@mxprobe.invalid'] },
    ehloName: 'warm-up.invalid',
    timeouts: { dnsMs: ms, connectMs: ms, commandMs: ms, dataMs: ms, bodyMs: ms, dataAckMs: ms, stallMs: ms, noReplyMs: ms },
    tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER,
  };
}

export type { ProbeErrorCode };

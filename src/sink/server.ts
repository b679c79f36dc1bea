/**
 * The receiving side: an SMTP server (smtp-server) that accepts probe mail, never stores a body, and writes one
 * record per message transaction and one per session: when each command arrived, how many message bytes came
 * and when the last one did, whether the message arrived whole and matches its seed, and how it ended.
 *
 * ## The 100 ms greeting delay
 *
 * `SMTPConnection#init()` in smtp-server (3.21, `lib/smtp-connection.js`) waits a hard-coded 100 ms
 * (`setTimeout(() => this.connectionReady(), 100)`) before it runs the reverse DNS lookup, `onConnect` and the
 * 220 greeting. It is early-talker detection: until the greeting, `_ready` is false and any command the client
 * sends is answered `421 You talk too soon` and the connection is closed (spam bots that do not wait for the
 * banner). No option turns it off (`disableReverseLookup` skips only the DNS lookup that follows it, which on
 * its own can add up to 1.5 s). Its costs for a measuring sink: every session's `greeting` stage, as the
 * sender times it, is ≥ 100 ms longer than the network round trip, and a client that runs sessions back to
 * back over one connection slot cannot exceed 1 / (0.1 s + session time) < 10 sessions/s per slot.
 *
 * The sink removes it: `SinkSmtpServer#connect` below does what `SMTPServer#connect` does but, instead of
 * `init()`, calls `_setListeners()` and then `connectionReady()` at once, so the greeting goes out in the same
 * tick the connection is accepted (with `disableReverseLookup`). Early-talker detection then applies only
 * during a deliberate `delaysMs.greeting`. If a future smtp-server lacks those methods, the sink falls back to
 * `init()` and reports `greetingDelayMs: 100`.
 *
 * ## Instrumentation
 *
 * smtp-server has hooks for MAIL, RCPT, DATA and AUTH but none for every command, for replies, or for how a
 * connection ended. The sink wraps, on each connection instance only (never the prototype, which other servers
 * in the process share), `_onCommand` (command arrival times; EHLO/DATA reply overrides; DATA delay), `send`
 * (when 354 and the final reply went out), `_onTimeout` (a silent client), `_onError` (resets) and `_onClose`
 * (the end of the session). All are late-bound by smtp-server (`this._onCommand(...)`), typed in its own
 * declarations, and covered by tests/integration/sink.test.ts.
 *
 * ## Read pacing (fairness under load)
 *
 * libuv (Node 20) accepts one new connection per event-loop iteration, and in one iteration it reads up to
 * 32 × 64 KiB from every socket that has data. With many clients streaming big messages an iteration becomes
 * tens of MiB of parsing and hashing, so a new connection waits that long for its greeting: the sink itself
 * would add greeting time, as the 100 ms wait did. The sink therefore budgets the message bytes it reads per
 * iteration (READ_BUDGET_BYTES, all sockets together): a socket that reads past the budget is paused and
 * parked, and parked sockets are resumed round-robin in later iterations, a budget's worth at a time. Measured
 * on 2 cores with 16 concurrent 64 MiB uploads: a new session's greeting took 0.3–20 ms (median 5) with pacing,
 * 26–381 ms (median 110) without, same total throughput; 200 concurrent 16 MiB uploads were all accepted
 * within 1.5 s instead of 46–65 s. Streams share the CPU fairly. Arrival times are when the sink read the
 * bytes; when its CPU is saturated that trails the network by up to one round of the parked queue. Only
 * sockets in DATA are paced, and a parked socket is never taken for a silent client.
 *
 * ## Byte counts
 *
 * A message that arrives complete is counted from the DATA stream smtp-server hands over: the message bytes
 * exactly as DESIGN.md defines them (headers + body, dots un-stuffed, ending in the CRLF before `.CRLF`). A
 * message cut short is counted from the socket: bytes received since the DATA command (smtp-server holds back
 * the last 4 bytes it parsed in case they start the terminator, and drops them when the connection closes, so
 * its count would fall short). For a probe message (no line starts with '.') the two counts are the same.
 */
import os from 'node:os';
import type net from 'node:net';
import type tls from 'node:tls';
import type http from 'node:http';
import type { TcpSnapshot } from '../model.js';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerAuthenticationResponse, type SMTPServerDataStream, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import { httpPort, startRecordsHttp } from './http.js';
import { DEFAULT_MAX_RECORDS, RecordFile, RecordStore, type SinkEnded, type SinkRecord } from './records.js';
import { settledSnapshots, sinkSnapshot } from './tcp.js';
import { MessageInspector } from './verify.js';
import { clockMs } from '../clock.js';

export const REPLY_STAGES = ['connect', 'ehlo', 'mail', 'rcpt', 'data', 'dataAck'] as const;
export type ReplyStage = (typeof REPLY_STAGES)[number];
export const DELAY_STAGES = ['greeting', 'mail', 'rcpt', 'data', 'dataAck'] as const;
export type DelayStage = (typeof DELAY_STAGES)[number];

export interface SinkOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Listen port; default 0 (any free port; read it from `Sink.port`). */
  port?: number;
  /** Offer STARTTLS with this certificate, or with `implicit` speak TLS from the first byte (port 465 style). */
  tls?: { cert: Buffer | string; key: Buffer | string; implicit?: boolean };
  /** Advertised SIZE; a bigger message is read to its end and refused with 552. Default: no limit. */
  sizeLimitBytes?: number;
  /** Forced replies per stage, for testing clients. `connect`..`data` take 4xx/5xx; `dataAck` also 2xx (custom text). */
  replies?: Partial<Record<ReplyStage, { code: number; text?: string }>>;
  /** Delays before the reply of a stage, ms. */
  delaysMs?: Partial<Record<DelayStage, number>>;
  /** Append each record as a JSON line to this file. */
  record?: string;
  /** user → password; enables AUTH PLAIN/LOGIN (also without TLS) and requires it before MAIL. */
  authUsers?: Record<string, string>;
  /** Serve the records over HTTP (GET /records, GET /records/<probeId>). */
  http?: { host?: string; port?: number };
  /** A client that owes the sink input and sends nothing for this long is disconnected (421); default 60 s. */
  silentTimeoutMs?: number;
  /** Host name in the greeting and EHLO reply; default the machine's host name. */
  name?: string;
  /** Records kept in memory (oldest dropped first; the record file keeps all); default 100,000. */
  maxRecords?: number;
  /**
   * Read the sink's own socket from the kernel (`ss`) when it sends 354, when a message ends and when a client goes
   * silent, and keep it in the record (`tcp`); default true. `MXPROBE_SS=none` turns it off too.
   */
  tcpEvidence?: boolean;
}

export interface Sink {
  host: string;
  port: number;
  httpPort?: number;
  /** 0 when the sink greets at once, 100 when smtp-server's early-talker wait could not be removed. */
  greetingDelayMs: number;
  /** Records in memory, oldest first. */
  records(): SinkRecord[];
  /** The latest `probe` record with this probe id. */
  byProbe(id: string): SinkRecord | undefined;
  /** Resolves with the probe's record once written, or undefined after timeoutMs (or when the sink closes). */
  waitFor(probeId: string, timeoutMs: number): Promise<SinkRecord | undefined>;
  /** Called with every record as it is written. Returns an unsubscribe function. */
  onRecord(fn: (r: SinkRecord) => void): () => void;
  /** Called with problems worth a warning (record file not writable, TLS handshake failures, …). */
  onError(fn: (e: Error) => void): () => void;
  /** Stop listening, end open sessions (recorded as `shutdown`), flush the record file. */
  close(): Promise<void>;
}

/** Thrown by `startSink` when it cannot start; `code` is the OS error code (EADDRINUSE, EACCES, ENOENT, …). */
export class SinkStartError extends Error {
  override name = 'SinkStartError';
  constructor(
    message: string,
    readonly code: string,
    readonly what: 'smtp' | 'http' | 'record' | 'options',
  ) {
    super(message);
  }
}

const DEFAULT_SILENT_MS = 60_000;
const MAX_COMMANDS = 512;
/** Message bytes read per event-loop iteration, all sockets together (see "Read pacing"). */
const READ_BUDGET_BYTES = 256 * 1024;
const TYPICAL_READ_BYTES = 64 * 1024;

/** Round-robin read budget per event-loop iteration (see "Read pacing" above). */
class ReadPacer {
  private used = 0;
  private scheduled = false;
  private readonly parked: Array<() => void> = [];

  /** Count a chunk just read; returns true when the socket must pause (it was parked, `resume` runs later). */
  account(bytes: number, resume: () => void): boolean {
    this.used += bytes;
    this.schedule();
    if (this.used <= READ_BUDGET_BYTES) return false;
    this.parked.push(resume);
    return true;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    this.used = 0;
    // resume a budget's worth of parked sockets (each reads about one 64 KiB chunk), oldest first
    let n = Math.max(1, Math.floor(READ_BUDGET_BYTES / TYPICAL_READ_BYTES));
    while (n-- > 0 && this.parked.length) this.parked.shift()!();
    if (this.parked.length) this.schedule();
  }
}
const TAIL_BYTES = 16;
/** Socket errors that are a client going away, recorded as `reset`, not reported as warnings. */
const QUIET_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

const CAN_GREET_AT_ONCE =
  typeof SMTPConnection.prototype._setListeners === 'function' && typeof SMTPConnection.prototype.connectionReady === 'function';

/** SMTPServer whose connections greet at once and are instrumented (see the header comment). */
class SinkSmtpServer extends SMTPServer {
  declare instrument: (conn: SMTPConnection, socket: net.Socket | tls.TLSSocket) => void;

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    // what SMTPServer#connect does, with the instrumentation hook and without the 100 ms early-talker wait
    const conn = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(conn);
    conn.on('error', (err: Error) => this.emit('error', err));
    conn.on('connect', (data: unknown) => this.emit('connect', data));
    this.instrument(conn, socket);
    if (CAN_GREET_AT_ONCE) conn._setListeners(() => conn.connectionReady());
    else conn.init();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Per-session state

interface Tx {
  /** socket bytes received when DATA was processed */
  rxAtData: number;
  dataStartMs?: number;
  firstByteMs?: number;
  lastRxMs?: number;
  lastByteMs?: number;
  terminated: boolean;
  inspector: MessageInspector;
  /** the last TAIL_BYTES bytes received on the socket (smtp-server holds back up to 4 when a connection is cut) */
  tail: Buffer;
  reply?: { code: number; text: string; tMs: number };
  commands: { cmd: string; tMs: number }[];
  finalized: boolean;
  /** the kernel's view of the socket when 354 went out, and when the message ended */
  tcpAtData?: Promise<TcpSnapshot | undefined>;
  tcpAtEnd?: Promise<TcpSnapshot | undefined>;
}

interface Session {
  id: string;
  conn: SMTPConnection;
  t0: number;
  startedAt: string;
  remoteAddress: string;
  remotePort: number;
  socket: net.Socket | tls.TLSSocket;
  /** plaintext bytes received from the client */
  rx: number;
  commands: { cmd: string; tMs: number }[];
  /** commands since the last transaction ended */
  txCommands: { cmd: string; tMs: number }[];
  tx?: Tx;
  messages: number;
  messageBytes: number;
  allWhole: boolean;
  lastError?: { code: number; text: string; tMs: number };
  quit: boolean;
  refused: boolean;
  timedOut: boolean;
  inTimeout: boolean;
  serverClosed: boolean;
  shutdown: boolean;
  errorCode?: string;
  closed: boolean;
  tls?: string;
  /** paused by the read pacer, waiting for its turn */
  parked: boolean;
  /** the kernel's view of the socket when the client went silent */
  tcpAtSilent?: Promise<TcpSnapshot | undefined>;
  /** record writes of this session's transactions still in progress (verification is asynchronous) */
  pending: Set<Promise<void>>;
  /** resolves once the session record is written */
  done: Promise<void>;
  markDone: () => void;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

function smtpError(code: number, text: string): Error & { responseCode: number } {
  return Object.assign(new Error(text), { responseCode: code });
}

function validate(opts: SinkOptions): void {
  for (const [stage, r] of Object.entries(opts.replies ?? {})) {
    if (!(REPLY_STAGES as readonly string[]).includes(stage)) throw new SinkStartError(`unknown reply stage "${stage}" (expected ${REPLY_STAGES.join(', ')})`, 'EINVAL', 'options');
    if (!r) continue;
    const min = stage === 'dataAck' ? 200 : 400;
    if (!Number.isInteger(r.code) || r.code < min || r.code > 599) {
      throw new SinkStartError(`reply code for ${stage} must be ${stage === 'dataAck' ? '2xx, 4xx or 5xx' : '4xx or 5xx'}, got ${r.code}`, 'EINVAL', 'options');
    }
    if (r.code >= 300 && r.code < 400) throw new SinkStartError(`reply code for ${stage} cannot be 3xx, got ${r.code}`, 'EINVAL', 'options');
    if (r.text !== undefined && /[\r\n]/.test(r.text)) throw new SinkStartError(`reply text for ${stage} contains a line break`, 'EINVAL', 'options');
  }
  for (const [stage, ms] of Object.entries(opts.delaysMs ?? {})) {
    if (!(DELAY_STAGES as readonly string[]).includes(stage)) throw new SinkStartError(`unknown delay stage "${stage}" (expected ${DELAY_STAGES.join(', ')})`, 'EINVAL', 'options');
    if (ms !== undefined && !(ms >= 0 && Number.isFinite(ms))) throw new SinkStartError(`delay for ${stage} must be ≥ 0 ms, got ${ms}`, 'EINVAL', 'options');
  }
  if (opts.sizeLimitBytes !== undefined && !(Number.isSafeInteger(opts.sizeLimitBytes) && opts.sizeLimitBytes > 0)) {
    throw new SinkStartError(`size limit must be a whole number of bytes > 0, got ${opts.sizeLimitBytes}`, 'EINVAL', 'options');
  }
  if (opts.silentTimeoutMs !== undefined && !(opts.silentTimeoutMs > 0)) throw new SinkStartError(`silent timeout must be > 0 ms, got ${opts.silentTimeoutMs}`, 'EINVAL', 'options');
}

const forcedText = (stage: string, code: number) => `mxprobe sink: forced ${code} at ${stage}`;

/** Start a sink. Rejects with SinkStartError when the address is taken, the record file is not writable, … */
export async function startSink(opts: SinkOptions = {}): Promise<Sink> {
  validate(opts);
  const host = opts.host ?? '127.0.0.1';
  const replies = opts.replies ?? {};
  const delays = opts.delaysMs ?? {};
  const store = new RecordStore(opts.maxRecords ?? DEFAULT_MAX_RECORDS);
  const errorSubs = new Set<(e: Error) => void>();
  const warn = (e: Error) => {
    for (const fn of errorSubs) {
      try {
        fn(e);
      } catch {
        // ignore
      }
    }
  };

  let recordFile: RecordFile | undefined;
  if (opts.record) {
    try {
      recordFile = await RecordFile.open(opts.record, warn);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new SinkStartError(`cannot open the record file ${opts.record} for appending: ${code}`, code, 'record');
    }
  }

  const sessions = new Map<string, Session>();
  let closing = false;
  const pacer = new ReadPacer();

  const emit = (r: SinkRecord) => {
    store.add(r);
    recordFile?.append(r);
  };

  const now = (s: Session) => round2(clockMs() - s.t0);
  const snap = (s: Session, at: TcpSnapshot['at']) => (opts.tcpEvidence === false ? undefined : sinkSnapshot(s.socket, at, now(s)));
  const pushCommand = (s: Session, cmd: string, tMs: number) => {
    const c = { cmd, tMs };
    if (s.commands.length < MAX_COMMANDS) s.commands.push(c);
    if (s.txCommands.length < MAX_COMMANDS) s.txCommands.push(c);
  };

  const attachSocket = (s: Session, socket: net.Socket | tls.TLSSocket) => {
    s.socket = socket;
    // registered before smtp-server pipes the socket into its parser, so a chunk is counted before it is parsed
    socket.on('data', (chunk: Buffer) => {
      s.rx += chunk.length;
      const tx = s.tx;
      if (tx && !tx.terminated) {
        const t = now(s);
        tx.firstByteMs ??= t;
        tx.lastRxMs = t;
        tx.tail =
          chunk.length >= TAIL_BYTES ? Buffer.from(chunk.subarray(chunk.length - TAIL_BYTES)) : Buffer.concat([tx.tail, chunk]).subarray(-TAIL_BYTES);
        // pause before smtp-server's pipe sees the chunk: it still gets this one, libuv reads no more for now
        if (s.parked) socket.pause();
        else if (pacer.account(chunk.length, () => resumeParked(s, socket))) {
          s.parked = true;
          socket.pause();
        }
      }
    });
  };

  const resumeParked = (s: Session, socket: net.Socket | tls.TLSSocket) => {
    s.parked = false;
    if (socket.destroyed || socket !== s.socket) return;
    // while smtp-server's parser is full, its pipe resumes the socket itself on 'drain'
    const parser = s.conn._parser;
    if (parser && parser.writableNeedDrain) return;
    socket.resume();
  };

  const sessionEnded = (s: Session): SinkEnded =>
    s.shutdown ? 'shutdown' : s.timedOut ? 'client-silent' : s.refused ? 'rejected' : s.quit ? 'completed' : s.errorCode ? 'reset' : s.serverClosed ? 'rejected' : 'closed';

  /** Write the record of a transaction: at its final reply, or when the connection ended first. */
  const finalizeTx = (s: Session, tx: Tx, endedIfNoReply: SinkEnded) => {
    if (tx.finalized) return;
    tx.finalized = true;
    const insp = tx.inspector;
    const ended: SinkEnded = tx.reply ? (tx.reply.code < 400 ? 'completed' : 'rejected') : endedIfNoReply;
    const p = (async () => {
      let bodyBytes: number;
      let whole = false;
      let verified: boolean | undefined;
      let sha256: string | undefined;
      let probe;
      if (tx.terminated) {
        const res = await insp.finish();
        probe = res.probe ?? insp.probe;
        bodyBytes = res.bytes;
        // a probe is whole when its size is right, or its body verifies (a relay may have added headers)
        whole = probe ? res.bytes === probe.sizeBytes || res.verified === true : true;
        verified = res.verified;
        sha256 = res.sha256;
      } else {
        bodyBytes = Math.max(s.rx - tx.rxAtData, insp.bytes);
        // the bytes smtp-server parsed but had not passed on when the connection went (at most 4 held back in
        // case they start the terminator): recover them from the socket's tail, e.g. the end of X-Mxprobe
        const missing = bodyBytes - insp.bytes;
        if (missing > 0 && missing <= tx.tail.length) insp.push(tx.tail.subarray(tx.tail.length - missing));
        probe = insp.partialProbe();
      }
      const lastByteMs = tx.lastByteMs ?? tx.lastRxMs;
      const tcp = await settledSnapshots([tx.tcpAtData, tx.tcpAtEnd ?? s.tcpAtSilent]);
      // keys in a stable order, absent ones left out (not undefined) so every JSON line reads the same way
      const rec: SinkRecord = {
        kind: probe ? 'probe' : 'message',
        ...(probe ? { probeId: probe.probeId } : {}),
        sessionId: s.id,
        remoteAddress: s.remoteAddress,
        remotePort: s.remotePort,
        startedAt: s.startedAt,
        commands: tx.commands,
        ...(probe ? { expectedBytes: probe.sizeBytes } : {}),
        bodyBytes,
        ...(insp.headerBytes !== undefined ? { headerBytes: insp.headerBytes } : {}),
        ...(tx.dataStartMs !== undefined ? { dataStartMs: tx.dataStartMs } : {}),
        ...(tx.firstByteMs !== undefined ? { firstByteMs: tx.firstByteMs } : {}),
        ...(lastByteMs !== undefined ? { lastByteMs } : {}),
        whole,
        ...(verified !== undefined ? { verified } : {}),
        ...(sha256 !== undefined ? { sha256 } : {}),
        ended,
        ...(tx.reply ? { reply: tx.reply } : {}),
        ...(tcp.length ? { tcp } : {}),
      };
      s.messageBytes += bodyBytes;
      if (!whole) s.allWhole = false;
      emit(rec);
    })().catch((e) => warn(new Error(`sink: could not write the record of session ${s.id}: ${(e as Error).message}`)));
    s.pending.add(p);
    void p.finally(() => s.pending.delete(p));
  };

  const endSession = (s: Session) => {
    const ended = sessionEnded(s);
    const tx = s.tx;
    s.tx = undefined;
    if (tx) finalizeTx(s, tx, ended);
    const done = Promise.all([...s.pending]).then(() => {
      const rec: SinkRecord = {
        kind: 'session',
        sessionId: s.id,
        remoteAddress: s.remoteAddress,
        remotePort: s.remotePort,
        startedAt: s.startedAt,
        commands: s.commands,
        bodyBytes: s.messageBytes,
        whole: s.allWhole,
        ended,
        messages: s.messages,
      };
      if (s.lastError) rec.reply = s.lastError;
      if (s.tls) rec.tls = s.tls;
      const user = s.conn.session.user;
      if (typeof user === 'string' && user) rec.user = user;
      emit(rec);
      sessions.delete(s.id);
    });
    void done.finally(s.markDone);
    inflight.add(done);
    void done.finally(() => inflight.delete(done));
  };
  const inflight = new Set<Promise<void>>();

  const instrument = (conn: SMTPConnection, socket: net.Socket | tls.TLSSocket) => {
    let markDone!: () => void;
    const done = new Promise<void>((resolve) => (markDone = resolve));
    const s: Session = {
      done,
      markDone,
      id: conn.id,
      conn,
      t0: clockMs(),
      startedAt: new Date().toISOString(),
      remoteAddress: conn.remoteAddress,
      remotePort: conn.remotePort,
      socket,
      rx: 0,
      commands: [],
      txCommands: [],
      messages: 0,
      messageBytes: 0,
      allWhole: true,
      quit: false,
      refused: false,
      timedOut: false,
      inTimeout: false,
      serverClosed: false,
      shutdown: false,
      closed: false,
      parked: false,
      pending: new Set(),
    };
    if (conn.secure && 'getProtocol' in socket) s.tls = (socket as tls.TLSSocket).getProtocol() ?? undefined;
    sessions.set(s.id, s);
    attachSocket(s, socket);

    const origSend = conn.send.bind(conn);
    conn.send = (code, data, context) => {
      const tMs = now(s);
      const text = Array.isArray(data) ? data.join('\n') : (data ?? '');
      const tx = s.tx;
      if (tx && code === 354 && tx.dataStartMs === undefined) {
        tx.dataStartMs = tMs;
        tx.tcpAtData = snap(s, 'data');
      } else if (tx && tx.terminated && !tx.reply) {
        tx.reply = { code, text, tMs };
        s.tx = undefined;
        s.txCommands = [];
        finalizeTx(s, tx, 'completed');
      }
      if (code >= 400) s.lastError = { code, text, tMs };
      if (code === 421) {
        if (s.inTimeout) s.timedOut = true;
        else s.serverClosed = true;
      }
      origSend(code, data, context);
    };

    const origOnCommand = conn._onCommand.bind(conn);
    conn._onCommand = (command, callback) => {
      // plaintext read behind STARTTLS, and AUTH continuation lines (credentials), are not commands
      if (conn._upgrading || conn._nextHandler) return origOnCommand(command, callback);
      const m = /^\s*([A-Za-z]{1,16})/.exec(command.toString('latin1'));
      const verb = m ? m[1]!.toUpperCase() : '?';
      pushCommand(s, verb, now(s));
      if (verb === 'QUIT') s.quit = true;
      const ready = conn._ready && !closing;
      if (ready && replies.ehlo && (verb === 'EHLO' || verb === 'HELO' || verb === 'LHLO')) {
        conn.send(replies.ehlo.code, replies.ehlo.text ?? forcedText('EHLO', replies.ehlo.code), false);
        callback?.();
        return;
      }
      if (ready && verb === 'DATA' && conn.session.envelope.rcptTo.length > 0 && !s.tx) {
        if (replies.data) {
          conn.send(replies.data.code, replies.data.text ?? forcedText('DATA', replies.data.code));
          callback?.();
          return;
        }
        if (delays.data) {
          // tell smtp-server's idle timer that the wait is ours, not the client's
          conn._handlerPending = true;
          setTimeout(() => {
            conn._handlerPending = false;
            if (!s.closed) origOnCommand(command, callback);
          }, delays.data);
          return;
        }
      }
      origOnCommand(command, callback);
    };

    const origOnTimeout = conn._onTimeout.bind(conn);
    conn._onTimeout = () => {
      if (s.parked) {
        // idle because the sink has not had its turn to read, not because the client is silent
        conn._armTimeout();
        return;
      }
      const timeOut = () => {
        if (s.closed) return;
        s.inTimeout = true;
        try {
          origOnTimeout();
        } finally {
          s.inTimeout = false;
        }
      };
      // read the kernel before the connection is closed (bounded: ss answers within 2 s or is killed)
      s.tcpAtSilent = snap(s, 'silent');
      if (s.tcpAtSilent) void s.tcpAtSilent.finally(timeOut);
      else timeOut();
    };

    const origOnError = conn._onError.bind(conn);
    conn._onError = (err) => {
      s.errorCode ??= err.code ?? 'ERROR';
      origOnError(err);
    };

    const origOnClose = conn._onClose.bind(conn);
    conn._onClose = () => {
      origOnClose();
      if (s.closed) return;
      s.closed = true;
      endSession(s);
    };
  };

  const withDelay = (ms: number | undefined, fn: () => void) => (ms ? setTimeout(fn, ms) : fn());

  const smtpOptions: SMTPServerOptions = {
    name: opts.name ?? os.hostname(),
    banner: 'mxprobe sink',
    logger: false,
    disableReverseLookup: true,
    authOptional: !opts.authUsers,
    allowInsecureAuth: true,
    authMethods: ['PLAIN', 'LOGIN'],
    disabledCommands: [...(opts.authUsers ? [] : ['AUTH']), ...(opts.tls && !opts.tls.implicit ? [] : ['STARTTLS'])],
    hideSTARTTLS: !opts.tls || !!opts.tls.implicit,
    secure: !!opts.tls?.implicit,
    ...(opts.tls ? { key: opts.tls.key, cert: opts.tls.cert } : {}),
    ...(opts.sizeLimitBytes ? { size: opts.sizeLimitBytes, rejectOversized: true } : {}),
    socketTimeout: opts.silentTimeoutMs ?? DEFAULT_SILENT_MS,
    closeTimeout: 1_000,

    onConnect(session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const s = sessions.get(session.id);
      const go = () => {
        if (s) s.conn._handlerPending = false;
        if (replies.connect) {
          if (s) s.refused = true;
          cb(smtpError(replies.connect.code, replies.connect.text ?? forcedText('connect', replies.connect.code)));
        } else cb();
      };
      if (delays.greeting && s) s.conn._handlerPending = true;
      withDelay(delays.greeting, go);
    },

    onSecure(socket: tls.TLSSocket, session: SMTPServerSession, cb: (err?: Error | null) => void) {
      const s = sessions.get(session.id);
      if (s) {
        // STARTTLS replaced the socket (and smtp-server removed every listener of the old one)
        if (socket !== s.socket) attachSocket(s, socket);
        s.tls = socket.getProtocol() ?? undefined;
      }
      cb(); // synchronously: smtp-server pipes the TLS socket into its parser right after
    },

    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, cb: (err: Error | null | undefined, response?: SMTPServerAuthenticationResponse) => void) {
      const users = opts.authUsers ?? {};
      const user = auth.username ?? '';
      if ((auth.method === 'PLAIN' || auth.method === 'LOGIN') && Object.prototype.hasOwnProperty.call(users, user) && users[user] === auth.password) {
        cb(null, { user });
      } else {
        cb(smtpError(535, 'Authentication credentials invalid'));
      }
    },

    onMailFrom(_address, _session: SMTPServerSession, cb: (err?: Error | null) => void) {
      withDelay(delays.mail, () => {
        if (replies.mail) cb(smtpError(replies.mail.code, replies.mail.text ?? forcedText('MAIL', replies.mail.code)));
        else cb();
      });
    },

    onRcptTo(_address, _session: SMTPServerSession, cb: (err?: Error | null) => void) {
      withDelay(delays.rcpt, () => {
        if (replies.rcpt) cb(smtpError(replies.rcpt.code, replies.rcpt.text ?? forcedText('RCPT', replies.rcpt.code)));
        else cb();
      });
    },

    onData(stream: SMTPServerDataStream, session: SMTPServerSession, cb: (err?: Error | null, message?: string) => void) {
      const s = sessions.get(session.id);
      if (!s) {
        stream.on('end', () => cb());
        stream.resume();
        return;
      }
      const tx: Tx = {
        rxAtData: s.rx,
        terminated: false,
        inspector: new MessageInspector(),
        tail: Buffer.alloc(0),
        commands: s.txCommands,
        finalized: false,
      };
      s.tx = tx;
      s.messages++;
      const insp = tx.inspector;
      const limit = opts.sizeLimitBytes;
      let over = false;
      stream.on('data', (chunk: Buffer) => {
        insp.push(chunk);
        if (limit && !over && insp.bytes > limit) {
          over = true;
          insp.stopHashing();
        }
      });
      // destroyed when the connection goes away mid-message: recorded when the session ends
      stream.on('error', () => undefined);
      stream.on('end', () => {
        tx.terminated = true;
        tx.lastByteMs = tx.lastRxMs ?? now(s);
        tx.tcpAtEnd = snap(s, 'end');
        pushCommand(s, '.', tx.lastByteMs);
        withDelay(delays.dataAck, () => {
          const r = replies.dataAck;
          if (r && r.code >= 400) return cb(smtpError(r.code, r.text ?? forcedText('end of DATA', r.code)));
          const probe = insp.probe;
          cb(null, r?.text ?? `OK: received ${insp.bytes} bytes${probe ? ` of probe ${probe.probeId}` : ''}`);
        });
      });
    },
  };

  const smtp = new SinkSmtpServer(smtpOptions);
  smtp.instrument = instrument;
  smtp.on('error', (err: Error & { code?: string; remoteAddress?: string }) => {
    if (err.code && QUIET_ERRORS.has(err.code)) return; // recorded as `reset`
    if (closing) return;
    warn(new Error(`${err.remoteAddress ? `connection from ${err.remoteAddress}: ` : ''}${err.message}`));
  });

  try {
    await new Promise<void>((resolve, reject) => {
      smtp.server.once('error', reject);
      smtp.server.listen(opts.port ?? 0, host, () => {
        smtp.server.off('error', reject);
        resolve();
      });
    });
  } catch (e) {
    await recordFile?.close();
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SinkStartError(`cannot listen on ${host}:${opts.port ?? 0}: ${listenReason(code)}`, code, 'smtp');
  }
  const port = (smtp.server.address() as net.AddressInfo).port;

  let httpServer: http.Server | undefined;
  if (opts.http) {
    const hh = opts.http.host ?? '127.0.0.1';
    try {
      httpServer = await startRecordsHttp(store, { smtp: { host, port } }, hh, opts.http.port ?? 0);
    } catch (e) {
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      await recordFile?.close();
      const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
      throw new SinkStartError(`cannot listen for HTTP on ${hh}:${opts.http.port ?? 0}: ${listenReason(code)}`, code, 'http');
    }
  }

  let closed: Promise<void> | undefined;
  const close = () =>
    (closed ??= (async () => {
      closing = true;
      const serverClosed = new Promise<void>((resolve) => smtp.close(() => resolve()));
      const open = [...sessions.values()];
      for (const s of open) {
        if (s.closed) continue;
        s.shutdown = true;
        s.socket.destroy();
        s.conn._socket.destroy();
      }
      // every session's record written (bounded: a socket that never reports 'close' must not hang close())
      let guard: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(open.map((s) => s.done)),
        new Promise<void>((resolve) => (guard = setTimeout(resolve, 5_000))),
      ]);
      clearTimeout(guard);
      await serverClosed;
      if (httpServer) {
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer!.close(() => resolve()));
      }
      while (inflight.size) await Promise.all([...inflight]);
      await recordFile?.close();
      store.releaseWaiters();
    })());

  const sink: Sink = {
    host,
    port,
    greetingDelayMs: CAN_GREET_AT_ONCE ? 0 : 100,
    records: () => store.all(),
    byProbe: (id) => store.byProbe(id),
    waitFor: (id, timeoutMs) => store.waitFor(id, timeoutMs),
    onRecord: (fn) => store.subscribe(fn),
    onError: (fn) => {
      errorSubs.add(fn);
      return () => errorSubs.delete(fn);
    },
    close,
  };
  if (httpServer) sink.httpPort = httpPort(httpServer);
  return sink;
}

function listenReason(code: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return 'address already in use (another server listens there; pick another port or stop it)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)';
    case 'EADDRNOTAVAIL':
      return 'address not available (not an address of this machine)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'cannot resolve the listen host';
    default:
      return code;
  }
}

/**
 * ONE instrumented SMTP transaction: connect → greeting → EHLO → [STARTTLS → EHLO] → [AUTH] → MAIL → RCPT… →
 * DATA → body → final reply → QUIT, over an egress path, with a deadline per stage and a stall watchdog.
 *
 * Hand-written rather than nodemailer's SMTPConnection: we need a mark at every stage boundary, the body
 * offset the kernel accepted (write callbacks, 16 KiB granularity), the raw socket kept alive at a stall so the
 * kernel's TCP state can be read before it is destroyed, and a throughput nodemailer's transport does not reach
 * (600–700 sessions/s measured against ~2,500+ for a minimal client).
 */
import dns from 'node:dns';
import net from 'node:net';
import os from 'node:os';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import type { ProbeResult, ProbeSpec, RecipientResult, SmtpReply, Stage, TargetSpec, TcpSnapshot, TlsInfo, TlsMode } from '../model.js';
import { classify, descriptorExhaustion, ProbeEnvError, ProbeError, ProbeInputError, toProbeError, type ProbeErrorCode } from './errors.js';
import { openEgress, parseProxyUrl, redactProxy } from './egress.js';
import { CHUNK_BYTES, fileMessage, generatedMessage, MessageError, type MessageSource } from './message.js';
import { formatReply, ReplyParser } from './reply.js';
import { tcpSnapshot, type SocketTuple } from './tcpinfo.js';
import { dataOutstanding } from './evidence.js';
import { lineBreakIn, secretForms } from '../text.js';
import type { CaptureSession } from './capture.js';
import { isRealProbe, sizeRefusal } from './guards.js'; // real-target safety rules (issue 9)

export interface ProbeOptions {
  signal?: AbortSignal;
  /** Called when a stage starts (tMs since the probe started). */
  onStage?: (e: { probeId: string; stage: Stage; tMs: number }) => void;
  /** A run-wide capture; a stalled probe's connection is extracted from it into its own pcap. */
  capture?: CaptureSession;
}

export const DEFAULT_TCP_SNAPSHOT_MIN_BYTES = 64 * 1024;

/** Thrown (as a rejection of `probe`) when the caller's signal aborts: not a measurement. */
export class AbortError extends Error {
  override name = 'AbortError';
  readonly code = 'ABORT_ERR';
}

/**
 * Every value of a spec that goes into an SMTP command line or a generated header, by field name. A CR, LF or NUL
 * in one of them would end the command early and smuggle the rest in as commands of its own.
 */
export function commandLineFields(spec: ProbeSpec): Array<[string, string | undefined]> {
  return [
    ['ehloName', spec.ehloName],
    ['envelope.from', spec.envelope.from],
    ...spec.envelope.to.map((t, i): [string, string] => [`envelope.to[${i}]`, t]),
    ['auth.user', spec.auth?.user],
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
  return t.name ?? (t.mx ? `mx:${t.mx}` : `${t.host}:${t.port}`);
}

type Mark = { stage: Stage; start: number; end?: number };

/** os.hostname() is a syscall: read it once. */
let HOSTNAME: string | undefined;

/** Stages whose deadline is `commandMs`. */
const COMMAND_STAGES: ReadonlySet<Stage> = new Set(['greeting', 'ehlo', 'starttls', 'tls', 'auth', 'mail', 'rcpt', 'quit']);

class Transaction {
  private readonly t0 = performance.now();
  private readonly startedAt = new Date().toISOString();
  private readonly marks: Mark[] = [];
  private current: Mark | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private stallArmed = false;
  private lastProgress = performance.now();

  private raw: net.Socket | undefined; // the TCP socket (to the server or the proxy)
  private sock: net.Socket | undefined; // what we speak SMTP on (raw, or TLS over raw)
  private readonly parser: ReplyParser;
  private replies: SmtpReply[] = [];
  private replyWaiter: ((r: SmtpReply) => void) | undefined;
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
  private capturePath: string | undefined;
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
  ) {
    // a server that echoes the AUTH secret (in any encoding) must not get it into a result
    this.parser = new ReplyParser(spec.auth ? secretForms(process.env[spec.auth.passEnv] ?? '', spec.auth.user) : []);
    this.failed = new Promise<never>((_, reject) => (this.failReject = reject));
    this.failed.catch(() => undefined); // observed through guard()
  }

  // ------------------------------------------------------------------------------------------------ stages

  private now(): number {
    return performance.now() - this.t0;
  }

  private begin(stage: Stage): void {
    this.endStage();
    const m: Mark = { stage, start: performance.now() };
    this.marks.push(m);
    this.current = m;
    this.opts.onStage?.({ probeId: this.spec.probeId, stage, tMs: this.now() });
    const t = this.spec.timeouts;
    const ms =
      stage === 'dns' ? t.dnsMs
      : stage === 'connect' ? t.connectMs
      : stage === 'data' ? t.dataMs
      : stage === 'body' ? t.bodyMs
      : stage === 'dataAck' ? t.dataAckMs
      : stage === 'quit' ? Math.min(t.commandMs, t.stallMs)
      : COMMAND_STAGES.has(stage) ? t.commandMs
      : t.commandMs;
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => {
      this.fail(new ProbeError('ETIMEDOUT', `${stage} deadline of ${ms} ms passed`, stage, { lastCommand: this.lastCommand }));
    }, ms);
    // the stall window applies once there is a connection to watch (not to dns or connect)
    // (nor to quit, whose short deadline is the stall window: QUIT never changes the outcome)
    this.stallArmed = stage !== 'dns' && stage !== 'connect' && stage !== 'quit';
    this.progress();
    // first look after half the window (the early, kernel-evidence check), then as needed
    if (this.stallArmed && !this.stallTimer) this.armStall(this.spec.timeouts.stallMs / 2);
  }

  private endStage(): void {
    if (this.current && this.current.end === undefined) this.current.end = performance.now();
    this.current = undefined;
    clearTimeout(this.deadline);
    this.deadline = undefined;
  }

  private progress(): void {
    this.lastProgress = performance.now();
  }

  /**
   * One timer for the whole probe, re-armed for the remaining window instead of reset on every byte.
   *
   * With kernel evidence a stall can be called sooner: after half the window without progress in `body` or
   * `dataAck`, a TCP snapshot is read (then every eighth of the window, one at a time); if data is outstanding and the kernel is in retransmission backoff
   * (RTO backoff ≥ 3: the same segment retransmitted three times unanswered), segments are being lost and no ACK will
   * come: waiting out the window would only add time. A closed window (snd_wnd 0) is flow control, not loss, and
   * is left to the plain window.
   */
  private armStall(ms: number): void {
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.failure || this.finishing) return;
      const idle = performance.now() - this.lastProgress;
      const win = this.spec.timeouts.stallMs;
      if (!this.stallArmed) {
        this.armStall(win / 2);
        return;
      }
      const stage = this.current?.stage ?? 'connect';
      if (idle >= win) {
        void this.onStall(stage, idle);
        return;
      }
      // from half the window on, look at the kernel every eighth of the window (backoff may mature late)
      const early = win / 2;
      const every = win / 8;
      const now = performance.now();
      if (
        this.spec.earlyStall !== false &&
        idle >= early &&
        !this.earlyInFlight &&
        now - this.lastEarlyCheck >= every - 1 &&
        (stage === 'body' || stage === 'dataAck') &&
        this.tuple
      ) {
        this.lastEarlyCheck = now;
        this.earlyInFlight = true;
        void this.earlyCheck(stage).finally(() => (this.earlyInFlight = false));
      }
      this.armStall(Math.max(1, idle < early ? early - idle : Math.min(every, win - idle)));
    }, ms);
  }

  private lastEarlyCheck = -Infinity;
  private earlyInFlight = false;

  private async earlyCheck(stage: Stage): Promise<void> {
    const since = this.lastProgress;
    const r = await tcpSnapshot(this.tuple!, 'stall', this.now()).catch(() => ({ snapshot: undefined }));
    const t = r.snapshot;
    if (!t || this.failure || this.finishing || this.lastProgress !== since || this.current?.stage !== stage) return;
    if (dataOutstanding(t) && (t.backoff ?? 0) >= 3 && (t.retransTotal ?? 0) >= 1) {
      const idle = performance.now() - this.lastProgress;
      this.tcp = t;
      this.stallBy = 'kernel';
      const err = new ProbeError(
        'ESTALL',
        `no progress for ${Math.round(idle)} ms in ${stage}; the kernel is retransmitting unanswered (RTO backoff ${t.backoff}, ${t.retransTotal} retransmits, ${t.bytesAcked ?? '?'} bytes acked): declared before the ${this.spec.timeouts.stallMs} ms window`,
        stage,
        { lastCommand: this.lastCommand },
      );
      await this.declareStall(err, false);
    }
  }

  private async onStall(stage: Stage, idleMs: number): Promise<void> {
    const err = new ProbeError('ESTALL', `no progress for ${Math.round(idleMs)} ms in ${stage}`, stage, { lastCommand: this.lastCommand });
    this.stallBy = 'window';
    await this.declareStall(err, true);
  }

  private async declareStall(err: ProbeError, takeSnapshot: boolean): Promise<void> {
    // Record the failure first (it wins over anything that races it), keep the socket until the kernel's
    // view is read, then destroy.
    this.fail(err, { keepSocket: true });
    if (takeSnapshot) await this.snapshot('stall');
    if (this.opts.capture && this.tuple) {
      try {
        this.capturePath = await this.opts.capture.extract(this.tuple, this.spec.probeId);
      } catch (e) {
        this.captureError = (e as Error).message;
      }
    }
    this.destroy();
    this.failReject(err);
  }

  private fail(err: ProbeError, o: { keepSocket?: boolean } = {}): void {
    if (this.failure || this.finishing) return;
    this.failure = err;
    this.endStage();
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    if (!o.keepSocket) {
      this.destroy();
      this.failReject(err);
    }
  }

  private destroy(): void {
    this.sock?.destroy();
    if (this.raw !== this.sock) this.raw?.destroy();
  }

  /** Await p, but reject as soon as the probe fails (deadline, stall, socket error, abort). */
  private guard<T>(p: Promise<T>): Promise<T> {
    if (this.failure) return this.failed;
    return Promise.race([p, this.failed]);
  }

  private async snapshot(at: 'stall' | 'end'): Promise<void> {
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

  // ------------------------------------------------------------------------------------------------ socket I/O

  private readonly onData = (chunk: Buffer) => {
    if (this.failure) return; // a stall was declared: what comes while its evidence is read does not count
    this.bytesRead += chunk.length;
    this.progress();
    let replies: SmtpReply[];
    try {
      replies = this.parser.push(chunk, this.current?.stage ?? 'greeting');
    } catch (e) {
      this.fail(toProbeError(e, this.current?.stage ?? 'greeting', this.lastCommand));
      return;
    }
    for (const r of replies) {
      this.lastReply = r;
      if (this.replyWaiter) {
        const w = this.replyWaiter;
        this.replyWaiter = undefined;
        w(r);
      } else {
        if (!this.replies.length) this.unsolicitedAt = this.current?.stage;
        this.replies.push(r);
      }
    }
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
    const n = typeof data === 'string' ? Buffer.byteLength(data) : data.length;
    this.sock!.write(data, (err) => {
      if (!err) {
        this.bytesWritten += n;
        this.progress();
      }
    });
  }

  private readReply(): Promise<SmtpReply> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    return this.guard(new Promise<SmtpReply>((resolve) => (this.replyWaiter = resolve)));
  }

  private async command(line: string, shown?: string): Promise<SmtpReply> {
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
      message = spec.messageFile
        ? await fileMessage(spec.messageFile)
        : generatedMessage({ probeId: spec.probeId, sizeBytes: spec.sizeBytes, seed: spec.seed, from: spec.envelope.from, to: spec.envelope.to });
    } catch (e) {
      signal?.removeEventListener('abort', onAbort);
      throw new ProbeInputError(e instanceof MessageError ? e.message : String(e));
    }
    let delivered = false;
    try {
      await this.transact(message);
      delivered = true;
    } catch (e) {
      if (e instanceof ProbeError && (e.code === 'EREJECTED' || e.code === 'ESIZE') && !this.failure) {
        // a rejection is an answer, not a broken connection: keep the socket to say QUIT
        this.failure = e;
        this.endStage();
      } else if (!this.failure) {
        this.fail(toProbeError(e, this.current?.stage ?? 'connect', this.lastCommand));
      }
    }
    if (this.failure?.code === 'ESTALL') {
      // onStall owns the socket until the snapshot is taken; wait for it to finish
      await this.failed.catch(() => undefined);
    }
    if (delivered || this.failure?.code === 'EREJECTED' || this.failure?.code === 'ESIZE') await this.quit();
    this.finishing = true;
    clearTimeout(this.stallTimer);
    this.endStage();
    this.destroy();
    signal?.removeEventListener('abort', onAbort);
    if (this.failure?.code === 'EABORTED') throw new AbortError('aborted');
    const noFd = descriptorExhaustion(this.failure); // the machine, not the network: not a measurement
    if (noFd) throw new ProbeEnvError(noFd);
    return this.result(message);
  }

  private async transact(message: MessageSource): Promise<void> {
    const { spec } = this;
    const tlsMode: TlsMode = spec.path.relay?.tls ?? spec.target.tls;
    // ---- where to connect
    let candidates: { host: string; port: number }[];
    if (spec.path.relay) {
      candidates = [{ host: spec.path.relay.host, port: spec.path.relay.port }];
    } else if (spec.target.mx) {
      this.begin('dns');
      const domain = spec.target.mx;
      const mx = await this.guard(dns.promises.resolveMx(domain).catch((e: NodeJS.ErrnoException) => {
        // RFC 5321 5.1: a domain that exists but has no MX records gets mail at its own address (implicit MX)
        if (e.code === 'ENODATA') return [{ exchange: domain, priority: 0, implicit: true }];
        const why =
          e.code === 'ENOTFOUND' ? 'the domain does not exist (NXDOMAIN)'
          : e.code === 'ETIMEOUT' ? 'no answer from the resolver'
          : e.code === 'ESERVFAIL' ? 'the resolver answered SERVFAIL'
          : (e.code ?? String(e));
        throw new ProbeError('EDNS', `MX lookup for ${domain} failed: ${why} (${e.code ?? 'error'})`, 'dns', { cause: e });
      }));
      // RFC 7505 null MX (exchange "." → ''): the domain accepts no mail. Left in, lookup('') gave a null address
      // and the probe connected to localhost (test/integration/mx.test.ts).
      const hosts = mx.filter((m) => m.exchange !== '' && m.exchange !== '.');
      if (!hosts.length) {
        throw new ProbeError('EDNS', mx.length ? `${spec.target.mx} publishes a null MX (RFC 7505): it accepts no mail` : `${spec.target.mx} has no MX records`, 'dns');
      }
      candidates = hosts.sort((a, b) => a.priority - b.priority).map((m) => ({ host: m.exchange, port: spec.target.port }));
    } else {
      candidates = [{ host: spec.target.host!, port: spec.target.port }];
    }
    const proxy = spec.path.proxy ? parseProxyUrl(spec.path.proxy) : undefined;
    // ---- connect, trying MX hosts in preference order while the connection itself fails
    let lastErr: unknown;
    for (const [i, c] of candidates.entries()) {
      this.server = c.host;
      let addr = c.host;
      try {
        if (!net.isIP(c.host) && proxy?.kind !== 'socks5h' && proxy?.kind !== 'http') {
          this.begin('dns');
          const found = await this.guard(
            dns.promises.lookup(c.host).catch((e) => {
              throw new ProbeError('EDNS', `cannot resolve ${c.host}: ${(e as NodeJS.ErrnoException).code ?? e}`, 'dns', { cause: e });
            }),
          );
          addr = found.address;
        }
        this.begin('connect');
        const sock = await this.guard(
          openEgress({
            host: addr,
            port: c.port,
            localAddress: spec.path.localAddress,
            proxy: spec.path.proxy,
            onSocket: (s) => {
              this.raw = s;
              s.on('error', this.onError);
            },
          }),
        );
        this.sock = sock;
        this.connectedTo = addr;
        this.tuple = {
          localAddress: sock.localAddress ?? '',
          localPort: sock.localPort ?? 0,
          remoteAddress: sock.remoteAddress ?? '',
          remotePort: sock.remotePort ?? 0,
        };
        lastErr = undefined;
        break;
      } catch (e) {
        lastErr = e;
        const pe = this.failure ?? toProbeError(e, this.current?.stage ?? 'connect');
        const retriable = i < candidates.length - 1 && (pe.stage === 'connect' || pe.stage === 'dns') && pe.code !== 'EADDRNOTAVAIL' && pe.code !== 'EABORTED';
        if (!retriable) throw e;
        // try the next MX: forget this failure
        this.failure = undefined;
        this.raw?.destroy();
        this.raw = undefined;
        this.replaceFailed();
      }
    }
    if (lastErr) throw lastErr;
    const servername = spec.servername ?? (this.server && !net.isIP(this.server) ? this.server : undefined);

    // ---- implicit TLS
    if (tlsMode === 'implicit') {
      this.begin('tls');
      await this.startTls(servername);
    } else {
      this.attach(this.sock!);
    }

    // ---- greeting
    this.begin('greeting');
    const greet = await this.readReply();
    if (greet.code !== 220) this.reject('greeting', greet);

    // ---- EHLO
    const ehloName = spec.ehloName ?? (HOSTNAME ??= os.hostname());
    this.begin('ehlo');
    await this.ehlo(ehloName);

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

    // ---- AUTH
    if (spec.auth) {
      this.begin('auth');
      await this.auth();
    }

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
    await this.sendBody(message);
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
    this.write('.\r\n');
    const fr = await this.readReply();
    if (fr.code < 200 || fr.code >= 300) this.reject('dataAck', fr);
    if (message.wireBytes >= (spec.tcpSnapshotMinBytes ?? DEFAULT_TCP_SNAPSHOT_MIN_BYTES)) {
      await this.snapshot('end');
    }
    this.endStage();
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
        ts.once('secureConnect', () => resolve());
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
   * generator's zero-copy slices zero-copy. Write callbacks count what the kernel accepted.
   */
  private async sendBody(message: MessageSource): Promise<void> {
    const sock = this.sock!;
    let last: Promise<void> = Promise.resolve();
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const writeOne = (piece: Buffer): Promise<void> =>
      new Promise<void>((resolve) => {
        const n = piece.length;
        sock.write(piece, (err) => {
          if (!err) {
            this.bytesWritten += n;
            this.bodyBytesWritten! += n;
            this.progress();
          }
          resolve();
        });
      });
    const flush = async (): Promise<void> => {
      const pieces = pending;
      pending = [];
      pendingLen = 0;
      if (pieces.length > 1) sock.cork();
      for (const piece of pieces) last = writeOne(piece);
      if (pieces.length > 1) sock.uncork();
      if (sock.writableNeedDrain) {
        await this.guard(new Promise<void>((resolve) => sock.once('drain', resolve)));
      }
    };
    for await (const chunk of message.chunks()) {
      for (let off = 0; off < chunk.length; off += CHUNK_BYTES) {
        if (this.failure) return this.failed;
        if (this.replies.length) return; // early reply: stop sending
        const piece = off === 0 && chunk.length <= CHUNK_BYTES ? chunk : chunk.subarray(off, off + CHUNK_BYTES);
        pending.push(piece);
        pendingLen += piece.length;
        if (pendingLen >= CHUNK_BYTES) await flush();
      }
    }
    if (pendingLen > 0 && !this.failure) await flush();
    // The body stage ends when the kernel has accepted the last byte. Nothing left in the socket's own buffer
    // means every write went into the kernel synchronously (the common case for small messages): no need to wait
    // a loop turn for the callback before the final dot.
    if (sock.writableLength > 0) await this.guard(last);
  }

  private async quit(): Promise<void> {
    if (!this.sock || this.sock.destroyed) return;
    // QUIT never changes the outcome: a server that does not answer it has still taken (or refused) the mail
    const saved = this.failure;
    const savedReply = this.lastReply;
    this.failure = undefined;
    this.replaceFailed();
    this.replies.length = 0; // what came unasked before QUIT (checked by command) does not matter any more
    try {
      this.begin('quit');
      await this.command('QUIT');
    } catch {
      // ignore
    }
    this.endStage();
    this.failure = saved;
    this.lastReply = savedReply; // the reply that decided the outcome, not QUIT's
  }

  private result(message: MessageSource): ProbeResult {
    const { spec } = this;
    const stages: Partial<Record<Stage, number>> = {};
    for (const m of this.marks) {
      const end = m.end ?? performance.now();
      stages[m.stage] = (stages[m.stage] ?? 0) + (end - m.start);
    }
    const err = this.failure;
    const r: ProbeResult = {
      probeId: spec.probeId,
      target: targetLabel(spec.target),
      path: spec.path.name,
      sizeBytes: message.sizeBytes,
      seed: spec.seed,
      outcome: err ? classify(err.code, err.stage) : 'delivered',
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
      r.error = { code: err.code, message: err.message };
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
    if (this.stallBy && r.outcome === 'stalled') r.stallBy = this.stallBy;
    if (this.capturePath) r.capture = this.capturePath;
    if (this.captureError) r.captureError = this.captureError;
    return r;
  }
}

/**
 * Run one probe. Network outcomes (stall, reset, rejection…) are results, never rejections. Rejects with
 * AbortError when `opts.signal` aborts, and with ProbeInputError for bad input found before sending.
 */
export async function probe(spec: ProbeSpec, opts: ProbeOptions = {}): Promise<ProbeResult> {
  return new Transaction(spec, opts).run();
}

export type { ProbeErrorCode };

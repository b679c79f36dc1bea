/**
 * A deliberately small raw SMTP client for the sink tests: no library between the test and the bytes on the
 * wire, so a test can stop after exactly N message bytes, flip a byte, go silent, or reset the connection.
 */
import { spawnCli } from '../helpers/cli.js';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { generatedMessage } from '../../src/probe/message.js';

export interface Reply {
  code: number;
  lines: string[];
  /** ms since the client connected */
  atMs: number;
}

export class RawSmtp {
  private buf = '';
  private lines: string[] = [];
  private replies: Reply[] = [];
  private waiters: Array<(r: Reply | Error) => void> = [];
  private ended: Error | undefined;
  readonly t0 = performance.now();
  /** Bytes written after the DATA command's 354 reply (message bytes, as put on the wire). */
  messageBytesWritten = 0;
  /** All bytes written before the message (commands). */
  commandBytesWritten = 0;

  private constructor(public sock: net.Socket | tls.TLSSocket) {
    this.bind(sock);
  }

  static async connect(port: number, opts: { host?: string; implicitTls?: boolean } = {}): Promise<RawSmtp> {
    const host = opts.host ?? '127.0.0.1';
    const sock = opts.implicitTls ? tls.connect({ host, port, rejectUnauthorized: false }) : net.connect(port, host);
    await once(sock, opts.implicitTls ? 'secureConnect' : 'connect');
    return new RawSmtp(sock);
  }

  private bind(sock: net.Socket | tls.TLSSocket): void {
    sock.setEncoding('latin1');
    sock.on('data', (d: string) => this.onData(d));
    sock.on('error', (e) => this.fail(e));
    sock.on('close', () => this.fail(new Error('connection closed')));
  }

  private fail(e: Error): void {
    this.ended ??= e;
    for (const w of this.waiters.splice(0)) w(e);
  }

  private onData(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\r\n')) >= 0) {
      const line = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      this.lines.push(line);
      if (/^\d{3}(?: |$)/.test(line)) {
        const r: Reply = { code: Number(line.slice(0, 3)), lines: this.lines, atMs: performance.now() - this.t0 };
        this.lines = [];
        const w = this.waiters.shift();
        if (w) w(r);
        else this.replies.push(r);
      }
    }
  }

  /** The next complete reply (multi-line joined); rejects if the connection ends first or after timeoutMs. */
  reply(timeoutMs = 60_000): Promise<Reply> {
    const have = this.replies.shift();
    if (have) return Promise.resolve(have);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (r: Reply | Error) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      this.waiters.push(waiter);
    });
  }

  async cmd(line: string): Promise<Reply> {
    await this.write(Buffer.from(`${line}\r\n`, 'latin1'));
    this.commandBytesWritten += line.length + 2;
    return this.reply();
  }

  /** Write with backpressure. */
  async write(b: Buffer): Promise<void> {
    if (this.sock.write(b)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.sock.off('drain', done);
        this.sock.off('close', done);
        resolve();
      };
      this.sock.on('drain', done);
      this.sock.on('close', done);
    });
  }

  async starttls(): Promise<void> {
    const r = await this.cmd('STARTTLS');
    if (r.code !== 220) throw new Error(`STARTTLS refused: ${r.lines.join(' | ')}`);
    this.sock.removeAllListeners('data');
    this.sock.removeAllListeners('close');
    this.sock.removeAllListeners('error');
    const t = tls.connect({ socket: this.sock as net.Socket, rejectUnauthorized: false });
    await once(t, 'secureConnect');
    this.sock = t;
    this.bind(t);
  }

  /** Stream message chunks after a 354; stop after `limit` bytes if given. Returns the bytes written. */
  async streamMessage(chunks: Iterable<Buffer>, limit = Infinity): Promise<number> {
    let sent = 0;
    for (const c of chunks) {
      if (sent >= limit) break;
      const piece = sent + c.length > limit ? c.subarray(0, limit - sent) : c;
      await this.write(piece);
      sent += piece.length;
    }
    this.messageBytesWritten += sent;
    return sent;
  }

  destroy(): void {
    this.sock.destroy();
  }

  /** Abortive close: RST instead of FIN. */
  reset(): void {
    (this.sock as net.Socket).resetAndDestroy();
  }
}

export const FROM = 'probe@mxprobe.test';
export const TO = 'sink@mxprobe.test';

export function probeMessage(probeId: string, sizeBytes: number, seed: number) {
  return generatedMessage({ probeId, sizeBytes, seed, from: FROM, to: [TO], date: new Date('2025-01-02T03:04:05Z') });
}

/** Concatenate a (small) message, for tests that modify bytes. */
export function messageBytes(probeId: string, sizeBytes: number, seed: number): Buffer {
  return Buffer.concat([...(probeMessage(probeId, sizeBytes, seed).chunks() as Iterable<Buffer>)]);
}

/** greeting, EHLO, MAIL, RCPT, DATA; asserts each reply is positive. */
export async function openTransaction(port: number, opts: { starttls?: boolean; implicitTls?: boolean; auth?: [string, string] } = {}): Promise<RawSmtp> {
  const c = await RawSmtp.connect(port, { implicitTls: opts.implicitTls });
  expectCode(await c.reply(), 220);
  expectCode(await c.cmd('EHLO client.mxprobe.test'), 250);
  if (opts.starttls) {
    await c.starttls();
    expectCode(await c.cmd('EHLO client.mxprobe.test'), 250);
  }
  if (opts.auth) expectCode(await c.cmd(`AUTH PLAIN ${Buffer.from(`\0${opts.auth[0]}\0${opts.auth[1]}`).toString('base64')}`), 235);
  expectCode(await c.cmd(`MAIL FROM:<${FROM}>`), 250);
  expectCode(await c.cmd(`RCPT TO:<${TO}>`), 250);
  expectCode(await c.cmd('DATA'), 354);
  return c;
}

/** One whole transaction with the given message chunks; returns the final reply. */
export async function sendWhole(port: number, chunks: Iterable<Buffer>, opts: Parameters<typeof openTransaction>[1] = {}): Promise<Reply> {
  const c = await openTransaction(port, opts);
  await c.streamMessage(chunks);
  await c.write(Buffer.from('.\r\n'));
  const r = await c.reply(120_000);
  await c.cmd('QUIT').catch(() => undefined);
  c.destroy();
  return r;
}

function expectCode(r: Reply, code: number): void {
  if (r.code !== code) throw new Error(`expected ${code}, got ${r.lines.join(' | ')}`);
}

// ---------------------------------------------------------------------------------------------------------------
// `mxprobe sink` as a child process

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Build dist/ when the sink sources are newer than it (tsc emits even when other files have type errors). */
export function ensureBuilt(): void {
  const out = path.join(ROOT, 'dist/cli/sink.js');
  const sources = [
    'src/cli/sink.ts',
    'src/cli/main.ts',
    ...readdirSync(path.join(ROOT, 'src/sink')).map((f) => `src/sink/${f}`),
    'src/probe/message.ts',
  ].map((f) => path.join(ROOT, f));
  const stale = !existsSync(out) || sources.some((s) => statSync(s).mtimeMs > statSync(out).mtimeMs);
  if (stale) {
    try {
      execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
    } catch {
      // what matters is that our output exists
    }
  }
  if (!existsSync(out)) throw new Error('dist/cli/sink.js missing after npm run build');
}

export interface RunningSink {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** SMTP port and (with --http) HTTP port, parsed from the banner. */
  ready: Promise<{ port: number; httpPort?: number }>;
  waitLine: (re: RegExp, timeoutMs?: number) => Promise<string>;
  exit: Promise<number | null>;
  kill: () => void;
}

export function runSinkCli(args: string[]): RunningSink {
  const r = spawnCli(['sink', ...args]);
  const ready = new Promise<{ port: number; httpPort?: number }>((resolve, reject) => {
    r.onStderr((err) => {
      const m = /listening on \S+:(\d+)/.exec(err);
      if (m && /Ctrl-C to stop/.test(err)) {
        const h = /served at http:\/\/\S+?:(\d+)\//.exec(err);
        resolve(h ? { port: Number(m[1]), httpPort: Number(h[1]) } : { port: Number(m[1]) });
      }
    });
    void r.exit.then((code) => reject(new Error(`mxprobe sink exited (${code}) before listening:\n${r.stderr()}`)));
  });
  ready.catch(() => undefined);
  return { ...r, ready };
}

/** Run `mxprobe sink ...` that is expected to exit by itself (bad usage, cannot listen). */
export async function runSinkCliToExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const r = runSinkCli(args);
  const t = setTimeout(r.kill, 20_000);
  const code = await r.exit;
  clearTimeout(t);
  return { code, stdout: r.lines.join('\n'), stderr: r.stderr() };
}

/** Resident set size and its peak of a process, bytes (Linux /proc). */
export function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

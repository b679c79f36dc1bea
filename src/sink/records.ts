/**
 * Sink records: the type, the bounded in-memory store (with waiters and subscribers), the JSONL appender, and
 * loading records back from a file or a running sink's HTTP endpoint.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { forEachLine, LineTooLongError } from '../fsutil.js';
import * as z from 'zod';
import { TcpSnapshotSchema } from '../analyze/result-schema.js';
import type { TcpSnapshot } from '../model.js';

/** How a transaction or session ended, seen from the receiver. */
export type SinkEnded =
  /** message: the final reply was sent (2xx); session: the client sent QUIT */
  | 'completed'
  /** the client sent nothing for the silent timeout while it owed us input; the sink closed the connection */
  | 'client-silent'
  /** the connection was reset (ECONNRESET and other socket errors) */
  | 'reset'
  /** the client closed the connection (FIN) without QUIT, or before the final reply */
  | 'closed'
  /** the sink refused: a 4xx/5xx final reply (message), a refused connection or a 421 (session) */
  | 'rejected'
  /** the sink itself was shut down while the session was open */
  | 'shutdown';

export interface SinkRecord {
  /**
   * `probe`: one message transaction carrying an X-Mxprobe header; `message`: a transaction of other mail
   * (byte count and hash only); `session`: one connection, written when it closes.
   */
  kind: 'probe' | 'message' | 'session';
  probeId?: string;
  sessionId: string;
  remoteAddress: string;
  remotePort: number;
  /** When the session's connection was accepted (ISO 8601). */
  startedAt: string;
  /**
   * Client commands by verb (`EHLO`, `MAIL`, `RCPT`, `DATA`, `.` for the end of the message, `QUIT`, …) and
   * when they arrived: ms since the session started (monotonic: clockMs). A probe/message record holds the
   * commands of its own transaction (the first one also those before it: EHLO, STARTTLS, AUTH); a session
   * record all of them (capped at 512). Arguments are never kept (AUTH secrets, addresses).
   */
  commands: { cmd: string; tMs: number }[];
  /** The size the X-Mxprobe header announced. */
  expectedBytes?: number;
  /** Message bytes received (session: summed over its messages). */
  bodyBytes: number;
  /** Length of the header block (including the blank line), when one was found. */
  headerBytes?: number;
  /** When the 354 reply was sent (ms since session start). */
  dataStartMs?: number;
  /** When the first message byte arrived. */
  firstByteMs?: number;
  /** When the last message byte arrived. */
  lastByteMs?: number;
  /**
   * The message arrived complete: the terminating `.` came and, for a probe, the bytes equal the announced
   * size (or the body verified, when a relay on the way added headers). Session: every message was whole.
   */
  whole: boolean;
  /** Probe only, when the message arrived complete: the body matches its seed. */
  verified?: boolean;
  /** sha256 (hex) of the message bytes, when the message arrived complete and under the size limit. */
  sha256?: string;
  ended: SinkEnded;
  /** The reply that ended the transaction (message), or the last 4xx/5xx the sink sent (session). */
  reply?: { code: number; text: string; tMs?: number };
  /** Session only: message transactions that reached DATA. */
  messages?: number;
  /** Session only: TLS protocol when the session was encrypted. */
  tls?: string;
  /** Session only: the authenticated user. */
  user?: string;
  /**
   * Probe/message: the sink's own socket as its kernel saw it (`ss`), in the order taken: when 354 went out
   * (`at: data`), then when the message ended (`end`) or the client went silent (`silent`). The final reply is not
   * held for the `end` reading (that would add the sink's own `ss` time to the sender's `dataAck`), so a client
   * that quits at once may be gone before it: then only `data` is kept. Absent when the kernel could not be read. Window scale, MSS, advertised MSS, options, receive window, bytes received, retransmissions.
   */
  tcp?: TcpSnapshot[];
}

// ---------------------------------------------------------------------------------------------------------------
// In-memory store

/** Default cap of records kept in memory (older ones stay in the --record file). */
export const DEFAULT_MAX_RECORDS = 100_000;

type Waiter = (r: SinkRecord | undefined) => void;

/** A ring buffer of the latest records, indexed by probe id, with waiters and subscribers. */
export class RecordStore {
  private readonly ring: (SinkRecord | undefined)[];
  private next = 0;
  private count = 0;
  private readonly byId = new Map<string, SinkRecord>();
  private readonly waiters = new Map<string, Set<Waiter>>();
  private readonly subscribers = new Set<(r: SinkRecord) => void>();

  constructor(readonly max: number = DEFAULT_MAX_RECORDS) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxRecords must be a whole number ≥ 1, got ${max}`);
    this.ring = new Array(max);
  }

  add(r: SinkRecord): void {
    const old = this.ring[this.next];
    if (old?.probeId !== undefined && old.kind === 'probe' && this.byId.get(old.probeId) === old) this.byId.delete(old.probeId);
    this.ring[this.next] = r;
    this.next = (this.next + 1) % this.max;
    this.count = Math.min(this.count + 1, this.max);
    if (r.kind === 'probe' && r.probeId !== undefined) {
      this.byId.set(r.probeId, r);
      const ws = this.waiters.get(r.probeId);
      if (ws) {
        this.waiters.delete(r.probeId);
        for (const w of ws) w(r);
      }
    }
    for (const s of this.subscribers) {
      try {
        s(r);
      } catch {
        // a subscriber's bug must not break the sink
      }
    }
  }

  /** Records in arrival order (oldest first). */
  all(): SinkRecord[] {
    const out: SinkRecord[] = [];
    const start = this.count < this.max ? 0 : this.next;
    for (let i = 0; i < this.count; i++) out.push(this.ring[(start + i) % this.max]!);
    return out;
  }

  get size(): number {
    return this.count;
  }

  byProbe(id: string): SinkRecord | undefined {
    return this.byId.get(id);
  }

  waitFor(id: string, timeoutMs: number): Promise<SinkRecord | undefined> {
    const have = this.byId.get(id);
    if (have) return Promise.resolve(have);
    return new Promise((resolve) => {
      let set = this.waiters.get(id);
      if (!set) this.waiters.set(id, (set = new Set()));
      const waiter: Waiter = (r) => {
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        set!.delete(waiter);
        if (set!.size === 0 && this.waiters.get(id) === set) this.waiters.delete(id);
        resolve(undefined);
      }, Math.max(0, timeoutMs));
      timer.unref?.();
      set.add(waiter);
    });
  }

  subscribe(fn: (r: SinkRecord) => void): () => void {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  /** Resolve every pending waiter with undefined (the sink is closing). */
  releaseWaiters(): void {
    for (const ws of this.waiters.values()) for (const w of ws) w(undefined);
    this.waiters.clear();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// JSONL appender

/** Appends one JSON line per record; writes are serialised and never reorder. */
export class RecordFile {
  private chain: Promise<void> = Promise.resolve();
  private failed: Error | undefined;

  private constructor(
    readonly path: string,
    private readonly fh: FileHandle,
    private readonly onError: (e: Error) => void,
  ) {}

  /** Opens (creating) the file for appending; throws with the OS error code when it cannot. */
  static async open(path: string, onError: (e: Error) => void): Promise<RecordFile> {
    const fh = await open(path, 'a');
    return new RecordFile(path, fh, onError);
  }

  append(r: SinkRecord): void {
    if (this.failed) return;
    const line = `${JSON.stringify(r)}\n`;
    this.chain = this.chain.then(async () => {
      if (this.failed) return;
      try {
        await this.fh.appendFile(line);
      } catch (e) {
        this.failed = e as Error;
        this.onError(new Error(`cannot append to the record file ${this.path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; records are kept in memory only from now on`));
      }
    });
  }

  async close(): Promise<void> {
    await this.chain;
    await this.fh.close().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Loading records back

export class SinkRecordsError extends Error {
  override name = 'SinkRecordsError';
  /** EINPUT: the data is not sink records; ESOURCE: the file or URL could not be read. */
  constructor(message: string, readonly code: 'EINPUT' | 'ESOURCE') {
    super(message);
  }
}

function checkRecord(v: unknown, where: string): SinkRecord {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new SinkRecordsError(`${where}: not a sink record (expected a JSON object)`, 'EINPUT');
  const o = v as Record<string, unknown>;
  if ('outcome' in o && 'stages' in o) {
    throw new SinkRecordsError(`${where}: this is a probe result (the sender's side), not a sink record; --sink takes the file written by "mxprobe sink --record"`, 'EINPUT');
  }
  if (o.kind !== 'probe' && o.kind !== 'message' && o.kind !== 'session') {
    throw new SinkRecordsError(`${where}: not a sink record ("kind" must be probe, message or session)`, 'EINPUT');
  }
  if (typeof o.bodyBytes !== 'number' || typeof o.sessionId !== 'string') {
    throw new SinkRecordsError(`${where}: not a sink record (missing "bodyBytes" or "sessionId")`, 'EINPUT');
  }
  return withCheckedTcp(o) as unknown as SinkRecord;
}

const SinkTcpSchema = z.array(TcpSnapshotSchema).max(8);

/** A record's `tcp` list validated field by field (unknown fields dropped); one that does not check is left out. */
function withCheckedTcp(o: Record<string, unknown>): Record<string, unknown> {
  if (!('tcp' in o)) return o;
  const { tcp, ...rest } = o;
  const parsed = SinkTcpSchema.safeParse(tcp);
  return parsed.success ? { ...rest, tcp: parsed.data } : rest;
}

/** Parse JSONL text. A truncated last line (a sink killed mid-write) is skipped; any other bad line throws. */
export function parseSinkRecords(text: string, source: string): SinkRecord[] {
  const out: SinkRecord[] = [];
  const lines = text.split('\n');
  const lastComplete = text.endsWith('\n');
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch {
      if (i === lines.length - 1 && !lastComplete) return; // truncated tail
      throw new SinkRecordsError(`${source}:${i + 1}: not JSON`, 'EINPUT');
    }
    out.push(checkRecord(v, `${source}:${i + 1}`));
  });
  return out;
}

/**
 * Sink records from a JSONL file (written by `mxprobe sink --record`) or from a running sink's HTTP endpoint
 * (`http://host:port`, `http://host:port/records`), read within `bounds` (SINK_FETCH_MAX_BYTES, SINK_FETCH_TIMEOUT_MS).
 */
export async function loadSinkRecords(src: string, bounds: FetchBounds = {}): Promise<SinkRecord[]> {
  if (/^https?:\/\//i.test(src)) return fetchRecords(src, bounds);
  const out: SinkRecord[] = [];
  let pendingError: SinkRecordsError | undefined;
  try {
    await forEachLine(src, SINK_RECORD_MAX_LINE_BYTES, (raw, lineNo) => {
      const line = raw.trim();
      if (!line) return;
      if (pendingError) throw pendingError; // a bad line that was not the last one
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        // maybe a truncated last line: only an error if more lines follow
        pendingError = new SinkRecordsError(`${src}:${lineNo}: not JSON`, 'EINPUT');
        return;
      }
      out.push(checkRecord(v, `${src}:${lineNo}`));
    });
  } catch (e) {
    if (e instanceof SinkRecordsError) throw e;
    if (e instanceof LineTooLongError) throw new SinkRecordsError(`${e.message}: not a sink records file`, 'EINPUT');
    const code = (e as NodeJS.ErrnoException).code;
    throw new SinkRecordsError(
      code === 'ENOENT' ? `sink records file not found: ${src}` : `cannot read sink records from ${src}: ${code ?? (e as Error).message}`,
      'ESOURCE',
    );
  }
  return out;
}

/** Longest line of a sink records file (a record is a few KiB). */
export const SINK_RECORD_MAX_LINE_BYTES = 16 * 1024 * 1024;

/** Bounds of a fetch of sink records (`compare --sink http://…`): a sink that never ends or trickles is cut off. */
export const SINK_FETCH_MAX_BYTES = 64 * 1024 * 1024;
export const SINK_FETCH_TIMEOUT_MS = 30_000;

export interface FetchBounds {
  maxBytes?: number;
  timeoutMs?: number;
}

const unescapeSafe = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** A URL for messages: scheme, host, path; never user:password. */
const shownUrl = (u: URL): string => `${u.protocol}//${u.host}${u.pathname}`;

/** The response body as text, at most `maxBytes`; throws SinkRecordsError ESOURCE beyond it. */
async function boundedText(res: Response, maxBytes: number, where: string): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    n += value.length;
    if (n > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new SinkRecordsError(`sink records from ${where}: more than ${maxBytes / 1024 / 1024} MiB, not read further (is this a sink?)`, 'ESOURCE');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function fetchRecords(src: string, bounds: FetchBounds): Promise<SinkRecord[]> {
  let url: URL;
  try {
    url = new URL(src);
  } catch {
    throw new SinkRecordsError('not a URL (expected http://host:port of a running `mxprobe sink --http`)', 'EINPUT');
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/records';
  const where = shownUrl(url);
  // fetch refuses a URL with credentials, and says so with the URL: send them as Basic auth instead
  const headers: Record<string, string> = {};
  if (url.username || url.password) {
    headers.authorization = `Basic ${Buffer.from(`${unescapeSafe(url.username)}:${unescapeSafe(url.password)}`).toString('base64')}`;
    url.username = '';
    url.password = '';
  }
  const timeoutMs = bounds.timeoutMs ?? SINK_FETCH_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(url, { signal, headers });
    if (!res.ok) throw new SinkRecordsError(`cannot fetch sink records from ${where}: HTTP ${res.status} ${res.statusText}`, 'ESOURCE');
    return parseSinkRecords(await boundedText(res, bounds.maxBytes ?? SINK_FETCH_MAX_BYTES, where), where);
  } catch (e) {
    if (e instanceof SinkRecordsError) throw e;
    if (signal.aborted) throw new SinkRecordsError(`sink records from ${where}: not complete within ${timeoutMs / 1000} s, given up (a sink answers at once)`, 'ESOURCE');
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new SinkRecordsError(`cannot fetch sink records from ${where}: ${cause?.code ?? (e as Error).name}`, 'ESOURCE');
  }
}

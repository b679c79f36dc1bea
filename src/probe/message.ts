/**
 * Probe messages of an exact wire size, shaped like real mail with an attachment, deterministic from a seed.
 *
 * Why not nodemailer's MailComposer: it cannot produce an exact byte count (the size is known only after
 * encoding, and a 1 MiB target would need a search over attachment sizes), and it base64-encodes on the fly in
 * JavaScript at well under the 1 GB/s this generator reaches by repeating a pre-rendered, seed-derived block of
 * base64 lines (zero-copy `subarray` slices). Memory is at most one block per seed (312 KiB), whatever the size.
 *
 * Layout (every line ends in CRLF; no line starts with '.', so no dot-stuffing is needed and the bytes on the
 * wire equal `sizeBytes`):
 *
 *   headers (Message-ID, Date, From, To, Subject, Auto-Submitted, X-Mxprobe, MIME-Version, Content-Type)
 *   <blank line>
 *   body = f(seed, bodyBytes) only, so a receiver can check it knowing nothing but the X-Mxprobe header:
 *     multipart/mixed: a text/plain part (padded by up to 5 bytes), an application/octet-stream part in base64,
 *     76-character lines; or, for sizes too small for the multipart skeleton, a text/plain body with filler lines.
 */
import { createReadStream } from 'node:fs';
import { mulberry32 } from '../prng.js';
import type { MessageInfo } from '../model.js';

export class MessageError extends Error {
  override name = 'MessageError';
  readonly code = 'EMESSAGE';
}

/** Something the SMTP client can stream after DATA. */
export interface MessageSource {
  /** Message bytes (headers + body, CRLF) before dot-stuffing, without the final `.CRLF`. */
  sizeBytes: number;
  /** Bytes put on the wire after dot-stuffing (≥ sizeBytes). */
  wireBytes: number;
  /** The message as it goes on the wire (already dot-stuffed), in chunks. Can be iterated more than once. */
  chunks(): AsyncIterable<Buffer> | Iterable<Buffer>;
  /** How a message that is not generated was made (recorded as `ProbeResult.message`). */
  info?: MessageInfo;
}

export interface MessageParams {
  probeId: string;
  sizeBytes: number;
  seed: number;
  from: string;
  to: string[];
  /** Defaults to now. */
  date?: Date;
}

const LINE_CHARS = 76;
const LINE_BYTES = LINE_CHARS + 2;
const BLOCK_LINES = 4096;
const RAW_PER_LINE = 57; // 57 raw bytes → 76 base64 characters
/** Maximum chunk handed to the socket; small enough that write callbacks locate a stall to ±16 KiB. */
export const CHUNK_BYTES = 16 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// Deterministic pseudo-random block per seed


/**
 * BLOCK_LINES lines of base64 (76 chars + CRLF each) derived from a seed, generated lazily (4 to 64 lines at a time),
 * so a 1 KiB probe with its own seed pays for a few lines, not for the whole 312 KiB block.
 */
class SeedBlock {
  // grown on demand (doubling) so a small probe with its own seed allocates a few KiB, not 312 KiB
  private buf = Buffer.allocUnsafe(64 * LINE_BYTES);
  private lines = 0;
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32((seed >>> 0) ^ 0x9e3779b9);
  }
  ensure(n: number): Buffer {
    const want = Math.min(n, BLOCK_LINES);
    if (want * LINE_BYTES > this.buf.length) {
      let size = this.buf.length;
      while (size < want * LINE_BYTES) size *= 2;
      const grown = Buffer.allocUnsafe(Math.min(size, BLOCK_LINES * LINE_BYTES));
      this.buf.copy(grown, 0, 0, this.lines * LINE_BYTES);
      this.buf = grown;
    }
    while (this.lines < want) {
      // lines come in groups of 4 (4 × 57 = 228 bytes = 57 words), so the PRNG word stream, and with it the
      // block, is the same however the lines are asked for: a 1 KiB probe pays for 4 lines, a large one for 64
      const k = Math.min(Math.min(64, Math.max(4, Math.ceil((want - this.lines) / 4) * 4)), BLOCK_LINES - this.lines);
      const raw = Buffer.allocUnsafe(k * RAW_PER_LINE);
      for (let i = 0; i < raw.length; i += 4) raw.writeUInt32LE(this.next(), i);
      const b64 = Buffer.from(raw.toString('base64'), 'latin1');
      for (let j = 0; j < k; j++) {
        const at = (this.lines + j) * LINE_BYTES;
        b64.copy(this.buf, at, j * LINE_CHARS, (j + 1) * LINE_CHARS);
        this.buf[at + LINE_CHARS] = 13;
        this.buf[at + LINE_CHARS + 1] = 10;
      }
      this.lines += k;
    }
    return this.buf;
  }
}

const blockCache = new Map<number, SeedBlock>();

function seedBlock(seed: number): SeedBlock {
  const key = seed >>> 0;
  let b = blockCache.get(key);
  if (!b) {
    if (blockCache.size >= 16) blockCache.delete(blockCache.keys().next().value as number);
    b = new SeedBlock(key);
    blockCache.set(key, b);
  }
  return b;
}

/** The whole block of a seed (all BLOCK_LINES lines). */
export function base64Block(seed: number): Buffer {
  return seedBlock(seed).ensure(BLOCK_LINES);
}

/** The MIME boundary of a seed; the last one is kept (a message asks for it three times, a run mostly for one seed). */
let lastBoundary: { seed: number; boundary: string } | undefined;

function boundaryFor(seed: number): string {
  const key = seed >>> 0;
  if (lastBoundary?.seed !== key) lastBoundary = { seed: key, boundary: `mxprobe-${key.toString(16).padStart(8, '0')}-${mulberry32(key)().toString(36)}` };
  return lastBoundary.boundary;
}

// ---------------------------------------------------------------------------------------------------------------
// Headers

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** RFC 5322 date, fixed width (two-digit day) so the header size does not depend on the date. */
export function rfc5322Date(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${DAYS[d.getUTCDay()]}, ${p(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function fold(name: string, items: string[]): string {
  // one address per continuation line once the line would pass 900 characters
  let out = `${name}: `;
  let lineLen = out.length;
  items.forEach((item, i) => {
    const piece = i < items.length - 1 ? `${item},` : item;
    if (i > 0) {
      if (lineLen + 1 + piece.length > 900) {
        out += '\r\n ';
        lineLen = 1;
      } else {
        out += ' ';
        lineLen += 1;
      }
    }
    out += piece;
    lineLen += piece.length;
  });
  return `${out}\r\n`;
}

function domainOf(addr: string): string {
  const at = addr.lastIndexOf('@');
  const d = at >= 0 ? addr.slice(at + 1).replace(/[^A-Za-z0-9.-]/g, '') : '';
  return d || 'mxprobe.invalid';
}

function headerBlock(p: MessageParams, contentType: string): string {
  const from = p.from === '' ? 'mxprobe <mxprobe@mxprobe.invalid>' : `<${p.from}>`;
  return (
    `Message-ID: <${p.probeId}.${p.seed >>> 0}@${domainOf(p.from)}>\r\n` +
    `Date: ${rfc5322Date(p.date ?? new Date())}\r\n` +
    `From: ${from}\r\n` +
    fold('To', p.to.map((t) => `<${t}>`)) +
    `Subject: mxprobe probe ${p.probeId} (${p.sizeBytes} bytes)\r\n` +
    `Auto-Submitted: auto-generated\r\n` +
    `X-Mxprobe: probe=${p.probeId}; size=${p.sizeBytes}; seed=${p.seed >>> 0}\r\n` +
    `MIME-Version: 1.0\r\n` +
    `Content-Type: ${contentType}\r\n` +
    `\r\n`
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Body: a function of (seed, bodyBytes) only

const TEXT_LINE = 'This is a synthetic test message sent by mxprobe to measure SMTP delivery.';
const TEXT_LINE2 = 'Please discard it. The attachment holds pseudo-random data sized so the whole message is exact.';

interface BodyPlan {
  multipart: boolean;
  head: string; // everything before the base64 region
  base64Bytes: number; // size of the base64 region (full lines + optional last short line)
  tail: string;
}

function multipartSkeleton(seed: number, pad: string): { head: string; tail: string } {
  const b = boundaryFor(seed);
  const head =
    `--${b}\r\n` +
    `Content-Type: text/plain; charset=us-ascii\r\n` +
    `Content-Transfer-Encoding: 7bit\r\n` +
    `\r\n` +
    `${TEXT_LINE}\r\n` +
    `${TEXT_LINE2}${pad}\r\n` +
    `\r\n` +
    `--${b}\r\n` +
    `Content-Type: application/octet-stream; name="mxprobe.bin"\r\n` +
    `Content-Transfer-Encoding: base64\r\n` +
    `Content-Disposition: attachment; filename="mxprobe.bin"\r\n` +
    `\r\n`;
  return { head, tail: `--${b}--\r\n` };
}

const MULTIPART_FIXED = (seed: number) => {
  const s = multipartSkeleton(seed, '');
  return s.head.length + s.tail.length;
};

/** Filler of exactly n bytes appended to a line of text: whole lines of 'x' then the rest on the last line. */
function textFill(n: number): { lines: string; extra: string } {
  const full = Math.floor(n / LINE_BYTES);
  const rest = n - full * LINE_BYTES;
  return { lines: `${'x'.repeat(LINE_CHARS)}\r\n`.repeat(full), extra: '-'.repeat(rest) };
}

/** Largest base64 region ≤ avail: full lines, plus a short last line of 4k characters (k ≥ 1). */
function base64RegionFor(avail: number): number {
  const full = Math.floor(avail / LINE_BYTES);
  const rest = avail - full * LINE_BYTES;
  const lastChars = Math.floor((rest - 2) / 4) * 4;
  return full * LINE_BYTES + (lastChars >= 4 ? lastChars + 2 : 0);
}

export type BodyLayout = 'multipart' | 'text';

function planBody(seed: number, bodyBytes: number, layout: BodyLayout): BodyPlan | undefined {
  if (layout === 'multipart') {
    const fixed = MULTIPART_FIXED(seed);
    if (bodyBytes < fixed) return undefined;
    const region = base64RegionFor(bodyBytes - fixed);
    const pad = bodyBytes - fixed - region; // 0..5
    const s = multipartSkeleton(seed, '-'.repeat(pad));
    return { multipart: true, head: s.head, base64Bytes: region, tail: s.tail };
  }
  const minText = TEXT_LINE.length + 2;
  if (bodyBytes < minText) return undefined;
  const f = textFill(bodyBytes - minText);
  return { multipart: false, head: `${TEXT_LINE}${f.extra}\r\n${f.lines}`, base64Bytes: 0, tail: '' };
}

function contentTypeFor(seed: number, multipart: boolean): string {
  return multipart ? `multipart/mixed; boundary="${boundaryFor(seed)}"` : 'text/plain; charset=us-ascii';
}

/** Yields the base64 region of `bytes` bytes: block lines repeated, then a short last line. */
function* base64Chunks(seed: number, bytes: number): Generator<Buffer> {
  if (bytes <= 0) return;
  const fullLines = Math.floor(bytes / LINE_BYTES);
  const block = seedBlock(seed).ensure(fullLines + 1);
  let fullBytes = fullLines * LINE_BYTES;
  let off = 0;
  while (fullBytes > 0) {
    const n = Math.min(CHUNK_BYTES, fullBytes, block.length - off);
    yield block.subarray(off, off + n);
    off += n;
    if (off === block.length) off = 0;
    fullBytes -= n;
  }
  const rest = bytes - fullLines * LINE_BYTES;
  if (rest > 0) {
    // the next line of the sequence, cut to a multiple of 4 characters (still valid base64)
    const lineStart = (fullLines % BLOCK_LINES) * LINE_BYTES;
    const last = Buffer.allocUnsafe(rest);
    block.copy(last, 0, lineStart, lineStart + rest - 2);
    last[rest - 2] = 13;
    last[rest - 1] = 10;
    yield last;
  }
}

/**
 * The body (everything after the header block) for a seed, a body size and a layout. Pure: a receiver re-derives
 * it from the X-Mxprobe header (seed, size), the header block's length and its Content-Type (multipart/mixed →
 * 'multipart', text/plain → 'text'): see `layoutFromContentType`.
 */
export function* bodyChunks(seed: number, bodyBytes: number, layout: BodyLayout = 'multipart'): Generator<Buffer> {
  const plan = bodyPlan(seed, bodyBytes, layout);
  if (!plan) throw new MessageError(`body of ${bodyBytes} bytes is too small`);
  yield plan.headBuf;
  yield* base64Chunks(seed, plan.base64Bytes);
  if (plan.tailBuf.length) yield plan.tailBuf;
}

type RenderedPlan = BodyPlan & { headBuf: Buffer; tailBuf: Buffer };
/** Plans rendered to bytes, by seed, size and layout: a run sends the same few sizes again and again. */
const planCache = new Map<string, RenderedPlan | undefined>();

/** `planBody` with its head and tail as (shared, never written to) buffers, cached. */
function bodyPlan(seed: number, bodyBytes: number, layout: BodyLayout): RenderedPlan | undefined {
  const key = `${seed >>> 0}|${bodyBytes}|${layout}`;
  if (planCache.has(key)) return planCache.get(key);
  const plan = planBody(seed, bodyBytes, layout);
  const r = plan && { ...plan, headBuf: Buffer.from(plan.head, 'latin1'), tailBuf: Buffer.from(plan.tail, 'latin1') };
  if (planCache.size >= 64) planCache.delete(planCache.keys().next().value as string);
  planCache.set(key, r);
  return r;
}

/** The smallest size a generated probe can have with these parameters. */
export function minMessageSize(p: Omit<MessageParams, 'sizeBytes'> & { sizeBytes?: number }): number {
  // header size depends on the digits of sizeBytes; evaluate with a small size, then settle
  let size = 1;
  for (let i = 0; i < 4; i++) {
    const h = Buffer.byteLength(headerBlock({ ...p, sizeBytes: size }, contentTypeFor(p.seed, false)), 'latin1');
    const next = h + TEXT_LINE.length + 2;
    if (next === size) break;
    size = next;
  }
  return size;
}

/** A generated probe message of exactly `sizeBytes`. Throws MessageError naming the minimum when too small. */
export function generatedMessage(p: MessageParams): MessageSource {
  if (!Number.isSafeInteger(p.sizeBytes) || p.sizeBytes < 0) throw new MessageError(`invalid message size ${p.sizeBytes}`);
  for (const a of [p.from, ...p.to]) {
    if (/[\r\n]/.test(a)) throw new MessageError(`address contains a line break: ${JSON.stringify(a)}`);
  }
  const date = p.date ?? new Date();
  // the header's Content-Type depends on the body layout, which depends on the header size: try multipart first
  const seed = p.seed >>> 0;
  let layout: BodyLayout = 'multipart';
  let headers = headerBlock({ ...p, date }, contentTypeFor(seed, true));
  let bodyBytes = p.sizeBytes - Buffer.byteLength(headers, 'latin1');
  let plan = bodyPlan(seed, bodyBytes, 'multipart');
  if (!plan) {
    layout = 'text';
    headers = headerBlock({ ...p, date }, contentTypeFor(seed, false));
    bodyBytes = p.sizeBytes - Buffer.byteLength(headers, 'latin1');
    plan = bodyPlan(seed, bodyBytes, 'text');
  }
  if (!plan) {
    throw new MessageError(
      `message size ${p.sizeBytes} bytes is too small to hold the probe headers; the minimum with these addresses is ${minMessageSize(p)} bytes`,
    );
  }
  const headerBuf = Buffer.from(headers, 'latin1');
  const finalBody = bodyBytes;
  return {
    sizeBytes: p.sizeBytes,
    wireBytes: p.sizeBytes,
    *chunks() {
      yield headerBuf;
      yield* bodyChunks(seed, finalBody, layout);
    },
  };
}

/** The body layout a header block announces. */
export function layoutFromContentType(contentType: string | undefined): BodyLayout {
  return contentType && /^\s*multipart\/mixed/i.test(contentType) ? 'multipart' : 'text';
}

/** Parse `probe=<id>; size=<n>; seed=<s>` (the X-Mxprobe header value). */
export function parseMxprobeHeader(value: string): { probeId: string; sizeBytes: number; seed: number } | undefined {
  const m = /probe=([^;\s]+);\s*size=(\d+);\s*seed=(\d+)/.exec(value);
  if (!m) return undefined;
  return { probeId: m[1]!, sizeBytes: Number(m[2]), seed: Number(m[3]) };
}

// ---------------------------------------------------------------------------------------------------------------
// Replaying a real message from a file

/**
 * Transforms raw file bytes to the wire: bare LF → CRLF, a '.' at the start of a line doubled (RFC 5321
 * 4.5.2), and a final CRLF added when missing. Stateful across chunks.
 */
class WireTransform {
  private atLineStart = true;
  private lastWasCR = false;
  messageBytes = 0; // after line-end normalisation, before dot-stuffing
  wireBytes = 0;

  push(chunk: Buffer): Buffer {
    const out = Buffer.allocUnsafe(chunk.length * 2 + 2);
    let o = 0;
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (c === 10 && !this.lastWasCR) {
        out[o++] = 13;
        this.messageBytes++;
      }
      if (c === 46 && this.atLineStart) {
        out[o++] = 46; // dot-stuffing
      }
      out[o++] = c;
      this.messageBytes++;
      this.atLineStart = c === 10;
      this.lastWasCR = c === 13;
    }
    this.wireBytes += o;
    return out.subarray(0, o);
  }

  end(): Buffer {
    if (this.atLineStart) return Buffer.alloc(0);
    const tail = this.lastWasCR ? Buffer.from('\n') : Buffer.from('\r\n');
    this.messageBytes += tail.length;
    this.wireBytes += tail.length;
    this.atLineStart = true;
    return tail;
  }
}

/** A message read from an .eml file, streamed (two passes: one to size it, one to send it). */
export async function fileMessage(file: string): Promise<MessageSource> {
  const { stat } = await import('node:fs/promises'); // when needed: a generated message does not (issue 16)
  let st;
  try {
    st = await stat(file);
  } catch (err) {
    throw new MessageError(`cannot read message file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  if (!st.isFile()) throw new MessageError(`message file ${file} is not a regular file`);
  const sizing = new WireTransform();
  for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) sizing.push(chunk as Buffer);
  sizing.end();
  if (sizing.messageBytes === 0) throw new MessageError(`message file ${file} is empty`);
  return {
    sizeBytes: sizing.messageBytes,
    wireBytes: sizing.wireBytes,
    info: { source: 'file', wireBytes: sizing.wireBytes },
    async *chunks() {
      const t = new WireTransform();
      for await (const chunk of createReadStream(file, { highWaterMark: CHUNK_BYTES })) yield t.push(chunk as Buffer);
      const tail = t.end();
      if (tail.length) yield tail;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Composed messages: the swaks habit (--attach, --header, --body), built by nodemailer's MailComposer

export interface ComposeParams {
  probeId: string;
  seed: number;
  from: string;
  to: string[];
  /** Extra or replacing headers, in order: Subject/From/To replace ours; the rest are added. */
  headers?: Array<[name: string, value: string]>;
  /** The text/plain body (default: a line saying this is an mxprobe test). */
  body?: string;
  attachments?: Array<{ path: string; contentType?: string }>;
  /** Pad the message to exactly this many bytes (a text/plain padding part); without it the size is what MailComposer made. */
  sizeBytes?: number;
  date?: Date;
}

/** Headers that are ours: a test message always says it is one (src/probe/guards.ts, the sink's join). */
const OWN_HEADERS = new Set(['auto-submitted', 'x-mxprobe', 'message-id', 'date', 'mime-version', 'content-type', 'content-transfer-encoding']);

/** `Name: value` → [name, value]; refuses what would break the header block. */
export function parseHeaderArg(v: string): [string, string] {
  const m = /^([!-9;-~]+):[ \t]*(.*)$/s.exec(v);
  if (!m) throw new MessageError(`not a header: "${v}" (expected "Name: value", e.g. "X-Test: yes")`);
  if (/[\r\n]/.test(m[2]!)) throw new MessageError(`header ${m[1]} contains a line break`);
  if (OWN_HEADERS.has(m[1]!.toLowerCase())) throw new MessageError(`header ${m[1]} is set by mxprobe and cannot be given`);
  return [m[1]!, m[2]!];
}

/**
 * `x` lines of at most 72 characters, exactly `n` bytes with their CRLFs. Short lines of ASCII are left as they
 * are by MailComposer (it wraps long 7bit text quoted-printable style past 75 characters), so every byte counts
 * one for one and the size can be settled exactly.
 */
function paddingText(n: number): string {
  const width = 72;
  const full = Math.floor(n / (width + 2));
  const rest = n - full * (width + 2);
  const last = rest === width + 1 ? `${'x'.repeat(width - 1)}\r\n` : 'x'.repeat(rest);
  return `${'x'.repeat(width)}\r\n`.repeat(full) + last;
}

interface ReadAttachment { filename: string; contentType: string; content: Buffer }

async function readAttachments(list: ComposeParams['attachments'] = []): Promise<ReadAttachment[]> {
  const { detectMimeType } = await import('nodemailer/lib/mime-funcs');
  const { readFile } = await import('node:fs/promises');
  const { basename } = await import('node:path');
  return Promise.all(
    list.map(async (a) => {
      const content = await readFile(a.path).catch((e: NodeJS.ErrnoException) => {
        throw new MessageError(`cannot read attachment ${a.path}: ${e.code ?? String(e)}`);
      });
      const filename = basename(a.path);
      return { filename, content, contentType: a.contentType ?? detectMimeType(filename) };
    }),
  );
}

/** The message with this X-Mxprobe size and `pad` bytes of padding part (undefined: no padding part). */
async function buildComposed(p: ComposeParams, files: ReadAttachment[], declared: number, pad: number | undefined): Promise<Buffer> {
  const { default: MailComposer } = await import('nodemailer/lib/mail-composer');
  const given = new Map((p.headers ?? []).map(([k, v]) => [k.toLowerCase(), v]));
  const rest = (p.headers ?? []).filter(([k]) => !['subject', 'from', 'to'].includes(k.toLowerCase()));
  const attachments: Array<{ filename: string; content: Buffer | string; contentType: string; contentTransferEncoding?: string }> =
    files.map((f) => ({ filename: f.filename, content: f.content, contentType: f.contentType }));
  // a string of short ASCII lines, sent 7bit: its bytes count one for one, so the size can be settled exactly
  if (pad !== undefined) attachments.push({ filename: 'mxprobe-padding.txt', content: paddingText(pad), contentType: 'text/plain', contentTransferEncoding: '7bit' });
  const mail = new MailComposer({
    from: given.get('from') ?? (p.from === '' ? 'mxprobe <mxprobe@mxprobe.invalid>' : p.from),
    to: given.get('to') ?? p.to.join(', '),
    subject: given.get('subject') ?? `mxprobe probe ${p.probeId}`,
    messageId: `<${p.probeId}.${p.seed >>> 0}@${domainOf(p.from)}>`,
    date: p.date ?? new Date(),
    text: p.body ?? `${TEXT_LINE}\r\n`,
    headers: [
      ...rest.map(([key, value]) => ({ key, value })),
      { key: 'Auto-Submitted', value: 'auto-generated' },
      // no seed: the body is not the generator's, so the sink does not check it against one
      { key: 'X-Mxprobe', value: `probe=${p.probeId}; size=${declared}; composed` },
    ],
    attachments,
    baseBoundary: `mxprobe${(p.seed >>> 0).toString(16).padStart(8, '0')}`,
  } as ConstructorParameters<typeof MailComposer>[0] & { baseBoundary: string });
  return mail.compile().build();
}

/** Bytes of a built message before dot-stuffing (MailComposer writes CRLF line ends). */
const messageBytesOf = (b: Buffer): number => {
  const t = new WireTransform();
  t.push(b);
  t.end();
  return t.messageBytes;
};

/**
 * A message made by MailComposer from headers, a body and attachments, with its exact size known: either the
 * size MailComposer produced (X-Mxprobe states it), or padded to `sizeBytes` with a text/plain padding part.
 * Throws MessageError when an attachment cannot be read or the composed message does not fit `sizeBytes`.
 */
export async function composedMessage(p: ComposeParams): Promise<MessageSource> {
  const files = await readAttachments(p.attachments);
  const date = p.date ?? new Date();
  const q = { ...p, date };
  let buf: Buffer;
  let pad: number | undefined;
  if (p.sizeBytes === undefined) {
    // the declared size is part of the message: settle it (its digits change the size)
    let declared = 0;
    buf = await buildComposed(q, files, declared, undefined);
    for (let i = 0; i < 4 && messageBytesOf(buf) !== declared; i++) {
      declared = messageBytesOf(buf);
      buf = await buildComposed(q, files, declared, undefined);
    }
  } else {
    const want = p.sizeBytes;
    buf = await buildComposed(q, files, want, undefined);
    const bare = messageBytesOf(buf);
    if (bare > want) throw new MessageError(`the composed message is ${bare} bytes, more than --size ${want}: raise the size or leave it out`);
    if (bare < want) {
      // the padding part's own headers cost a fixed amount: measure it with one byte, then settle on the exact count
      buf = await buildComposed(q, files, want, 1);
      const least = messageBytesOf(buf);
      if (want < least) {
        throw new MessageError(`--size ${want}: the composed message is ${bare} bytes and a padding part needs at least ${least - bare} more: give --size ${bare}, at least ${least}, or leave it out`);
      }
      pad = 1 + want - least;
      for (let i = 0; i < 4; i++) {
        buf = await buildComposed(q, files, want, pad);
        const diff = want - messageBytesOf(buf);
        if (diff === 0) break;
        pad += diff;
      }
    }
  }
  const sizeBytes = messageBytesOf(buf);
  if (p.sizeBytes !== undefined && sizeBytes !== p.sizeBytes) throw new MessageError(`could not pad the composed message to exactly ${p.sizeBytes} bytes (got ${sizeBytes})`);
  const wire = new WireTransform();
  const stuffed = Buffer.concat([wire.push(buf), wire.end()]);
  const info: MessageInfo = {
    source: 'composed',
    wireBytes: stuffed.length,
    attachments: files.map((f) => ({ filename: f.filename, contentType: f.contentType, bytes: f.content.length })),
  };
  if (pad !== undefined) info.paddingBytes = pad;
  return {
    sizeBytes,
    wireBytes: stuffed.length,
    info,
    *chunks() {
      for (let off = 0; off < stuffed.length; off += CHUNK_BYTES) yield stuffed.subarray(off, off + CHUNK_BYTES);
    },
  };
}

import type { SmtpReply } from '../model.js';
import { ProbeError } from './errors.js';
import { scrubSecrets } from '../text.js';
import type { Stage } from '../model.js';

/** Longest reply line accepted (RFC 5321 allows 512; real servers send longer EHLO lines). */
export const MAX_LINE_BYTES = 4096;
/** A multiline reply longer than this is hostile or broken. */
export const MAX_REPLY_LINES = 512;

/**
 * Incremental SMTP reply parser. Bytes are decoded as latin1 so a chunk boundary never splits a character and
 * NUL / 8-bit bytes survive. Accepts CRLF or bare LF line ends. Throws ProbeError EPROTOCOL on anything that is
 * not an SMTP reply: a line without a 2xx–5xx code, mismatched codes in a multiline reply, a line over
 * MAX_LINE_BYTES without a line end, or a multiline reply that does not end within MAX_REPLY_LINES.
 */
export class ReplyParser {
  private buf = '';
  private lines: string[] = [];
  private code = 0;

  /**
   * `secrets`: forms of a secret the server may echo (`secretForms`, src/text.ts). Each line is scrubbed of them
   * before it is parsed, so no reply, error message or result built from a reply can hold one.
   */
  constructor(private readonly secrets: readonly string[] = []) {}

  push(chunk: Buffer, stage: Stage): SmtpReply[] {
    // one string per chunk and one per line: lines are cut from it by index, not by re-slicing what is left
    const text = this.buf === '' ? chunk.toString('latin1') : this.buf + chunk.toString('latin1');
    const out: SmtpReply[] = [];
    let from = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', from)) >= 0) {
      const end = nl > from && text.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
      const line = text.slice(from, end);
      from = nl + 1;
      const r = this.line(line, stage);
      if (r) out.push(r);
    }
    this.buf = from === 0 ? text : text.slice(from);
    if (this.buf.length > MAX_LINE_BYTES) {
      throw new ProbeError('EPROTOCOL', `reply line longer than ${MAX_LINE_BYTES} bytes without a line end`, stage);
    }
    return out;
  }

  private line(raw: string, stage: Stage): SmtpReply | undefined {
    const line = this.secrets.length ? scrubSecrets(raw, this.secrets) : raw;
    if (line.length > MAX_LINE_BYTES) {
      throw new ProbeError('EPROTOCOL', `reply line longer than ${MAX_LINE_BYTES} bytes`, stage);
    }
    const code = replyCode(line);
    if (code === undefined) throw new ProbeError('EPROTOCOL', `not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`, stage);
    if (this.lines.length > 0 && code !== this.code) {
      throw new ProbeError('EPROTOCOL', `multiline reply changes code from ${this.code} to ${code}`, stage);
    }
    this.code = code;
    this.lines.push(line.slice(4));
    if (line.charCodeAt(3) === DASH) {
      if (this.lines.length >= MAX_REPLY_LINES) {
        throw new ProbeError('EPROTOCOL', `multiline reply did not end within ${MAX_REPLY_LINES} lines`, stage);
      }
      return undefined;
    }
    const lines = this.lines;
    this.lines = [];
    const first = lines[0] ?? '';
    const em = ENHANCED_FIRST.has(first.charCodeAt(0)) ? /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(first) : null;
    const reply: SmtpReply = { code, text: lines.length === 1 ? first : lines.join('\n') };
    if (em) reply.enhanced = em[1]!;
    return reply;
  }
}

const CR = 13;
const DASH = 45;
const SPACE = 32;
/** First characters of an enhanced status code (RFC 3463: 2, 4 or 5). */
const ENHANCED_FIRST: ReadonlySet<number> = new Set([50, 52, 53]);

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

/**
 * The code of a reply line (`/^([2-5]\d\d)([ -]|$)/`, by character codes: no match object per line), or
 * undefined when the line does not start like an SMTP reply.
 */
export function replyCode(line: string): number | undefined {
  const c0 = line.charCodeAt(0);
  if (!(c0 >= 50 && c0 <= 53) || !isDigit(line.charCodeAt(1)) || !isDigit(line.charCodeAt(2))) return undefined;
  if (line.length > 3 && line.charCodeAt(3) !== SPACE && line.charCodeAt(3) !== DASH) return undefined;
  return (c0 - 48) * 100 + (line.charCodeAt(1) - 48) * 10 + (line.charCodeAt(2) - 48);
}

/** `250 2.0.0 Ok: queued` for messages. */
export function formatReply(r: SmtpReply): string {
  return `${r.code} ${r.text.split('\n').join(' / ')}`.slice(0, 300);
}

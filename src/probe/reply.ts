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
    this.buf += chunk.toString('latin1');
    const out: SmtpReply[] = [];
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      let line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      const r = this.line(line, stage);
      if (r) out.push(r);
    }
    if (this.buf.length > MAX_LINE_BYTES) {
      throw new ProbeError('EPROTOCOL', `reply line longer than ${MAX_LINE_BYTES} bytes without a line end`, stage);
    }
    return out;
  }

  private line(raw: string, stage: Stage): SmtpReply | undefined {
    const line = scrubSecrets(raw, this.secrets);
    if (line.length > MAX_LINE_BYTES) {
      throw new ProbeError('EPROTOCOL', `reply line longer than ${MAX_LINE_BYTES} bytes`, stage);
    }
    const m = /^([2-5]\d\d)([ -]|$)/.exec(line);
    if (!m) throw new ProbeError('EPROTOCOL', `not an SMTP reply: ${JSON.stringify(line.slice(0, 80))}`, stage);
    const code = Number(m[1]);
    if (this.lines.length > 0 && code !== this.code) {
      throw new ProbeError('EPROTOCOL', `multiline reply changes code from ${this.code} to ${code}`, stage);
    }
    this.code = code;
    this.lines.push(line.slice(4));
    if (m[2] === '-') {
      if (this.lines.length >= MAX_REPLY_LINES) {
        throw new ProbeError('EPROTOCOL', `multiline reply did not end within ${MAX_REPLY_LINES} lines`, stage);
      }
      return undefined;
    }
    const lines = this.lines;
    this.lines = [];
    const em = /^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)/.exec(lines[0] ?? '');
    const reply: SmtpReply = { code, text: lines.join('\n') };
    if (em) reply.enhanced = em[1]!;
    return reply;
  }
}

/** `250 2.0.0 Ok: queued` for messages. */
export function formatReply(r: SmtpReply): string {
  return `${r.code} ${r.text.split('\n').join(' / ')}`.slice(0, 300);
}

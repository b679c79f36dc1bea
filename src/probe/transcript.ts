/**
 * The SMTP conversation of one probe, as swaks shows it: `>` lines sent, `<` lines received, `*` events, each with
 * its time since the probe started. Secrets never enter it: AUTH commands arrive already masked (the session
 * passes the shown form), and the message is elided to its first and last lines and its byte count.
 */
import type { SmtpReply, TranscriptLine } from '../model.js';
import { groupDigits } from '../units.js';

const HEAD_BYTES = 4096;
const TAIL_BYTES = 1024;
export const BODY_FIRST_LINES = 5;
export const BODY_LAST_LINES = 2;

/** Keeps the first and last bytes of a message streamed through it, nothing in between. */
export class BodyPeek {
  private head: Buffer[] = [];
  private headLen = 0;
  private tail = Buffer.alloc(0);
  bytes = 0;

  add(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.headLen < HEAD_BYTES) {
      const part = chunk.subarray(0, HEAD_BYTES - this.headLen);
      this.head.push(Buffer.from(part));
      this.headLen += part.length;
    }
    const keep = chunk.length >= TAIL_BYTES ? chunk.subarray(chunk.length - TAIL_BYTES) : Buffer.concat([this.tail, chunk]);
    this.tail = Buffer.from(keep.subarray(Math.max(0, keep.length - TAIL_BYTES)));
  }

  /** The transcript text of the message: first lines, `[… N bytes …]`, last lines (all of it when short). */
  lines(): string[] {
    const head = Buffer.concat(this.head).toString('latin1');
    if (this.bytes <= HEAD_BYTES) {
      const all = splitLines(head);
      if (all.length <= BODY_FIRST_LINES + BODY_LAST_LINES + 1) return [...all, `[message: ${this.bytes} bytes]`];
    }
    const first = splitLines(head).slice(0, BODY_FIRST_LINES);
    const last = splitLines(this.tail.toString('latin1')).slice(-BODY_LAST_LINES);
    return [...first, `[… message elided: ${groupDigits(this.bytes)} bytes on the wire …]`, ...last];
  }
}

/** Lines without their CRLF; a cut-off partial line at either end is kept as it is. */
function splitLines(text: string): string[] {
  const lines = text.split('\r\n');
  if (lines.at(-1) === '') lines.pop();
  return lines;
}

/** A reply as the server sent it, one transcript text per line: `250-PIPELINING`, `250 OK`. */
export function replyLines(r: SmtpReply): string[] {
  const lines = r.text.split('\n');
  return lines.map((l, i) => `${r.code}${i < lines.length - 1 ? '-' : ' '}${l}`);
}

/** Control characters (what came from the network is untrusted: a reply may carry escape sequences) → U+FFFD. */
const visible = (s: string): string => s.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '\ufffd');

/** Render a transcript for a terminal or a page: `    0.42ms -> EHLO host`, control characters made visible. */
export function formatTranscript(lines: readonly TranscriptLine[], fmtMs: (ms: number) => string): string[] {
  return lines.map((l) => `${fmtMs(l.tMs).padStart(9)} ${l.dir === '*' ? '**' : l.dir === '>' ? '->' : '<-'} ${visible(l.text)}`);
}

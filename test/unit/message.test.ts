import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { bodyChunks, generatedMessage, layoutFromContentType, minMessageSize, parseMxprobeHeader, MessageError } from '../../src/probe/message.js';
import { ReplyParser } from '../../src/probe/reply.js';
import { ProbeError } from '../../src/probe/errors.js';

const base = { probeId: 'p-1', seed: 7, from: 'a@mxprobe.test', to: ['b@mxprobe.test'], date: new Date('2026-11-03T04:05:06Z') };
const collect = (size: number, over = {}) => Buffer.concat([...(generatedMessage({ ...base, ...over, sizeBytes: size }).chunks() as Iterable<Buffer>)]);

describe('generated messages', () => {
  test('exact size for every size from the minimum up through awkward boundaries', () => {
    const min = minMessageSize(base);
    const sizes = [min, min + 1, min + 2, min + 77, 700, 1000, 1023, 1024, 1025, 4096, 65535, 65536, 65537, 1048576, 1048576 + 78 * 4096 + 5];
    for (let s = 900; s < 1300; s++) sizes.push(s); // every slack value of the base64 layout
    for (const size of sizes) expect(collect(size).length, `size ${size}`).toBe(size);
  });

  test('shaped like mail: CRLF everywhere, no line over 998, no line starting with ".", base64 in 76-char lines', () => {
    for (const size of [minMessageSize(base), 800, 1024, 200_000]) {
      const text = collect(size).toString('latin1');
      expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      const lines = text.split('\r\n');
      expect(lines.every((l) => l.length <= 998)).toBe(true);
      expect(lines.some((l) => l.startsWith('.'))).toBe(false);
    }
    const text = collect(200_000).toString('latin1');
    const [head] = text.split('\r\n\r\n');
    expect(head).toContain('Date: Tue, 03 Nov 2026 04:05:06 +0000');
    expect(head).toContain('Auto-Submitted: auto-generated');
    expect(head).toContain('X-Mxprobe: probe=p-1; size=200000; seed=7');
    expect(head).toMatch(/Content-Type: multipart\/mixed; boundary="mxprobe-/);
    const b64 = text.split('Content-Disposition: attachment; filename="mxprobe.bin"\r\n\r\n')[1]!.split('\r\n--')[0]!;
    const b64lines = b64.split('\r\n');
    expect(b64lines.slice(0, -1).every((l) => l.length === 76 && /^[A-Za-z0-9+/]+$/.test(l))).toBe(true);
    expect(b64lines.at(-1)!.length % 4).toBe(0);
    expect(() => Buffer.from(b64.replace(/\r\n/g, ''), 'base64')).not.toThrow();
  });

  test('deterministic from the seed; a different seed gives a different body', () => {
    expect(collect(100_000).equals(collect(100_000))).toBe(true);
    expect(collect(100_000).equals(collect(100_000, { seed: 8 }))).toBe(false);
  });

  test('the body is a pure function of (seed, bodyBytes, layout): what a receiver re-derives', () => {
    for (const size of [minMessageSize(base), 700, 800, 1000, 1024, 500_000]) {
      const msg = collect(size);
      const sep = msg.indexOf('\r\n\r\n') + 4;
      const ct = /Content-Type: ([^\r]+)/.exec(msg.subarray(0, sep).toString('latin1'))![1];
      const body = Buffer.concat([...bodyChunks(7, msg.length - sep, layoutFromContentType(ct))]);
      expect(createHash('sha256').update(msg.subarray(sep)).digest('hex'), `size ${size}`).toBe(createHash('sha256').update(body).digest('hex'));
    }
  });

  test('the same bytes however the seed block was grown (small probe first, or large at once)', () => {
    const hash = (size: number) => createHash('sha256').update(collect(size, { seed: 77 })).digest('hex');
    hash(1024);
    hash(20_000);
    const grown = hash(1_048_576);
    for (let i = 0; i < 40; i++) collect(2048, { seed: 1000 + i }); // evict seed 77 from the block cache
    expect(hash(1_048_576)).toBe(grown);
  });

  test('too small names the minimum', () => {
    const min = minMessageSize(base);
    expect(() => collect(min - 1)).toThrow(MessageError);
    expect(() => collect(min - 1)).toThrow(new RegExp(`minimum with these addresses is ${min} bytes`));
  });

  test('streamed in bounded chunks: memory does not grow with size', () => {
    let max = 0;
    let n = 0;
    for (const c of generatedMessage({ ...base, sizeBytes: 256 * 1024 * 1024 }).chunks() as Iterable<Buffer>) {
      max = Math.max(max, c.length);
      n += c.length;
    }
    expect(n).toBe(256 * 1024 * 1024);
    expect(max).toBeLessThanOrEqual(16 * 1024);
  });

  test('X-Mxprobe header round trip', () => {
    expect(parseMxprobeHeader('probe=r1-17; size=1048576; seed=99')).toEqual({ probeId: 'r1-17', sizeBytes: 1048576, seed: 99 });
    expect(parseMxprobeHeader('garbage')).toBeUndefined();
  });

  test('many recipients fold the To header under 998 characters', () => {
    const to = Array.from({ length: 80 }, (_, i) => `recipient-number-${i}@example.mxprobe.test`);
    const text = collect(10_000, { to }).toString('latin1');
    expect(text.split('\r\n').every((l) => l.length <= 998)).toBe(true);
    expect(text).toContain('recipient-number-79@');
  });
});

describe('reply parser', () => {
  const parse = (...chunks: string[]) => {
    const p = new ReplyParser();
    return chunks.flatMap((c) => p.push(Buffer.from(c, 'latin1'), 'ehlo'));
  };
  test('single and multiline replies, split across chunks, enhanced codes', () => {
    expect(parse('250-mx.example\r\n250-SIZE 100\r', '\n250 STARTTLS\r\n')).toEqual([{ code: 250, text: 'mx.example\nSIZE 100\nSTARTTLS' }]);
    expect(parse('550 5.1.1 <x@y>: no such user\r\n')).toEqual([{ code: 550, enhanced: '5.1.1', text: '5.1.1 <x@y>: no such user' }]);
    expect(parse('220 hi\n')).toEqual([{ code: 220, text: 'hi' }]);
    expect(parse('250\r\n')).toEqual([{ code: 250, text: '' }]);
  });
  test('not SMTP, mismatched codes, endless lines and endless multiline replies are protocol errors', () => {
    expect(() => parse('HTTP/1.1 200 OK\r\n')).toThrow(ProbeError);
    expect(() => parse('250-a\r\n251 b\r\n')).toThrow(/changes code/);
    expect(() => parse('2'.repeat(5000))).toThrow(/longer than/);
    expect(() => parse('250-x\r\n'.repeat(600))).toThrow(/did not end/);
    expect(() => parse('150 one-hundred codes are not SMTP\r\n')).toThrow(/not an SMTP reply/);
  });
  test('NUL and 8-bit bytes survive', () => {
    expect(parse('220 h\0\xe9llo\r\n')[0]!.text).toBe('h\0\xe9llo');
  });
});

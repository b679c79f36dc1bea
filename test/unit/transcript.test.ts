import { describe, expect, test } from 'vitest';
import { BodyPeek, formatTranscript, replyLines } from '../../src/probe/transcript.js';

describe('BodyPeek', () => {
  test('a short message is shown whole, with its size', () => {
    const p = new BodyPeek();
    p.add(Buffer.from('Subject: hi\r\n\r\nhello\r\n'));
    expect(p.lines()).toEqual(['Subject: hi', '', 'hello', '[message: 22 bytes]']);
  });

  test('a long one: its first lines, the byte count, its last lines, even when the tail spans chunks', () => {
    const p = new BodyPeek();
    const body = Array.from({ length: 5000 }, (_, i) => `line ${i}`).join('\r\n') + '\r\n';
    const buf = Buffer.from(body);
    for (let off = 0; off < buf.length; off += 7) p.add(buf.subarray(off, off + 7));
    const lines = p.lines();
    expect(lines.slice(0, 5)).toEqual(['line 0', 'line 1', 'line 2', 'line 3', 'line 4']);
    expect(lines[5]).toBe(`[… message elided: ${buf.length.toLocaleString('en-US')} bytes on the wire …]`);
    expect(lines.slice(6)).toEqual(['line 4998', 'line 4999']);
    expect(p.bytes).toBe(buf.length);
  });
});

describe('formatting', () => {
  test('multi-line replies keep their continuation marks', () => {
    expect(replyLines({ code: 250, text: 'mx hello\nPIPELINING\nSIZE 1000' })).toEqual(['250-mx hello', '250-PIPELINING', '250 SIZE 1000']);
  });

  test('control characters from the network are made visible before a terminal or a page', () => {
    const [line] = formatTranscript([{ tMs: 1.5, dir: '<', text: '220 hi\u001b[2J\u0007 there\tok' }], (ms) => `${ms}ms`);
    expect(line).toBe('    1.5ms <- 220 hi\ufffd[2J\ufffd there\tok');
  });
});

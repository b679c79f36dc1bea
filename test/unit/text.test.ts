import { describe, expect, test } from 'vitest';
import { forTerminal, lineBreakIn, scrubSecrets, secretForms } from '../../src/text.js';

const SECRET = 'Au7h-s3cret+Kq9/zZ';

describe('forTerminal', () => {
  test('strips CSI, OSC 52, bell, NUL and C1; keeps tab, newline and non-ASCII text', () => {
    const hostile = '550 no\x1b[2J\x1b]52;c;ZXZpbA==\x07 way\0\x9b31m\tné\n2nd';
    expect(forTerminal(hostile)).toBe('550 no[2J]52;c;ZXZpbA== way31m\tné\n2nd');
    expect(forTerminal(hostile, { oneLine: true })).toBe('550 no[2J]52;c;ZXZpbA== way31m né 2nd');
  });
});

describe('scrubSecrets', () => {
  const forms = secretForms(SECRET, 'alice');
  test('the secret as is, URL-encoded, base64, the AUTH PLAIN token and HTTP Basic', () => {
    const b = (s: string) => Buffer.from(s).toString('base64');
    for (const shown of [SECRET, encodeURIComponent(SECRET), b(SECRET), b(`\0alice\0${SECRET}`), b(`alice:${SECRET}`)]) {
      const out = scrubSecrets(`535 5.7.8 echo ${shown} end`, forms);
      expect(out).toBe('535 5.7.8 echo **** end');
    }
  });
  test('the base64 of the secret at any offset inside a longer base64 string', () => {
    for (const pre of ['', 'x', 'xy', 'xyz', 'abcd', '\0bob\0']) {
      const s = Buffer.from(`${pre}${SECRET}tail`).toString('base64');
      const out = scrubSecrets(s, forms);
      expect(out).toContain('****');
      // nothing of the secret's own six-bit groups survives: decoding what is left never yields the secret
      expect(Buffer.from(out.replace(/\*+/g, ''), 'base64').toString('latin1')).not.toContain('s3cret');
    }
  });
  test('no secret, no forms; ordinary text is left alone', () => {
    expect(secretForms('')).toEqual([]);
    expect(scrubSecrets('250 2.0.0 Ok', forms)).toBe('250 2.0.0 Ok');
  });
});

describe('lineBreakIn', () => {
  test('names CR, LF and NUL', () => {
    expect(lineBreakIn('x\r\nRSET')).toBe('CR');
    expect(lineBreakIn('a\nb')).toBe('LF');
    expect(lineBreakIn('a\0b')).toBe('NUL');
    expect(lineBreakIn('mx.example.net')).toBeUndefined();
  });
});

describe('a non-ASCII secret echoed by a server', () => {
  test('is scrubbed from the reply as the parser decodes it (UTF-8 bytes read as latin1)', async () => {
    const { ReplyParser } = await import('../../src/probe/reply.js');
    const p = new ReplyParser(secretForms('pässwört-42', 'alice'));
    const [r] = p.push(Buffer.from('535 5.7.8 bad credentials for alice/pässwört-42\r\n', 'utf8'), 'auth');
    expect(r!.text).not.toContain(Buffer.from('pässwört-42', 'utf8').toString('latin1'));
    expect(r!.text).toContain('****');
  });
});

import { InvalidArgumentError } from 'commander';
import { describe, expect, test } from 'vitest';
import { parseDelayFlag, parseReplyFlag, renderSinkEvidence, renderSinkRecord } from '../../src/cli/sink.js';
import type { SinkRecord } from '../../src/sink/records.js';

const base: SinkRecord = {
  kind: 'probe',
  probeId: 'p-1',
  sessionId: 's',
  remoteAddress: '192.0.2.10',
  remotePort: 41234,
  startedAt: '2025-01-01T00:00:00.000Z',
  commands: [],
  expectedBytes: 1048576,
  bodyBytes: 1048576,
  dataStartMs: 10,
  lastByteMs: 430,
  whole: true,
  verified: true,
  ended: 'completed',
  reply: { code: 250, text: 'OK' },
};

describe('--reply and --delay parsing', () => {
  test('stage=code[ text], stage names forgiving about case and dashes', () => {
    expect(parseReplyFlag('rcpt=451')).toEqual({ stage: 'rcpt', code: 451 });
    expect(parseReplyFlag('RCPT=451 try again later')).toEqual({ stage: 'rcpt', code: 451, text: 'try again later' });
    expect(parseReplyFlag('data-ack=250 queued as X')).toEqual({ stage: 'dataAck', code: 250, text: 'queued as X' });
    expect(parseReplyFlag('helo=550')).toEqual({ stage: 'ehlo', code: 550 });
    expect(() => parseReplyFlag('rcpt=250')).toThrow(InvalidArgumentError);
    expect(() => parseReplyFlag('dataAck=354')).toThrow(/2xx, 4xx or 5xx/);
    expect(() => parseReplyFlag('quit=421')).toThrow(/unknown stage "quit" for --reply \(expected one of connect, ehlo, mail, rcpt, data, dataAck\)/);
    expect(() => parseReplyFlag('rcpt:451')).toThrow(/expected STAGE=CODE/);
  });

  test('stage=duration', () => {
    expect(parseDelayFlag('mail=2s')).toEqual({ stage: 'mail', ms: 2000 });
    expect(parseDelayFlag('greeting=500ms')).toEqual({ stage: 'greeting', ms: 500 });
    expect(parseDelayFlag('dataack=1.5s')).toEqual({ stage: 'dataAck', ms: 1500 });
    expect(() => parseDelayFlag('mail=soon')).toThrow(/not a duration/);
    expect(() => parseDelayFlag('ehlo=1s')).toThrow(/unknown stage "ehlo" for --delay/);
  });
});

describe('renderSinkRecord', () => {
  test('verified, partial, altered, rejected probes', () => {
    expect(renderSinkRecord(base)).toBe('probe p-1  1048576/1048576 bytes  verified  body 420ms  from 192.0.2.10:41234');
    expect(renderSinkRecord({ ...base, bodyBytes: 61440, whole: false, verified: undefined, ended: 'client-silent', lastByteMs: 310, reply: undefined })).toBe(
      'probe p-1  61440/1048576 bytes  PARTIAL (client-silent)  last byte 300ms after DATA  from 192.0.2.10:41234',
    );
    expect(renderSinkRecord({ ...base, bodyBytes: 0, whole: false, verified: undefined, ended: 'closed', lastByteMs: undefined, reply: undefined })).toBe(
      'probe p-1  0/1048576 bytes  PARTIAL (closed)  nothing after DATA  from 192.0.2.10:41234',
    );
    expect(renderSinkRecord({ ...base, verified: false })).toBe('probe p-1  1048576/1048576 bytes  ALTERED: does not match its seed  body 420ms  from 192.0.2.10:41234');
    expect(renderSinkRecord({ ...base, ended: 'rejected', reply: { code: 552, text: 'too big' } })).toContain('→ 552');
  });

  test('other mail and sessions; IPv6 addresses bracketed', () => {
    const m: SinkRecord = { ...base, kind: 'message', probeId: undefined, expectedBytes: undefined, verified: undefined, bodyBytes: 2345, sha256: 'ab'.repeat(32), remoteAddress: '::1' };
    expect(renderSinkRecord(m)).toBe('mail  2345 bytes (2.3KiB, no X-Mxprobe)  from [::1]:41234  sha256 abababababab…');
    const s: SinkRecord = { ...base, kind: 'session', probeId: undefined, messages: 0, commands: [{ cmd: 'EHLO', tMs: 1 }, { cmd: 'MAIL', tMs: 2 }], ended: 'client-silent', reply: { code: 421, text: 'Timeout' } };
    expect(renderSinkRecord(s)).toBe('session  from 192.0.2.10:41234  EHLO MAIL  ended client-silent  last reply 421  (no message)');
    expect(renderSinkRecord({ ...s, messages: 1 })).toBeUndefined();
  });
});

describe('renderSinkEvidence', () => {
  test('a heading and a line per cell, with an example', () => {
    expect(
      renderSinkEvidence([
        { path: 'via-lb', target: 'mx:25', sizeBytes: 1048576, probes: 12, withRecord: 12, outcome: 'stalled', bodyBytes: { min: 61440, max: 65536 }, example: { probeId: 'p-1', text: 'the receiver got …' } },
        { path: 'via-lb', target: 'mx:25', sizeBytes: 65536, probes: 2, withRecord: 0, outcome: 'stalled' },
      ]),
    ).toEqual([
      'What the receiver saw of the probes that did not deliver (sink records joined by probe id):',
      '  via-lb → mx:25 1MiB: 12 stalled, the receiver has 12 (61,440–65,536 bytes)',
      '    e.g. p-1: the receiver got …',
      '  via-lb → mx:25 64KiB: 2 stalled, the receiver has no record of any (their headers never arrived)',
    ]);
    expect(renderSinkEvidence([])).toEqual([]);
  });
});

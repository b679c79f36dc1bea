import { describe, expect, test } from 'vitest';
import type { ProbeResult } from '../../src/model.js';
import { describeSinkEvidence, formatSeconds, joinSink, sinkEvidenceByCell, type SinkEvidence } from '../../src/sink/join.js';
import type { SinkRecord } from '../../src/sink/records.js';

const MiB = 1024 * 1024;

function result(over: Partial<ProbeResult> & { probeId: string }): ProbeResult {
  return {
    target: '127.0.0.1:2525',
    path: 'via-lb',
    sizeBytes: MiB,
    seed: 1,
    outcome: 'stalled',
    stage: 'dataAck',
    stages: {},
    startedAt: '2025-01-01T00:00:00.000Z',
    durationMs: 12_000,
    bytesWritten: MiB + 100,
    bodyBytesWritten: MiB,
    bytesRead: 300,
    ...over,
  };
}

function record(over: Partial<SinkRecord> & { probeId?: string }): SinkRecord {
  return {
    kind: 'probe',
    sessionId: 's1',
    remoteAddress: '127.0.0.1',
    remotePort: 40000,
    startedAt: '2025-01-01T00:00:00.000Z',
    commands: [],
    expectedBytes: MiB,
    bodyBytes: 61_440,
    dataStartMs: 10,
    firstByteMs: 11,
    lastByteMs: 310,
    whole: false,
    ended: 'client-silent',
    ...over,
  };
}

describe('joinSink', () => {
  test('attaches the receiver evidence by probe id, keeps order, leaves unmatched results alone', () => {
    const rs = [result({ probeId: 'p-1' }), result({ probeId: 'p-2', outcome: 'delivered' }), result({ probeId: 'p-3' })];
    const joined = joinSink(rs, [
      record({ probeId: 'p-3', bodyBytes: 1000 }),
      record({ probeId: 'p-1' }),
      { ...record({}), kind: 'session', probeId: undefined },
      { ...record({}), kind: 'message', probeId: undefined },
    ]);
    expect(joined.map((r) => r.probeId)).toEqual(['p-1', 'p-2', 'p-3']);
    expect(joined[0]!.sink).toEqual({ bodyBytes: 61_440, expectedBytes: MiB, lastByteAfterDataMs: 300, firstByteAfterDataMs: 1, whole: false, ended: 'client-silent' });
    expect('sink' in joined[1]!).toBe(false);
    expect(joined[2]!.sink?.bodyBytes).toBe(1000);
    // the input is not mutated
    expect('sink' in rs[0]!).toBe(false);
  });

  test('several records for one probe: the most complete wins', () => {
    const [j] = joinSink([result({ probeId: 'p-1' })], [
      record({ probeId: 'p-1', bodyBytes: 500 }),
      record({ probeId: 'p-1', bodyBytes: MiB, whole: true, verified: true, ended: 'completed', reply: { code: 250, text: 'OK' } }),
      record({ probeId: 'p-1', bodyBytes: 900 }),
    ]);
    expect(j!.sink).toMatchObject({ bodyBytes: MiB, whole: true, verified: true, replyCode: 250 });
  });
});

describe('describeSinkEvidence', () => {
  test('the issue example: a stalled probe whose receiver got 61,440 of 1,048,576 bytes', () => {
    const [j] = joinSink([result({ probeId: 'p-1' })], [record({ probeId: 'p-1' })]);
    expect(describeSinkEvidence(j!)).toBe(
      'the receiver got 61,440 of 1,048,576 bytes; last byte 0.3 s after DATA (the sender had handed 1,048,576 to its kernel); ' +
        'then the connection went silent → the loss is between the two ends, not in the receiver',
    );
  });

  test('the two counts name the direction: ACKs lost on the way back, data lost on the way there, or a device that ACKs and drops', () => {
    // bytes_acked counts the SYN; 100 bytes of commands before the body
    const snap = (bodyAcked: number) => ({ at: 'stall' as const, tMs: 1, bytesAcked: 100 + bodyAcked, mss: 1448 });
    const back = joinSink([result({ probeId: 'p-1', stage: 'body', tcp: snap(20_000) })], [record({ probeId: 'p-1' })]);
    expect(describeSinkEvidence(back[0]!)).toMatch(/more than the 20,000 the sender saw acknowledged → segments arrived but their ACKs are lost on the way back, receiver → sender$/);
    const there = joinSink([result({ probeId: 'p-1', stage: 'body', tcp: snap(61_000) })], [record({ probeId: 'p-1' })]);
    expect(describeSinkEvidence(there[0]!)).toMatch(/→ the data is lost on the way to the receiver, sender → receiver \(what arrived is what was acknowledged\)$/);
    const device = joinSink([result({ probeId: 'p-1', stage: 'body', tcp: snap(MiB) })], [record({ probeId: 'p-1' })]);
    expect(describeSinkEvidence(device[0]!)).toMatch(/→ the sender saw 1,048,576 acknowledged, more than the receiver got → something between them acknowledged data it did not pass on \(a TCP-terminating device\)$/);
  });

  test('nothing after DATA', () => {
    const r = { ...result({ probeId: 'p-1', bodyBytesWritten: 0 }), sink: { bodyBytes: 0, expectedBytes: MiB, whole: false, ended: 'closed' } satisfies SinkEvidence };
    expect(describeSinkEvidence(r)).toBe('the receiver got none of the 1,048,576 bytes after DATA → the loss is between the two ends, not in the receiver');
  });

  test('a partial that was a rejection, not a loss, draws no conclusion', () => {
    const r = { ...result({ probeId: 'p-1', outcome: 'rejected' }), sink: { bodyBytes: 100, expectedBytes: MiB, whole: false, ended: 'closed', lastByteAfterDataMs: 42 } satisfies SinkEvidence };
    expect(describeSinkEvidence(r)).toBe('the receiver got 100 of 1,048,576 bytes; last byte 42 ms after DATA (the sender had handed 1,048,576 to its kernel)');
  });

  test('the whole message arrived and the receiver replied: the reply was lost on the way back', () => {
    const r = {
      ...result({ probeId: 'p-1' }),
      sink: { bodyBytes: MiB, expectedBytes: MiB, whole: true, verified: true, ended: 'completed', lastByteAfterDataMs: 1500, replyCode: 250 } satisfies SinkEvidence,
    };
    expect(describeSinkEvidence(r)).toBe('the receiver got all 1,048,576 bytes (verified); last byte 1.5 s after DATA, and replied 250 → its reply was lost on the way back to the sender');
  });

  test('the whole message arrived but the connection ended before a reply', () => {
    const r = { ...result({ probeId: 'p-1', outcome: 'timeout' }), sink: { bodyBytes: MiB, whole: true, verified: true, ended: 'reset', lastByteAfterDataMs: 12_345 } satisfies SinkEvidence };
    expect(describeSinkEvidence(r)).toBe('the receiver got all 1,048,576 bytes (verified); last byte 12 s after DATA; the connection ended (reset) before it replied');
  });

  test('delivered and verified: nothing to add; delivered but altered: said', () => {
    const ok = { ...result({ probeId: 'p-1', outcome: 'delivered' }), sink: { bodyBytes: MiB, whole: true, verified: true, ended: 'completed' } satisfies SinkEvidence };
    expect(describeSinkEvidence(ok)).toBeUndefined();
    const altered = { ...ok, sink: { ...ok.sink, verified: false } };
    expect(describeSinkEvidence(altered)).toBe("the receiver got all 1,048,576 bytes but the body does not match the probe's seed → the message was altered in transit");
    expect(describeSinkEvidence(result({ probeId: 'p-2' }))).toBeUndefined();
  });

  test('formatSeconds', () => {
    expect(formatSeconds(0.4)).toBe('0 ms');
    expect(formatSeconds(42.4)).toBe('42 ms');
    expect(formatSeconds(300)).toBe('0.3 s');
    expect(formatSeconds(9_949)).toBe('9.9 s');
    expect(formatSeconds(61_000)).toBe('61 s');
  });
});

describe('sinkEvidenceByCell', () => {
  test('groups failed probes per cell with the byte range the receiver got and one example', () => {
    const rs = joinSink(
      [
        result({ probeId: 'a1' }),
        result({ probeId: 'a2' }),
        result({ probeId: 'a3' }),
        result({ probeId: 'd1', path: 'direct', outcome: 'delivered' }),
        result({ probeId: 'd2', path: 'direct', outcome: 'delivered' }),
        result({ probeId: 's1', sizeBytes: 4096, outcome: 'delivered' }),
      ],
      [
        record({ probeId: 'a1', bodyBytes: 61_440 }),
        record({ probeId: 'a2', bodyBytes: 65_000 }),
        record({ probeId: 'd2', bodyBytes: MiB, whole: true, verified: false, ended: 'completed' }),
      ],
    );
    const g = sinkEvidenceByCell(rs);
    expect(g).toHaveLength(2);
    expect(g[0]).toMatchObject({ path: 'direct', sizeBytes: MiB, probes: 1, withRecord: 1, outcome: 'altered' });
    expect(g[1]).toMatchObject({ path: 'via-lb', sizeBytes: MiB, probes: 3, withRecord: 2, outcome: 'stalled', bodyBytes: { min: 61_440, max: 65_000 } });
    expect(g[1]!.example?.probeId).toBe('a1');
    expect(g[1]!.example?.text).toContain('the receiver got 61,440 of 1,048,576 bytes');
  });
});

/**
 * Known-answer sets for the comparator's rules (src/analyze/findings/): each set is built so that the right
 * statement, figure and kind is known in advance.
 */
import { describe, expect, it } from 'vitest';
import { compare } from '../../src/analyze/compare.js';
import { stagePhrase } from '../../src/analyze/text.js';
import type { Finding, FindingKind, ProbeResult, StallKind } from '../../src/model.js';
import { KiB, MiB, SIZES, grid } from './fixtures.js';

const of = (fs: Finding[], kind: FindingKind): Finding[] => fs.filter((f) => f.kind === kind);
const withKind = (k: StallKind) => (r: ProbeResult): ProbeResult => (r.outcome === 'stalled' ? { ...r, stallKind: k } : r);
/** Everything acknowledged (bytes_acked counts the SYN), nothing retransmitted: the far end went silent. */
const allAcked = (sizeBytes: number) => ({ outcome: 'stalled' as const, stage: 'dataAck' as const, ackedBytes: sizeBytes + 4, tcp: { retrans: 0, retransTotal: 0, unacked: 0 } });

describe('verdict figures come from the data they name', () => {
  // via-lb cut at 64 KiB acknowledged, via-fw at 256 KiB; direct clean
  const rs = grid({
    paths: ['direct', 'via-fw', 'via-lb'],
    sizes: [16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB],
    repeat: 6,
    shape: ({ path, sizeBytes, rand }) =>
      path === 'via-lb' && sizeBytes >= 64 * KiB
        ? { outcome: 'stalled', ackedBytes: Math.min(sizeBytes, Math.round(62 * KiB + rand() * 2 * KiB)) }
        : path === 'via-fw' && sizeBytes >= 256 * KiB
          ? { outcome: 'stalled', ackedBytes: Math.min(sizeBytes, Math.round(250 * KiB + rand() * 6 * KiB)) }
          : undefined,
  });
  const c = compare(rs);

  it('names each path with its own threshold and its own offset, never a figure of neither', () => {
    expect(c.verdict).toMatch(/Path via-fw stalls in the message body from 256KiB on \(18\/18 probes; direct 0\/18, p<0\.001\)\./);
    expect(c.verdict).toMatch(/Path via-lb stalls in the message body from 64KiB on \(24\/24 probes; direct 0\/24, p<0\.001\)\./);
    expect(c.verdict).toMatch(/something on via-fw after ~25\dKiB \(25\d–25\dKiB acknowledged\), something on via-lb after ~6\dKiB \(6\d–64KiB acknowledged\)/);
    // the median of the per-path medians (~160KiB) is in neither path's data
    expect(c.verdict).not.toMatch(/~1[0-9]{2}KiB/);
    const offs = of(c.findings, 'stall-offset');
    expect(offs.map((f) => f.path).sort()).toEqual(['via-fw', 'via-lb']);
  });

  it('the clean sizes are the ones below the first stalling size of any path', () => {
    expect(c.verdict).toContain('Sizes up to 16KiB are clean on all 3 paths.');
  });
});

describe('the dominant stage, with the split when mixed', () => {
  it('stagePhrase', () => {
    expect(stagePhrase(['body', 'body'])).toBe('in the message body');
    expect(stagePhrase([...Array(68).fill('dataAck'), 'body'])).toBe('after the message body was written (waiting for the final reply; at dataAck in 68 of 69)');
    expect(stagePhrase(['body', 'body', 'dataAck'])).toBe('in the message body (at body in 2 of 3)');
  });

  it('one stalled body among 69 stalls at dataAck is not "stalls in the message body"', () => {
    let n = 0;
    const rs = grid({
      paths: ['direct', 'via-lb'], sizes: [16 * KiB, 256 * KiB, MiB], repeat: 35,
      shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 256 * KiB && n++ < 69 ? { outcome: 'stalled', stage: n === 5 ? 'body' : 'dataAck' } : undefined),
    });
    const c = compare(rs);
    expect(c.verdict).toMatch(/^Path via-lb stalls after the message body was written \(waiting for the final reply; at dataAck in 68 of 69\) from 256KiB on/);
    expect(c.findings[0]!.statement).toContain('at dataAck in 68 of 69');
  });
});

describe('no-reply: a path finding only when other paths get replies', () => {
  // the demo's default fault: a userland relay on via-lb reads and drops from 64 KiB on
  const demo = grid({
    paths: ['direct', 'via-lb'], sizes: [16 * KiB, 48 * KiB, 64 * KiB, 256 * KiB, MiB], repeat: 4,
    shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? allAcked(sizeBytes) : undefined),
  }).map(withKind('no-reply'));

  it('names via-lb, the 64 KiB threshold and the TCP-terminating device, with the reply time of direct', () => {
    const c = compare(demo);
    const ps = of(c.findings, 'path-specific')[0]!;
    expect(ps).toMatchObject({ path: 'via-lb', stall: true, sizeBytes: 64 * KiB });
    expect(ps.evidence).toMatchObject({ silent: true, stallKinds: { 'no-reply': 12 }, fromBytes: 64 * KiB });
    expect(ps.statement).toMatch(/^Path via-lb: the far end took the data and went silent from 64KiB on \(12\/12 probes; direct 0\/12, p < 0\.001; every byte acknowledged, no reply\); direct gets replies in [\d.]+ ?ms: a TCP-terminating device on via-lb \(a proxy or load balancer\) swallows what the server would answer\.$/);
    expect(c.verdict).toMatch(/^Path via-lb: the far end took the data and went silent from 64KiB on \(12\/12 probes; direct 0\/12, p<0\.001\); direct gets replies in [\d.]+ ?ms: a TCP-terminating device on via-lb swallows it\./);
    expect(c.verdict).not.toMatch(/lost|PMTU/);
    expect(of(c.findings, 'no-reply')).toHaveLength(0);
    expect(c.stallFindings).toBeGreaterThan(0);
  });

  it('the demo\'s freeze-after: the small probes fit the device\'s buffers (no-reply), the big ones meet a closed window; said so', () => {
    const frozen = grid({
      paths: ['direct', 'via-lb'], sizes: [16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB], repeat: 3,
      shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 256 * KiB ? allAcked(sizeBytes) : undefined),
    }).map((r) => (r.outcome !== 'stalled' ? r : { ...r, stallKind: r.sizeBytes >= 4 * MiB ? ('window-closed' as const) : ('no-reply' as const) }));
    const c = compare(frozen);
    const ps = of(c.findings, 'path-specific')[0]!;
    expect(ps.evidence).toMatchObject({ silent: true, windowClosedSizes: [4 * MiB] });
    expect(ps.statement).toContain('At 4MiB its window then closed (nothing more acknowledged, nothing retransmitted): it stopped reading once its buffers were full.');
    expect(c.verdict).toContain('At 4MiB its window then closed');
    expect(c.verdict).not.toMatch(/lost/);
  });

  it('old results without stallKind read the same from their snapshot', () => {
    const old = demo.map(({ stallKind: _k, ...r }) => r as ProbeResult);
    const c = compare(old);
    expect(of(c.findings, 'path-specific')[0]!.evidence).toMatchObject({ silent: true, stallKinds: { 'no-reply': 12 } });
  });

  it('every path silent after the body: a slow server, not the network, with the p50 wait', () => {
    const rs = grid({
      paths: ['direct', 'via-lb'], sizes: [16 * KiB, 256 * KiB], repeat: 5,
      shape: ({ sizeBytes }) => allAcked(sizeBytes),
    }).map(withKind('no-reply'));
    const c = compare(rs);
    expect(c.stallFindings).toBe(0);
    const f = of(c.findings, 'no-reply');
    expect(f).toHaveLength(1);
    expect(f[0]).toMatchObject({ stall: false, target: 'mx.test:25' });
    expect(f[0]!.statement).toMatch(/^Target mx\.test:25 is slow to answer after the body \(p50 ≥ 10(\.0+)? ?s\): 20\/20 probes over both paths got every byte acknowledged and no final reply in the window: the server, not the network/);
    expect(c.verdict).toMatch(/^No network stall: 20 of 20 probes got every byte acknowledged and no reply/);
    expect(of(c.findings, 'target-specific')).toHaveLength(0);
  });

  it('no greeting on every path (implicit TLS probed in plain): a silent server, never "stops at 1B acknowledged"', () => {
    const rs = grid({
      paths: ['direct', 'via-lb'], targets: ['smtps.test:465'], sizes: [16 * KiB, 256 * KiB], repeat: 3,
      shape: () => ({ outcome: 'stalled', stage: 'greeting', tcp: { retrans: 0, retransTotal: 0, unacked: 0, bytesSent: 0, bytesAcked: 1 } }),
    });
    const c = compare(rs);
    expect(c.stallFindings).toBe(0);
    const f = of(c.findings, 'no-reply')[0]!;
    expect(f.statement).toBe('Target smtps.test:465 accepts connections but sends no greeting (12/12 probes over both paths): a silent server, not a network stall; port 465: the server may expect implicit TLS: --tls implicit.');
    expect(c.verdict).not.toMatch(/1B|stops passing data/);
    // another port: the hint comes only from the engine's own look at the connection
    const plain = compare(rs.map((r) => ({ ...r, target: 'smtp.test:25', remotePort: 25 })));
    expect(of(plain.findings, 'no-reply')[0]!.statement).toMatch(/a silent server, not a network stall\.$/);
    const looked = compare(rs.map((r) => ({ ...r, target: 'smtp.test:25', remotePort: 25, error: { code: 'ESTALL', message: 'no greeting; a ClientHello was answered: the server expects implicit TLS' } })));
    expect(of(looked.findings, 'no-reply')[0]!.statement).toMatch(/; the server may expect implicit TLS: --tls implicit\.$/);
  });
});

describe('the kernel evidence rules', () => {
  const stalled = (tcp: Record<string, unknown>) =>
    grid({ paths: ['direct', 'via-x'], sizes: SIZES, repeat: 4, shape: ({ path, sizeBytes }) => (path === 'via-x' && sizeBytes >= 256 * KiB ? { outcome: 'stalled', ackedBytes: 64 * KiB, tcp } : undefined) });
  const mech = (rs: ProbeResult[]) => of(compare(rs).findings, 'mechanism').map((f) => (f.evidence as { mechanism: string }).mechanism);

  it('a send window below one segment (64 or 1174 bytes against 1448) with no retransmission is a closed window', () => {
    for (const sndWnd of [0, 64, 1174]) {
      const c = compare(stalled({ sndWnd, retrans: 0, retransTotal: 0, backoff: 3, unacked: 1 }));
      const m = of(c.findings, 'mechanism')[0]!;
      expect(m.evidence).toMatchObject({ mechanism: 'window-closed', medianSndWnd: sndWnd });
      if (sndWnd) expect(m.statement).toContain(`send window ${sndWnd} bytes, below one 1448-byte segment`);
      expect(c.verdict).toContain("the receiver's window closed");
      expect(c.verdict).not.toMatch(/lost/);
    }
  });

  it('the freeze fault (engine: window-closed) is described as a closed window, not as loss', () => {
    const rs = stalled({ sndWnd: 0, retrans: 0, unacked: 12 }).map(withKind('window-closed'));
    expect(mech(rs)).toEqual(['window-closed']);
  });

  it('lost on the way needs ACKs that really stopped: a last ACK 36 ms before the call is a moving transfer', () => {
    expect(mech(stalled({ lastAckMs: 36, bytesAcked: 3 * MiB }))).toEqual([]);
    expect(mech(stalled({ lastAckMs: 8000 }))).toEqual(['lost-segments']);
  });

  it('with the sink: more received than acknowledged → the ACKs are lost on the way back; no more → the data is lost on the way there', () => {
    const withSink = (extra: number) => stalled({}).map((r) => (r.outcome === 'stalled' ? { ...r, sink: { bodyBytes: 64 * KiB + extra } } : r));
    const back = compare(withSink(40 * KiB));
    const m = of(back.findings, 'mechanism')[0]!;
    expect(m.evidence).toMatchObject({ mechanism: 'lost-segments', direction: 'to-sender' });
    expect(m.statement).toContain('the ACKs are lost on the way back, receiver → sender');
    expect(back.verdict).toContain('the receiver got more than was acknowledged: the ACKs are lost on the way back');
    const there = compare(withSink(0));
    expect(of(there.findings, 'mechanism')[0]!.statement).toContain('the data is lost on the way to the receiver, sender → receiver');
  });

  it('one end alone says "segments or their ACKs are lost"', () => {
    const c = compare(stalled({}));
    expect(of(c.findings, 'mechanism')[0]!.statement).toContain('segments or their ACKs are lost between sender and receiver');
  });

  it('no window scaling on one path while the others negotiate it is named as its own mechanism', () => {
    const rs = grid({
      paths: ['direct', 'via-fw'], sizes: SIZES, repeat: 4,
      shape: ({ path, sizeBytes }) =>
        path === 'via-fw'
          ? sizeBytes >= 64 * KiB
            ? { outcome: 'stalled', ackedBytes: 60 * KiB, tcp: { sndWnd: 64, retrans: 0, retransTotal: 0, unacked: 1 } }
            : { tcp: { sndWnd: 64 } }
          : { tcp: { sndWnd: 262_144, wscale: { snd: 7, rcv: 7 } } },
    });
    const c = compare(rs);
    const w = of(c.findings, 'mechanism').find((f) => (f.evidence as { mechanism: string }).mechanism === 'no-window-scaling')!;
    expect(w).toMatchObject({ path: 'via-fw', stall: true });
    expect(w.statement).toBe('Path via-fw negotiates no TCP window scaling (other paths: 24/24 connections do, direct); its send window stayed at 64 bytes in 12/12 stalled probes: a middlebox on via-fw strips or mishandles window scaling (RFC 7323). From the sender alone it cannot be told which way: a sink at the receiver (mxprobe sink, then compare --sink) would say whether the receiver believes scaling is on (the option removed from its SYN-ACK on the way back: the ends disagree) or off too (removed from the SYN on the way out).');
    expect(c.verdict).toContain('Path via-fw negotiates no TCP window scaling');
    expect(c.verdict).not.toContain("The kernel shows the receiver's window closed");
  });
});

describe('statistics in the evidence', () => {
  it('every significance call states the test, the correction, the hypotheses, raw and adjusted p', () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? 'stalled' : undefined) });
    for (const f of compare(rs).findings.filter((x) => x.pValue !== undefined && x.kind !== 'slow')) {
      const e = f.evidence as { test: string; correction: string; hypotheses: number; pValueRaw: number };
      expect(e).toMatchObject({ test: 'Fisher exact (two-sided)', correction: 'Bonferroni' });
      expect(f.pValue).toBeCloseTo(Math.min(1, e.pValueRaw * e.hypotheses), 12);
    }
  });
});

describe('fallback: the attempt chain in words', () => {
  const attempt = (address: string, outcome: ProbeResult['outcome'], stage?: ProbeResult['stage']) => ({ server: 'mx1.example.net', address, port: 25, outcome, ...(stage ? { stage } : {}), ms: 2000 });
  const base = grid({ paths: ['direct'], sizes: [16 * KiB], repeat: 4 });
  it('first MX refused, delivered through the second', () => {
    const rs = base.map((r) => ({ ...r, attempts: [attempt('192.0.2.5', 'refused', 'connect'), { ...attempt('192.0.2.6', 'delivered'), server: 'mx2.example.net' }] }));
    const f = of(compare(rs).findings, 'fallback')[0]!;
    expect(f.statement).toMatch(/mx1\.example\.net \(192\.0\.2\.5\) was refused at connect in 4\/4 probes; delivered through mx2\.example\.net \(192\.0\.2\.6\) \(4\/4\)\. Each such message lost 2\.00?s/);
  });
  it('nothing delivered: no "endpoint that answered"', () => {
    const rs = base.map((r) => ({ ...r, outcome: 'refused' as const, stage: 'connect' as const, attempts: [attempt('192.0.2.5', 'refused', 'connect'), attempt('192.0.2.6', 'refused', 'connect')] }));
    const f = of(compare(rs).findings, 'fallback')[0]!;
    expect(f.statement).toContain('none delivered through another');
    expect(f.statement).not.toContain('the endpoint that answered');
  });
});

describe('kernel-unread: stalls counted from our own socket are named as such', () => {
  it('says how many, where and why, and the verdict repeats it', () => {
    const rs = grid({
      paths: ['direct', 'throttled'], sizes: [8 * KiB, 3 * MiB], repeat: 6,
      shape: ({ path, sizeBytes }) => (path === 'throttled' && sizeBytes >= 3 * MiB ? { outcome: 'stalled', stage: 'dataAck' } : undefined),
    }).map((r) => (r.outcome === 'stalled' ? { ...r, progressFrom: 'socket' as const, tcpUnavailable: 'ss not found', tcp: undefined } : r));
    const c = compare(rs);
    const f = of(c.findings, 'kernel-unread')[0]!;
    expect(f.statement).toMatch(/^6 of 6 stalled probes \(on throttled\) were judged without the kernel's view \(ss not found\)/);
    expect(c.verdict).toContain("judged without the kernel's view");
  });
});

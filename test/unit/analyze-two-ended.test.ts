/**
 * Two-ended TCP evidence (issue 18): the sender's kernel snapshot against the receiver's (a sink record joined by
 * probe id) names the device that rewrites TCP — the window-scale option removed, the MSS clamped, data
 * acknowledged by something that is not the receiver — with the numbers from both ends.
 */
import { describe, expect, it } from 'vitest';
import { compare } from '../../src/analyze/compare.js';
import { ackedNotReceived, mssClamps, wscaleDisagrees, wscaleText } from '../../src/analyze/findings/two-ended.js';
import type { Finding, FindingKind, ProbeResult, TcpSnapshot } from '../../src/model.js';
import { KiB, MiB, SIZES, grid, probe } from './fixtures.js';

const of = (fs: Finding[], kind: FindingKind): Finding[] => fs.filter((f) => f.kind === kind);
const live = (t: Partial<TcpSnapshot>): TcpSnapshot => ({ at: 'end', tMs: 1, mss: 1448, advMss: 1448, pmtu: 1500, sndWnd: 262_144, options: ['ts', 'sack'], ...t });
const withReceiver = (r: ProbeResult, tcp: Partial<TcpSnapshot>, bodyBytes = r.sizeBytes): ProbeResult =>
  ({ ...r, sink: { bodyBytes, whole: bodyBytes >= r.sizeBytes, ended: 'closed', tcp: live(tcp) } }) as ProbeResult;

describe('per-probe readings of the two ends', () => {
  const base = probe({ sizeBytes: 64 * KiB, tcp: live({}) });

  it('window scaling: on at one end and off at the other, or shifts that do not pair up, is a disagreement', () => {
    expect(wscaleDisagrees(withReceiver({ ...base, tcp: live({}) }, { wscale: { snd: 7, rcv: 7 } }))).toBe(true);
    expect(wscaleDisagrees(withReceiver({ ...base, tcp: live({ wscale: { snd: 7, rcv: 9 } }) }, { wscale: { snd: 9, rcv: 7 } }))).toBe(false);
    expect(wscaleDisagrees(withReceiver({ ...base, tcp: live({ wscale: { snd: 7, rcv: 9 } }) }, { wscale: { snd: 7, rcv: 7 } }))).toBe(true);
    expect(wscaleDisagrees(withReceiver({ ...base, tcp: live({}) }, {}))).toBe(false); // off at both: they agree
    expect(wscaleDisagrees(base)).toBe(false); // no receiver view: nothing to say
    expect([wscaleText(undefined), wscaleText({ snd: 7, rcv: 7 }), wscaleText({ snd: 9, rcv: 7 })]).toEqual(['none', '7', '7 (peer 9)']);
  });

  it('MSS: below what the other end advertised and what the MTU allows is a clamp; a lower path MTU or a small window is not', () => {
    const clamped = withReceiver({ ...base, tcp: live({ mss: 1368 }) }, { mss: 1368 });
    expect(mssClamps(clamped)).toEqual([
      { direction: 'sender → receiver', clampedTo: 1380, advertised: 1460, pmtu: 1500 },
      { direction: 'receiver → sender', clampedTo: 1380, advertised: 1460, pmtu: 1500 },
    ]);
    // a 1400-byte path MTU (a tunnel, PMTU discovery): 1348 + 12 + 40 = 1400 is all the MTU allows
    expect(mssClamps(withReceiver({ ...base, tcp: live({ mss: 1348, pmtu: 1400 }) }, {}))).toEqual([]);
    // loopback: Linux bounds the send MSS by half the largest window offered (32,768 of 65,536), advmss 65,483
    expect(mssClamps(withReceiver({ ...base, tcp: live({ mss: 32_768, advMss: 65_483, pmtu: 65_535, sndWnd: 65_536 }) }, { mss: 32_768, advMss: 65_483, pmtu: 65_535, sndWnd: 65_536 }))).toEqual([]);
    // without timestamps the kernel's numbers are the option values themselves
    expect(mssClamps(withReceiver({ ...base, tcp: live({ mss: 1380, options: [] }) }, { advMss: 1460, options: [] }))[0]).toMatchObject({ clampedTo: 1380, advertised: 1460 });
  });

  it('acknowledged but not received: the sender saw more of the body acknowledged than the receiver got', () => {
    const st = probe({ sizeBytes: MiB, outcome: 'stalled', stage: 'dataAck', ackedBytes: MiB + 4, tcp: { retrans: 0, retransTotal: 0, unacked: 0 } });
    expect(ackedNotReceived(withReceiver(st, {}, 65_460))).toEqual({ acked: MiB, received: 65_460 });
    expect(ackedNotReceived(withReceiver(st, {}, MiB - 1000))).toBeUndefined(); // within two segments
  });
});

describe('two-ended findings', () => {
  /** via-fw's SYN-ACK loses the window-scale option: the receiver scales by 7, the sender reads 64-byte windows. */
  const strip = (sink: boolean) =>
    grid({
      paths: ['direct', 'via-fw'], sizes: SIZES, repeat: 4,
      shape: ({ path, sizeBytes }) =>
        path === 'via-fw'
          ? sizeBytes >= 64 * KiB
            ? { outcome: 'stalled', ackedBytes: 60 * KiB, tcp: { sndWnd: 64, retrans: 0, retransTotal: 0, unacked: 1, advMss: 1448, options: ['ts', 'sack'] } }
            : { tcp: live({ sndWnd: 64 }) }
          : { tcp: live({ wscale: { snd: 7, rcv: 7 } }) },
    }).map((r) => (sink ? withReceiver(r, { wscale: { snd: 7, rcv: 7 } }, r.outcome === 'stalled' ? 60 * KiB : r.sizeBytes) : r));

  it('with a sink: "a device on path X removes or rewrites the window-scale option (sender: none, receiver: 7)"', () => {
    const c = compare(strip(true));
    const [w, ...more] = of(c.findings, 'window-scale-rewrite');
    expect(more).toEqual([]);
    expect(w).toMatchObject({ path: 'via-fw', stall: true, evidence: { senderWscale: 'none', receiverWscale: '7', probes: 24, withBothEnds: 24, stalled: 12, medianSndWnd: 64 } });
    expect(w!.statement).toBe(
      "A device on path via-fw removes or rewrites the TCP window-scale option (sender: none, receiver: 7): the two ends' kernels disagree in 24/24 probes seen from both ends; the sender reads the receiver's scaled window as bytes: send window 64 bytes; 12 of them stalled or timed out.",
    );
    // the one-end reading steps aside for the two-ended one, and the verdict tells it once
    expect(of(c.findings, 'mechanism').filter((f) => (f.evidence as { mechanism: string }).mechanism === 'no-window-scaling')).toEqual([]);
    expect(c.verdict).toContain('A device on path via-fw removes or rewrites the TCP window-scale option (sender: none, receiver: 7)');
    expect(c.verdict).not.toContain("The kernel shows the receiver's window closed");
  });

  it('without a sink: the one-end rule names the missing scaling and says what a sink would add', () => {
    const c = compare(strip(false));
    expect(of(c.findings, 'window-scale-rewrite')).toEqual([]);
    const w = of(c.findings, 'mechanism').find((f) => (f.evidence as { mechanism: string }).mechanism === 'no-window-scaling')!;
    expect(w.statement).toContain('Path via-fw negotiates no TCP window scaling');
    expect(w.statement).toContain('a sink at the receiver (mxprobe sink, then compare --sink) would say whether the receiver believes scaling is on');
  });

  it('an MSS clamp on one path is named with both ends\' numbers, and is not a stall', () => {
    const rs = grid({
      paths: ['direct', 'via-lb'], sizes: [16 * KiB, MiB], repeat: 3,
      shape: ({ path }) => ({ tcp: live({ wscale: { snd: 7, rcv: 7 }, mss: path === 'via-lb' ? 1368 : 1448 }) }),
    }).map((r) => withReceiver(r, { wscale: { snd: 7, rcv: 7 }, mss: r.path === 'via-lb' ? 1368 : 1448 }));
    const c = compare(rs);
    const [m, ...more] = of(c.findings, 'mss-clamp');
    expect(more).toEqual([]);
    expect(m).toMatchObject({ path: 'via-lb', stall: false, evidence: { clampedTo: 1380, probes: 6, withBothEnds: 6 } });
    expect(m!.statement).toBe(
      "MSS clamped to 1,380 on path via-lb: in both directions the sending end's kernel got MSS 1,380 where the other end advertised 1,460 (path MTU 1,500), in 6/6 probes seen from both ends — a device on via-lb rewrites the MSS option, not path MTU discovery.",
    );
  });

  it('everything acknowledged, a fraction received: "acknowledged by something that is not the receiver"', () => {
    const rs = grid({
      paths: ['direct', 'via-relay'], sizes: [16 * KiB, 256 * KiB, MiB], repeat: 3,
      shape: ({ path, sizeBytes }) =>
        path === 'via-relay' && sizeBytes >= 256 * KiB
          ? { outcome: 'stalled', stage: 'dataAck', ackedBytes: sizeBytes + 4, tcp: { retrans: 0, retransTotal: 0, unacked: 0 } }
          : undefined,
    }).map((r) => withReceiver(r, {}, r.outcome === 'stalled' ? 65_460 : r.sizeBytes));
    const c = compare(rs);
    const [a] = of(c.findings, 'acked-not-received');
    expect(a).toMatchObject({ path: 'via-relay', stall: true, evidence: { medianReceivedBytes: 65_460, probes: 6, failedWithRecord: 6 } });
    expect(a!.statement).toMatch(/^On path via-relay the data is acknowledged by something that is not the receiver: the sender's kernel saw [\d,]+ message bytes acknowledged, the receiver got 65,460 \(medians of 6\/6 failed probes with a sink record, 256KiB, 1MiB\) — a TCP-terminating device on via-relay took the data and did not pass it on\.$/);
  });
});

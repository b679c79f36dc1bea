import { describe, expect, it } from 'vitest';
import { compare } from '../../src/analyze/compare.js';
import { fisherExact, formatP } from '../../src/analyze/stats.js';
import type { Finding, FindingKind } from '../../src/model.js';
import { formatSize } from '../../src/units.js';
import { KiB, MiB, SIZES, grid, rng } from './fixtures.js';

const kinds = (fs: Finding[]): FindingKind[] => fs.map((f) => f.kind);
const one = (fs: Finding[], kind: FindingKind): Finding => {
  const f = fs.filter((x) => x.kind === kind);
  expect(f, `exactly one ${kind} finding in ${JSON.stringify(kinds(fs))}`).toHaveLength(1);
  return f[0]!;
};

/** The load-balancer incident: via-lb stalls in the body from 64 KiB on, at 61–64 KiB acknowledged, retransmitting. */
function lbRun(repeat = 12) {
  return grid({
    paths: ['direct', 'via-lb'],
    sizes: SIZES,
    repeat,
    shape: ({ path, sizeBytes, rand }) =>
      path === 'via-lb' && sizeBytes >= 64 * KiB
        ? { outcome: 'stalled', ackedBytes: Math.min(sizeBytes, Math.round(61 * KiB + rand() * 3 * KiB)) }
        : undefined,
  });
}

describe('compare: the load-balancer incident', () => {
  const c = compare(lbRun());

  it('names the path, the threshold, the offset and the mechanism, ranked', () => {
    expect(kinds(c.findings)).toEqual(['path-specific', 'size-threshold', 'stall-offset', 'mechanism']);
    expect(c.stallFindings).toBe(4);
    const ps = one(c.findings, 'path-specific');
    expect(ps).toMatchObject({ stall: true, path: 'via-lb', sizeBytes: 64 * KiB });
    expect(ps.evidence).toMatchObject({ stalled: 36, total: 36, reference: ['direct'], referenceStalled: 0, referenceTotal: 36, sizes: [64 * KiB, 256 * KiB, MiB] });
    expect(ps.pValue).toBeLessThan(1e-15);
    const th = one(c.findings, 'size-threshold');
    expect(th).toMatchObject({ path: 'via-lb', target: 'mx.test:25', sizeBytes: 64 * KiB });
    expect(th.evidence).toMatchObject({ thresholdBytes: 64 * KiB, largestCleanBytes: 48 * KiB, stalled: 36, total: 36, belowStalled: 0, belowTotal: 36 });
    const off = one(c.findings, 'stall-offset');
    expect(off.evidence).toMatchObject({ source: 'bytesAcked', basis: 'body', pattern: 'cluster' });
    expect((off.evidence as { minBytes: number }).minBytes).toBeGreaterThanOrEqual(61 * KiB);
    expect((off.evidence as { maxBytes: number }).maxBytes).toBeLessThanOrEqual(64 * KiB);
    expect(off.statement).toMatch(/something on via-lb stops passing data after ~6[1-4]KiB/);
    const mech = one(c.findings, 'mechanism');
    expect(mech.evidence).toMatchObject({ mechanism: 'lost-segments', probes: 36, snapshots: 36 });
    expect(mech.statement).toMatch(/segments sent but not acknowledged .*retransmissions.*lost between sender and receiver/);
    for (let i = 1; i < c.findings.length; i++) expect(c.findings[i - 1]!.score).toBeGreaterThanOrEqual(c.findings[i]!.score);
  });

  it('says it in one paragraph', () => {
    expect(c.verdict).toMatch(
      /^Path via-lb stalls in the message body from 64KiB on \(36\/36 probes; direct 0\/36, p<0\.001\)\. Transfers stop at 6[01]–64KiB acknowledged regardless of message size: something on via-lb stops passing data after ~6[1-4]KiB\. The kernel shows the data sent but never acknowledged, with retransmissions \(36\/36 stalled probes\): the segments or their ACKs are lost on the way\. Sizes up to 48KiB are clean on both paths\.$/,
    );
  });

  it('is JSON-serialisable', () => {
    const back = JSON.parse(JSON.stringify(c));
    expect(back.findings[0].kind).toBe('path-specific');
    expect(back.cells).toHaveLength(12);
  });
});

describe('compare: a threshold at each size', () => {
  SIZES.forEach((threshold, idx) => {
    it(`via-lb stalls from ${formatSize(threshold)} on`, () => {
      const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= threshold ? 'stalled' : undefined) });
      const c = compare(rs);
      const n = (SIZES.length - idx) * 6;
      const ps = one(c.findings, 'path-specific');
      expect(ps.evidence).toMatchObject({ stalled: n, total: n, referenceStalled: 0 });
      if (idx === 0) {
        expect(c.findings.some((f) => f.kind === 'size-threshold')).toBe(false);
        expect(c.verdict).toMatch(/^Path via-lb stalls in the message body at every size tested \(36\/36 probes; direct 0\/36, p<0\.001\)\./);
        expect(c.verdict).not.toMatch(/are clean/);
      } else {
        const th = one(c.findings, 'size-threshold');
        expect(th.sizeBytes).toBe(threshold);
        expect(th.evidence).toMatchObject({ largestCleanBytes: SIZES[idx - 1] });
        // Bonferroni: the path is chosen among 6 sizes x 2 paths
        const p = formatP(Math.min(1, 12 * fisherExact(n, 0, 0, n))).replace(/ /g, '');
        expect(c.verdict).toContain(`Path via-lb stalls in the message body from ${formatSize(threshold)} on (${n}/${n} probes; direct 0/${n}, ${p}).`);
        expect(c.verdict).toContain(`Sizes up to ${formatSize(SIZES[idx - 1]!)} are clean on both paths.`);
      }
      expect(c.stallFindings).toBeGreaterThan(0);
    });
  });

  it('a single path: the threshold is tested against the smaller sizes', () => {
    const rs = grid({ paths: ['direct'], sizes: SIZES, repeat: 4, shape: ({ sizeBytes }) => (sizeBytes >= 256 * KiB ? 'stalled' : undefined) });
    const c = compare(rs);
    const th = one(c.findings, 'size-threshold');
    expect(th.evidence).toMatchObject({ stalled: 8, total: 8, belowStalled: 0, belowTotal: 16 });
    // C(24,8) = 735471: one table as extreme; Bonferroni over the 5 splits of the sizes
    expect(th.evidence).toMatchObject({ pValueRaw: expect.closeTo(1 / 735471, 15), hypotheses: 5 });
    expect(th.pValue).toBeCloseTo(5 / 735471, 12);
    expect(c.verdict).toMatch(/^Path direct stalls in the message body from 256KiB on \(8\/8 probes; smaller sizes 0\/16, p<0\.001\)\./);
    expect(c.verdict).toMatch(/Sizes up to 64KiB are clean\.$/);
  });

  it('a majority-stalled cell with a minority-stalled size below still reads as a threshold', () => {
    const rs = grid({
      paths: ['direct'], sizes: SIZES, repeat: 10,
      shape: ({ sizeBytes, i }) => (sizeBytes >= 256 * KiB ? (i < 8 ? 'stalled' : undefined) : sizeBytes === 64 * KiB && i === 0 ? 'stalled' : undefined),
    });
    const th = one(compare(rs).findings, 'size-threshold');
    expect(th.sizeBytes).toBe(256 * KiB);
    expect(th.evidence).toMatchObject({ largestCleanBytes: 48 * KiB, largestBelowBytes: 64 * KiB, stalled: 16, total: 20, belowStalled: 1, belowTotal: 40 });
    expect(th.statement).toContain('64KiB: 1/10; 48KiB and below clean');
  });
});

describe('compare: path-only, target-only', () => {
  it('path-only: via-lb stalls at every size, direct never', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 5, shape: ({ path }) => (path === 'via-lb' ? 'stalled' : undefined) }));
    expect(kinds(c.findings)).toEqual(['path-specific', 'mechanism']);
    expect(one(c.findings, 'path-specific').evidence).toMatchObject({ everySize: true, stalled: 30, total: 30, referenceStalled: 0 });
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body at every size tested \(30\/30 probes; direct 0\/30, p<0\.001\)\. The kernel shows/);
  });

  it('target-only: both paths stall to one target from 256KiB on, the other target is fine; window closed', () => {
    const rs = grid({
      paths: ['direct', 'via-lb'], targets: ['mx-bad:25', 'mx-good:25'], sizes: SIZES, repeat: 4,
      shape: ({ target, sizeBytes }) =>
        target === 'mx-bad:25' && sizeBytes >= 256 * KiB
          ? // as Linux reports a closed window: zero-window probes raise backoff, not the head's retrans
            { outcome: 'stalled', ackedBytes: 64 * KiB, tcp: { sndWnd: 0, retrans: 0, retransTotal: 2, backoff: 2, unacked: 0, notSent: 40_000, rwndLimitedMs: 1100, wscale: { snd: 7, rcv: 7 } } }
          : undefined,
    });
    const c = compare(rs);
    expect(c.findings[0]!.kind).toBe('target-specific');
    expect(c.findings[0]).toMatchObject({ target: 'mx-bad:25', sizeBytes: 256 * KiB, stall: true });
    expect(c.findings[0]!.evidence).toMatchObject({ stalled: 16, total: 16, otherStalled: 0, otherTotal: 16, otherTargets: ['mx-good:25'] });
    expect(c.findings.some((f) => f.kind === 'path-specific')).toBe(false);
    const mech = one(c.findings, 'mechanism');
    expect(mech).toMatchObject({ target: 'mx-bad:25' });
    expect(mech.evidence).toMatchObject({ mechanism: 'window-closed', probes: 16, medianRwndLimitedMs: 1100, medianNotSent: 40_000 });
    expect(c.verdict).toMatch(/^Every path stalls in the message body to mx-bad:25 from 256KiB on \(16\/16 probes over both paths\), while mx-good:25 is fine \(0\/16\), p < 0\.001: the cause is at or near mx-bad:25, not on one egress path\./);
    expect(c.verdict).toContain('something between the senders and mx-bad:25 stops passing data after ~64KiB');
    expect(c.verdict).toContain("The kernel shows the receiver's window closed with no retransmissions (16/16 stalled probes)");
    expect(c.verdict).not.toMatch(/Path direct stalls/);
  });

  it('a path that stalls to one target only is path-specific to that target', () => {
    const rs = grid({
      paths: ['direct', 'via-lb'], targets: ['a:25', 'b:25'], sizes: [4 * KiB, MiB], repeat: 6,
      shape: ({ path, target, sizeBytes }) => (path === 'via-lb' && target === 'a:25' && sizeBytes === MiB ? 'stalled' : undefined),
    });
    const c = compare(rs);
    const ps = one(c.findings, 'path-specific');
    expect(ps).toMatchObject({ path: 'via-lb', target: 'a:25' });
    expect(c.findings.some((f) => f.kind === 'target-specific')).toBe(false);
    // 2 sizes x 2 paths compared: p = 4 x 0.0022
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body to a:25 from 1MiB on \(6\/6 probes; direct 0\/6, p=0\.009\)\./);
  });

  it('a path stalling a share of its probes at every size is path-specific, with the share', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 10, shape: ({ path, i }) => (path === 'via-lb' && i % 3 === 0 ? 'stalled' : undefined) }));
    const ps = one(c.findings, 'path-specific');
    expect(ps.evidence).toMatchObject({ mode: 'stalling-cells', everySize: true, stalled: 24, total: 60 });
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body at every size tested \(24\/60 probes, 40%; direct 0\/60, p<0\.001\)\./);
  });

  it('intermittent stalls without a size pattern are path-specific "intermittently"', () => {
    // 2 of 10 probes stall in half of the cells, none in the others: no region of sizes, yet clearly this path
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 10, shape: ({ path, sizeBytes, i }) => (path === 'via-lb' && SIZES.indexOf(sizeBytes) % 2 === 0 && i < 4 ? 'stalled' : undefined) }));
    const ps = one(c.findings, 'path-specific');
    expect(ps.evidence).toMatchObject({ mode: 'all-cells', stalled: 12, total: 60 });
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body intermittently \(12\/60 probes, 20%; direct 0\/60, p<0\.001\)\./);
  });

  it('a path that stalls at one size only (not above) is path-specific at that size, with no threshold', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes === 64 * KiB ? 'stalled' : undefined) }));
    expect(c.findings.some((f) => f.kind === 'size-threshold')).toBe(false);
    expect(one(c.findings, 'path-specific').evidence).toMatchObject({ mode: 'stalling-cells', sizes: [64 * KiB], stalled: 6, total: 6 });
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body at 64KiB \(6\/6 probes; direct 0\/6, p=0\.026\)\./);
  });

  it('a path that stalls half of its probes from 64KiB on (one bad backend of two) has a threshold', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 12, shape: ({ path, sizeBytes, i }) => (path === 'via-lb' && sizeBytes >= 64 * KiB && i % 2 === 0 ? 'stalled' : undefined) }));
    const th = one(c.findings, 'size-threshold');
    expect(th).toMatchObject({ path: 'via-lb', sizeBytes: 64 * KiB });
    expect(th.evidence).toMatchObject({ stalled: 18, total: 36, belowStalled: 0, belowTotal: 36, largestCleanBytes: 48 * KiB });
    expect(th.statement).toContain('18/36 probes, 50% at 64KiB, 256KiB, 1MiB');
    expect(one(c.findings, 'path-specific').evidence).toMatchObject({ fromBytes: 64 * KiB, stalled: 18, total: 36, referenceStalled: 0 });
    expect(c.verdict).toMatch(/^Path via-lb stalls in the message body from 64KiB on \(18\/36 probes, 50%; direct 0\/36, p<0\.001\)\./);
    expect(c.verdict).toContain('Sizes up to 48KiB are clean on both paths.');
  });
});

describe('compare: no pattern, or not enough data', () => {
  it('random 1% stalls make no threshold and no path finding, and exit clean', () => {
    let k = 0;
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 25, shape: () => (++k % 100 === 37 ? 'stalled' : undefined) });
    const c = compare(rs);
    expect(c.stallFindings).toBe(0);
    expect(kinds(c.findings)).toEqual(['scattered-stalls']);
    expect(c.findings[0]!.evidence).toMatchObject({ stalled: 3, total: 300 });
    expect(c.verdict).toBe('No stall pattern: 3 of 300 probes stalled, scattered with no pattern by path, size or target (1.0%).');
  });

  it('uniformly random stalls (1% and 3%, 40 seeds each) never make a threshold, path or target finding', () => {
    for (const rate of [0.01, 0.03]) {
      for (let seed = 0; seed < 40; seed++) {
        const r = rng(7000 + seed);
        const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 10, seed, shape: () => (r() < rate ? 'stalled' : undefined) }));
        const patterns = c.findings.filter((f) => ['size-threshold', 'path-specific', 'target-specific'].includes(f.kind));
        expect(patterns, `rate ${rate} seed ${seed}: ${c.verdict}`).toEqual([]);
        expect(c.stallFindings).toBe(0);
      }
    }
  });

  it('the same 1% scattered over one path only is still no path finding', () => {
    let k = 0;
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 25, shape: ({ path }) => (path === 'via-lb' && ++k % 50 === 7 ? 'stalled' : undefined) });
    const c = compare(rs);
    expect(c.findings.filter((f) => ['path-specific', 'size-threshold', 'insufficient-data'].includes(f.kind))).toEqual([]);
    expect(c.stallFindings).toBe(0);
  });

  it('a few stalls all in one cell of one path, too few to test: "possibly", never "no pattern"', () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: [16 * KiB, 256 * KiB], repeat: 2, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes === 256 * KiB ? 'stalled' : undefined) });
    const c = compare(rs);
    expect(c.stallFindings).toBe(0);
    const f = one(c.findings, 'insufficient-data');
    expect(f).toMatchObject({ stall: false, path: 'via-lb' });
    expect(f.statement).toMatch(/all on path via-lb \(2\/2 at 256KiB/);
    expect(c.findings.some((x) => x.kind === 'scattered-stalls')).toBe(false);
    expect(c.verdict).not.toMatch(/no pattern by path/);
  });

  it('stalls everywhere at 20% are reported as a stall finding without a path or size', () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 10, shape: ({ i }) => (i % 5 === 0 ? 'stalled' : undefined) });
    const c = compare(rs);
    const f = one(c.findings, 'scattered-stalls');
    expect(f.stall).toBe(true);
    expect(f.statement).toMatch(/^24 stalls in 120 probes \(20%, 95% CI 14%–28%\)/);
    expect(c.findings.some((x) => x.kind === 'path-specific' || x.kind === 'size-threshold')).toBe(false);
  });

  it('too few probes: the pattern is reported as possible, with the probes per cell that would settle it', () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: [4 * KiB, MiB], repeat: 3, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes === MiB ? 'stalled' : undefined) });
    const c = compare(rs);
    expect(c.stallFindings).toBe(0);
    const f = one(c.findings, 'insufficient-data');
    expect(f).toMatchObject({ stall: false, path: 'via-lb' });
    // 3/3 vs 0/3: p = 0.1, times 4 (2 sizes x 2 paths); 5/5 vs 0/5 gives 0.0079 < 0.05/4
    expect(f.pValue).toBeCloseTo(0.4, 10);
    expect(f.evidence).toMatchObject({ probesPerCell: 3, probesPerCellNeeded: 5, moreProbesPerCell: 2 });
    expect(c.verdict).toBe(
      'No established stall pattern: 3 of 12 probes stalled. Possibly: path via-lb stalls in the message body from 1MiB on (3/3; direct 0/3), but p = 0.40 is not significant: 2 more probes per cell (5 per cell) would make it significant at p<0.05 if the pattern holds.',
    );
  });

  it('one probe per cell: a threshold on three sizes needs one more per cell', () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 1, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? 'stalled' : undefined) });
    const c = compare(rs);
    expect(kinds(c.findings)).toEqual(['insufficient-data']);
    expect(c.findings[0]!.evidence).toMatchObject({ moreProbesPerCell: 1, probesPerCellNeeded: 2 });
  });

  it('a clean run says so, with the bound the probes allow', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 10 }));
    expect(c.findings).toEqual([]);
    expect(c.verdict).toBe('No stalls: 120 probes over 2 paths, 1 target and 6 sizes (4KiB–1MiB); the stall rate is below 3.1% (95% upper bound).');
    const few = compare(grid({ paths: ['direct'], sizes: [4 * KiB], repeat: 2 }));
    expect(few.verdict).toBe('No stalls: 2 probes over 1 path, 1 target and 1 size (4KiB); the stall rate is below 66% (95% upper bound), but with 2 probes per cell a single cell could still stall up to 66% of the time.');
    expect(compare([]).verdict).toBe('No probes to compare.');
  });
});

describe('compare: what is not a stall', () => {
  it('greylisting is a temporary refusal, not a stall', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 4, shape: ({ i }) => (i === 0 ? { outcome: 'rejected', stage: 'rcpt', reply: { code: 450, enhanced: '4.7.1', text: 'Greylisted, please try again later' } } : undefined) }));
    expect(c.stallFindings).toBe(0);
    const f = one(c.findings, 'rejection');
    expect(f.evidence).toMatchObject({ code: 450, reason: 'temporary', count: 12, stage: 'rcpt' });
    expect(c.verdict).toContain('No stalls: 48 probes');
    expect(c.verdict).toContain('answered 450 4.7.1 "Greylisted, please try again later" at rcpt to 12 probes: greylisting or a temporary refusal, not a network problem');
  });

  it('552 is a size limit, with the largest accepted size', () => {
    const c = compare(grid({
      paths: ['direct', 'via-lb'], sizes: [...SIZES, 10 * MiB, 20 * MiB], repeat: 3,
      shape: ({ sizeBytes }) => (sizeBytes >= 10 * MiB ? { outcome: 'rejected', stage: 'dataAck', reply: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed maximum message size' } } : undefined),
    }));
    expect(c.stallFindings).toBe(0);
    const f = one(c.findings, 'rejection');
    expect(f).toMatchObject({ sizeBytes: 10 * MiB, stall: false });
    expect(f.evidence).toMatchObject({ reason: 'size-limit', largestAcceptedBytes: MiB, count: 12, total: 12 });
    expect(c.verdict).toContain('mx.test:25 refuses messages from 10MiB on with 552 5.3.4 "Message size exceeds fixed maximum message size" (12/12 probes, dataAck; 1MiB accepted): a size limit, not a stall.');
  });

  it('the receiver giving up in the body (421 4.4.2 timeout) is a stall seen from its side', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: [4 * KiB, MiB], repeat: 3, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes === MiB ? { outcome: 'rejected', stage: 'dataAck', reply: { code: 421, enhanced: '4.4.2', text: 'mx.test Error: timeout exceeded' } } : undefined) }));
    const f = one(c.findings, 'rejection');
    expect(f).toMatchObject({ stall: true, path: 'via-lb', sizeBytes: MiB });
    expect(f.evidence).toMatchObject({ reason: 'receiver-timeout', count: 3 });
    expect(c.stallFindings).toBe(1);
    expect(c.verdict).toContain('mx.test:25 gave up waiting for the message body: 421 4.4.2 "mx.test Error: timeout exceeded" at dataAck to 3/3 probes (1MiB, path via-lb): the data did not reach it');
  });

  it('a slow path is slow, and its timeouts are timeouts', () => {
    const c = compare(grid({
      paths: ['direct', 'via-slow'], sizes: SIZES, repeat: 5,
      shape: ({ path, sizeBytes }) => (path === 'via-slow' ? (sizeBytes >= MiB ? { outcome: 'timeout', writtenBytes: 700 * KiB } : { bps: 100_000 }) : undefined),
    }));
    expect(c.stallFindings).toBe(0);
    expect(kinds(c.findings)).toEqual(['slow', 'timeout']);
    const slow = one(c.findings, 'slow');
    expect(slow).toMatchObject({ path: 'via-slow', stall: false });
    expect(slow.pValue).toBeLessThan(0.001);
    expect(slow.statement).toMatch(/^Path via-slow is slow but delivers: at 256KiB the message takes 2\.\d\ds from first body byte to final reply vs \d+\.\dms on direct/);
    const to = one(c.findings, 'timeout');
    expect(to).toMatchObject({ path: 'via-slow', sizeBytes: MiB });
    expect(to.statement).toBe('5/5 probes on via-slow at 1MiB ran out of time in body while data still moved: slow, not stalled (median 700KiB of the body written when the deadline passed).');
    expect(c.verdict).toMatch(/^No stalls: 60 probes over 2 paths, 1 target and 6 sizes \(4KiB–1MiB\), 55 delivered; .* Path via-slow is slow but delivers/);
  });

  it('small transfer-time differences are not "slow"', () => {
    const c = compare(grid({ paths: ['a', 'b'], sizes: SIZES, repeat: 5, shape: ({ path }) => (path === 'b' ? { bps: 20e6 } : undefined) }));
    expect(c.findings).toEqual([]);
  });

  it('a path whose connections are refused is a failure, not a stall', () => {
    const c = compare(grid({ paths: ['direct', 'via-proxy'], sizes: [4 * KiB, MiB], repeat: 3, shape: ({ path }) => (path === 'via-proxy' ? { outcome: 'refused', stage: 'connect' } : undefined) }));
    expect(c.stallFindings).toBe(0);
    const f = one(c.findings, 'failure');
    expect(f).toMatchObject({ path: 'via-proxy', stall: false });
    expect(f.statement).toMatch(/^6\/6 probes on via-proxy were refused at connect/);
    expect(c.verdict).toContain('6 delivered; the stall rate is below 39% (95% upper bound over the 6 probes that reached the body)');
  });
});

describe('compare: where the transfer stops', () => {
  it('PMTU blackhole: nothing past the first full-size segment is acknowledged', () => {
    const c = compare(grid({ paths: ['direct', 'via-vpn'], sizes: SIZES, repeat: 4, shape: ({ path, rand }) => (path === 'via-vpn' ? { outcome: 'stalled', ackedBytes: Math.round(rand() * 500), tcp: { mss: 1448 } } : undefined) }));
    const f = one(c.findings, 'pmtu-blackhole');
    expect(f).toMatchObject({ path: 'via-vpn', stall: true });
    expect(f.evidence).toMatchObject({ mssBytes: 1448, source: 'bytesAcked' });
    expect(c.verdict).toContain('Transfers on via-vpn stop before the first full-size segment gets through');
    expect(c.verdict).toContain('a PMTU blackhole');
  });

  it('loopback (MSS 64KiB): a stall at ~64KiB is an offset cluster, not a PMTU blackhole', () => {
    // as the demo sees it: a relay that passes 65536 bytes per connection; the sink got 65,460 message bytes
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: [KiB, 48 * KiB, 64 * KiB, MiB, 4 * MiB], repeat: 3, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? { outcome: 'stalled', stage: 'dataAck', tcp: { mss: 65483, retrans: 0, unacked: 0 } } : undefined) })
      .map((r) => (r.outcome === 'stalled' ? { ...r, sink: { bodyBytes: 65_460 } } : r));
    const c = compare(rs);
    expect(c.findings.some((f) => f.kind === 'pmtu-blackhole')).toBe(false);
    expect(one(c.findings, 'stall-offset').evidence).toMatchObject({ source: 'sink', pattern: 'cluster', medianBytes: 65_460 });
    expect(c.verdict).toContain('Transfers stop at 64KiB received regardless of message size: something on via-lb stops passing data after ~64KiB.');
  });

  it('the whole message acknowledged but no final reply: the receiving side stopped answering', () => {
    // everything acknowledged (bytes_acked counts the SYN: sent + 1), nothing retransmitted, no reply
    const c = compare(grid({ paths: ['direct', 'via-filter'], sizes: [4 * KiB, 256 * KiB, MiB], repeat: 4, shape: ({ path, sizeBytes }) => (path === 'via-filter' && sizeBytes >= 256 * KiB ? { outcome: 'stalled', stage: 'dataAck', ackedBytes: sizeBytes + 4, tcp: { retrans: 0, retransTotal: 0, unacked: 0 } } : undefined) }));
    const f = one(c.findings, 'stall-offset');
    expect(f.evidence).toMatchObject({ pattern: 'complete' });
    // issue 12: the far end went silent on one path while the other gets replies — a device on that path, said once
    expect(c.verdict).toMatch(/^Path via-filter: the far end took the data and went silent from 256KiB on \(8\/8 probes; direct 0\/8, p<0\.001\); direct gets replies in [\d.]+ ?ms: a TCP-terminating device on via-filter swallows it\./);
    expect(c.verdict).not.toContain('the whole message was acknowledged at the TCP level');
    expect(f.statement).toContain('What the receiving server saw (a sink\'s record) tells which.');
    // with the sink's count, it is the receiver that went silent
    const withSink = grid({ paths: ['direct', 'via-filter'], sizes: [4 * KiB, 256 * KiB, MiB], repeat: 4, shape: ({ path, sizeBytes }) => (path === 'via-filter' && sizeBytes >= 256 * KiB ? { outcome: 'stalled', stage: 'dataAck', tcp: { retrans: 0, unacked: 0 } } : undefined) })
      .map((r) => (r.outcome === 'stalled' ? { ...r, sink: { bodyBytes: r.sizeBytes } } : r));
    const c2 = compare(withSink);
    expect(one(c2.findings, 'stall-offset').evidence).toMatchObject({ source: 'sink', pattern: 'complete' });
    expect(c2.verdict).toContain('On via-filter the receiver got the whole message but no final reply came back.');
    expect(c.findings.some((x) => x.kind === 'mechanism')).toBe(false);
  });

  it('without TCP evidence the offset comes from bytes written, and says it is an upper bound', () => {
    const c = compare(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 4, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 256 * KiB ? { outcome: 'stalled', tcp: null, writtenBytes: 200 * KiB } : undefined) }));
    const f = one(c.findings, 'stall-offset');
    expect(f.evidence).toMatchObject({ source: 'bytesWritten' });
    expect(f.statement).toContain('written into the kernel (an upper bound: no TCP evidence)');
    expect(c.findings.some((x) => x.kind === 'mechanism')).toBe(false);
  });
});

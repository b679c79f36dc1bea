import { describe, expect, it } from 'vitest';
import { ackedBodyOffset, computeCells } from '../../src/analyze/cells.js';
import { KiB, MiB, PRE_BODY_BYTES, grid, probe } from './fixtures.js';

describe('computeCells', () => {
  it('groups by path × target × size and sorts by target, size, path', () => {
    const rs = grid({ paths: ['via-lb', 'direct'], targets: ['b:25', 'a:25'], sizes: [64 * KiB, 4 * KiB], repeat: 3 });
    const cells = computeCells(rs);
    expect(cells.map((c) => `${c.target} ${c.sizeBytes} ${c.path}`)).toEqual([
      'a:25 4096 direct',
      'a:25 4096 via-lb',
      'a:25 65536 direct',
      'a:25 65536 via-lb',
      'b:25 4096 direct',
      'b:25 4096 via-lb',
      'b:25 65536 direct',
      'b:25 65536 via-lb',
    ]);
    for (const c of cells) {
      expect(c.total).toBe(3);
      expect(c.delivered).toBe(3);
      expect(c.stalled).toBe(0);
      expect(c.stallRate).toBe(0);
      expect(c.stallRateCi[0]).toBe(0);
      expect(c.stallRateCi[1]).toBeCloseTo(0.5615, 3);
      expect(c.dominantFailure).toBeUndefined();
      expect(c.stallOffset).toBeUndefined();
    }
  });

  it('counts outcomes, stall rate with Wilson interval, dominant failure with its stage', () => {
    const rs = [
      ...Array.from({ length: 9 }, () => probe({ path: 'via-lb', sizeBytes: MiB, outcome: 'stalled', ackedBytes: 62 * KiB })),
      ...Array.from({ length: 2 }, () => probe({ path: 'via-lb', sizeBytes: MiB, outcome: 'reset', stage: 'connect' })),
      probe({ path: 'via-lb', sizeBytes: MiB }),
    ];
    const [c] = computeCells(rs);
    expect(c!.total).toBe(12);
    expect(c!.counts).toEqual({ stalled: 9, reset: 2, delivered: 1 });
    expect(c!.stallRate).toBeCloseTo(0.75);
    expect(c!.stallRateCi[0]).toBeCloseTo(0.4677, 3);
    expect(c!.stallRateCi[1]).toBeCloseTo(0.9111, 3);
    expect(c!.dominantFailure).toEqual({ outcome: 'stalled', stage: 'body', count: 9, stallKind: 'no-ack' });
    expect(c!.medianTotalMs).toBeGreaterThan(100);
  });

  it('stall offset prefers the kernel bytesAcked, minus the command bytes written before the body', () => {
    const rs = [60, 62, 64].map((k) => probe({ sizeBytes: MiB, outcome: 'stalled', ackedBytes: k * KiB, writtenBytes: 900 * KiB }));
    const [c] = computeCells(rs);
    expect(c!.stallOffset).toEqual({ source: 'bytesAcked', medianBytes: 62 * KiB, minBytes: 60 * KiB, maxBytes: 64 * KiB, basis: 'body', count: 3 });
    expect(ackedBodyOffset(rs[0]!)).toEqual([60 * KiB, 'body']);
  });

  it('falls back to bodyBytesWritten without TCP evidence, and to connection bytes without bodyBytesWritten', () => {
    const rs = [100, 200].map((k) => probe({ sizeBytes: MiB, outcome: 'stalled', writtenBytes: k * KiB, tcp: null }));
    expect(computeCells(rs)[0]!.stallOffset).toMatchObject({ source: 'bytesWritten', medianBytes: 150 * KiB, minBytes: 100 * KiB, maxBytes: 200 * KiB });
    const r = probe({ sizeBytes: MiB, outcome: 'stalled', ackedBytes: 1000 });
    delete r.bodyBytesWritten;
    expect(ackedBodyOffset(r)).toEqual([PRE_BODY_BYTES + 1000, 'connection']);
    expect(computeCells([r])[0]!.stallOffset).toMatchObject({ source: 'bytesAcked', basis: 'connection' });
  });

  it('uses the sink byte count when a sink record was joined in', () => {
    const rs = [30, 40, 50].map((k) => ({ ...probe({ sizeBytes: MiB, outcome: 'stalled' }), sink: { bodyBytes: k * KiB } }));
    expect(computeCells(rs)[0]!.stallOffset).toMatchObject({ source: 'sink', medianBytes: 40 * KiB });
  });

  it('stage percentiles leave out the partial time of the stage a probe failed in', () => {
    const rs = [
      probe({ sizeBytes: 4 * KiB, rttMs: 10 }),
      probe({ sizeBytes: 4 * KiB, outcome: 'stalled', stage: 'body' }),
    ];
    const [c] = computeCells(rs);
    expect(c!.stages.body!.n).toBe(1);
    expect(c!.stages.connect!.n).toBe(2);
    expect(c!.stages.total!.n).toBe(1);
    expect(c!.stages.dataAck!.n).toBe(1);
    expect(c!.stages.body!.p50).toBeLessThan(100);
  });

  it('body throughput is the median of size / body time of delivered probes', () => {
    const rs = [1e6, 2e6, 4e6].map((bps) => probe({ sizeBytes: MiB, bps, rand: () => 0.5 }));
    const [c] = computeCells(rs);
    expect(c!.bodyThroughputBps).toBeCloseTo(2e6, -2);
  });

  it('keeps the reply code of rejections', () => {
    const rs = [1, 2].map(() => probe({ sizeBytes: MiB, outcome: 'rejected', stage: 'dataAck', reply: { code: 552, enhanced: '5.3.4', text: 'Message size exceeds fixed limit' } }));
    expect(computeCells(rs)[0]!.dominantFailure).toEqual({ outcome: 'rejected', stage: 'dataAck', count: 2, code: 552 });
  });
});

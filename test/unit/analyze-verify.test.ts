import { describe, expect, it } from 'vitest';
import { evaluateThresholds, verifyRuns } from '../../src/analyze/verify.js';
import type { Threshold } from '../../src/profile/plan.js';
import { KiB, MiB, grid, probe } from './fixtures.js';

const stallFrom = (threshold: number, path = 'via-lb') => ({ path: p, sizeBytes }: { path: string; sizeBytes: number }) =>
  p === path && sizeBytes >= threshold ? ('stalled' as const) : undefined;
const SZ = [4 * KiB, 64 * KiB, MiB];

describe('verifyRuns', () => {
  it('fixed: a failing baseline cell that no longer fails, significantly', () => {
    const v = verifyRuns(grid({ paths: ['direct', 'via-lb'], sizes: SZ, repeat: 6, shape: stallFrom(64 * KiB) }), grid({ paths: ['direct', 'via-lb'], sizes: SZ, repeat: 6 }));
    expect(v.counts).toMatchObject({ fixed: 2, unchanged: 4, regressed: 0, 'still-failing': 0 });
    expect(v.baselineFailing).toBe(2);
    const c = v.cells.find((x) => x.path === 'via-lb' && x.sizeBytes === MiB)!;
    expect(c).toMatchObject({ status: 'fixed', baselineFailing: true, before: { total: 6, failed: 6 }, after: { total: 6, failed: 0 } });
    // 6 cells compared: Bonferroni x 6
    expect(c.pValueRaw).toBeCloseTo(2 / 924, 10);
    expect(c).toMatchObject({ hypotheses: 6 });
    expect(c.pValue).toBeCloseTo((6 * 2) / 924, 10);
    expect(c.test).toBe('Fisher exact: 6/6 → 0/6 failed, p = 0.013 (raw = 0.002, 6 hypotheses)');
    expect(v).toMatchObject({ test: 'Fisher exact (two-sided)', correction: 'Bonferroni', hypotheses: 6, alpha: 0.05 });
    expect(c.note).toBe('was (6 stalled)');
  });

  it('inconclusive: looks fixed with too few probes, and says how many would decide', () => {
    const v = verifyRuns(grid({ paths: ['via-lb'], sizes: [MiB], repeat: 3, shape: stallFrom(MiB) }), grid({ paths: ['via-lb'], sizes: [MiB], repeat: 3 }));
    const c = v.cells[0]!;
    expect(c.status).toBe('inconclusive');
    expect(c.pValue).toBeCloseTo(0.1, 10);
    expect(c.probesPerCellNeeded).toBe(4);
    expect(c.note).toBe('not enough data to call: fewer failures, not significant; 4 probes per cell in each run would decide');
  });

  it('corrects for the number of cells like compare: with 20 cells, p = 0.022 in one is noise, not a fix', () => {
    // one cell 4/5 → 0/5 failed (raw p = 0.048), nineteen clean cells
    const sizes = Array.from({ length: 10 }, (_, i) => (i + 1) * 16 * KiB);
    const before = grid({ paths: ['a', 'b'], sizes, repeat: 5, shape: ({ path, sizeBytes, i }) => (path === 'a' && sizeBytes === 16 * KiB && i < 4 ? 'stalled' : undefined) });
    const v = verifyRuns(before, grid({ paths: ['a', 'b'], sizes, repeat: 5 }));
    const c = v.cells.find((x) => x.path === 'a' && x.sizeBytes === 16 * KiB)!;
    expect(c.pValueRaw).toBeCloseTo(0.0476, 3);
    expect(c.pValue).toBeCloseTo(Math.min(1, 20 * c.pValueRaw!), 10);
    expect(c.status).toBe('inconclusive');
    expect(c.note).toMatch(/^not enough data to call: fewer failures, not significant; \d+ probes per cell in each run would decide$/);
    expect(c.probesPerCellNeeded).toBeGreaterThan(5);
    expect(v.fixed).toBe(0);
  });

  it('still failing (and improved but still failing)', () => {
    const before = grid({ paths: ['via-lb'], sizes: [MiB], repeat: 12, shape: stallFrom(MiB) });
    expect(verifyRuns(before, grid({ paths: ['via-lb'], sizes: [MiB], repeat: 12, shape: stallFrom(MiB) })).cells[0]).toMatchObject({ status: 'still-failing', pValue: 1 });
    const half = grid({ paths: ['via-lb'], sizes: [MiB], repeat: 12, shape: ({ i }) => (i % 2 ? 'stalled' : undefined) });
    const c = verifyRuns(before, half).cells[0]!;
    expect(c.status).toBe('still-failing');
    expect(c.note).toBe('improved, but still fails; now (6 stalled)');
  });

  it('regressed: significantly more failures; a single new random stall is not a regression', () => {
    const clean = grid({ paths: ['direct', 'via-lb'], sizes: SZ, repeat: 6 });
    const v = verifyRuns(clean, grid({ paths: ['direct', 'via-lb'], sizes: SZ, repeat: 6, shape: stallFrom(64 * KiB) }));
    expect(v.regressed).toBe(2);
    expect(v.cells.filter((c) => c.status === 'regressed').map((c) => c.sizeBytes)).toEqual([64 * KiB, MiB]);
    const one = verifyRuns(grid({ paths: ['a'], sizes: [MiB], repeat: 20 }), grid({ paths: ['a'], sizes: [MiB], repeat: 20, shape: ({ i }) => (i === 3 ? 'stalled' : undefined) }));
    expect(one.cells[0]!.status).toBe('unchanged');
    expect(one.regressed).toBe(0);
  });

  it('cells only on one side: not-probed and new', () => {
    const v = verifyRuns(grid({ paths: ['a'], sizes: [4 * KiB, MiB], repeat: 3 }), grid({ paths: ['a'], sizes: [4 * KiB, 2 * MiB], repeat: 3 }));
    expect(v.cells.map((c) => [c.sizeBytes, c.status])).toEqual([[4 * KiB, 'unchanged'], [MiB, 'not-probed'], [2 * MiB, 'new']]);
  });

  it('counts every failure kind, not only stalls (a 552 that became a delivery is fixed)', () => {
    const rej = grid({ paths: ['a'], sizes: [MiB], repeat: 6, shape: () => ({ outcome: 'rejected', stage: 'dataAck', reply: { code: 552, text: 'too big' } }) });
    const c = verifyRuns(rej, grid({ paths: ['a'], sizes: [MiB], repeat: 6 })).cells[0]!;
    expect(c.status).toBe('fixed');
    expect(c.note).toBe('was (6 rejected)');
  });
});

const th = (metric: string, stat: string, op: Threshold['op'], value: number): Threshold => ({ source: `${metric}: ${stat} ${op} ${value}`, metric, stat, op, value });

describe('evaluateThresholds', () => {
  const rs = [
    ...[10, 20, 30, 40].map((ms) => ({ ...probe({ sizeBytes: 4 * KiB }), stages: { connect: 1, body: ms, dataAck: 5 }, durationMs: ms + 6 })),
    { ...probe({ sizeBytes: MiB, outcome: 'stalled' }), stages: { connect: 1, body: 10_000 }, durationMs: 10_001 },
  ];

  it('stage statistics include the partial time of a stalled stage', () => {
    const [p95, p50, max, avg] = evaluateThresholds(rs, [th('body', 'p95', '<', 2000), th('body', 'p50', '<', 2000), th('body', 'max', '<=', 10_000), th('body', 'avg', '<', 3000)]);
    expect(p95).toMatchObject({ ok: false, n: 5 });
    expect(p95!.actual).toBeCloseTo(8008, 0);
    expect(p95!.message).toBe('body: p95 < 2000 — p95 8.01s over 5 probes: FAILED by 6.01s');
    expect(p95!.missedBy).toBeCloseTo(6008, 0);
    expect(p50).toMatchObject({ ok: true, actual: 30 });
    expect(max).toMatchObject({ ok: true, actual: 10_000 });
    expect(avg).toMatchObject({ ok: true, actual: 2020 });
  });

  it('rates and total', () => {
    const [stall, success, total] = evaluateThresholds(rs, [th('stall_rate', 'rate', '<', 0.01), th('success_rate', 'rate', '>=', 0.8), th('total', 'p50', '<', 100)]);
    expect(stall).toMatchObject({ ok: false, actual: 0.2, n: 5, message: 'stall_rate: rate < 0.01 — 20% (1/5): FAILED by 19%' });
    expect(success).toMatchObject({ ok: true, actual: 0.8 });
    expect(total).toMatchObject({ ok: true, actual: 36 });
  });

  it('a threshold with nothing to measure fails', () => {
    const [tls] = evaluateThresholds(rs, [th('tls', 'p95', '<', 100)]);
    expect(tls).toMatchObject({ ok: false, n: 0 });
    expect(tls!.message).toBe('tls: p95 < 100 — no probe recorded time in tls: fails');
    expect(evaluateThresholds([], [th('stall_rate', 'rate', '<', 0.01)])[0]).toMatchObject({ ok: false, n: 0 });
  });
});

import { describe, expect, it } from 'vitest';
import { bisect, type BisectStep, type RunStep } from '../../src/analyze/bisect.js';
import { KiB, MiB, probe, rng } from './fixtures.js';

/** A path that stalls every message larger than `threshold` bytes, at ~threshold acknowledged. */
function cleanCut(threshold: number): RunStep & { calls: Array<[number, number]> } {
  const calls: Array<[number, number]> = [];
  const f = async (sizeBytes: number, count: number) => {
    calls.push([sizeBytes, count]);
    return Array.from({ length: count }, () =>
      sizeBytes > threshold ? probe({ path: 'via-lb', sizeBytes, outcome: 'stalled', ackedBytes: Math.min(sizeBytes, threshold) }) : probe({ path: 'via-lb', sizeBytes }),
    );
  };
  return Object.assign(f, { calls });
}

describe('bisect', () => {
  it('finds a clean-cut threshold within 10% (or one segment) in at most 15 probes, anywhere between 4KiB and 1MiB', async () => {
    const r = rng(42);
    let worst = 0;
    for (let i = 0; i < 150; i++) {
      // log-uniform thresholds in [4KiB, 1MiB)
      const threshold = Math.floor(4 * KiB * Math.pow(256, r()));
      const res = await bisect(cleanCut(threshold), { low: 4 * KiB, high: MiB });
      expect(res.converged, `threshold ${threshold}: ${res.reason}`).toBe(true);
      expect(res.low).toBeLessThanOrEqual(threshold);
      expect(res.high).toBeGreaterThan(threshold);
      expect(res.high - res.low).toBeLessThanOrEqual(Math.max(1448, 0.1 * res.low));
      expect(res.probes).toBeLessThanOrEqual(15);
      worst = Math.max(worst, res.probes);
    }
    expect(worst).toBeGreaterThan(5);
  });

  it('reports every step, repeats clean steps, stops a step at the first stall, and keeps the stall offset', async () => {
    const steps: BisectStep[] = [];
    const run = cleanCut(64 * KiB);
    const res = await bisect(run, { low: 4 * KiB, high: MiB, onStep: (s) => steps.push(s) });
    expect(steps).toEqual(res.steps);
    expect(steps[0]).toMatchObject({ n: 1, role: 'check-high', sizeBytes: MiB, verdict: 'stalls', probes: 1, detail: 'stalled@body', stallOffsetBytes: 64 * KiB });
    expect(steps[1]).toMatchObject({ n: 2, role: 'check-low', sizeBytes: 4 * KiB, verdict: 'clean', probes: 2, counts: { delivered: 2 } });
    expect(steps[2]).toMatchObject({ role: 'search', sizeBytes: 64 * KiB, verdict: 'clean', low: 64 * KiB, high: MiB });
    for (const s of steps) expect(s.probes).toBe(s.verdict === 'clean' ? 2 : 1);
    expect(run.calls.every(([, count]) => count === 1)).toBe(true);
    expect(res.stallOffsetBytes).toBe(64 * KiB);
    expect(res.low).toBe(64 * KiB);
    expect(res.high).toBeLessThanOrEqual(64 * KiB + 6554);
    expect(res.reason).toMatch(/^stalls start above 64KiB and by [\d.]+KiB: within \d+\.\d%, \d+ probes$/);
  });

  it('states the bracket under the statistics policy of compare: Fisher exact, Bonferroni over the splits, raw and adjusted p', async () => {
    const res = await bisect(cleanCut(64 * KiB), { low: 4 * KiB, high: MiB });
    const e = res.evidence!;
    const sizes = new Set(res.steps.map((s) => s.sizeBytes)).size;
    expect(e).toMatchObject({ test: 'Fisher exact (two-sided)', correction: 'Bonferroni', hypotheses: sizes - 1, stalledBelow: 0 });
    expect(e.stalledAbove).toBe(e.totalAbove);
    expect(e.totalAbove + e.totalBelow).toBe(res.probes);
    expect(e.pValue).toBeCloseTo(Math.min(1, e.pValueRaw * e.hypotheses), 12);
    // one stall per stalling step is a small sample: with repeat 1 the bracket is not significant, and it says so
    const quick = await bisect(cleanCut(64 * KiB), { low: 4 * KiB, high: MiB, repeat: 1 });
    expect(quick.evidence!.significant).toBe(false);
    expect(quick.evidence!.statement).toMatch(/^not enough data to call: at ≥ [\d.]+KiB \d+\/\d+ stalled, at ≤ 64KiB 0\/\d+, p = [\d.]+ \(raw = [\d.]+, \d+ hypotheses\)(; \d+ probes on each side would decide)?$/);
  });

  it('repeat 1 is faster; a larger repeat costs more', async () => {
    const one = await bisect(cleanCut(100_000), { low: 4 * KiB, high: MiB, repeat: 1 });
    const three = await bisect(cleanCut(100_000), { low: 4 * KiB, high: MiB, repeat: 3 });
    expect(one.converged && three.converged).toBe(true);
    expect(one.probes).toBeLessThan(three.probes);
  });

  it('refines down to one TCP segment for small thresholds', async () => {
    const res = await bisect(cleanCut(5000), { low: 1000, high: 20_000 });
    expect(res.converged).toBe(true);
    expect(res.high - res.low).toBeLessThanOrEqual(1448);
    expect(res.reason).toContain('within one TCP segment');
  });

  it('stops with a reason when the high size does not stall, or the low size stalls', async () => {
    const none = await bisect(cleanCut(10 * MiB), { low: 4 * KiB, high: MiB });
    expect(none).toMatchObject({ converged: false, probes: 2 });
    expect(none.reason).toBe('the high size 1MiB does not stall (2/2 delivered): nothing to search; try a larger --high');
    const all = await bisect(cleanCut(1000), { low: 4 * KiB, high: MiB });
    expect(all.converged).toBe(false);
    expect(all.reason).toBe('the low size 4KiB stalls too (stalled@body): try a smaller --low');
  });

  it('stops on an answer that is not about size (a 552 rejection)', async () => {
    const run: RunStep = async (sizeBytes, count) =>
      Array.from({ length: count }, () =>
        sizeBytes > 200 * KiB
          ? probe({ sizeBytes, outcome: 'rejected', stage: 'dataAck', reply: { code: 552, text: 'too big' } })
          : sizeBytes > 50 * KiB
            ? probe({ sizeBytes, outcome: 'stalled' })
            : probe({ sizeBytes }),
      );
    const res = await bisect(run, { low: 4 * KiB, high: 100 * KiB, checkEnds: false, maxProbes: 40 });
    expect(res.converged).toBe(true);
    const res2 = await bisect(run, { low: 4 * KiB, high: MiB });
    expect(res2.converged).toBe(false);
    expect(res2.reason).toBe('the high size 1MiB did not give an answer: rejected 552@dataAck: too big');
  });

  it('stops when the probe budget is spent, with the bracket so far', async () => {
    const res = await bisect(cleanCut(300_000), { low: 4 * KiB, high: MiB, maxProbes: 6 });
    expect(res.converged).toBe(false);
    expect(res.probes).toBeLessThanOrEqual(6);
    expect(res.low).toBeLessThanOrEqual(300_000);
    expect(res.high).toBeGreaterThan(300_000);
    expect(res.reason).toMatch(/probe budget \(6\) spent|did not give an answer: probe budget spent/);
  });

  it('rejects bad options', async () => {
    await expect(bisect(cleanCut(1), { low: 10, high: 5 })).rejects.toThrow('high size (5) must be larger than low size (10)');
    await expect(bisect(cleanCut(1), { low: 0, high: 5 })).rejects.toThrow(/low size must be a positive/);
  });
});

import { describe, expect, it } from 'vitest';
import { fisherExact, formatP, mannWhitney, median, percentile, probesForSignificance, probesPerCellForSignificance, wilson } from '../../src/analyze/stats.js';

// reference values from SciPy 1.17 (scipy.stats.fisher_exact, binomtest(...).proportion_ci(method='wilson'))
describe('wilson', () => {
  it('0/12 → [0, 0.2425]', () => {
    const [lo, hi] = wilson(0, 12);
    expect(lo).toBe(0);
    expect(hi).toBeCloseTo(0.242494, 5);
  });
  it('12/12 → [0.7575, 1]', () => {
    const [lo, hi] = wilson(12, 12);
    expect(lo).toBeCloseTo(0.757506, 5);
    expect(hi).toBe(1);
  });
  it('3/10 and 1/100', () => {
    expect(wilson(3, 10)[0]).toBeCloseTo(0.107791, 5);
    expect(wilson(3, 10)[1]).toBeCloseTo(0.603222, 5);
    expect(wilson(1, 100)[0]).toBeCloseTo(0.0017674, 6);
    expect(wilson(1, 100)[1]).toBeCloseTo(0.0544862, 6);
  });
  it('n = 0 is the whole interval; k > n is an error', () => {
    expect(wilson(0, 0)).toEqual([0, 1]);
    expect(() => wilson(3, 2)).toThrow(RangeError);
  });
});

describe('fisherExact (two-sided)', () => {
  const cases: Array<[[number, number, number, number], number]> = [
    [[12, 0, 0, 12], 7.39602301050679e-7],
    [[0, 12, 12, 0], 7.39602301050679e-7],
    [[3, 0, 0, 3], 0.1],
    [[5, 1, 0, 6], 0.01515151515151515],
    [[1, 11, 0, 12], 1],
    [[8, 2, 1, 5], 0.034965034965034975],
    [[10, 2, 3, 9], 0.012278137799742322],
    [[1, 99, 0, 100], 1],
    [[2, 10, 0, 12], 0.47826086956521735],
  ];
  for (const [[a, b, c, d], p] of cases) {
    it(`[[${a},${b}],[${c},${d}]] → ${p}`, () => {
      expect(fisherExact(a, b, c, d)).toBeCloseTo(p, 10);
      expect(fisherExact(a, b, c, d) / p).toBeCloseTo(1, 6);
    });
  }
  it('empty margins give 1', () => {
    expect(fisherExact(0, 0, 3, 4)).toBe(1);
    expect(fisherExact(0, 5, 0, 5)).toBe(1);
  });
  it('rejects negative or fractional counts', () => {
    expect(() => fisherExact(-1, 0, 0, 0)).toThrow(RangeError);
    expect(() => fisherExact(1.5, 0, 0, 0)).toThrow(RangeError);
  });
});

describe('percentile', () => {
  it('interpolates like NumPy', () => {
    const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    expect(percentile(xs, 50)).toBeCloseTo(5.5);
    expect(percentile(xs, 95)).toBeCloseTo(9.55);
    expect(percentile(xs, 99)).toBeCloseTo(9.91);
    expect(percentile([7], 99)).toBe(7);
    expect(percentile([], 50)).toBeNaN();
    expect(median([3, 1, 2])).toBe(2);
  });
});

describe('probesForSignificance', () => {
  it('3/3 vs 0/3 needs 4 per group at p<0.05 (4/4 vs 0/4 gives p=0.029)', () => {
    expect(fisherExact(3, 0, 0, 3)).toBeGreaterThan(0.05);
    expect(probesForSignificance(1, 0)).toBe(4);
    expect(fisherExact(4, 0, 0, 4)).toBeLessThan(0.05);
  });
  it('no answer for equal proportions', () => {
    expect(probesForSignificance(0.5, 0.5)).toBeUndefined();
  });
  it('formatP', () => {
    expect(formatP(7e-7)).toBe('p < 0.001');
    expect(formatP(0.0123)).toBe('p = 0.012');
    expect(formatP(0.478)).toBe('p = 0.48');
    // around the usual alpha, enough digits to see which side it is on
    expect(formatP(0.0498)).toBe('p = 0.0498');
    expect(formatP(0.0503)).toBe('p = 0.0503');
  });
});

describe('mannWhitney', () => {
  // SciPy mannwhitneyu(x, y, method='exact' | 'asymptotic')
  it('exact for small samples without ties', () => {
    expect(mannWhitney([10, 11, 12], [1, 2, 3])).toEqual({ u: 9, p: expect.closeTo(0.1, 10) });
    expect(mannWhitney([10, 11, 12, 13, 14, 15], [1, 2, 3, 4, 5, 6]).p).toBeCloseTo(0.0021645021645, 10);
    expect(mannWhitney([1, 4, 6, 9, 12], [2, 3, 5, 7, 8, 10, 11])).toEqual({ u: 17, p: 1 });
  });
  it('normal approximation with ties and for large samples', () => {
    expect(mannWhitney([1, 1, 2, 3, 3, 4], [3, 4, 4, 5, 5, 6]).p).toBeCloseTo(0.0181009, 4);
    const x = Array.from({ length: 60 }, (_, i) => i * 2);
    const y = Array.from({ length: 50 }, (_, i) => i * 2 + 3.5);
    const r = mannWhitney(x, y);
    expect(r.u).toBe(1675);
    expect(r.p).toBeCloseTo(0.294858, 4);
  });
  it('empty input gives p = 1', () => {
    expect(mannWhitney([], [1]).p).toBe(1);
  });
});

describe('probesPerCellForSignificance', () => {
  it('pooled groups of different cell counts', () => {
    // 3 stalling cells vs 3 clean cells at 1 probe each: 3/3 vs 0/3 (p = 0.1); 2 each: 6/6 vs 0/6 (p = 0.002)
    expect(probesPerCellForSignificance(1, 3, 0, 3, 1)).toBe(2);
    expect(probesPerCellForSignificance(1, 1, 0, 1, 3)).toBe(4);
    expect(probesPerCellForSignificance(0.5, 1, 0.5, 1, 3)).toBeUndefined();
  });
});

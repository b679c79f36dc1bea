/**
 * The one statistics policy of `compare`, `verify` and `bisect`: every call that says "this differs" is Fisher's
 * exact test (two-sided) on a 2×2 table of failed vs not failed, corrected for the number of hypotheses it was
 * chosen among by Bonferroni (p × m, at most 1), and significant when the adjusted p is below alpha. The evidence
 * of every call states the test, the counts, `hypotheses`, the raw and the adjusted p.
 */
import { fisherExact, formatP, probesPerCellForSignificance } from './stats.js';

export const TEST_NAME = 'Fisher exact (two-sided)';
export const CORRECTION = 'Bonferroni';

/** Failed (stalled, …) out of total, one side of a comparison. */
export interface Pool {
  stalled: number;
  total: number;
}

/** The statistics behind one call, as written into evidence. */
export interface TestedDifference {
  test: typeof TEST_NAME;
  correction: typeof CORRECTION;
  hypotheses: number;
  pValueRaw: number;
  pValue: number;
  significant: boolean;
}

/** Bonferroni: p × m, at most 1. */
export function adjustP(pRaw: number, hypotheses: number): number {
  return Math.min(1, pRaw * Math.max(1, hypotheses));
}

/** Test group a against group b, corrected for `hypotheses`. */
export function testDifference(a: Pool, b: Pool, hypotheses: number, alpha: number): TestedDifference {
  const pValueRaw = fisherExact(a.stalled, a.total - a.stalled, b.stalled, b.total - b.stalled);
  const m = Math.max(1, hypotheses);
  const pValue = adjustP(pValueRaw, m);
  return { test: TEST_NAME, correction: CORRECTION, hypotheses: m, pValueRaw, pValue, significant: pValue < alpha };
}

/** `p = 0.012 (raw 0.0006, 20 hypotheses)`, or just the p when there was one hypothesis. */
export function describeP(t: Pick<TestedDifference, 'pValue' | 'pValueRaw' | 'hypotheses'>): string {
  if (t.hypotheses <= 1) return formatP(t.pValue);
  return `${formatP(t.pValue)} (${formatP(t.pValueRaw).replace(/^p /, 'raw ')}, ${t.hypotheses} hypotheses)`;
}

/**
 * Probes per cell that would make the observed rates p1 (over cells1 cells) vs p2 (over cells2 cells) significant
 * under the same correction; undefined when no reasonable number would.
 */
export function probesNeeded(p1: number, cells1: number, p2: number, cells2: number, perCellNow: number, hypotheses: number, alpha: number): number | undefined {
  return probesPerCellForSignificance(p1, cells1, p2, cells2, perCellNow, alpha / Math.max(1, hypotheses));
}

export function pool(cells: readonly Pool[]): Pool {
  let stalled = 0;
  let total = 0;
  for (const c of cells) {
    stalled += c.stalled;
    total += c.total;
  }
  return { stalled, total };
}

export const frac = (p: Pool): string => `${p.stalled}/${p.total}`;

/**
 * Verify a fix: compare a baseline run with a run after the change, cell by cell, under the statistics policy of
 * `compare` (policy.ts: Fisher's exact test, Bonferroni over the cells compared); and evaluate k6-style thresholds
 * on a run. Pure functions.
 */
import type { Outcome, ProbeResult, Stage } from '../model.js';
import type { Threshold } from '../profile/plan.js';
import { formatMs, formatSize } from '../units.js';
import { type CellStats, cellKey, computeCells } from './cells.js';
import { CORRECTION, TEST_NAME, describeP, probesNeeded, testDifference } from './policy.js';
import { formatPct, percentile, sortedCopy, wilson } from './stats.js';

/**
 * - `fixed`: the baseline failed, the new run significantly less and no longer fails
 * - `still-failing`: fails in both runs (possibly better or worse: see `note`)
 * - `regressed`: significantly more failures than the baseline
 * - `unchanged`: no significant difference, and the baseline did not fail
 * - `inconclusive`: not enough data to call — a difference that is not significant (after the correction) where
 *   it matters (a baseline failure that looks fixed, or new failures), with the probes per cell that would decide
 * - `not-probed`: in the baseline, not in the new run
 * - `new`: in the new run only (no baseline to compare with)
 */
export type CellVerdict = 'fixed' | 'still-failing' | 'regressed' | 'unchanged' | 'inconclusive' | 'not-probed' | 'new';

export interface RunSide {
  total: number;
  failed: number;
  failRate: number;
  counts: Partial<Record<Outcome, number>>;
}

export interface CellComparison {
  path: string;
  target: string;
  sizeBytes: number;
  status: CellVerdict;
  /** The baseline cell failed (Wilson 95% lower bound of its failure rate above 5%). */
  baselineFailing: boolean;
  before?: RunSide;
  after?: RunSide;
  /** Fisher's exact test (two-sided) of failed vs delivered, before vs after, Bonferroni-adjusted over `hypotheses`. */
  pValue?: number;
  /** The same test before the correction. */
  pValueRaw?: number;
  /** Cells compared in this verify (the correction's factor). */
  hypotheses?: number;
  /** The test behind the call, in words: `Fisher exact: 12/12 → 0/12 failed, p < 0.001 (raw …, 6 hypotheses)`. */
  test: string;
  note?: string;
  /** For `inconclusive`: probes per cell that would make the observed difference significant. */
  probesPerCellNeeded?: number;
}

export interface VerifyResult {
  cells: CellComparison[];
  counts: Record<CellVerdict, number>;
  /** Baseline cells that failed, and how many of them are fixed. */
  baselineFailing: number;
  fixed: number;
  regressed: number;
  /** The statistics policy the calls were made under. */
  test: typeof TEST_NAME;
  correction: typeof CORRECTION;
  hypotheses: number;
  alpha: number;
}

export interface VerifyOptions {
  /** Significance level (default 0.05). */
  alpha?: number;
  /** A cell "fails" when the Wilson 95% lower bound of its failure rate is above this (default 0.05). */
  failingLowerBound?: number;
}

/** A probe that did not deliver: stalled, timed out, reset, rejected, … */
const failed = (c: CellStats): number => c.total - c.delivered;

function side(c: CellStats): RunSide {
  return { total: c.total, failed: failed(c), failRate: c.total ? failed(c) / c.total : 0, counts: c.counts };
}

function failureWords(s: RunSide): string {
  const parts = Object.entries(s.counts)
    .filter(([o]) => o !== 'delivered')
    .sort((a, b) => (b[1] ?? 0) - (a[1] ?? 0))
    .map(([o, n]) => `${n} ${o}`);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** The call on one cell present in both runs. */
function callCell(base: Pick<CellComparison, 'path' | 'target' | 'sizeBytes'>, bs: RunSide, as: RunSide, hypotheses: number, alpha: number, isFailing: (s: RunSide) => boolean): CellComparison {
  const t = testDifference({ stalled: bs.failed, total: bs.total }, { stalled: as.failed, total: as.total }, hypotheses, alpha);
  const test = `Fisher exact: ${bs.failed}/${bs.total} → ${as.failed}/${as.total} failed, ${describeP(t)}`;
  const bFail = isFailing(bs);
  const aFail = isFailing(as);
  const c: CellComparison = { ...base, status: 'unchanged', baselineFailing: bFail, before: bs, after: as, pValue: t.pValue, pValueRaw: t.pValueRaw, hypotheses: t.hypotheses, test };
  const undecided = (what: string): void => {
    c.status = 'inconclusive';
    c.probesPerCellNeeded = probesNeeded(bs.failRate, 1, as.failRate, 1, Math.max(bs.total, as.total), hypotheses, alpha);
    c.note = `not enough data to call: ${what}, not significant${c.probesPerCellNeeded ? `; ${c.probesPerCellNeeded} probes per cell in each run would decide` : ''}`;
  };
  if (bFail && !aFail) {
    if (t.significant) c.status = 'fixed';
    else undecided('fewer failures');
  } else if (bFail && aFail) {
    if (t.significant && as.failRate > bs.failRate) {
      c.status = 'regressed';
      c.note = 'failed before, fails more now';
    } else {
      c.status = 'still-failing';
      if (t.significant) c.note = 'improved, but still fails';
    }
  } else if (!bFail && aFail) {
    if (t.significant) c.status = 'regressed';
    else undecided('new failures');
  } else if (t.significant && as.failRate > bs.failRate) {
    c.status = 'regressed';
  }
  if (c.status === 'still-failing' || c.status === 'regressed' || c.status === 'fixed') {
    const words = failureWords(c.status === 'fixed' ? bs : as);
    if (words) c.note = `${c.note ? `${c.note}; ` : ''}${c.status === 'fixed' ? 'was' : 'now'}${words}`;
  }
  return c;
}

/** Compare a baseline run with a new run, cell by cell (path × target × size). */
export function verifyRuns(before: readonly ProbeResult[], after: readonly ProbeResult[], opts: VerifyOptions = {}): VerifyResult {
  const alpha = opts.alpha ?? 0.05;
  const lb = opts.failingLowerBound ?? 0.05;
  const isFailing = (s: RunSide): boolean => s.failed > 0 && wilson(s.failed, s.total)[0] > lb;
  const bCells = new Map(computeCells(before).map((c) => [cellKey(c), c]));
  const aCells = new Map(computeCells(after).map((c) => [cellKey(c), c]));
  const keys = [...new Set([...bCells.keys(), ...aCells.keys()])];
  // one hypothesis per cell compared on both sides: with 20 cells, one p < 0.05 by chance is expected
  const hypotheses = Math.max(1, keys.filter((k) => bCells.has(k) && aCells.has(k)).length);
  const out: CellComparison[] = [];
  for (const k of keys) {
    const b = bCells.get(k);
    const a = aCells.get(k);
    const ref = (b ?? a)!;
    const base = { path: ref.path, target: ref.target, sizeBytes: ref.sizeBytes };
    if (!a) {
      const bs = side(b!);
      out.push({ ...base, status: 'not-probed', baselineFailing: isFailing(bs), before: bs, test: `not in the new run (baseline ${bs.failed}/${bs.total} failed)` });
    } else if (!b) {
      const as = side(a);
      out.push({ ...base, status: 'new', baselineFailing: false, after: as, test: `not in the baseline (now ${as.failed}/${as.total} failed)` });
    } else out.push(callCell(base, side(b), side(a), hypotheses, alpha, isFailing));
  }
  out.sort((x, y) => (x.target < y.target ? -1 : x.target > y.target ? 1 : 0) || x.sizeBytes - y.sizeBytes || (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
  const counts: Record<CellVerdict, number> = { fixed: 0, 'still-failing': 0, regressed: 0, unchanged: 0, inconclusive: 0, 'not-probed': 0, new: 0 };
  for (const c of out) counts[c.status]++;
  return {
    cells: out,
    counts,
    baselineFailing: out.filter((c) => c.baselineFailing).length,
    fixed: counts.fixed,
    regressed: counts.regressed,
    test: TEST_NAME,
    correction: CORRECTION,
    hypotheses,
    alpha,
  };
}

/** One line per cell: `via-lb → mx:25  64KiB  fixed  Fisher exact: 12/12 → 0/12 failed, p < 0.001`. */
export function describeCell(c: CellComparison, multiTarget: boolean): string {
  const where = `${c.path}${multiTarget ? ` → ${c.target}` : ''} ${formatSize(c.sizeBytes)}`;
  return `${where}: ${c.status}: ${c.test}${c.note ? ` — ${c.note}` : ''}`;
}

// ------------------------------------------------------------------------------------------------ thresholds

export interface ThresholdResult {
  threshold: Threshold;
  /** The measured value (ms for stage metrics, a fraction for rates); absent when nothing was measured. */
  actual?: number;
  /** Values the statistic was computed over (probes). */
  n: number;
  ok: boolean;
  /** How far a failed threshold missed its limit, in its unit (ms, or a fraction for rates). */
  missedBy?: number;
  /** `body: p95 < 2s — p95 1.24s over 36 probes: ok`, `… FAILED by 1.3s`. */
  message: string;
}

/** By how much `actual` misses the limit of `t` (0 at the limit itself: `<` fails there). */
function missedBy(t: Threshold, actual: number): number {
  return Math.abs(actual - t.value);
}

function byWords(t: Threshold, actual: number, rate: boolean): string {
  const d = missedBy(t, actual);
  if (d === 0) return ' (exactly at the limit)';
  return ` by ${rate ? formatPct(d) : formatMs(d)}`;
}

function stat(values: number[], s: string): number {
  const v = sortedCopy(values);
  switch (s) {
    case 'p50':
      return percentile(v, 50);
    case 'p90':
      return percentile(v, 90);
    case 'p95':
      return percentile(v, 95);
    case 'p99':
      return percentile(v, 99);
    case 'avg':
      return v.reduce((a, b) => a + b, 0) / v.length;
    case 'max':
      return v[v.length - 1]!;
    case 'min':
      return v[0]!;
    default:
      throw new RangeError(`unknown statistic "${s}"`);
  }
}

function holds(actual: number, op: Threshold['op'], value: number): boolean {
  switch (op) {
    case '<':
      return actual < value;
    case '<=':
      return actual <= value;
    case '>':
      return actual > value;
    case '>=':
      return actual >= value;
  }
}

/** The counts behind a rate metric: `k` of `n`. */
function rateOf(results: readonly ProbeResult[], metric: string): { k: number; n: number } {
  if (metric === 'arrival_rate') {
    const looked = results.filter((r) => r.outcome === 'delivered' && r.arrival);
    return { k: looked.filter((r) => r.arrival!.found && r.arrival!.intact).length, n: looked.length };
  }
  return { k: results.filter((r) => r.outcome === (metric === 'stall_rate' ? 'stalled' : 'delivered')).length, n: results.length };
}

/**
 * Evaluate thresholds on a run.
 * - a stage metric (`body`, `dataAck`, …) is computed over every probe that recorded time in that stage,
 *   including the partial time of the stage a probe stalled or timed out in (a lower bound of what it would
 *   have taken: a stalled body pushes `body: p95` up, as it should);
 * - `total` over every probe's `durationMs`;
 * - `arrival` over the time to the mailbox of every probe found there (IMAP arrival check);
 * - `stall_rate` = stalled / probes, `success_rate` = delivered / probes, `arrival_rate` = probes found whole in
 *   the mailbox / accepted probes that were looked for.
 * A threshold with nothing to measure (no probe reached the stage) fails.
 */
export function evaluateThresholds(results: readonly ProbeResult[], thresholds: readonly Threshold[]): ThresholdResult[] {
  return thresholds.map((t) => {
    let values: number[] = [];
    let actual: number | undefined;
    if (t.metric.endsWith('_rate')) {
      const { k, n } = rateOf(results, t.metric);
      if (n) actual = k / n;
      const ok = actual !== undefined && holds(actual, t.op, t.value);
      return {
        threshold: t,
        actual,
        n,
        ok,
        ...(!ok && actual !== undefined ? { missedBy: missedBy(t, actual) } : {}),
        message:
          actual === undefined
            ? `${t.source} — no probes: fails`
            : `${t.source} — ${formatPct(actual)} (${k}/${n}): ${ok ? 'ok' : `FAILED${byWords(t, actual, true)}`}`,
      };
    }
    if (t.metric === 'total') values = results.map((r) => r.durationMs).filter((v) => Number.isFinite(v));
    else if (t.metric === 'arrival') values = results.map((r) => r.arrival?.latencyMs).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    else values = results.map((r) => r.stages?.[t.metric as Stage]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
    if (!values.length) return { threshold: t, n: 0, ok: false, message: `${t.source} — no probe recorded time in ${t.metric}: fails` };
    actual = stat(values, t.stat);
    const ok = holds(actual, t.op, t.value);
    const message = `${t.source} — ${t.stat} ${formatMs(actual)} over ${values.length} probes: ${ok ? 'ok' : `FAILED${byWords(t, actual, false)}`}`;
    return { threshold: t, actual, n: values.length, ok, ...(ok ? {} : { missedBy: missedBy(t, actual) }), message };
  });
}

/**
 * Threshold search: the message size from which a path stalls, between a size that goes through and one that
 * stalls. Geometric bisection (the threshold is wanted to a relative precision), probes sent one at a time so
 * a step ends at the first stall; a step is "clean" only after `repeat` deliveries. Stops when the bracket is
 * within `precision` (10%) of its low end or within one TCP segment.
 *
 * Pure algorithm: the probes are sent by an injected `runStep(sizeBytes, count)`.
 */
import type { Outcome, ProbeResult } from '../model.js';
import { formatSize } from '../units.js';
import { ackedBodyOffset, sinkBodyBytes } from './cells.js';
import { type TestedDifference, describeP, probesNeeded, testDifference } from './policy.js';
import { median } from './stats.js';

export type RunStep = (sizeBytes: number, count: number) => Promise<ProbeResult[]>;

export interface BisectOptions {
  /** A size believed clean. */
  low: number;
  /** A size believed to stall. */
  high: number;
  /** Deliveries needed to call a size clean (default 2). A single stall calls it stalling. */
  repeat?: number;
  /** Relative precision of the bracket (default 0.1). */
  precision?: number;
  /** Absolute precision: one TCP segment (default 1448 bytes). */
  segmentBytes?: number;
  /** Probe budget (default 40): the search stops with the bracket so far when it is spent. */
  maxProbes?: number;
  /** Check that `low` is clean and `high` stalls before searching (default true). */
  checkEnds?: boolean;
  /** Called after every step (for progress output). */
  onStep?: (step: BisectStep) => void;
}

export type StepVerdict = 'clean' | 'stalls' | 'error';

export interface BisectStep {
  /** 1-based. */
  n: number;
  role: 'check-high' | 'check-low' | 'search';
  sizeBytes: number;
  verdict: StepVerdict;
  probes: number;
  /** Probes of this step that stalled (or reset / timed out in the body: the same size dependence). */
  stalled: number;
  counts: Partial<Record<Outcome, number>>;
  /** `stalled@body`, or the error of an `error` step. */
  detail?: string;
  /** Body offset where stalled probes stopped (acknowledged or received), when reported. */
  stallOffsetBytes?: number;
  /** The bracket after this step. */
  low: number;
  high: number;
}

export interface BisectResult {
  /** Largest size seen clean. */
  low: number;
  /** Smallest size seen stalling: the threshold is in (low, high]. */
  high: number;
  /** True when the bracket reached the precision. */
  converged: boolean;
  /** Why the search ended, in words. */
  reason: string;
  probes: number;
  steps: BisectStep[];
  /** Median body offset where stalled probes stopped, across all steps (acknowledged / received bytes). */
  stallOffsetBytes?: number;
  /**
   * The bracket under the statistics policy of `compare` (policy.ts): probes at sizes ≥ high vs ≤ low, Fisher's
   * exact test, Bonferroni over the splits of the sizes probed. Absent when one side has no probes.
   */
  evidence?: BisectEvidence;
}

export interface BisectEvidence extends TestedDifference {
  stalledAbove: number;
  totalAbove: number;
  stalledBelow: number;
  totalBelow: number;
  /** Probes per side that would make the bracket significant if the rates hold (when it is not). */
  probesNeeded?: number;
  /** `at ≥ 90KiB 2/2 stalled, at ≤ 80KiB 0/6: p = 0.036 (raw …, 4 hypotheses)`, or "not enough data to call …". */
  statement: string;
}

/** Stalls above the bracket vs below it, tested like every comparison of `compare`. */
export function bracketEvidence(steps: readonly BisectStep[], low: number, high: number, alpha = 0.05): BisectEvidence | undefined {
  const above = steps.filter((s) => s.sizeBytes >= high);
  const below = steps.filter((s) => s.sizeBytes <= low);
  const a = { stalled: above.reduce((n, s) => n + s.stalled, 0), total: above.reduce((n, s) => n + s.probes, 0) };
  const b = { stalled: below.reduce((n, s) => n + s.stalled, 0), total: below.reduce((n, s) => n + s.probes, 0) };
  if (!a.total || !b.total) return undefined;
  const sizes = new Set(steps.map((s) => s.sizeBytes)).size;
  const t = testDifference(a, b, sizes - 1, alpha);
  const counts = `at ≥ ${formatSize(high)} ${a.stalled}/${a.total} stalled, at ≤ ${formatSize(low)} ${b.stalled}/${b.total}`;
  const need = t.significant ? undefined : probesNeeded(a.stalled / a.total, 1, b.stalled / b.total, 1, Math.max(a.total, b.total), t.hypotheses, alpha);
  const statement = t.significant
    ? `${counts}: Fisher exact, ${describeP(t)}`
    : `not enough data to call: ${counts}, ${describeP(t)}${need ? `; ${need} probes on each side would decide` : ''}`;
  return { ...t, stalledAbove: a.stalled, totalAbove: a.total, stalledBelow: b.stalled, totalBelow: b.total, ...(need ? { probesNeeded: need } : {}), statement };
}

/** Outcomes that mean "this size triggers the problem". */
function isStallLike(r: ProbeResult): boolean {
  if (r.outcome === 'stalled') return true;
  // a middlebox that resets or starves big transfers shows the same size dependence
  return (r.outcome === 'reset' || r.outcome === 'timeout') && (r.stage === 'body' || r.stage === 'dataAck');
}

/** Where a stalled probe stopped in its body, when that is short of the whole message (else it says nothing). */
function offsetOf(r: ProbeResult): number | undefined {
  const s = sinkBodyBytes(r);
  const a = ackedBodyOffset(r);
  const v = s !== undefined ? s : a && a[1] === 'body' ? a[0] : undefined;
  return v !== undefined && v < r.sizeBytes * 0.98 ? v : undefined;
}

export class BisectError extends Error {
  override name = 'BisectError';
}

/** Search for the stall threshold. Rejects only when `runStep` rejects or the options are invalid. */
export async function bisect(runStep: RunStep, opts: BisectOptions): Promise<BisectResult> {
  const repeat = opts.repeat ?? 2;
  const precision = opts.precision ?? 0.1;
  const segment = opts.segmentBytes ?? 1448;
  const maxProbes = opts.maxProbes ?? 40;
  if (!(Number.isInteger(opts.low) && opts.low > 0)) throw new BisectError(`low size must be a positive number of bytes (got ${opts.low})`);
  if (!(Number.isInteger(opts.high) && opts.high > opts.low)) throw new BisectError(`high size (${opts.high}) must be larger than low size (${opts.low})`);
  if (!(Number.isInteger(repeat) && repeat >= 1)) throw new BisectError(`repeat must be at least 1 (got ${repeat})`);

  let low = opts.low;
  let high = opts.high;
  let probes = 0;
  const steps: BisectStep[] = [];
  const offsets: number[] = [];

  const step = async (role: BisectStep['role'], sizeBytes: number): Promise<BisectStep> => {
    const counts: Partial<Record<Outcome, number>> = {};
    let n = 0;
    let verdict: StepVerdict = 'clean';
    let detail: string | undefined;
    let stalled = 0;
    const stepOffsets: number[] = [];
    while (n < repeat && probes < maxProbes) {
      const rs = await runStep(sizeBytes, 1);
      if (rs.length === 0) throw new BisectError(`no result for a probe of ${formatSize(sizeBytes)}`);
      n += rs.length;
      probes += rs.length;
      for (const r of rs) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
      const stall = rs.find(isStallLike);
      const bad = rs.find((r) => r.outcome !== 'delivered' && !isStallLike(r));
      stalled += rs.filter(isStallLike).length;
      if (stall) {
        verdict = 'stalls';
        detail = `${stall.outcome}${stall.stage ? `@${stall.stage}` : ''}`;
        for (const r of rs.filter(isStallLike)) {
          const o = offsetOf(r);
          if (o !== undefined) stepOffsets.push(o);
        }
        break;
      }
      if (bad) {
        verdict = 'error';
        const code = bad.reply?.code ? ` ${bad.reply.code}` : '';
        detail = `${bad.outcome}${code}${bad.stage ? `@${bad.stage}` : ''}${bad.reply && bad.outcome === 'rejected' ? `: ${bad.reply.text}` : bad.error ? `: ${bad.error.message}` : ''}`;
        break;
      }
    }
    if (verdict === 'clean' && n < repeat) verdict = 'error'; // budget ran out mid-step
    if (verdict === 'clean' && role !== 'check-high') low = Math.max(low, sizeBytes);
    if (verdict === 'stalls' && role !== 'check-low') high = Math.min(high, sizeBytes);
    offsets.push(...stepOffsets);
    const s: BisectStep = { n: steps.length + 1, role, sizeBytes, verdict, probes: n, stalled, counts, low, high };
    if (detail) s.detail = detail;
    else if (verdict === 'error') s.detail = 'probe budget spent';
    if (stepOffsets.length) s.stallOffsetBytes = Math.round(median(stepOffsets));
    steps.push(s);
    opts.onStep?.(s);
    return s;
  };

  const done = (converged: boolean, reason: string): BisectResult => {
    const r: BisectResult = { low, high, converged, reason, probes, steps };
    if (offsets.length) r.stallOffsetBytes = Math.round(median(offsets));
    const ev = bracketEvidence(steps, low, high);
    if (ev) r.evidence = ev;
    return r;
  };
  const closeEnough = (): boolean => high - low <= Math.max(segment, precision * low);

  if (opts.checkEnds !== false) {
    const h = await step('check-high', high);
    if (h.verdict === 'error') return done(false, `the high size ${formatSize(high)} did not give an answer: ${h.detail}`);
    if (h.verdict === 'clean') return done(false, `the high size ${formatSize(high)} does not stall (${h.probes}/${h.probes} delivered): nothing to search; try a larger --high`);
    const l = await step('check-low', low);
    if (l.verdict === 'error') return done(false, `the low size ${formatSize(low)} did not give an answer: ${l.detail}`);
    if (l.verdict === 'stalls') return done(false, `the low size ${formatSize(low)} stalls too (${l.detail}): try a smaller --low`);
  }
  while (!closeEnough()) {
    if (probes >= maxProbes) return done(false, `probe budget (${maxProbes}) spent; the threshold is between ${formatSize(low)} and ${formatSize(high)}`);
    let mid = Math.round(Math.sqrt(low * high));
    if (mid <= low || mid >= high) mid = Math.round((low + high) / 2);
    if (mid <= low || mid >= high) break;
    const s = await step('search', mid);
    if (s.verdict === 'error') return done(false, `a probe of ${formatSize(mid)} did not give an answer: ${s.detail}`);
  }
  const width = high - low;
  const how = width <= segment ? `within one TCP segment (${width} bytes)` : `within ${((width / low) * 100).toFixed(1)}%`;
  return done(true, `stalls start above ${formatSize(low)} and by ${formatSize(high)}: ${how}, ${probes} probes`);
}

/**
 * The schedule of `mxprobe serve`: run the plan now, then every `intervalMs`, never two runs at once. A run that
 * takes longer than the interval is followed by the next one right away, and the interval boundaries that
 * passed meanwhile are counted (`mxprobe_skipped_intervals_total`). Every result is appended to a JSONL file
 * (by the runner) and kept in a bounded window of recent runs, over which the comparator's findings are
 * recomputed after each run.
 */
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { compare, type CompareResult } from '../analyze/compare.js';
import { evaluateThresholds } from '../analyze/verify.js';
import type { ProbeResult } from '../model.js';
import type { Plan } from '../profile/plan.js';
import { createRunEmitter, newRunId, runPlan, type RunOptions, type RunSummary } from '../run/index.js';
import type { ServeMetrics } from './metrics.js';
import { clockMs } from '../clock.js';

export interface SchedulerOptions {
  plan: Plan;
  /** Time from the start of one run to the start of the next (ms). */
  intervalMs: number;
  /** Results file; a function gets the run's start time (default: `results/serve-YYYYMMDD.jsonl`, UTC date of each run). */
  out?: string | ((runStart: Date) => string);
  metrics: ServeMetrics;
  /** Runs whose results feed the findings (default 6). */
  windowRuns?: number;
  /** Bound on results kept in memory, oldest dropped first (default 20000). */
  maxWindowResults?: number;
  /** At shutdown, in-flight probes get this long to finish (default 1500 ms), then are ended. */
  graceMs?: number;
  /** After ending them, how long to wait for them (default 400 ms). */
  settleMs?: number;
  /** Passed to `runPlan` (tests: probeFn, validate, checkBind). */
  runOptions?: Pick<RunOptions, 'probeFn' | 'validate' | 'resolveMx' | 'checkBind' | 'capture'>;
}

export interface SchedulerEvents {
  'run:start': [{ runId: string; out: string; n: number }];
  'run:end': [{ summary: RunSummary; durationMs: number; compare: CompareResult; n: number }];
  'run:error': [{ error: Error; runId: string; n: number }];
  'probe:end': [{ result: ProbeResult }];
  /** A run took `intervals` intervals or more: the next starts right away. */
  overrun: [{ durationMs: number; skipped: number }];
}

/** `results/serve-20250101.jsonl` for the UTC date of `d`. */
export function defaultServeOut(d: Date): string {
  const iso = d.toISOString();
  return join('results', `serve-${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}.jsonl`);
}

export class Scheduler extends EventEmitter<SchedulerEvents> {
  readonly plan: Plan;
  readonly intervalMs: number;
  private readonly metrics: ServeMetrics;
  private readonly outOf: (d: Date) => string;
  private readonly windowRuns: number;
  private readonly maxWindow: number;
  private readonly graceMs: number;
  private readonly settleMs: number;
  private readonly runOptions: SchedulerOptions['runOptions'];
  private readonly recent: ProbeResult[][] = [];
  private stopped = false;
  private loopDone: Promise<void> | undefined;
  private current: AbortController | undefined;
  private wake: (() => void) | undefined;
  private sleepTimer: NodeJS.Timeout | undefined;
  /** Runs started so far. */
  runsStarted = 0;
  lastCompare: CompareResult | undefined;
  lastError: Error | undefined;
  lastRunEndedAt: Date | undefined;
  lastOut: string | undefined;

  constructor(opts: SchedulerOptions) {
    super();
    if (!(opts.intervalMs > 0)) throw new RangeError('interval must be positive');
    this.plan = opts.plan;
    this.intervalMs = opts.intervalMs;
    this.metrics = opts.metrics;
    const out = opts.out;
    this.outOf = typeof out === 'function' ? out : out !== undefined ? () => out : defaultServeOut;
    this.windowRuns = Math.max(1, opts.windowRuns ?? 6);
    this.maxWindow = Math.max(1, opts.maxWindowResults ?? 20_000);
    this.graceMs = opts.graceMs ?? 1500;
    this.settleMs = opts.settleMs ?? 400;
    this.runOptions = opts.runOptions;
  }

  /** Start the schedule: the first run begins now (on the next turn of the event loop, so listeners attached
   * right after `start()` see its events). */
  start(): void {
    if (this.loopDone || this.stopped) return;
    this.loopDone = new Promise<void>((r) => setImmediate(r)).then(() => this.loop());
  }

  /** The results the findings are computed over, oldest first. */
  window(): ProbeResult[] {
    return this.recent.flat();
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  /**
   * Stop: no new run; the run in progress gets `graceMs` for its in-flight probes, then they are ended (the
   * runner writes every finished probe). Resolves when the loop is over.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sleepTimer) clearTimeout(this.sleepTimer);
    this.wake?.();
    this.current?.abort();
    await this.loopDone;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const t0 = clockMs();
      try {
        await this.runOnce();
      } catch (err) {
        // a subscriber threw: the schedule goes on
        this.lastError = err instanceof Error ? err : new Error(String(err));
      }
      if (this.stopped) break;
      const elapsed = clockMs() - t0;
      const passed = Math.floor(elapsed / this.intervalMs);
      if (passed >= 1) {
        this.metrics.skippedIntervals.inc(passed);
        this.emit('overrun', { durationMs: elapsed, skipped: passed });
        continue;
      }
      await this.sleep(this.intervalMs - elapsed);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.wake = () => {
        this.wake = undefined;
        resolve();
      };
      this.sleepTimer = setTimeout(() => this.wake?.(), Math.max(0, ms));
    });
  }

  private push(r: ProbeResult, bucket: ProbeResult[]): void {
    bucket.push(r);
    let total = this.recent.reduce((a, b) => a + b.length, 0);
    while (total > this.maxWindow && this.recent.length) {
      const oldest = this.recent[0]!;
      oldest.shift();
      total--;
      if (oldest.length === 0 && this.recent.length > 1) this.recent.shift();
    }
  }

  private async runOnce(): Promise<void> {
    const n = ++this.runsStarted;
    const runId = newRunId();
    const started = new Date();
    const out = this.outOf(started);
    this.lastOut = out;
    const ctrl = new AbortController();
    this.current = ctrl;
    const bucket: ProbeResult[] = [];
    this.recent.push(bucket);
    while (this.recent.length > this.windowRuns) this.recent.shift();
    const emitter = createRunEmitter();
    emitter.on('probe:end', (e) => {
      this.metrics.observe(e.result);
      this.push(e.result, bucket);
      this.emit('probe:end', { result: e.result });
    });
    // the runner puts the arrival on the same result object, so the window's findings see it too
    emitter.on('probe:arrival', (e) => this.metrics.observeArrival(e.result, e.arrival));
    this.metrics.runStarted();
    this.emit('run:start', { runId, out, n });
    const t0 = clockMs();
    let summary: RunSummary | undefined;
    let error: Error | undefined;
    try {
      summary = await runPlan(this.plan, {
        ...this.runOptions,
        out,
        runId,
        emitter,
        signal: ctrl.signal,
        graceMs: this.graceMs,
        settleMs: this.settleMs,
      });
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.current = undefined;
    }
    const durationMs = clockMs() - t0;
    this.lastRunEndedAt = new Date();
    this.metrics.runEnded(error ? 'error' : summary!.interrupted ? 'interrupted' : 'complete', durationMs, this.lastRunEndedAt.getTime());
    const win = this.window();
    this.metrics.windowProbes.set(win.length);
    const cmp = compare(win);
    this.lastCompare = cmp;
    this.metrics.setFindings(cmp.findings);
    if (this.plan.thresholds?.length) this.metrics.setThresholds(evaluateThresholds(win, this.plan.thresholds));
    if (error) {
      this.lastError = error;
      this.emit('run:error', { error, runId, n });
    } else {
      this.lastError = undefined;
      this.emit('run:end', { summary: summary!, durationMs, compare: cmp, n });
    }
  }
}

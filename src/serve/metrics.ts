/**
 * Prometheus metrics of `mxprobe serve`, on a Registry of their own (never prom-client's global one, so several
 * servers in one process, and library users, do not collide).
 *
 * Labels: `path`, `target` (the result's labels), `size` (formatSize: `64KiB`), `stage`, `outcome`. A stage that
 * a failed probe ended in is not observed in the stage histogram (its time is partial: the comparator's rule);
 * it is counted in `mxprobe_probes_total{outcome, stage}` instead.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ThresholdResult } from '../analyze/verify.js';
import { ackedBodyOffset, sinkBodyBytes } from '../analyze/cells.js';
import { STAGES, type Arrival, type Finding, type ProbeResult } from '../model.js';
import { formatSize } from '../units.js';

/** Seconds: 1 ms … 600 s, dense where SMTP stages live (ms on loopback, 100 ms greetings, seconds-long bodies). */
export const STAGE_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
]);

/** Seconds: 100 ms … 1 h, where a message's way through queues and filters to a mailbox lives. */
export const ARRIVAL_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]);

export type RunResultLabel = 'complete' | 'interrupted' | 'error';
export type ProbeRequestLabel = 'ok' | 'bad-request' | 'forbidden' | 'busy' | 'error';

/** Where a stalled probe stopped in its message, by the best counter it has (sink > kernel acked > written). */
export function stallOffsetBytes(r: ProbeResult): number | undefined {
  const sink = sinkBodyBytes(r);
  if (sink !== undefined) return sink;
  const acked = ackedBodyOffset(r);
  if (acked && acked[1] === 'body') return acked[0];
  return typeof r.bodyBytesWritten === 'number' ? r.bodyBytesWritten : undefined;
}

export interface ServeMetricsOptions {
  /** Also export prom-client's process and Node.js metrics (`process_*`, `nodejs_*`). Default true. */
  defaultMetrics?: boolean;
  /** `mxprobe_info` labels. */
  info?: { version?: string; profile?: string; profileHash?: string };
}

export class ServeMetrics {
  readonly registry = new Registry();
  readonly stageDuration: Histogram<'path' | 'target' | 'size' | 'stage'>;
  readonly probeDuration: Histogram<'path' | 'target' | 'size' | 'outcome'>;
  readonly probes: Counter<'path' | 'target' | 'size' | 'outcome' | 'stage'>;
  readonly stalls: Counter<'path' | 'target' | 'size' | 'stage' | 'stall_kind'>;
  readonly success: Gauge<'path' | 'target' | 'size'>;
  readonly lastStallOffset: Gauge<'path' | 'target' | 'size'>;
  readonly findings: Gauge<'kind' | 'path' | 'target'>;
  readonly thresholdOk: Gauge<'threshold'>;
  readonly thresholdValue: Gauge<'threshold'>;
  readonly stallFindings: Gauge;
  readonly lastRunTimestamp: Gauge;
  readonly runDuration: Gauge;
  readonly runs: Counter<'result'>;
  readonly runInProgress: Gauge;
  readonly skippedIntervals: Counter;
  readonly windowProbes: Gauge;
  readonly probeRequests: Counter<'result'>;
  readonly arrivalSeconds: Histogram<'path' | 'target' | 'size' | 'folder'>;
  readonly arrivalFound: Gauge<'path' | 'target' | 'size'>;
  readonly arrivalIntact: Gauge<'path' | 'target' | 'size'>;

  constructor(opts: ServeMetricsOptions = {}) {
    const registers = [this.registry];
    const cell = ['path', 'target', 'size'] as const;
    this.stageDuration = new Histogram({
      name: 'mxprobe_probe_stage_duration_seconds',
      help: 'Time of each SMTP stage of scheduled probes that completed it (a failed probe\'s last, partial stage is not observed).',
      labelNames: [...cell, 'stage'],
      buckets: [...STAGE_BUCKETS_SECONDS],
      registers,
    });
    this.probeDuration = new Histogram({
      name: 'mxprobe_probe_duration_seconds',
      help: 'Duration of whole scheduled probes, connect to QUIT (or to the failure), by outcome.',
      labelNames: [...cell, 'outcome'],
      buckets: [...STAGE_BUCKETS_SECONDS],
      registers,
    });
    this.probes = new Counter({
      name: 'mxprobe_probes_total',
      help: 'Scheduled probes by outcome and the stage they ended in (stage is empty for delivered probes).',
      labelNames: [...cell, 'outcome', 'stage'],
      registers,
    });
    this.stalls = new Counter({
      name: 'mxprobe_stalls_total',
      help:
        'Stalled scheduled probes by the stage and the kind of stall: no-ack (data lost on the way), window-closed ' +
        '(the peer stopped the flow), no-reply (everything acknowledged, no answer), unknown (the kernel could not be read).',
      labelNames: [...cell, 'stage', 'stall_kind'],
      registers,
    });
    this.success = new Gauge({
      name: 'mxprobe_probe_success',
      help: 'Whether the last scheduled probe of a cell (path, target, size) delivered: 1 or 0.',
      labelNames: [...cell],
      registers,
    });
    this.lastStallOffset = new Gauge({
      name: 'mxprobe_last_stall_offset_bytes',
      help: 'Message bytes that got through before the last stall of a cell (sink count, else kernel bytes_acked, else bytes written).',
      labelNames: [...cell],
      registers,
    });
    this.findings = new Gauge({
      name: 'mxprobe_findings',
      help: "The comparator's current findings over the recent window of runs: number of findings per kind, path and target.",
      labelNames: ['kind', 'path', 'target'],
      registers,
    });
    this.thresholdOk = new Gauge({
      name: 'mxprobe_threshold_ok',
      help: "Each of the profile's thresholds over the recent window of runs: 1 holds, 0 failed (as `mxprobe run` exits 99).",
      labelNames: ['threshold'],
      registers,
    });
    this.thresholdValue = new Gauge({
      name: 'mxprobe_threshold_value',
      help: "The measured value each threshold is checked against, over the recent window: seconds for stage metrics, a fraction for rates.",
      labelNames: ['threshold'],
      registers,
    });
    this.stallFindings = new Gauge({
      name: 'mxprobe_stall_findings',
      help: 'Number of current stall findings (a path, size or target that stalls, p < 0.05) over the recent window of runs.',
      registers,
    });
    this.lastRunTimestamp = new Gauge({
      name: 'mxprobe_last_run_timestamp_seconds',
      help: 'Unix time the last scheduled run ended.',
      registers,
    });
    this.runDuration = new Gauge({
      name: 'mxprobe_run_duration_seconds',
      help: 'Duration of the last scheduled run.',
      registers,
    });
    this.runs = new Counter({
      name: 'mxprobe_runs_total',
      help: 'Scheduled runs by result: complete, interrupted (stopped by shutdown), error (the run could not be done).',
      labelNames: ['result'],
      registers,
    });
    this.runInProgress = new Gauge({
      name: 'mxprobe_run_in_progress',
      help: '1 while a scheduled run is going on.',
      registers,
    });
    this.skippedIntervals = new Counter({
      name: 'mxprobe_skipped_intervals_total',
      help: 'Interval boundaries that passed while a run was still going (runs never overlap; the next starts right after).',
      registers,
    });
    this.windowProbes = new Gauge({
      name: 'mxprobe_window_probes',
      help: 'Probe results in the recent window the findings are computed over.',
      registers,
    });
    this.probeRequests = new Counter({
      name: 'mxprobe_probe_requests_total',
      help: '/probe requests by result: ok (a probe ran), bad-request, forbidden (target not allowed), busy, error.',
      labelNames: ['result'],
      registers,
    });
    this.arrivalSeconds = new Histogram({
      name: 'mxprobe_arrival_seconds',
      help: 'Time from the final 2xx reply of an accepted probe to finding it in the mailbox by IMAP (arrival:), by folder.',
      labelNames: [...cell, 'folder'],
      buckets: [...ARRIVAL_BUCKETS_SECONDS],
      registers,
    });
    this.arrivalFound = new Gauge({
      name: 'mxprobe_arrival_found',
      help: 'Whether the last accepted probe of a cell was found in the mailbox within arrival.within: 1 or 0.',
      labelNames: [...cell],
      registers,
    });
    this.arrivalIntact = new Gauge({
      name: 'mxprobe_arrival_intact',
      help: 'Whether the last probe of a cell found in the mailbox was whole (size and seed verified): 1 or 0.',
      labelNames: [...cell],
      registers,
    });
    const info = new Gauge({
      name: 'mxprobe_info',
      help: 'Build and profile of this mxprobe serve.',
      labelNames: ['version', 'profile', 'profile_hash'],
      registers,
    });
    info.set({ version: opts.info?.version ?? '', profile: opts.info?.profile ?? '', profile_hash: opts.info?.profileHash ?? '' }, 1);
    this.runs.inc({ result: 'complete' }, 0);
    this.skippedIntervals.inc(0);
    for (const r of ['ok', 'bad-request', 'forbidden', 'busy', 'error'] as const) this.probeRequests.inc({ result: r }, 0);
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Record one finished scheduled probe. */
  observe(r: ProbeResult): void {
    const cell = { path: r.path, target: r.target, size: formatSize(r.sizeBytes) };
    for (const st of STAGES) {
      const v = r.stages?.[st];
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) continue;
      if (r.outcome !== 'delivered' && r.stage === st) continue;
      this.stageDuration.observe({ ...cell, stage: st }, v / 1000);
    }
    if (Number.isFinite(r.durationMs)) this.probeDuration.observe({ ...cell, outcome: r.outcome }, r.durationMs / 1000);
    this.probes.inc({ ...cell, outcome: r.outcome, stage: r.outcome === 'delivered' ? '' : (r.stage ?? '') });
    this.success.set(cell, r.outcome === 'delivered' ? 1 : 0);
    if (r.outcome === 'stalled') {
      this.stalls.inc({ ...cell, stage: r.stage ?? '', stall_kind: r.stallKind ?? 'unknown' });
      const off = stallOffsetBytes(r);
      if (off !== undefined) this.lastStallOffset.set(cell, off);
    }
  }

  /** Record the arrival check of one accepted probe. */
  observeArrival(r: ProbeResult, a: Arrival): void {
    const cell = { path: r.path, target: r.target, size: formatSize(r.sizeBytes) };
    this.arrivalFound.set(cell, a.found ? 1 : 0);
    if (!a.found) return;
    this.arrivalIntact.set(cell, a.intact ? 1 : 0);
    if (a.latencyMs !== undefined && Number.isFinite(a.latencyMs)) this.arrivalSeconds.observe({ ...cell, folder: a.folder ?? '' }, a.latencyMs / 1000);
  }

  /** Replace the findings gauges with the comparator's current findings. */
  setFindings(fs: readonly Finding[]): void {
    this.findings.reset();
    const counts = new Map<string, { kind: string; path: string; target: string; n: number }>();
    for (const f of fs) {
      const k = `${f.kind}\u0000${f.path ?? ''}\u0000${f.target ?? ''}`;
      const c = counts.get(k);
      if (c) c.n++;
      else counts.set(k, { kind: f.kind, path: f.path ?? '', target: f.target ?? '', n: 1 });
    }
    for (const c of counts.values()) this.findings.set({ kind: c.kind, path: c.path, target: c.target }, c.n);
    this.stallFindings.set(fs.filter((f) => f.stall).length);
  }

  /** Replace the threshold gauges with the thresholds as evaluated over the current window. */
  setThresholds(ts: readonly ThresholdResult[]): void {
    this.thresholdOk.reset();
    this.thresholdValue.reset();
    for (const t of ts) {
      const label = { threshold: t.threshold.source };
      this.thresholdOk.set(label, t.ok ? 1 : 0);
      if (t.actual !== undefined) this.thresholdValue.set(label, t.threshold.metric.endsWith('_rate') ? t.actual : t.actual / 1000);
    }
  }

  runStarted(): void {
    this.runInProgress.set(1);
  }

  runEnded(result: RunResultLabel, durationMs: number, endedAtMs: number): void {
    this.runInProgress.set(0);
    this.runs.inc({ result });
    this.runDuration.set(durationMs / 1000);
    this.lastRunTimestamp.set(endedAtMs / 1000);
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

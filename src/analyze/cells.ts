/**
 * Cells: all probes of one (path, target, size), summarised. Pure functions over ProbeResult arrays.
 */
import { OUTCOMES, STAGES, type Outcome, type ProbeResult, type Stage, type StallKind } from '../model.js';
import { DEFAULT_MSS_BYTES } from '../probe/evidence.js';
import { stallKindOf } from './findings/stall-kind.js';
import { percentile, sortedCopy, wilson } from './stats.js';

export interface StageStats {
  n: number;
  p50: number;
  p95: number;
  p99: number;
}

/** Where stalled probes stopped in the message, and which counter says so. */
export interface StallOffset {
  /**
   * `sink`: message bytes the receiving sink saw (the truth); `bytesAcked`: the kernel's count of bytes the
   * peer acknowledged; `bytesWritten`: message bytes handed to the kernel (overstates progress: the send
   * buffer holds up to megabytes).
   */
  source: 'bytesAcked' | 'bytesWritten' | 'sink';
  medianBytes: number;
  minBytes: number;
  maxBytes: number;
  /**
   * `body`: an offset into the message. `connection`: bytes acknowledged on the whole connection (SMTP
   * commands and TLS included), used when the bytes before the body could not be subtracted.
   */
  basis?: 'body' | 'connection';
  /** Stalled probes that reported this counter. */
  count?: number;
}

export interface CellStats {
  path: string;
  target: string;
  sizeBytes: number;
  total: number;
  delivered: number;
  stalled: number;
  counts: Partial<Record<Outcome, number>>;
  /** stalled / total */
  stallRate: number;
  /** Wilson 95% interval of the stall rate. */
  stallRateCi: [number, number];
  /** Median `durationMs` of delivered probes. */
  medianTotalMs?: number;
  /** Per stage: durations of the probes that completed the stage; `total`: durationMs of delivered probes. */
  stages: Partial<Record<Stage | 'total', StageStats>>;
  /** Median of sizeBytes / body time over delivered probes, bytes per second. */
  bodyThroughputBps?: number;
  /** The most frequent way probes of this cell did not deliver, and the stage it most often happened in. */
  dominantFailure?: { outcome: Outcome; stage?: Stage; count: number; code?: number; stallKind?: StallKind };
  stallOffset?: StallOffset;
}

/** Stable key of a cell. */
export function cellKey(r: { path: string; target: string; sizeBytes: number }): string {
  return `${r.path}\u0000${r.target}\u0000${r.sizeBytes}`;
}

export function stageStats(values: readonly number[]): StageStats | undefined {
  if (values.length === 0) return undefined;
  const s = sortedCopy(values);
  return { n: s.length, p50: percentile(s, 50), p95: percentile(s, 95), p99: percentile(s, 99) };
}

/** Message bytes the sink saw for this probe, when a sink record was joined in. */
export function sinkBodyBytes(r: ProbeResult): number | undefined {
  const v = (r as ProbeResult & { sink?: { bodyBytes?: unknown } }).sink?.bodyBytes;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * The body offset the peer acknowledged, from the kernel's connection-wide `bytesAcked`: subtract what was
 * written before the message (commands) when the probe says how much of the message it wrote.
 * Returns [bytes, basis].
 */
export function ackedBodyOffset(r: ProbeResult): [number, 'body' | 'connection'] | undefined {
  const acked = r.tcp?.bytesAcked;
  if (typeof acked !== 'number') return undefined;
  // under TLS bytes_acked counts ciphertext and the handshake, which our plaintext byte counts cannot be set
  // against: such an offset is the connection's, not the body's (it also counts the SYN: one byte, left in)
  if (r.tls) return [acked, 'connection'];
  if (typeof r.bodyBytesWritten === 'number' && typeof r.bytesWritten === 'number' && r.bytesWritten >= r.bodyBytesWritten) {
    // bytes written that are not message bytes: the commands before the body, plus the final ".\r\n" once
    // the body was complete (a stall waiting for the final reply)
    let before = r.bytesWritten - r.bodyBytesWritten;
    if (r.stage === 'dataAck' || r.stage === 'quit') before = Math.max(0, before - 3);
    return [Math.min(Math.max(0, acked - before), r.bodyBytesWritten), 'body'];
  }
  return [acked, 'connection'];
}

function stallOffsetOf(stalled: ProbeResult[]): StallOffset | undefined {
  if (stalled.length === 0) return undefined;
  const pick = (
    source: StallOffset['source'],
    get: (r: ProbeResult) => [number, 'body' | 'connection'] | undefined,
  ): StallOffset | undefined => {
    const vals: number[] = [];
    let connection = false;
    for (const r of stalled) {
      const v = get(r);
      if (!v) continue;
      vals.push(v[0]);
      if (v[1] === 'connection') connection = true;
    }
    // use a counter only when most stalled probes report it, so the offsets are comparable
    if (vals.length === 0 || vals.length * 2 < stalled.length) return undefined;
    const s = sortedCopy(vals);
    return {
      source,
      medianBytes: Math.round(percentile(s, 50)),
      minBytes: s[0]!,
      maxBytes: s[s.length - 1]!,
      basis: connection ? 'connection' : 'body',
      count: s.length,
    };
  };
  return (
    pick('sink', (r) => {
      const v = sinkBodyBytes(r);
      return v === undefined ? undefined : [v, 'body'];
    }) ??
    pick('bytesAcked', ackedBodyOffset) ??
    pick('bytesWritten', (r) => (typeof r.bodyBytesWritten === 'number' ? [r.bodyBytesWritten, 'body'] : undefined))
  );
}

function summarise(path: string, target: string, sizeBytes: number, rs: ProbeResult[]): CellStats {
  const counts: Partial<Record<Outcome, number>> = {};
  for (const r of rs) counts[r.outcome] = (counts[r.outcome] ?? 0) + 1;
  const total = rs.length;
  const delivered = counts.delivered ?? 0;
  const stalled = counts.stalled ?? 0;
  const deliveredRs = rs.filter((r) => r.outcome === 'delivered');

  const stages: CellStats['stages'] = {};
  for (const st of STAGES) {
    const vals: number[] = [];
    for (const r of rs) {
      const v = r.stages?.[st];
      if (typeof v !== 'number' || !Number.isFinite(v)) continue;
      // the stage a failed probe ended in holds a partial time: not a duration of that stage
      if (r.outcome !== 'delivered' && r.stage === st) continue;
      vals.push(v);
    }
    const s = stageStats(vals);
    if (s) stages[st] = s;
  }
  const totalStats = stageStats(deliveredRs.map((r) => r.durationMs).filter((v) => Number.isFinite(v)));
  if (totalStats) stages.total = totalStats;

  const tput: number[] = [];
  for (const r of deliveredRs) {
    const b = r.stages?.body;
    if (typeof b === 'number' && b > 0) tput.push(r.sizeBytes / (b / 1000));
  }

  let dominantFailure: CellStats['dominantFailure'];
  for (const o of OUTCOMES) {
    if (o === 'delivered') continue;
    const c = counts[o] ?? 0;
    if (c > 0 && (!dominantFailure || c > dominantFailure.count)) dominantFailure = { outcome: o, count: c };
  }
  if (dominantFailure) {
    const byStage = new Map<Stage, number>();
    for (const r of rs) if (r.outcome === dominantFailure.outcome && r.stage) byStage.set(r.stage, (byStage.get(r.stage) ?? 0) + 1);
    let best: [Stage, number] | undefined;
    for (const [st, c] of byStage) if (!best || c > best[1]) best = [st, c];
    if (best) dominantFailure.stage = best[0];
    const byCode = new Map<number, number>();
    for (const r of rs) if (r.outcome === dominantFailure.outcome && r.reply?.code) byCode.set(r.reply.code, (byCode.get(r.reply.code) ?? 0) + 1);
    let bestCode: [number, number] | undefined;
    for (const [code, c] of byCode) if (!bestCode || c > bestCode[1]) bestCode = [code, c];
    if (bestCode && dominantFailure.outcome === 'rejected') dominantFailure.code = bestCode[0];
    if (dominantFailure.outcome === 'stalled') {
      const byKind = new Map<StallKind, number>();
      for (const r of rs) {
        const k = stallKindOf(r, DEFAULT_MSS_BYTES);
        if (k) byKind.set(k, (byKind.get(k) ?? 0) + 1);
      }
      let bestKind: [StallKind, number] | undefined;
      for (const [k, c] of byKind) if (!bestKind || c > bestKind[1]) bestKind = [k, c];
      if (bestKind) dominantFailure.stallKind = bestKind[0];
    }
  }

  const cell: CellStats = {
    path,
    target,
    sizeBytes,
    total,
    delivered,
    stalled,
    counts,
    stallRate: total ? stalled / total : 0,
    stallRateCi: wilson(stalled, total),
    stages,
  };
  if (totalStats) cell.medianTotalMs = totalStats.p50;
  if (tput.length) cell.bodyThroughputBps = percentile(sortedCopy(tput), 50);
  if (dominantFailure) cell.dominantFailure = dominantFailure;
  const off = stallOffsetOf(rs.filter((r) => r.outcome === 'stalled'));
  if (off) cell.stallOffset = off;
  return cell;
}

/** Group results into cells (path × target × size), sorted by target, size, path. */
export function computeCells(results: readonly ProbeResult[]): CellStats[] {
  const groups = new Map<string, { path: string; target: string; sizeBytes: number; rs: ProbeResult[] }>();
  for (const r of results) {
    const k = cellKey(r);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { path: r.path, target: r.target, sizeBytes: r.sizeBytes, rs: [] }));
    g.rs.push(r);
  }
  const cells = [...groups.values()].map((g) => summarise(g.path, g.target, g.sizeBytes, g.rs));
  return cells.sort(
    (x, y) =>
      cmpStr(x.target, y.target) || x.sizeBytes - y.sizeBytes || cmpStr(x.path, y.path),
  );
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

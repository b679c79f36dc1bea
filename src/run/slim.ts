/**
 * A slim copy of a result: only what statistics over a run use (cells, comparator, thresholds), so a
 * subscriber can keep every probe of a long run in memory for the summary at ~1/5 of the full size. The full
 * result is always on its JSONL line.
 */
import type { ProbeResult } from '../model.js';

export function slimResult(r: ProbeResult): ProbeResult {
  const s: ProbeResult = {
    probeId: r.probeId,
    target: r.target,
    path: r.path,
    sizeBytes: r.sizeBytes,
    seed: r.seed,
    outcome: r.outcome,
    stages: r.stages,
    startedAt: r.startedAt,
    durationMs: r.durationMs,
    bytesWritten: r.bytesWritten,
    bytesRead: r.bytesRead,
  };
  if (r.key !== undefined) s.key = r.key;
  if (r.stage !== undefined) s.stage = r.stage;
  if (r.bodyBytesWritten !== undefined) s.bodyBytesWritten = r.bodyBytesWritten;
  if (r.reply) {
    s.reply = { code: r.reply.code, text: '' };
    if (r.reply.enhanced) s.reply.enhanced = r.reply.enhanced;
  }
  if (r.error) s.error = { code: r.error.code, message: '' };
  if (r.tcp) {
    const t = r.tcp;
    s.tcp = { at: t.at, tMs: t.tMs };
    for (const k of ['bytesAcked', 'bytesSent', 'bytesRetrans', 'retrans', 'retransTotal', 'unacked', 'notSent', 'sndWnd', 'mss', 'rttMs', 'pmtu', 'backoff', 'lastAckMs'] as const) {
      if (t[k] !== undefined) s.tcp[k] = t[k];
    }
    if (t.wscale) s.tcp.wscale = t.wscale;
  }
  if (r.stallMs !== undefined) s.stallMs = r.stallMs;
  // the comparator's stall-kind rules read these: without them a slim summary would fall back to guessing
  if (r.stallKind !== undefined) s.stallKind = r.stallKind;
  if (r.stallBy !== undefined) s.stallBy = r.stallBy;
  if (r.progressFrom !== undefined) s.progressFrom = r.progressFrom;
  const sink = (r as ProbeResult & { sink?: { bodyBytes?: number } }).sink;
  if (sink?.bodyBytes !== undefined) (s as ProbeResult & { sink?: { bodyBytes: number } }).sink = { bodyBytes: sink.bodyBytes };
  return s;
}

/**
 * The two-ended view: join the sender's probe results with the receiver's sink records by probe id, and say in
 * one sentence what the receiver's side adds ("the receiver got 61,440 of 1,048,576 bytes; last byte 0.3 s
 * after DATA → the loss is between the two ends, not in the receiver"). Pure functions.
 */
import { ackedBodyOffset } from '../analyze/cells.js';
import type { ProbeResult, TcpSnapshot } from '../model.js';
import type { SinkRecord } from './records.js';

/** What the receiver saw of one probe, as attached to its result by `joinSink`. */
export interface SinkEvidence {
  /** Message bytes the receiver got. */
  bodyBytes: number;
  /** The size the probe's X-Mxprobe header announced. */
  expectedBytes?: number;
  /** Last message byte, ms after the receiver sent 354. */
  lastByteAfterDataMs?: number;
  /** First message byte, ms after the receiver sent 354. */
  firstByteAfterDataMs?: number;
  whole: boolean;
  verified?: boolean;
  /** How the transaction ended at the receiver (SinkRecord.ended). */
  ended: string;
  /** The final reply the receiver sent, when it sent one. */
  replyCode?: number;
  /**
   * The receiver's kernel view of its socket: the latest snapshot the sink took (message end or silence, else at
   * 354) over the handshake fields of the first (window scale, MSS, advertised MSS, options).
   */
  tcp?: TcpSnapshot;
}

export type WithSink<T> = T & { sink?: SinkEvidence };

function evidenceOf(rec: SinkRecord): SinkEvidence {
  const e: SinkEvidence = { bodyBytes: rec.bodyBytes, whole: rec.whole, ended: rec.ended };
  if (rec.expectedBytes !== undefined) e.expectedBytes = rec.expectedBytes;
  if (rec.dataStartMs !== undefined && rec.lastByteMs !== undefined) e.lastByteAfterDataMs = round(rec.lastByteMs - rec.dataStartMs);
  if (rec.dataStartMs !== undefined && rec.firstByteMs !== undefined) e.firstByteAfterDataMs = round(rec.firstByteMs - rec.dataStartMs);
  if (rec.verified !== undefined) e.verified = rec.verified;
  if (rec.reply) e.replyCode = rec.reply.code;
  if (rec.tcp?.length) e.tcp = { ...rec.tcp[0]!, ...rec.tcp[rec.tcp.length - 1]! };
  return e;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** Rank of a record when one probe id has several (a retry, a relay delivering twice): the most complete wins. */
function better(a: SinkRecord, b: SinkRecord): SinkRecord {
  const score = (r: SinkRecord) => (r.whole ? 2 : 0) + (r.verified ? 1 : 0);
  if (score(a) !== score(b)) return score(a) > score(b) ? a : b;
  return b.bodyBytes >= a.bodyBytes ? b : a;
}

/**
 * Attach the receiver's evidence to each result whose probe id has a `probe` record. Results without one are
 * returned unchanged (no `sink` key): the receiver never saw their header. Input order is kept.
 */
export function joinSink<T extends ProbeResult>(results: T[], records: SinkRecord[]): WithSink<T>[] {
  const byId = new Map<string, SinkRecord>();
  for (const rec of records) {
    if (rec.kind !== 'probe' || rec.probeId === undefined) continue;
    const have = byId.get(rec.probeId);
    byId.set(rec.probeId, have ? better(have, rec) : rec);
  }
  return results.map((r) => {
    const rec = byId.get(r.probeId);
    return rec ? { ...r, sink: evidenceOf(rec) } : r;
  });
}

const n = (v: number) => v.toLocaleString('en-US');

/** `42 ms`, `0.3 s`, `12 s`. */
export function formatSeconds(ms: number): string {
  if (ms < 100) return `${Math.max(0, Math.round(ms))} ms`;
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 1000)} s`;
}

const LOST_ON_THE_WAY = new Set(['stalled', 'timeout', 'reset']);

/**
 * Which way the loss went, from the two counts: the receiver's bytes against the body offset the sender's kernel
 * saw acknowledged (one segment of slack). Without a snapshot only "between the two ends" can be said.
 */
function lossDirection(r: ProbeResult, got: number): string {
  const acked = ackedBodyOffset(r);
  if (!acked || acked[1] !== 'body') return 'the loss is between the two ends, not in the receiver';
  const slack = r.tcp?.mss ?? 1448;
  if (got > acked[0] + slack) {
    return `more than the ${n(acked[0])} the sender saw acknowledged → segments arrived but their ACKs are lost on the way back, receiver → sender`;
  }
  if (got + slack < acked[0]) {
    return `the sender saw ${n(acked[0])} acknowledged, more than the receiver got → something between them acknowledged data it did not pass on (a TCP-terminating device)`;
  }
  return 'the data is lost on the way to the receiver, sender → receiver (what arrived is what was acknowledged)';
}

/**
 * One sentence on what the receiver saw, for a probe that did not deliver (or whose body arrived altered);
 * undefined when the receiver's view adds nothing (delivered and verified) or there is no sink record.
 */
export function describeSinkEvidence(r: ProbeResult & { sink?: SinkEvidence }): string | undefined {
  const s = r.sink;
  if (!s) return undefined;
  const expected = s.expectedBytes ?? r.sizeBytes;
  const last = s.lastByteAfterDataMs !== undefined ? `; last byte ${formatSeconds(s.lastByteAfterDataMs)} after DATA` : '';

  if (s.whole && s.verified === false) {
    return `the receiver got all ${n(s.bodyBytes)} bytes but the body does not match the probe's seed → the message was altered in transit`;
  }
  if (r.outcome === 'delivered') return undefined;

  if (!s.whole) {
    const got = s.bodyBytes === 0 ? `the receiver got none of the ${n(expected)} bytes after DATA` : `the receiver got ${n(s.bodyBytes)} of ${n(expected)} bytes${last}`;
    const written = r.bodyBytesWritten;
    const wrote = written !== undefined && written > s.bodyBytes ? ` (the sender had handed ${n(written)} to its kernel)` : '';
    const silent = s.ended === 'client-silent' ? '; then the connection went silent' : '';
    if (LOST_ON_THE_WAY.has(r.outcome)) return `${got}${wrote}${silent} → ${lossDirection(r, s.bodyBytes)}`;
    return `${got}${wrote}${silent}`;
  }

  // the whole message arrived
  const verified = s.verified ? ' (verified)' : '';
  if (s.replyCode !== undefined) {
    const lost = LOST_ON_THE_WAY.has(r.outcome) ? ' → its reply was lost on the way back to the sender' : '';
    return `the receiver got all ${n(s.bodyBytes)} bytes${verified}${last}, and replied ${s.replyCode}${lost}`;
  }
  return `the receiver got all ${n(s.bodyBytes)} bytes${verified}${last}; the connection ended (${s.ended}) before it replied`;
}

/** The receiver's view of one cell's failed (or altered) probes. */
export interface SinkEvidenceGroup {
  path: string;
  target: string;
  sizeBytes: number;
  /** Probes of the cell that did not deliver, or delivered altered. */
  probes: number;
  /** How many of them the receiver has a record of. */
  withRecord: number;
  /** Most frequent outcome among them, e.g. `stalled`. */
  outcome: string;
  /** Message bytes the receiver got, over the probes with a record. */
  bodyBytes?: { min: number; max: number };
  /** One probe's evidence sentence, as an example. */
  example?: { probeId: string; text: string };
}

/**
 * Group the receiver's evidence by cell (path, target, size) for the probes that did not deliver or arrived
 * altered: how many the receiver saw, the range of bytes it got, and one sentence as an example. Sorted by path,
 * target, size.
 */
export function sinkEvidenceByCell(results: Array<ProbeResult & { sink?: SinkEvidence }>): SinkEvidenceGroup[] {
  const groups = new Map<string, { g: SinkEvidenceGroup; outcomes: Map<string, number> }>();
  for (const r of results) {
    const altered = r.sink?.whole === true && r.sink.verified === false;
    if (r.outcome === 'delivered' && !altered) continue;
    const key = `${r.path}\u0000${r.target}\u0000${r.sizeBytes}`;
    let e = groups.get(key);
    if (!e) {
      e = { g: { path: r.path, target: r.target, sizeBytes: r.sizeBytes, probes: 0, withRecord: 0, outcome: r.outcome }, outcomes: new Map() };
      groups.set(key, e);
    }
    const label = altered ? 'altered' : r.outcome;
    e.outcomes.set(label, (e.outcomes.get(label) ?? 0) + 1);
    e.g.probes++;
    if (!r.sink) continue;
    e.g.withRecord++;
    const b = r.sink.bodyBytes;
    e.g.bodyBytes = e.g.bodyBytes ? { min: Math.min(e.g.bodyBytes.min, b), max: Math.max(e.g.bodyBytes.max, b) } : { min: b, max: b };
    if (!e.g.example) {
      const text = describeSinkEvidence(r);
      if (text) e.g.example = { probeId: r.probeId, text };
    }
  }
  const out: SinkEvidenceGroup[] = [];
  for (const { g, outcomes } of groups.values()) {
    g.outcome = [...outcomes.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    out.push(g);
  }
  return out.sort((a, b) => a.path.localeCompare(b.path) || a.target.localeCompare(b.target) || a.sizeBytes - b.sizeBytes);
}

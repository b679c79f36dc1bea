/**
 * The shape of one results line (a ProbeResult), checked on read: a results file is input from anywhere (another
 * host, an old version, an attacker), and what it holds ends up in tables, findings and HTML reports. Every field
 * is validated: numbers are finite numbers, enums are the model's, strings are strings of bounded length. A field
 * the schema does not know is dropped. The required fields are the ones the comparator cannot do without
 * (outcome, path, target, sizeBytes); the others are checked when present.
 */
import * as z from 'zod';
import { OUTCOMES, QUIT_POINTS, STAGES, STALL_KINDS } from '../model.js';
import type { ArrivalRecord, ProbeResult } from '../model.js';

/** Longest string accepted in a results line (a reply text of 512 lines of 4 KiB stays under it). */
export const MAX_RESULT_STRING = 4 * 1024 * 1024;

const text = z.string().max(MAX_RESULT_STRING);
const count = z.number().int().nonnegative();
const ms = z.number().nonnegative().finite();
const stage = z.enum(STAGES);

const Reply = z.object({ code: z.number().int().min(100).max(599), enhanced: text.optional(), text });

/** One kernel snapshot (TcpSnapshot), as in a results line's `tcp` and a sink record's `tcp` list. */
export const TcpSnapshotSchema = z.object({
  at: z.enum(['watch', 'stall', 'timeout', 'end', 'data', 'silent']),
  tMs: ms,
  state: text.optional(),
  bytesSent: count.optional(),
  bytesAcked: count.optional(),
  bytesReceived: count.optional(),
  bytesRetrans: count.optional(),
  retrans: count.optional(),
  retransTotal: count.optional(),
  unacked: count.optional(),
  sndWnd: count.optional(),
  rcvWnd: count.optional(),
  wscale: z.object({ snd: count, rcv: count }).optional(),
  rttMs: ms.optional(),
  rttVarMs: ms.optional(),
  rtoMs: ms.optional(),
  mss: count.optional(),
  pmtu: count.optional(),
  cwnd: count.optional(),
  backoff: count.optional(),
  lastAckMs: ms.optional(),
  lastRecvMs: ms.optional(),
  lastSendMs: ms.optional(),
  notSent: count.optional(),
  rwndLimitedMs: ms.optional(),
  advMss: count.optional(),
  rcvMss: count.optional(),
  options: z.array(z.string().max(32)).max(16).optional(),
  raw: text.optional(),
});

/** What the IMAP look-up found (model.ts `Arrival`). */
export const ArrivalSchema = z.object({
  found: z.boolean(),
  latencyMs: ms.optional(),
  folder: text.optional(),
  sizeBytes: count.optional(),
  intact: z.boolean().optional(),
  reason: text.optional(),
  deleted: z.boolean().optional(),
});

/** An arrival record: its own line, written when the look-up ends, joined to the probe's line by probe id. */
export const ArrivalLineSchema = z.object({ record: z.literal('arrival'), probeId: text, runId: text.optional(), arrival: ArrivalSchema });

export const ResultLineSchema = z.object({
  probeId: text.optional(),
  runId: text.optional(),
  profileHash: text.optional(),
  key: text.optional(),
  target: text,
  path: text,
  sizeBytes: count,
  seed: z.number().int().optional(),
  outcome: z.enum(OUTCOMES),
  stage: stage.optional(),
  error: z.object({ code: text, message: text, lastCommand: text.optional() }).optional(),
  stages: z.partialRecord(stage, ms).optional(),
  startedAt: text.optional(),
  durationMs: ms.optional(),
  bytesWritten: count.optional(),
  bodyBytesWritten: count.optional(),
  bytesRead: count.optional(),
  reply: Reply.optional(),
  recipients: z.array(z.object({ address: text, code: z.number().int(), enhanced: text.optional(), text: text.optional() })).optional(),
  server: text.optional(),
  localAddress: text.optional(),
  localPort: count.optional(),
  remoteAddress: text.optional(),
  remotePort: count.optional(),
  proxy: text.optional(),
  tls: z.object({ version: text, cipher: text, authorized: z.boolean(), authorizationError: text.optional(), peerName: text.optional() }).optional(),
  capabilities: z.array(text).optional(),
  tcp: TcpSnapshotSchema.optional(),
  tcpUnavailable: text.optional(),
  hostCounters: z.object({ scope: z.literal('host'), intervalMs: ms, deltas: z.record(z.string().max(64), count) }).optional(),
  capture: text.optional(),
  captureError: text.optional(),
  stallMs: ms.optional(),
  stallBy: z.enum(['window', 'kernel']).optional(),
  stallKind: z.enum(STALL_KINDS).optional(),
  progressFrom: z.enum(['kernel', 'socket']).optional(),
  ackedBytesPerSec: z.number().nonnegative().finite().optional(),
  attempts: z
    .array(z.object({ server: text, address: text, port: count, outcome: z.enum(OUTCOMES), stage: stage.optional(), ms, reply: Reply.optional(), error: text.optional() }))
    .max(1000)
    .optional(),
  resolved: z
    .object({
      mx: z.array(z.object({ exchange: text, priority: count })).max(1000).optional(),
      addresses: z.record(text, z.array(text).max(1000)).optional(),
      servers: z.array(text).max(100).optional(),
    })
    .optional(),
  quitAfter: z.enum(QUIT_POINTS).optional(),
  message: z
    .object({
      source: z.enum(['file', 'composed']),
      wireBytes: count,
      paddingBytes: count.optional(),
      attachments: z.array(z.object({ filename: text, contentType: text, bytes: count })).max(1000).optional(),
    })
    .optional(),
  transcript: z.array(z.object({ tMs: ms, dir: z.enum(['>', '<', '*']), text })).max(100_000).optional(),
  arrival: ArrivalSchema.optional(),
});

/** True for a line that says it is an arrival record (then checked by `checkArrivalLine`, not as a result). */
export function isArrivalLine(v: unknown): boolean {
  return !!v && typeof v === 'object' && !Array.isArray(v) && (v as { record?: unknown }).record === 'arrival';
}

/** A parsed JSON value as an ArrivalRecord, or why not. */
export function checkArrivalLine(v: unknown): { ok: true; record: ArrivalRecord } | { ok: false; reason: string } {
  const p = ArrivalLineSchema.safeParse(v);
  if (p.success) return { ok: true, record: p.data as ArrivalRecord };
  const first = p.error.issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || '(line)'}: ${i.message}`);
  return { ok: false, reason: `not an arrival record (${first.join('; ')})` };
}

/** A parsed JSON value as a ProbeResult, or why not (`durationMs: expected number, received string`). */
export function checkResultLine(v: unknown): { ok: true; result: ProbeResult } | { ok: false; reason: string } {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { ok: false, reason: 'not a JSON object' };
  const p = ResultLineSchema.safeParse(v);
  if (!p.success) {
    const first = p.error.issues.slice(0, 3).map((i) => `${i.path.map(String).join('.') || '(line)'}: ${i.message}`);
    const more = p.error.issues.length > 3 ? ` (and ${p.error.issues.length - 3} more)` : '';
    return { ok: false, reason: `not a probe result (${first.join('; ')}${more})` };
  }
  const r = p.data as ProbeResult;
  if (!r.stages) r.stages = {};
  return { ok: true, result: r };
}

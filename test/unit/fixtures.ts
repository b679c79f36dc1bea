/**
 * Synthetic ProbeResults with known answers, for comparator tests. Deterministic (seeded jitter).
 */
import type { Outcome, ProbeResult, Stage, TcpSnapshot } from '../../src/model.js';
import { prng } from '../../src/run/expand.js';

/** Seeded floats in [0, 1) (the runner's shuffle PRNG). */
export const rng = prng;

/** Bytes of SMTP commands before the message (EHLO, MAIL, RCPT, DATA). */
export const PRE_BODY_BYTES = 120;

export interface ProbeOpts {
  path?: string;
  target?: string;
  sizeBytes: number;
  outcome?: Outcome;
  /** Stage the probe ended in (failures). Default: `body` for stalls/timeouts. */
  stage?: Stage;
  /** Body throughput of delivered probes, bytes/s (default 50 MB/s). */
  bps?: number;
  /** Base latency added to every command stage, ms (default 1). */
  rttMs?: number;
  /** For stalls: message bytes the peer acknowledged (default: min(size, 64 KiB)). */
  ackedBytes?: number;
  /** For stalls: message bytes written into the kernel (default: size). */
  writtenBytes?: number;
  /** TCP snapshot fields (merged over defaults for stalls: retransmitting, frozen acks). */
  tcp?: Partial<TcpSnapshot> | null;
  /** Reply of a rejection. */
  reply?: { code: number; enhanced?: string; text: string };
  /** Jitter source. */
  rand?: () => number;
  id?: string;
}

let counter = 0;

/** One synthetic probe result. */
export function probe(o: ProbeOpts): ProbeResult {
  const rand = o.rand ?? rng(++counter);
  const j = (ms: number): number => ms * (0.9 + 0.2 * rand());
  const rtt = o.rttMs ?? 1;
  const outcome = o.outcome ?? 'delivered';
  const stages: Partial<Record<Stage, number>> = {
    connect: j(rtt),
    greeting: j(100 + rtt),
    ehlo: j(rtt),
    mail: j(rtt),
    rcpt: j(rtt),
    data: j(rtt),
  };
  const r: ProbeResult = {
    probeId: o.id ?? `p${++counter}`,
    runId: 'r1',
    target: o.target ?? 'mx.test:25',
    path: o.path ?? 'direct',
    sizeBytes: o.sizeBytes,
    seed: counter,
    outcome,
    stages,
    startedAt: '2024-05-01T10:00:00.000Z',
    durationMs: 0,
    bytesWritten: 0,
    bytesRead: 300,
  };
  const bps = o.bps ?? 50e6;
  if (outcome === 'delivered') {
    stages.body = j((o.sizeBytes / bps) * 1000);
    stages.dataAck = j(2 + rtt);
    stages.quit = j(rtt);
    r.bodyBytesWritten = o.sizeBytes;
    r.bytesWritten = PRE_BODY_BYTES + o.sizeBytes + 3 + 6;
    r.reply = { code: 250, enhanced: '2.0.0', text: 'OK queued' };
  } else if (outcome === 'stalled' || outcome === 'timeout') {
    const stage = o.stage ?? 'body';
    r.stage = stage;
    const written = o.writtenBytes ?? o.sizeBytes;
    const acked = o.ackedBytes ?? Math.min(o.sizeBytes, 65536);
    if (stage === 'body') {
      stages.body = outcome === 'stalled' ? 10_000 : 180_000;
      r.bodyBytesWritten = written;
      r.bytesWritten = PRE_BODY_BYTES + written;
    } else if (stage === 'dataAck') {
      stages.body = j((o.sizeBytes / bps) * 1000);
      stages.dataAck = 10_000;
      r.bodyBytesWritten = o.sizeBytes;
      r.bytesWritten = PRE_BODY_BYTES + o.sizeBytes + 3;
    } else {
      for (const s of ['data', 'rcpt', 'mail', 'ehlo', 'greeting'] as Stage[]) {
        if (s === stage) break;
        delete stages[s];
      }
      stages[stage] = 10_000;
      r.bytesWritten = 40;
    }
    r.error = { code: outcome === 'stalled' ? 'ESTALL' : 'ETIMEDOUT', message: `${outcome} in ${stage}` };
    r.stallMs = 10_000;
    if (o.tcp !== null) {
      r.tcp = {
        at: 'stall',
        tMs: 10_200,
        state: 'ESTAB',
        bytesSent: r.bytesWritten,
        bytesAcked: PRE_BODY_BYTES + acked,
        retrans: 5,
        retransTotal: 9,
        unacked: 10,
        sndWnd: 65535,
        rttMs: 0.2,
        mss: 1448,
        pmtu: 1500,
        ...(o.tcp ?? {}),
      };
    }
  } else if (outcome === 'rejected') {
    const stage = o.stage ?? 'rcpt';
    r.stage = stage;
    r.reply = o.reply ?? { code: 550, enhanced: '5.1.1', text: 'no such user' };
    r.error = { code: 'EREJECTED', message: `${r.reply.code} ${r.reply.text}` };
    if (stage === 'dataAck') {
      stages.body = j((o.sizeBytes / bps) * 1000);
      stages.dataAck = j(2 + rtt);
      r.bodyBytesWritten = o.sizeBytes;
      r.bytesWritten = PRE_BODY_BYTES + o.sizeBytes + 3;
    } else {
      const order: Stage[] = ['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data'];
      const idx = order.indexOf(stage);
      if (idx >= 0) for (const s of order.slice(idx + 1)) delete stages[s];
      r.bytesWritten = 80;
    }
  } else {
    const stage = o.stage ?? 'connect';
    r.stage = stage;
    r.error = { code: outcome === 'reset' ? 'ECONNRESET' : 'EOTHER', message: outcome };
    r.bytesWritten = 0;
    for (const s of Object.keys(stages) as Stage[]) if (s !== 'connect') delete stages[s];
  }
  if (o.tcp && outcome === 'delivered') r.tcp = { at: 'end', tMs: 1, ...o.tcp };
  r.durationMs = Object.values(stages).reduce((a, b) => a + (b ?? 0), 0);
  return r;
}

export interface GridOpts {
  paths: string[];
  targets?: string[];
  sizes: number[];
  repeat: number;
  seed?: number;
  /** Per probe: return the options that differ from a delivered probe (or an outcome). */
  shape?: (cell: { path: string; target: string; sizeBytes: number; i: number; rand: () => number }) =>
    | Partial<ProbeOpts>
    | Outcome
    | undefined;
}

/** A whole run: every (path, target, size) × repeat, shaped per probe. */
export function grid(g: GridOpts): ProbeResult[] {
  const rand = rng(g.seed ?? 1);
  const out: ProbeResult[] = [];
  for (const target of g.targets ?? ['mx.test:25']) {
    for (const path of g.paths) {
      for (const sizeBytes of g.sizes) {
        for (let i = 0; i < g.repeat; i++) {
          const s = g.shape?.({ path, target, sizeBytes, i, rand });
          const extra: Partial<ProbeOpts> = typeof s === 'string' ? { outcome: s } : (s ?? {});
          out.push(probe({ path, target, sizeBytes, rand, ...extra }));
        }
      }
    }
  }
  return out;
}

export const KiB = 1024;
export const MiB = 1024 * 1024;
/** The sizes of the lb-vs-direct profile. */
export const SIZES = [4 * KiB, 16 * KiB, 48 * KiB, 64 * KiB, 256 * KiB, MiB];

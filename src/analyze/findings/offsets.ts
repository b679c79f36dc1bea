/**
 * Where the stalled transfers of a stall group stopped in the message, from the best counter most of them report
 * (the sink's count > the kernel's bytes_acked > bytes written). Only probes that stalled in the message (body,
 * dataAck) have an offset: a connection that never got a greeting did not "stop at 1B". Pure.
 */
import type { ProbeResult } from '../../model.js';
import { type StallOffset, ackedBodyOffset, sinkBodyBytes } from '../cells.js';
import { median, sortedCopy } from '../stats.js';
import { type Context, type StallGroup, stalledOf } from './context.js';

export interface GroupOffsets {
  group: StallGroup;
  /** Where the finding is about: `{ path }` or `{ target }`. */
  where: { path: string } | { target: string };
  /** `On via-lb`, `On the way to mx:25`. */
  on: string;
  /** `something on via-lb`, `something between the senders and mx:25`. */
  something: string;
  source: StallOffset['source'];
  basis: 'body' | 'connection';
  probes: Array<{ r: ProbeResult; bytes: number }>;
  medianBytes: number;
  minBytes: number;
  maxBytes: number;
  sizes: number[];
  mssBytes: number;
  /** `acknowledged`, `received by the sink`, … */
  which: string;
}

type Pick1 = (r: ProbeResult) => [number, 'body' | 'connection'] | undefined;

const COUNTERS: Array<[StallOffset['source'], Pick1]> = [
  ['sink', (r) => {
    const v = sinkBodyBytes(r);
    return v === undefined ? undefined : [v, 'body'];
  }],
  ['bytesAcked', ackedBodyOffset],
  ['bytesWritten', (r) => (typeof r.bodyBytesWritten === 'number' ? [r.bodyBytesWritten, 'body'] : undefined)],
];

function firstCounter(stalled: ProbeResult[]): Pick<GroupOffsets, 'source' | 'basis' | 'probes'> | undefined {
  for (const [source, f] of COUNTERS) {
    const probes: GroupOffsets['probes'] = [];
    let basis: 'body' | 'connection' = 'body';
    for (const r of stalled) {
      const v = f(r);
      if (!v) continue;
      probes.push({ r, bytes: v[0] });
      if (v[1] === 'connection') basis = 'connection';
    }
    if (probes.length && probes.length * 2 >= stalled.length) return { source, basis, probes };
  }
  return undefined;
}

function whichWords(source: StallOffset['source'], basis: 'body' | 'connection'): string {
  if (source === 'sink') return 'received by the sink';
  if (source === 'bytesAcked') return basis === 'body' ? 'acknowledged' : 'acknowledged on the connection';
  return 'written into the kernel (an upper bound: no TCP evidence)';
}

export function groupOffsets(ctx: Context, g: StallGroup): GroupOffsets | undefined {
  const stalled = stalledOf(ctx, g.cells).filter((r) => r.stage === 'body' || r.stage === 'dataAck');
  const off = stalled.length ? firstCounter(stalled) : undefined;
  if (!off) return undefined;
  const vals = sortedCopy(off.probes.map((x) => x.bytes));
  const mss = median(stalled.map((r) => r.tcp?.mss).filter((v): v is number => typeof v === 'number')) || ctx.segmentBytes;
  return {
    group: g,
    where: g.by === 'path' ? { path: g.name } : { target: g.name },
    on: g.by === 'path' ? `On ${g.name}` : `On the way to ${g.name}`,
    something: g.by === 'path' ? `something on ${g.name}` : `something between the senders and ${g.name}`,
    ...off,
    medianBytes: median(vals),
    minBytes: vals[0]!,
    maxBytes: vals[vals.length - 1]!,
    sizes: [...new Set(off.probes.map((x) => x.r.sizeBytes))].sort((a, b) => a - b),
    mssBytes: mss,
    which: whichWords(off.source, off.basis),
  };
}

/** PMTU blackholes live on real links (MTU up to 9000); loopback's 64KiB MSS would only be a coincidence. */
export function isPmtuPattern(o: GroupOffsets): boolean {
  return o.source !== 'bytesWritten' && o.basis === 'body' && o.mssBytes <= 8960 && o.medianBytes < o.mssBytes && Math.max(...o.sizes) > o.mssBytes;
}

export function offsetEvidence(o: GroupOffsets): Record<string, unknown> {
  return { source: o.source, basis: o.basis, medianBytes: o.medianBytes, minBytes: o.minBytes, maxBytes: o.maxBytes, probes: o.probes.length, sizes: o.sizes, mssBytes: o.mssBytes };
}

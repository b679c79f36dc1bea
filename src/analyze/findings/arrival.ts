/**
 * arrival: what the mailbox says of the accepted probes (IMAP look-up, `arrival:`), per path — accepted and never
 * arrived ("via-lb: 9/9 accepted, 0/9 arrived (not found in INBOX, Junk within 5m); direct: 9/9 arrived, p50 4.1s"),
 * arrived truncated from a size on, or landed in Junk. Only probes with an arrival record count: a run without
 * `arrival:` yields none of these. Not a stall: the SMTP transaction went through. Pure.
 */
import type { Finding, ProbeResult } from '../../model.js';
import { formatMs, formatSize } from '../../units.js';
import { describeP, testDifference, type Pool } from '../policy.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { countBy, sizeList, top } from '../text.js';
import type { Context } from './context.js';

const JUNK = /junk|spam|bulk/i;

/** Accepted probes with an arrival record, per path. */
function lookedFor(ctx: Pick<Context, 'results'>): Map<string, ProbeResult[]> {
  const by = new Map<string, ProbeResult[]>();
  for (const r of ctx.results) {
    if (r.outcome !== 'delivered' || !r.arrival) continue;
    const l = by.get(r.path);
    if (l) l.push(r);
    else by.set(r.path, [r]);
  }
  return by;
}

const arrived = (rs: readonly ProbeResult[]): ProbeResult[] => rs.filter((r) => r.arrival!.found);

/** `direct: 9/9 arrived, p50 4.1s` */
function arrivedPhrase(path: string, rs: readonly ProbeResult[]): string {
  const got = arrived(rs);
  const lat = got.map((r) => r.arrival!.latencyMs).filter((x): x is number => x !== undefined);
  return `${path}: ${got.length}/${rs.length} arrived${lat.length ? `, p50 ${formatMs(median(lat))}` : ''}`;
}

/** Share of probes found whole, and not in Junk: how well a path's mail arrives. */
const wellRate = (rs: readonly ProbeResult[]): number => arrived(rs).filter((r) => r.arrival!.intact && !JUNK.test(r.arrival!.folder ?? '')).length / rs.length;

/** The other path whose probes arrive best (ties: more found): the reference a missing share is tested against. */
function bestOther(by: Map<string, ProbeResult[]>, path: string): [string, ProbeResult[]] | undefined {
  let best: [string, ProbeResult[]] | undefined;
  const key = (rs: readonly ProbeResult[]): [number, number] => [wellRate(rs), arrived(rs).length / rs.length];
  for (const [p, rs] of by) {
    if (p === path) continue;
    const [w, f] = key(rs);
    const [bw, bf] = best ? key(best[1]) : [-1, -1];
    if (w > bw || (w === bw && f > bf)) best = [p, rs];
  }
  return best;
}

function missing(ctx: Context, by: Map<string, ProbeResult[]>, path: string, rs: ProbeResult[]): Finding | undefined {
  const lost = rs.filter((r) => !r.arrival!.found);
  if (!lost.length) return undefined;
  const why = top(countBy(lost, (r) => r.arrival!.reason)) ?? 'not found';
  const ref = bestOther(by, path);
  const a: Pool = { stalled: lost.length, total: rs.length };
  const b: Pool | undefined = ref && { stalled: ref[1].length - arrived(ref[1]).length, total: ref[1].length };
  const t = b && testDifference(a, b, Math.max(1, by.size), ctx.alpha);
  const refText = ref ? `; ${arrivedPhrase(ref[0], ref[1])}${t ? `, ${describeP(t)}` : ''}` : '';
  return {
    kind: 'arrival',
    stall: false,
    score: score('arrival', t?.pValue) + (arrived(rs).length === 0 ? 2 : 0),
    path,
    statement: `${path}: ${rs.length}/${rs.length} accepted, ${rs.length - lost.length}/${rs.length} arrived (${why})${refText}.`,
    evidence: { problem: 'not-arrived', accepted: rs.length, arrived: rs.length - lost.length, reason: why, sizes: sizeList(lost.map((r) => r.sizeBytes)), reference: ref?.[0], referenceArrived: ref && arrived(ref[1]).length, referenceTotal: ref?.[1].length, pValue: t?.pValue },
    ...(t ? { pValue: t.pValue } : {}),
  };
}

/** The smallest size from which every probe that arrived is not intact (and some below were whole), or undefined. */
function truncatedFrom(got: readonly ProbeResult[]): number | undefined {
  const sizes = [...new Set(got.map((r) => r.sizeBytes))].sort((x, y) => x - y);
  let from: number | undefined;
  for (let i = sizes.length - 1; i >= 0; i--) {
    if (got.filter((r) => r.sizeBytes === sizes[i]).every((r) => !r.arrival!.intact)) from = sizes[i];
    else break;
  }
  return from;
}

function truncated(path: string, rs: ProbeResult[]): Finding | undefined {
  const got = arrived(rs);
  const bad = got.filter((r) => !r.arrival!.intact);
  if (!bad.length) return undefined;
  const from = truncatedFrom(got);
  const whole = got.filter((r) => r.arrival!.intact);
  const where = from !== undefined && from > Math.min(...got.map((r) => r.sizeBytes)) ? `from ${formatSize(from)} on` : `at ${sizeList(bad.map((r) => r.sizeBytes))}`;
  const why = top(countBy(bad, (r) => r.arrival!.reason?.split(':')[0]));
  return {
    kind: 'arrival',
    stall: false,
    score: score('arrival') + 1,
    path,
    ...(from !== undefined ? { sizeBytes: from } : {}),
    statement:
      `On ${path}, probes arrive ${why === 'truncated' ? 'truncated' : 'changed'} ${where}: ${bad.length}/${got.length} that arrived are not intact` +
      `${whole.length ? `; ${sizeList(whole.map((r) => r.sizeBytes))} whole (${whole.length})` : ''}. The server accepted them: the loss is after the sender, on the way or at the receiver.`,
    evidence: { problem: 'not-intact', notIntact: bad.length, arrived: got.length, fromBytes: from, sizes: sizeList(bad.map((r) => r.sizeBytes)), reason: top(countBy(bad, (r) => r.arrival!.reason)) },
  };
}

function junk(by: Map<string, ProbeResult[]>, path: string, rs: ProbeResult[]): Finding | undefined {
  const got = arrived(rs);
  const inJunk = got.filter((r) => JUNK.test(r.arrival!.folder ?? ''));
  if (!inJunk.length) return undefined;
  const folder = top(countBy(inJunk, (r) => r.arrival!.folder))!;
  const others = [...by].filter(([p, xs]) => p !== path && arrived(xs).length > 0).map(([p, xs]) => `${p}: ${arrived(xs).filter((r) => JUNK.test(r.arrival!.folder ?? '')).length}/${arrived(xs).length}`);
  return {
    kind: 'arrival',
    stall: false,
    score: score('arrival') - 5,
    path,
    statement: `On ${path}, ${inJunk.length}/${got.length} probes that arrived land in ${folder}${others.length ? ` (${others.join(', ')})` : ''}: the receiver files mail from this path as spam.`,
    evidence: { problem: 'junk', inJunk: inJunk.length, arrived: got.length, folder },
  };
}

export function arrival(ctx: Context): Finding[] {
  const by = lookedFor(ctx);
  const out: Finding[] = [];
  for (const [path, rs] of [...by].sort(([x], [y]) => x.localeCompare(y))) {
    for (const f of [missing(ctx, by, path, rs), truncated(path, rs), junk(by, path, rs)]) if (f) out.push(f);
  }
  return out;
}

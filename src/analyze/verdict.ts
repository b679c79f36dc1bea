/**
 * The verdict: one paragraph in plain words — the stall findings merged into sentences per path (its threshold and
 * its contrast with other paths), per target, where the transfers stop (each path's own offset), the kernel's
 * mechanism, which sizes are clean; then what else was seen. Every figure comes from the finding it names. Pure.
 */
import type { Finding, Stage } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import type { CellStats } from './cells.js';
import { closedWindowText, silentWhat } from './findings/common.js';
import { formatP, formatPct, median, wilson } from './stats.js';
import { approxSize, joinAnd, pushTo, sizeList, sizeRange, stagePhrase, stageSplit, stagesFromCounts } from './text.js';

const ev = <T>(f: Finding | undefined): T => (f?.evidence ?? {}) as T;
/** The path-specific finding's evidence, or undefined without one. */
const pathEv = (ps: Finding | undefined): PathEv | undefined => (ps ? (ps.evidence as unknown as PathEv) : undefined);

interface PathEv {
  stalled: number;
  total: number;
  reference: string[];
  referenceStalled: number;
  referenceTotal: number;
  everySize: boolean;
  fromBytes?: number;
  sizes: number[];
  targets: string[];
  mode: string;
  stalledStages: Record<string, number>;
  silent?: boolean;
  referenceReplyMs?: number;
  receiverGotAll?: boolean;
  windowClosedSizes?: number[];
}

const share = (k: number, n: number): string => (n && k / n < 0.9 ? `, ${formatPct(k / n)}` : '');
const capital = (s: string): string => `${s.charAt(0).toUpperCase()}${s.slice(1)}`;

function pathWhere(ps: Finding | undefined, th: Finding[]): string {
  const e = pathEv(ps);
  const thr = th.find((f) => !ev<{ everySize?: boolean }>(f).everySize);
  if (thr && (!e || e.mode === 'stalling-cells')) return `from ${formatSize(thr.sizeBytes!)} on`;
  if (e?.fromBytes !== undefined) return `from ${formatSize(e.fromBytes)} on`;
  if (e?.mode === 'all-cells') return 'intermittently';
  if (e?.everySize || th.some((f) => ev<{ everySize?: boolean }>(f).everySize)) return 'at every size tested';
  return `at ${sizeList(e?.sizes ?? [])}`;
}

function pathWhy(ps: Finding | undefined, th: Finding[]): string {
  const thr = th.find((f) => !ev<{ everySize?: boolean }>(f).everySize);
  if (ps) {
    const e = ev<PathEv>(ps);
    return `${e.stalled}/${e.total} probes${share(e.stalled, e.total)}; ${joinAnd(e.reference)} ${e.referenceStalled}/${e.referenceTotal}, ${formatP(ps.pValue!).replace(/ /g, '')}`;
  }
  if (thr) {
    const e = ev<{ stalled: number; total: number; belowStalled: number; belowTotal: number }>(thr);
    return `${e.stalled}/${e.total} probes${share(e.stalled, e.total)}; smaller sizes ${e.belowStalled}/${e.belowTotal}, ${formatP(thr.pValue!).replace(/ /g, '')}`;
  }
  const e = ev<{ stalled: number; total: number }>(th[0]);
  return `${e.stalled}/${e.total} probes${share(e.stalled, e.total)}`;
}

/** "Path via-lb stalls in the message body from 64KiB on (36/36 probes; direct 0/36, p<0.001)." */
function pathSentence(p: string, ps: Finding | undefined, th: Finding[], targets: number): string {
  const e = pathEv(ps);
  const stages = stagesFromCounts(e?.stalledStages ?? ev<{ stalledStages?: Record<string, number> }>(th.find((f) => !ev<{ everySize?: boolean }>(f).everySize) ?? th[0]).stalledStages ?? {});
  const toT = targets > 1 && e && e.targets.length < targets ? ` to ${joinAnd(e.targets)}` : !e && targets > 1 && th.length === 1 ? ` to ${th[0]!.target}` : '';
  const where = pathWhere(ps, th);
  const why = pathWhy(ps, th);
  if (!e?.silent) return `Path ${p} stalls ${stagePhrase(stages)}${toT} ${where} (${why}).`;
  const stage: Stage | undefined = stageSplit(stages).stage;
  const refs = joinAnd(e.reference);
  const replies = `${refs} ${e.reference.length > 1 ? 'get' : 'gets'} ${stage === 'greeting' ? 'a greeting' : 'replies'}${e.referenceReplyMs !== undefined ? ` in ${formatMs(e.referenceReplyMs)}` : ''}`;
  const tail = e.receiverGotAll ? `the receiver got the whole message but its reply never came back over ${p}; ${replies}` : `${replies}: a TCP-terminating device on ${p} swallows it`;
  return `Path ${p}: the far end ${silentWhat(stage)}${toT} ${where} (${why}); ${tail}.${closedWindowText(e.windowClosedSizes ?? [])}`;
}

function pathSentences(stall: Finding[], paths: string[], targets: number, done: Set<Finding>): string[] {
  const out: string[] = [];
  const targetWide = new Set(stall.filter((f) => f.kind === 'target-specific').map((f) => f.target));
  for (const f of stall) if (f.kind === 'size-threshold' && targetWide.has(f.target)) done.add(f);
  for (const p of paths) {
    const ps = stall.find((f) => f.kind === 'path-specific' && f.path === p);
    const th = stall.filter((f) => f.kind === 'size-threshold' && f.path === p && !done.has(f));
    if (!ps && !th.length) continue;
    if (ps) done.add(ps);
    th.forEach((f) => done.add(f));
    out.push(pathSentence(p, ps, th, targets));
  }
  return out;
}

type OffEv = { source: string; minBytes: number; maxBytes: number; medianBytes: number; mssBytes: number; pattern?: string };

function subjectOf(f: Finding): string {
  return f.path ? `on ${f.path}` : `between the senders and ${f.target}`;
}

function whichOf(source: string): string {
  return source === 'sink' ? 'received' : source === 'bytesAcked' ? 'acknowledged' : 'written';
}

/** One sentence per offset pattern; several paths at different offsets each get their own figures. */
function offsetSentence(g: Finding[]): string {
  const es = g.map((f) => ev<OffEv>(f));
  const e0 = es[0]!;
  const which = whichOf(e0.source);
  const on = joinAnd(g.map(subjectOf));
  const range = sizeRange(Math.min(...es.map((e) => e.minBytes)), Math.max(...es.map((e) => e.maxBytes)));
  if (g[0]!.kind === 'pmtu-blackhole') return `Transfers ${on} stop before the first full-size segment gets through (${range} ${which}, MSS ${e0.mssBytes}): a PMTU blackhole — check MTU / MSS clamping there.`;
  if (e0.pattern === 'complete') {
    return e0.source === 'sink'
      ? `${capital(on)} the receiver got the whole message but no final reply came back.`
      : `${capital(on)} the whole message was acknowledged at the TCP level but no final reply came: the server, or a proxy / load balancer in front of it, took the data and went silent.`;
  }
  if (g.length === 1) return `Transfers stop at ${range} ${which} regardless of message size: something ${on} stops passing data after ~${approxSize(e0.medianBytes)}.`;
  const each = g.map((f, i) => `${subjectOf(f)} after ~${approxSize(es[i]!.medianBytes)} (${sizeRange(es[i]!.minBytes, es[i]!.maxBytes)} ${which})`);
  return `Transfers stop at a fixed offset regardless of message size: something ${each[0]}, something ${each.slice(1).join(', something ')}.`;
}

function offsetSentences(stall: Finding[], done: Set<Finding>): string[] {
  const groups = new Map<string, Finding[]>();
  // a path whose far end went silent was told so by its path sentence: "the whole message was acknowledged" adds nothing
  const silent = new Set(stall.filter((f) => f.kind === 'path-specific' && pathEv(f)?.silent).map((f) => f.path));
  for (const f of stall.filter((x) => x.kind === 'stall-offset' || x.kind === 'pmtu-blackhole')) {
    done.add(f);
    const e = ev<OffEv>(f);
    if (e.pattern === 'complete' && e.source !== 'sink' && silent.has(f.path)) continue;
    pushTo(groups, `${f.kind}|${e.pattern ?? ''}|${e.source}`, f);
  }
  return [...groups.values()].map(offsetSentence);
}

function lostWhy(g: Finding[]): string {
  const dirs = new Set(g.map((f) => ev<{ direction?: string }>(f).direction));
  if (dirs.size === 1 && dirs.has('to-sender')) return 'the receiver got more than was acknowledged: the ACKs are lost on the way back';
  if (dirs.size === 1 && dirs.has('to-receiver')) return 'the receiver got no more than was acknowledged: the data is lost on the way to it';
  return 'the segments or their ACKs are lost on the way';
}

function mechanismSentences(stall: Finding[], done: Set<Finding>): string[] {
  const out: string[] = [];
  const mech = (f: Finding): string => ev<{ mechanism: string }>(f).mechanism;
  const scaling = stall.filter((x) => (x.kind === 'mechanism' && mech(x) === 'no-window-scaling') || x.kind === 'window-scale-rewrite');
  for (const m of ['lost-segments', 'window-closed']) {
    // a path whose closed window is explained by missing window scaling is told once, by that finding
    const g = stall.filter((x) => x.kind === 'mechanism' && mech(x) === m && !(m === 'window-closed' && scaling.some((s) => s.path === x.path)));
    if (!g.length) continue;
    g.forEach((f) => done.add(f));
    const probes = g.reduce((a, f) => a + ev<{ probes: number }>(f).probes, 0);
    const snaps = g.reduce((a, f) => a + ev<{ snapshots: number }>(f).snapshots, 0);
    out.push(
      m === 'lost-segments'
        ? `The kernel shows the data sent but never acknowledged, with retransmissions (${probes}/${snaps} stalled probes): ${lostWhy(g)}.`
        : `The kernel shows the receiver's window closed with no retransmissions (${probes}/${snaps} stalled probes): the receiver, or a middlebox rewriting TCP windows, stopped the flow.`,
    );
  }
  for (const f of stall.filter((x) => x.kind === 'mechanism' && mech(x) === 'window-closed' && scaling.some((s) => s.path === x.path))) done.add(f);
  for (const f of scaling) {
    done.add(f);
    out.push(f.statement);
  }
  return out;
}

function cleanSentence(stall: Finding[], cells: readonly CellStats[], sizes: number[], paths: number): string | undefined {
  const stallSizes = new Set(stall.map((f) => f.sizeBytes).filter((v): v is number => v !== undefined));
  const first = stallSizes.size ? Math.min(...stallSizes) : Infinity;
  let clean: number | undefined;
  for (const sz of sizes) {
    if (sz >= first) break;
    if (cells.filter((c) => c.sizeBytes === sz).every((c) => c.stalled === 0)) clean = sz;
    else break;
  }
  if (clean === undefined) return undefined;
  const on = paths === 1 ? '' : paths === 2 ? ' on both paths' : ` on all ${paths} paths`;
  return `Sizes up to ${formatSize(clean)} are clean${on}.`;
}

function noStallSentence(fs: readonly Finding[], cells: readonly CellStats[]): string {
  const total = cells.reduce((s, c) => s + c.total, 0);
  const paths = new Set(cells.map((c) => c.path)).size;
  const targets = new Set(cells.map((c) => c.target)).size;
  const sizes = [...new Set(cells.map((c) => c.sizeBytes))].sort((a, b) => a - b);
  const silent = fs.filter((f) => f.kind === 'no-reply').reduce((a, f) => a + ev<{ count: number }>(f).count, 0);
  const stalledTotal = cells.reduce((a, c) => a + c.stalled, 0) - silent;
  if (stalledTotal <= 0 && silent > 0) return `No network stall: ${silent} of ${total} probes got every byte acknowledged and no reply — the far end, not the network.`;
  if (stalledTotal > 0) {
    return fs.some((f) => f.kind === 'insufficient-data')
      ? `No established stall pattern: ${stalledTotal} of ${total} probes stalled.`
      : `No stall pattern: ${stalledTotal} of ${total} probes stalled, scattered with no pattern by path, size or target (${formatPct(stalledTotal / total)}).`;
  }
  const delivered = cells.reduce((a, c) => a + c.delivered, 0);
  // probes that could have stalled in the body: delivered ones and those that got as far as the body
  const basis = cells.reduce((a, c) => a + Math.max(c.delivered, c.stages.data?.n ?? 0), 0);
  const per = Math.round(median(cells.map((c) => c.total)));
  const head = `No stalls: ${total} probes over ${paths === 1 ? '1 path' : `${paths} paths`}, ${targets === 1 ? '1 target' : `${targets} targets`} and ${sizes.length === 1 ? '1 size' : `${sizes.length} sizes`} (${sizeList(sizes)})${delivered < total ? `, ${delivered} delivered` : ''}`;
  if (basis === 0) return `${head}; no probe got as far as the message body, so nothing says whether messages would stall.`;
  return `${head}; the stall rate is below ${formatPct(wilson(0, basis)[1])} (95% upper bound${basis < total ? ` over the ${basis} probes that reached the body` : ''})${per < 5 ? `, but with ${per} probe${per > 1 ? 's' : ''} per cell a single cell could still stall up to ${formatPct(wilson(0, per)[1])} of the time` : ''}.`;
}

function otherSentences(fs: readonly Finding[], anyStall: boolean): string[] {
  const out: string[] = [];
  const other = fs.filter((f) => !f.stall && f.kind !== 'scattered-stalls');
  for (const f of other.slice(0, 4)) out.push(f.statement);
  if (other.length > 4) out.push(`(${other.length - 4} more findings below.)`);
  const scattered = fs.find((f) => f.kind === 'scattered-stalls' && !f.stall);
  if (scattered && anyStall) out.push(`Besides that: ${scattered.statement.charAt(0).toLowerCase()}${scattered.statement.slice(1)}`);
  return out;
}

/** One paragraph in plain words over ranked findings and their cells. */
export function verdict(fs: readonly Finding[], cells: readonly CellStats[]): string {
  if (cells.reduce((s, c) => s + c.total, 0) === 0) return 'No probes to compare.';
  const paths = [...new Set(cells.map((c) => c.path))];
  const targets = new Set(cells.map((c) => c.target)).size;
  const sizes = [...new Set(cells.map((c) => c.sizeBytes))].sort((a, b) => a - b);
  const stall = fs.filter((f) => f.stall);
  const done = new Set<Finding>();
  const s: string[] = [...pathSentences(stall, paths, targets, done)];
  for (const f of stall.filter((x) => x.kind === 'target-specific')) {
    done.add(f);
    s.push(f.statement);
  }
  s.push(...offsetSentences(stall, done), ...mechanismSentences(stall, done));
  for (const f of stall) if (!done.has(f)) s.push(f.statement);
  if (stall.length) {
    const clean = cleanSentence(stall, cells, sizes, paths.length);
    if (clean) s.push(clean);
  } else s.push(noStallSentence(fs, cells));
  s.push(...otherSentences(fs, stall.length > 0));
  return s.join(' ');
}



/**
 * The comparator: which path, which target and which size trigger stalls — and how sure we are.
 *
 * Pure functions over ProbeResult arrays. A "stalling cell" has a majority of stalled probes. Every stall
 * finding is backed by Fisher's exact test (two-sided) against a comparison group and is only made at
 * p < alpha; a pattern that is there but not significant becomes an `insufficient-data` finding that says
 * how many probes per cell would settle it. Rejections, timeouts and slowness are reported as what they are,
 * never as stalls.
 */
import type { Finding, FindingKind, ProbeResult, Stage, TcpSnapshot } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import { dataOutstanding } from '../probe/evidence.js';
import { type CellStats, type StallOffset, ackedBodyOffset, cellKey, computeCells, sinkBodyBytes } from './cells.js';
import {
  fisherExact,
  formatP,
  formatPct,
  mannWhitney,
  median,
  probesPerCellForSignificance,
  sortedCopy,
  wilson,
} from './stats.js';

export interface CompareOptions {
  /** Significance level of stall findings (default 0.05). */
  alpha?: number;
  /** Default MSS assumed when no snapshot reports one (default 1448: Ethernet MTU 1500 with timestamps). */
  segmentBytes?: number;
}

export interface CompareResult {
  cells: CellStats[];
  findings: Finding[];
  verdict: string;
  /** Findings with `stall: true` (drives `mxprobe compare`'s exit code). */
  stallFindings: number;
}

/** Score bases: higher ranks first. Stall findings above everything else; -log10(p) breaks ties. */
const SCORE: Record<FindingKind, number> = {
  'path-specific': 90,
  'target-specific': 88,
  'size-threshold': 85,
  'pmtu-blackhole': 80,
  'stall-offset': 78,
  mechanism: 76,
  'scattered-stalls': 60,
  failure: 57,
  timeout: 55,
  slow: 50,
  rejection: 45,
  'insufficient-data': 35,
};

function score(kind: FindingKind, p?: number): number {
  const bonus = p !== undefined && p > 0 ? Math.min(9.9, -Math.log10(p)) : p === 0 ? 9.9 : 0;
  return Math.round((SCORE[kind] + bonus) * 10) / 10;
}


interface Pool {
  stalled: number;
  total: number;
}
function pool(cells: readonly CellStats[]): Pool {
  let stalled = 0;
  let total = 0;
  for (const c of cells) {
    stalled += c.stalled;
    total += c.total;
  }
  return { stalled, total };
}
function fisherPools(a: Pool, b: Pool): number {
  return fisherExact(a.stalled, a.total - a.stalled, b.stalled, b.total - b.stalled);
}
const frac = (p: Pool): string => `${p.stalled}/${p.total}`;

/** `64KiB`, or a short list / range of sizes. */
function sizeList(sizes: number[]): string {
  const s = [...new Set(sizes)].sort((a, b) => a - b);
  if (s.length === 0) return '';
  if (s.length === 1) return formatSize(s[0]!);
  if (s.length <= 3) return s.map(formatSize).join(', ');
  return `${formatSize(s[0]!)}–${formatSize(s[s.length - 1]!)}`;
}

/** Approximate size for prose: `~64KiB`, `1.2MiB`, `900B`. */
export function approxSize(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)}B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)}KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)}MiB`;
}
/** `61–64KiB`, `0–1.2KiB`, `1.0–1.1MiB`. */
export function sizeRange(min: number, max: number): string {
  const unit = max >= 1024 * 1024 ? 1024 * 1024 : max >= 1024 ? 1024 : 1;
  const name = unit === 1 ? 'B' : unit === 1024 ? 'KiB' : 'MiB';
  const digits = unit === 1024 * 1024 || max / unit < 10 ? 1 : 0;
  const f = (v: number): string => (v / unit).toFixed(unit === 1 ? 0 : digits);
  const a = f(min);
  const b = f(max);
  return a === b ? `${b}${name}` : `${a}–${b}${name}`;
}

function pushTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

function countBy<T, K>(xs: readonly T[], key: (x: T) => K | undefined): Map<K, number> {
  const m = new Map<K, number>();
  for (const x of xs) {
    const k = key(x);
    if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
function top<K>(m: Map<K, number>): K | undefined {
  let best: [K, number] | undefined;
  for (const e of m) if (!best || e[1] > best[1]) best = e;
  return best?.[0];
}

/** "in the message body", "waiting for the greeting", … for the stages stalled probes ended in. */
export function stagePhrase(stages: readonly (Stage | undefined)[]): string {
  const counts = countBy(stages, (s) => s);
  const st = top(counts);
  if (st === undefined) return 'in an unknown stage';
  const bodyish = [...counts.keys()].every((s) => s === 'body' || s === 'dataAck');
  if (bodyish && counts.has('body')) return 'in the message body';
  switch (st) {
    case 'dataAck':
      return 'after the message body was written (waiting for the final reply)';
    case 'body':
      return 'in the message body';
    case 'connect':
      return 'while connecting';
    case 'greeting':
      return 'waiting for the greeting';
    case 'dns':
      return 'resolving the target';
    case 'tls':
      return 'in the TLS handshake';
    default:
      return `at ${st === 'data' ? 'DATA' : st.toUpperCase()}`;
  }
}

function joinAnd(xs: string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

/** A set of stalling cells some stall finding is about; used for offsets and kernel mechanism. */
interface StallGroup {
  /** A path's stalls, or a target's (every path stalls to it). */
  by: 'path' | 'target';
  name: string;
  cells: CellStats[];
}

/**
 * The sizes at which one path stalls to one target: from `from` on (a threshold, tested against the smaller
 * sizes by Fisher's exact test), or at every size tested.
 */
interface Region {
  path: string;
  target: string;
  /** The stalling cells, ascending by size. */
  cells: CellStats[];
  /** The cells below the threshold (empty for `every`). */
  below: CellStats[];
  from: number;
  every: boolean;
  /** Split test: stalls above vs below, raw (undefined for `every`). */
  p?: number;
  a: Pool;
  b: Pool;
  /** Significant threshold, or every size stalling at a clear rate. */
  established: boolean;
}

/** Each stalling cell stalls at no less than this share of the region's pooled rate (consistency). */
const CONSISTENCY = 0.35;

/**
 * `alpha` here is per split: the caller divides the family's alpha by the number of splits tried over all
 * series (Bonferroni), so that random stalls do not make thresholds out of noise.
 */
function regionOf(series: CellStats[], alpha: number): Region | undefined {
  if (!series.length || !series.some((c) => c.stalled > 0)) return undefined;
  const { path, target } = series[0]!;
  let best: { i: number; p: number; a: Pool; b: Pool } | undefined;
  for (let i = 1; i < series.length; i++) {
    const above = series.slice(i);
    const a = pool(above);
    const b = pool(series.slice(0, i));
    const ra = a.stalled / a.total;
    if (ra <= b.stalled / b.total) continue;
    if (!above.every((c) => c.stalled > 0 && c.stallRate >= CONSISTENCY * ra)) continue;
    const p = fisherPools(a, b);
    if (!best || p < best.p) best = { i, p, a, b };
  }
  const all = pool(series);
  const rAll = all.stalled / all.total;
  const everyOk = series.every((c) => c.stalled > 0 && c.stallRate >= CONSISTENCY * rAll);
  if (best && (best.p < alpha || !everyOk)) {
    return {
      path, target,
      cells: series.slice(best.i),
      below: series.slice(0, best.i),
      from: series[best.i]!.sizeBytes,
      every: false,
      p: best.p,
      a: best.a,
      b: best.b,
      established: best.p < alpha,
    };
  }
  if (everyOk) {
    return {
      path, target,
      cells: series,
      below: [],
      from: series[0]!.sizeBytes,
      every: true,
      a: all,
      b: { stalled: 0, total: 0 },
      established: wilson(all.stalled, all.total)[0] > 0.2,
    };
  }
  return undefined;
}

/** Internal: a stall pattern before the significance call. */
interface Candidate {
  kind: 'size-threshold' | 'path-specific' | 'target-specific';
  path?: string;
  target?: string;
  sizeBytes?: number;
  p: number;
  a: Pool;
  b: Pool;
  /** Cells in the two groups (for "probes per cell"). */
  cellsA: number;
  cellsB: number;
  repeat: number;
  describe: string;
  /** Hypotheses the pattern was chosen among (Bonferroni factor already applied to `p`). */
  m: number;
  /** The cells of group A (the stalling side). */
  cells: CellStats[];
}

/** Everything `findings` computes, with the cells, for `verdict` and callers. */
export function findings(results: readonly ProbeResult[], opts: CompareOptions = {}): Finding[] {
  return analyse(results, opts).findings;
}

function analyse(results: readonly ProbeResult[], opts: CompareOptions): { cells: CellStats[]; findings: Finding[] } {
  const alpha = opts.alpha ?? 0.05;
  const segment = opts.segmentBytes ?? 1448;
  const cells = computeCells(results);
  const out: Finding[] = [];
  const candidates: Candidate[] = [];
  const byCell = new Map<string, ProbeResult[]>();
  for (const r of results) {
    const k = cellKey(r);
    const l = byCell.get(k);
    if (l) l.push(r);
    else byCell.set(k, [r]);
  }
  const stalledOf = (cs: readonly CellStats[]): ProbeResult[] =>
    cs.flatMap((c) => (byCell.get(cellKey(c)) ?? []).filter((r) => r.outcome === 'stalled'));
  const paths = [...new Set(cells.map((c) => c.path))].sort();
  const targets = [...new Set(cells.map((c) => c.target))].sort();
  const cellAt = new Map(cells.map((c) => [cellKey(c), c]));
  const get = (path: string, target: string, sizeBytes: number): CellStats | undefined =>
    cellAt.get(cellKey({ path, target, sizeBytes }));
  const medianRepeat = Math.round(median(cells.map((c) => c.total))) || 1;

  /** Cells covered by an established stall finding; the rest of the stalls are "scattered". */
  const covered = new Set<string>();
  const groups: StallGroup[] = [];
  const cover = (by: StallGroup['by'], name: string, cs: CellStats[]): void => {
    const fresh = cs.filter((c) => !covered.has(cellKey(c)));
    for (const c of fresh) covered.add(cellKey(c));
    if (!fresh.length) return;
    const g = groups.find((x) => x.by === by && x.name === name);
    if (g) g.cells.push(...fresh);
    else groups.push({ by, name, cells: fresh });
  };

  // ---- regions: per (path, target), the sizes that stall -------------------------------------------------------
  // A region is either a threshold (from some size on, every larger size stalls at a consistent rate, tested
  // against the smaller sizes) or every size tested. Rates need not be 100%: a load balancer with one bad backend
  // out of two stalls half the probes from the size on, and that is still a threshold.
  // Bonferroni factors: how many hypotheses each kind of finding is chosen among
  const nSizes = Math.max(1, ...[...new Set(cells.map((c) => `${c.path}\u0000${c.target}`))].map((k) => cells.filter((c) => `${c.path}\u0000${c.target}` === k).length));
  const nSeries = new Set(cells.map((c) => `${c.path}\u0000${c.target}`)).size;
  const mSplit = Math.max(1, (nSizes - 1) * nSeries);
  const mPath = Math.max(1, nSizes * paths.length);
  const mTarget = Math.max(1, nSizes * targets.length);
  const adj = (p: number, m: number): number => Math.min(1, p * m);
  const regions = new Map<string, Region>();
  for (const t of targets) {
    for (const p of paths) {
      const series = cells.filter((c) => c.path === p && c.target === t).sort((x, y) => x.sizeBytes - y.sizeBytes);
      const rg = regionOf(series, alpha / mSplit);
      if (rg) regions.set(`${p}\u0000${t}`, rg);
    }
  }
  const regionOfCell = (c: CellStats): Region | undefined => {
    const rg = regions.get(`${c.path}\u0000${c.target}`);
    return rg && rg.cells.includes(c) ? rg : undefined;
  };
  const pct = (x: Pool): string => (x.total && x.stalled / x.total < 0.9 ? `, ${formatPct(x.stalled / x.total)}` : '');

  // ---- B. path-specific: a path stalls where another path to the same target, same size, does not ----------
  const pathFindingFor = new Set<string>();
  if (paths.length > 1) {
    for (const p of paths) {
      const mine: CellStats[] = [];
      const refs: CellStats[] = [];
      const perCell: Array<Record<string, unknown>> = [];
      for (const c of cells) {
        // the path's stalling sizes: its region, or (no size pattern) any cell where most probes stall
        if (c.path !== p || !(regionOfCell(c) || c.stalled * 2 > c.total)) continue;
        const others = paths.filter((q) => q !== p).map((q) => get(q, c.target, c.sizeBytes)).filter((x): x is CellStats => !!x);
        if (!others.length) continue;
        const ref = others.reduce((best, x) => (x.stallRate < best.stallRate || (x.stallRate === best.stallRate && x.total > best.total) ? x : best));
        if (ref.stallRate >= c.stallRate) continue;
        mine.push(c);
        refs.push(ref);
        perCell.push({
          target: c.target,
          sizeBytes: c.sizeBytes,
          stalled: c.stalled,
          total: c.total,
          reference: ref.path,
          referenceStalled: ref.stalled,
          referenceTotal: ref.total,
          pValue: fisherExact(c.stalled, c.total - c.stalled, ref.stalled, ref.total - ref.stalled),
        });
      }
      let mode: 'stalling-cells' | 'all-cells' = 'stalling-cells';
      let a: Pool;
      let b: Pool;
      let refPaths: string[];
      let mineCells = mine;
      let refCells = refs;
      if (mine.length) {
        a = pool(mine);
        b = pool(refs);
        refPaths = [...new Set(refs.map((r) => r.path))];
      } else {
        // no stalling region: test intermittent stalls over every cell shared with the least-stalling other path
        mode = 'all-cells';
        let best: { q: string; a: Pool; b: Pool; mc: CellStats[]; rc: CellStats[] } | undefined;
        for (const q of paths) {
          if (q === p) continue;
          const mc: CellStats[] = [];
          const rc: CellStats[] = [];
          for (const c of cells) {
            if (c.path !== p) continue;
            const o = get(q, c.target, c.sizeBytes);
            if (o) {
              mc.push(c);
              rc.push(o);
            }
          }
          if (!mc.length) continue;
          const pa = pool(mc);
          const pb = pool(rc);
          if (!best || pb.stalled / pb.total < best.b.stalled / best.b.total) best = { q, a: pa, b: pb, mc, rc };
        }
        if (!best || best.a.stalled === 0) continue;
        if (best.a.stalled / best.a.total <= best.b.stalled / best.b.total) continue;
        a = best.a;
        b = best.b;
        refPaths = [best.q];
        mineCells = best.mc;
        refCells = best.rc;
      }
      const mB = mode === 'all-cells' ? paths.length : mPath;
      const pRaw = fisherPools(a, b);
      const pv = adj(pRaw, mB);
      const tg = [...new Set(mineCells.map((c) => c.target))];
      const toTargets = targets.length > 1 ? ` to ${joinAnd(tg)}` : '';
      const sizes = mineCells.map((c) => c.sizeBytes);
      const stage = stagePhrase(stalledOf(mineCells).map((r) => r.stage));
      const allSizes = [...new Set(cells.filter((c) => c.path === p && tg.includes(c.target)).map((c) => c.sizeBytes))];
      const everySize = mode === 'stalling-cells' && new Set(sizes).size === allSizes.length;
      const froms = [...new Set(tg.map((t) => regions.get(`${p}\u0000${t}`)).filter((r): r is Region => !!r && !r.every).map((r) => r.from))];
      const fromSize = mode === 'stalling-cells' && !everySize && froms.length === 1 && sizes.every((s) => s >= froms[0]!) ? froms[0] : undefined;
      const where =
        mode === 'all-cells'
          ? `intermittently (${formatPct(a.stalled / a.total)} of probes)`
          : everySize
            ? 'at every size tested'
            : fromSize !== undefined
              ? `from ${formatSize(fromSize)} on`
              : `at ${sizeList(sizes)}`;
      const describe = `path ${p} stalls ${stage}${toTargets} ${where} (${frac(a)}; ${joinAnd(refPaths)} ${frac(b)})`;
      if (pv < alpha && (mode === 'stalling-cells' || a.stalled / a.total > 0.05)) {
        pathFindingFor.add(p);
        if (mode === 'stalling-cells') cover('path', p, mine);
        else cover('path', p, mineCells.filter((c) => c.stalled > 0));
        const minSize = Math.min(...sizes);
        out.push({
          kind: 'path-specific',
          stall: true,
          score: score('path-specific', pv),
          path: p,
          ...(tg.length === 1 ? { target: tg[0] } : {}),
          ...(mode === 'stalling-cells' ? { sizeBytes: minSize } : {}),
          statement: `Path ${p} stalls ${stage}${toTargets} ${where} where ${joinAnd(refPaths)} does not: ${frac(a)} probes${pct(a)} vs ${frac(b)}, ${formatP(pv)}.`,
          evidence: {
            mode,
            stalled: a.stalled,
            total: a.total,
            reference: refPaths,
            referenceStalled: b.stalled,
            referenceTotal: b.total,
            everySize,
            ...(fromSize !== undefined ? { fromBytes: fromSize } : {}),
            sizes: [...new Set(sizes)].sort((x, y) => x - y),
            targets: tg,
            stalledStages: Object.fromEntries(countBy(stalledOf(mineCells), (r) => r.stage)),
            ...(mode === 'stalling-cells' ? { cells: perCell } : {}),
            pValueRaw: pRaw,
            hypotheses: mB,
          },
          pValue: pv,
        });
      } else if (a.stalled >= 2 && (mode === 'all-cells' ? a.stalled / a.total > 0.05 && a.stalled * b.total >= 2 * b.stalled * a.total : a.stalled * 2 >= a.total)) {
        // a possible pattern (intermittent stalls at a noise level of a few % are "scattered", not this)
        candidates.push({ kind: 'path-specific', path: p, p: pv, a, b, cellsA: mineCells.length, cellsB: refCells.length, repeat: medianRepeat, describe, m: mB, cells: mineCells });
      }
    }
  }

  // ---- C. target-specific: every path stalls to one target -------------------------------------------------
  const targetFindingFor = new Set<string>();
  for (const t of targets) {
    const tCells = cells.filter((c) => c.target === t);
    const tPaths = [...new Set(tCells.map((c) => c.path))];
    if (tPaths.length < 2 && targets.length < 2) continue;
    const sizes = [...new Set(tCells.map((c) => c.sizeBytes))].sort((x, y) => x - y);
    const stallSizes = sizes.filter((s) => {
      const cs = tCells.filter((c) => c.sizeBytes === s);
      return cs.length > 0 && tPaths.every((q) => cs.some((c) => c.path === q && regionOfCell(c)));
    });
    if (!stallSizes.length) continue;
    const mine = tCells.filter((c) => stallSizes.includes(c.sizeBytes));
    const a = pool(mine);
    const contrast = cells.filter((c) => c.target !== t && stallSizes.includes(c.sizeBytes) && tPaths.includes(c.path));
    const stage = stagePhrase(stalledOf(mine).map((r) => r.stage));
    const every = stallSizes.length === sizes.length;
    const suffix = stallSizes.every((x, i) => x === sizes[sizes.length - stallSizes.length + i]);
    const where = every
      ? 'at every size tested'
      : suffix
        ? `from ${formatSize(stallSizes[0]!)} on`
        : `at ${sizeList(stallSizes)}`;
    const pathsTxt = tPaths.length === 1 ? `path ${tPaths[0]}` : tPaths.length === 2 ? 'both paths' : `all ${tPaths.length} paths`;
    if (contrast.length) {
      const b = pool(contrast);
      if (b.stalled * 2 >= a.stalled * b.total / a.total) continue; // other targets stall about as much: not about this target
      const pRaw = fisherPools(a, b);
      const pv = adj(pRaw, mTarget);
      const others = [...new Set(contrast.map((c) => c.target))];
      const describe = `${pathsTxt} stall to ${t} ${where} (${frac(a)}; other targets ${frac(b)})`;
      if (pv < alpha) {
        targetFindingFor.add(t);
        cover('target', t, mine);
        out.push({
          kind: 'target-specific',
          stall: true,
          score: score('target-specific', pv),
          target: t,
          sizeBytes: stallSizes[0]!,
          statement: `Every path stalls ${stage} to ${t} ${where} (${frac(a)} probes${pct(a)} over ${pathsTxt}), while ${joinAnd(others)} ${others.length > 1 ? 'are' : 'is'} fine (${frac(b)}), ${formatP(pv)}: the cause is at or near ${t}, not on one egress path.`,
          evidence: { paths: tPaths, sizes: stallSizes, stalled: a.stalled, total: a.total, otherTargets: others, otherStalled: b.stalled, otherTotal: b.total, pValueRaw: pRaw, hypotheses: mTarget },
          pValue: pv,
        });
      } else {
        candidates.push({ kind: 'target-specific', target: t, p: pv, a, b, cellsA: mine.length, cellsB: contrast.length, repeat: medianRepeat, describe, m: mTarget, cells: mine });
      }
    } else if (tPaths.length >= 2) {
      // a single target: nothing to contrast with; the stall itself must be well established
      const [lo] = wilson(a.stalled, a.total);
      if (lo <= 0.2) continue;
      targetFindingFor.add(t);
      cover('target', t, mine);
      out.push({
        kind: 'target-specific',
        stall: true,
        score: score('target-specific') - 5,
        target: t,
        sizeBytes: stallSizes[0]!,
        statement: `Every path stalls ${stage} to ${t} ${where} (${frac(a)} probes${pct(a)} over ${pathsTxt}): the cause is shared by all paths — at or near ${t}, or on the common part of the route — not on one egress path. Probe a second target to tell which.`,
        evidence: { paths: tPaths, sizes: stallSizes, stalled: a.stalled, total: a.total, stallRateCi: wilson(a.stalled, a.total) },
      });
    }
  }

  // ---- A. size threshold on a path (per target) --------------------------------------------------------------
  for (const rg of regions.values()) {
    const { path: p, target: t } = rg;
    const above = rg.cells;
    const stalledProbes = stalledOf(above);
    const stage = stagePhrase(stalledProbes.map((r) => r.stage));
    const a = rg.a;
    const toT = targets.length > 1 ? ` to ${t}` : '';
    if (rg.every) {
      // stalls at every size tested: no clean size to compare with
      if (pathFindingFor.has(p) || targetFindingFor.has(t)) continue;
      const [lo] = wilson(a.stalled, a.total);
      if (lo <= 0.2) {
        if (a.stalled >= 2 && a.stalled * 2 >= a.total) {
          candidates.push({
            kind: 'size-threshold', path: p, target: t, p: 1, a, b: { stalled: 0, total: 0 }, cellsA: above.length, cellsB: 0, repeat: medianRepeat,
            describe: `path ${p} stalls${toT} at every size tested (${frac(a)})`, m: 1, cells: above,
          });
        }
        continue;
      }
      cover('path', p, above);
      out.push({
        kind: 'size-threshold',
        stall: true,
        score: score('size-threshold') - 5,
        path: p,
        target: t,
        sizeBytes: above[0]!.sizeBytes,
        statement: `Path ${p} stalls ${stage}${toT} at every size tested, from ${formatSize(above[0]!.sizeBytes)} on (${frac(a)} probes${pct(a)}); no size is clean — add smaller sizes (or another path) to see where it begins.`,
        evidence: { thresholdBytes: above[0]!.sizeBytes, everySize: true, stalled: a.stalled, total: a.total, stallRateCi: wilson(a.stalled, a.total), perSize: above.map((c) => ({ sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })) },
      });
      continue;
    }
    const below = rg.below;
    const b = rg.b;
    const pv = adj(rg.p!, mSplit);
    const threshold = rg.from;
    const cleanBelow = [...below].reverse().find((c) => c.stalled === 0)?.sizeBytes;
    const lastBelow = below[below.length - 1]!;
    const describe = `path ${p} stalls${toT} from ${formatSize(threshold)} on (${frac(a)} vs ${frac(b)} below)`;
    if (!rg.established) {
      if (a.stalled >= 2 && a.stalled * 2 >= a.total) {
        candidates.push({ kind: 'size-threshold', path: p, target: t, sizeBytes: threshold, p: pv, a, b, cellsA: above.length, cellsB: below.length, repeat: medianRepeat, describe, m: mSplit, cells: above });
      }
      continue;
    }
    cover('path', p, above);
    const belowTxt =
      cleanBelow === lastBelow.sizeBytes
        ? `${formatSize(cleanBelow)} and below clean (${frac(b)})`
        : cleanBelow !== undefined
          ? `${formatSize(lastBelow.sizeBytes)}: ${frac(pool([lastBelow]))}; ${formatSize(cleanBelow)} and below clean`
          : `below: ${frac(b)}`;
    out.push({
      kind: 'size-threshold',
      stall: true,
      score: score('size-threshold', pv),
      path: p,
      target: t,
      sizeBytes: threshold,
      statement: `Path ${p} stalls ${stage}${toT} from ${formatSize(threshold)} on: ${frac(a)} probes${pct(a)} at ${sizeList(above.map((c) => c.sizeBytes))}; ${belowTxt}; ${formatP(pv)}.`,
      evidence: {
        thresholdBytes: threshold,
        largestCleanBytes: cleanBelow,
        largestBelowBytes: lastBelow.sizeBytes,
        stalled: a.stalled,
        total: a.total,
        belowStalled: b.stalled,
        belowTotal: b.total,
        stalledStages: Object.fromEntries(countBy(stalledProbes, (r) => r.stage)),
        perSize: [...below, ...above].map((c) => ({ sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })),
        pValueRaw: rg.p,
        hypotheses: mSplit,
      },
      pValue: pv,
    });
  }

  // ---- D/E. where the stalled transfers stop, and the kernel's view of why ------------------------------------
  for (const g of groups) {
    const stalled = stalledOf(g.cells);
    const on = g.by === 'path' ? `On ${g.name}` : `On the way to ${g.name}`;
    const something = g.by === 'path' ? `something on ${g.name}` : `something between the senders and ${g.name}`;
    const where = g.by === 'path' ? { path: g.name } : { target: g.name };
    if (!stalled.length) continue;
    const off = offsetsOf(stalled);
    if (off) {
      const sizes = [...new Set(off.probes.map((x) => x.r.sizeBytes))].sort((a, b) => a - b);
      const vals = sortedCopy(off.probes.map((x) => x.bytes));
      const med = median(vals);
      const min = vals[0]!;
      const max = vals[vals.length - 1]!;
      const mss = median(stalled.map((r) => r.tcp?.mss).filter((v): v is number => typeof v === 'number')) || segment;
      const which = off.source === 'sink' ? 'received by the sink' : off.source === 'bytesAcked' ? (off.basis === 'body' ? 'acknowledged' : 'acknowledged on the connection') : 'written into the kernel (an upper bound: no TCP evidence)';
      const evidence = { source: off.source, basis: off.basis, medianBytes: med, minBytes: min, maxBytes: max, probes: vals.length, sizes, mssBytes: mss };
      const nearFull = off.probes.every((x) => x.bytes >= x.r.sizeBytes * 0.98);
      // PMTU blackholes live on real links (MTU up to 9000); loopback's 64KiB MSS would only be a coincidence
      if (off.source !== 'bytesWritten' && off.basis === 'body' && mss <= 8960 && med < mss && Math.max(...sizes) > mss) {
        out.push({
          kind: 'pmtu-blackhole',
          stall: true,
          score: score('pmtu-blackhole'),
          ...where,
          statement: `${on}, stalled transfers stop before the first full-size segment of the body is through (${sizeRange(min, max)} of the body ${which}; MSS ${mss}): the PMTU blackhole pattern — full-size packets are dropped and no ICMP "fragmentation needed" comes back. Check the MTU / MSS clamping on ${g.by === 'path' ? 'this path' : 'the way there'}.`,
          evidence,
        });
      } else if (nearFull && off.source !== 'bytesWritten') {
        out.push({
          kind: 'stall-offset',
          stall: true,
          score: score('stall-offset'),
          ...where,
          statement:
            off.source === 'sink'
              ? `${on}, the receiver got the whole message (${sizeRange(min, max)}) but no final reply came back: the receiving server stalled after the data, or its reply was lost on the way back.`
              : `${on}, the whole message was acknowledged at the TCP level (${sizeRange(min, max)}) but no final reply came: whatever holds the other end of the connection — the server, or a proxy / load balancer in front of it — took the data and went silent. What the receiving server saw (a sink's record) tells which.`,
          evidence: { ...evidence, pattern: 'complete' },
        });
      } else if (sizes.length >= 2 && max - min <= Math.max(0.25 * med, 4096) && med < 0.9 * sizes[sizes.length - 1]!) {
        out.push({
          kind: 'stall-offset',
          stall: true,
          score: score('stall-offset'),
          ...where,
          statement: `${on}, transfers stop at ${sizeRange(min, max)} ${which} regardless of message size (${sizeList(sizes)}): ${something} stops passing data after ~${approxSize(med)}.`,
          evidence: { ...evidence, pattern: 'cluster' },
        });
      }
    }
    const mech = mechanismOf(stalled);
    if (mech) out.push({ ...mech, ...where, statement: `${on}: ${mech.statement}` });
  }

  // ---- I. not enough data -------------------------------------------------------------------------------------
  const reported: Candidate[] = [];
  {
    const seen = new Set<string>();
    const rank = { 'path-specific': 0, 'target-specific': 1, 'size-threshold': 2 } as const;
    // per path, the comparison with another path says more than the comparison with smaller sizes
    const sorted = [...candidates].sort((x, y) => rank[x.kind] - rank[y.kind] || x.p - y.p);
    for (const k of sorted) {
      // only where no established finding already explains this path / target
      if (k.path && (pathFindingFor.has(k.path) || out.some((f) => f.stall && f.path === k.path && f.kind === 'size-threshold'))) continue;
      if (k.target && !k.path && targetFindingFor.has(k.target)) continue;
      // one doubt per path (a path's threshold and its difference from other paths are the same pattern)
      const key = k.path ? `p\u0000${k.path}` : `t\u0000${k.target}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const pa = k.a.total ? k.a.stalled / k.a.total : 0;
      const pb = k.b.total ? k.b.stalled / k.b.total : 0;
      if (pa <= pb || k.a.stalled === 0) continue;
      // only a suggestive pattern is worth more probes: by itself (before correction) at least p <= 0.1
      if (k.cellsB > 0 && k.p / k.m > 0.1 + 1e-9) continue;
      let need: number | undefined;
      let statement: string;
      if (k.cellsB === 0) {
        statement = `Possibly: ${k.describe}, but there is nothing clean to compare with; add smaller sizes or another path.`;
      } else {
        need = probesPerCellForSignificance(pa, k.cellsA, pb, k.cellsB, k.repeat, alpha / k.m);
        // a difference no reasonable number of probes would establish is not a pattern: its stalls are "scattered"
        if (need === undefined) continue;
        statement = `Possibly: ${k.describe}, but ${formatP(k.p)} is not significant: ${need - k.repeat} more probe${need - k.repeat > 1 ? 's' : ''} per cell (${need} per cell) would make it significant at p<${alpha} if the pattern holds.`;
      }
      reported.push(k);
      out.push({
        kind: 'insufficient-data',
        stall: false,
        score: score('insufficient-data'),
        ...(k.path ? { path: k.path } : {}),
        ...(k.target ? { target: k.target } : {}),
        ...(k.sizeBytes !== undefined ? { sizeBytes: k.sizeBytes } : {}),
        statement,
        evidence: {
          pattern: k.kind,
          stalled: k.a.stalled,
          total: k.a.total,
          comparisonStalled: k.b.stalled,
          comparisonTotal: k.b.total,
          probesPerCell: k.repeat,
          probesPerCellNeeded: need,
          moreProbesPerCell: need !== undefined ? need - k.repeat : undefined,
        },
        ...(k.cellsB ? { pValue: k.p } : {}),
      });
    }
  }

  // ---- J. stalls outside any pattern ------------------------------------------------------------------------
  {
    // stalls explained neither by an established finding nor by a possible pattern (insufficient-data)
    const candidateCells = new Set<string>();
    for (const k of reported) for (const c of k.cells) candidateCells.add(cellKey(c));
    const loose = cells.filter((c) => c.stalled > 0 && !covered.has(cellKey(c)) && !candidateCells.has(cellKey(c)));
    const n = loose.reduce((s, c) => s + c.stalled, 0);
    const all = results.length;
    const loosePaths = new Set(loose.map((c) => c.path));
    const looseTotal = loose.reduce((s, c) => s + c.total, 0);
    // concentrated: one path only, others clean, and most probes of those cells stalled (2/2, not 2/250)
    const onePath = loosePaths.size === 1 && cells.some((c) => !loosePaths.has(c.path)) && n / Math.max(1, looseTotal) >= 0.5;
    if (n > 0 && onePath) {
      // all of them on one path while others are clean: a pattern too small to test, not "no pattern"
      const path = [...loosePaths][0]!;
      const sizes = [...new Set(loose.map((c) => c.sizeBytes))].sort((a, b) => a - b);
      const tot = looseTotal;
      out.push({
        kind: 'insufficient-data',
        stall: false,
        score: score('insufficient-data'),
        path,
        statement: `Possibly: ${n} stall${n > 1 ? 's' : ''}, all on path ${path} (${n}/${tot} at ${sizeList(sizes)}; the other paths clean), but too few probes to tell a pattern from chance: run more probes per cell (e.g. --repeat 10).`,
        evidence: { stalled: n, total: tot, sizes, cells: loose.map((c) => ({ path: c.path, target: c.target, sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })) },
      });
    } else if (n > 0) {
      const ci = wilson(n, all);
      const serious = ci[0] > 0.05;
      out.push({
        kind: 'scattered-stalls',
        stall: serious,
        score: serious ? score('scattered-stalls') : 20,
        statement: `${n} stall${n > 1 ? 's' : ''} in ${all} probes (${formatPct(n / all)}, 95% CI ${formatPct(ci[0])}–${formatPct(ci[1])}) spread over ${loose.length} cell${loose.length > 1 ? 's' : ''} with no pattern by path, size or target${serious ? ': intermittent stalls everywhere — look at what all paths share' : ''}.`,
        evidence: { stalled: n, total: all, stallRateCi: ci, cells: loose.map((c) => ({ path: c.path, target: c.target, sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })) },
      });
    }
  }

  // ---- F. rejections: what they are -----------------------------------------------------------------------
  out.push(...rejectionFindings(results, cells));

  // ---- G. timeouts: slow, not stalled ------------------------------------------------------------------------
  {
    const to = results.filter((r) => r.outcome === 'timeout');
    const keyOf = (r: ProbeResult): string => `${r.path}\u0000${r.target}\u0000${r.stage ?? ''}`;
    const grouped = new Map<string, ProbeResult[]>();
    for (const r of to) pushTo(grouped, keyOf(r), r);
    for (const rs of grouped.values()) {
      const r0 = rs[0]!;
      const sizes = [...new Set(rs.map((r) => r.sizeBytes))];
      const totalThere = cells.filter((c) => c.path === r0.path && c.target === r0.target && sizes.includes(c.sizeBytes)).reduce((s, c) => s + c.total, 0);
      const written = rs.map((r) => r.bodyBytesWritten).filter((v): v is number => typeof v === 'number');
      const toT = targets.length > 1 ? ` to ${r0.target}` : '';
      out.push({
        kind: 'timeout',
        stall: false,
        score: score('timeout'),
        path: r0.path,
        target: r0.target,
        sizeBytes: Math.min(...sizes),
        statement: `${rs.length}/${totalThere} probes on ${r0.path}${toT} at ${sizeList(sizes)} ran out of time in ${r0.stage ?? 'an unknown stage'} while data still moved: slow, not stalled${written.length ? ` (median ${approxSize(median(written))} of the body written when the deadline passed)` : ''}.`,
        evidence: { count: rs.length, total: totalThere, stage: r0.stage, sizes, medianBodyBytesWritten: written.length ? median(written) : undefined },
      });
    }
  }

  // ---- K. other failures: refused, unreachable, reset, TLS, protocol, DNS -----------------------------------
  out.push(...failureFindings(results, cells, targets.length > 1));

  // ---- H. slow but delivering: transfer time far above another path's ----------------------------------------
  out.push(...slowFindings(results, paths, alpha));

  out.sort((x, y) => y.score - x.score || (x.pValue ?? 1) - (y.pValue ?? 1));
  return { cells, findings: out };
}

interface Offsets {
  source: StallOffset['source'];
  basis: 'body' | 'connection';
  probes: Array<{ r: ProbeResult; bytes: number }>;
}

/** Per-probe stall offsets from the best counter most stalled probes report (sink > bytesAcked > bytesWritten). */
function offsetsOf(stalled: ProbeResult[]): Offsets | undefined {
  const tryOne = (source: StallOffset['source'], f: (r: ProbeResult) => [number, 'body' | 'connection'] | undefined): Offsets | undefined => {
    const probes: Offsets['probes'] = [];
    let basis: 'body' | 'connection' = 'body';
    for (const r of stalled) {
      const v = f(r);
      if (!v) continue;
      probes.push({ r, bytes: v[0] });
      if (v[1] === 'connection') basis = 'connection';
    }
    return probes.length && probes.length * 2 >= stalled.length ? { source, basis, probes } : undefined;
  };
  return (
    tryOne('sink', (r) => {
      const v = sinkBodyBytes(r);
      return v === undefined ? undefined : [v, 'body'];
    }) ??
    tryOne('bytesAcked', ackedBodyOffset) ??
    tryOne('bytesWritten', (r) => (typeof r.bodyBytesWritten === 'number' ? [r.bodyBytesWritten, 'body'] : undefined))
  );
}

const num = (xs: Array<number | undefined>): number[] => xs.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));

/** The kernel's account of stalled probes: lost segments vs a closed window. */
function mechanismOf(stalled: ProbeResult[]): Omit<Finding, 'path'> | undefined {
  const snaps = stalled.map((r) => r.tcp).filter((s): s is TcpSnapshot => !!s);
  if (!snaps.length) return undefined;
  const retr = (s: TcpSnapshot): number => Math.max(s.retrans ?? 0, s.backoff ?? 0);
  // the same "data outstanding" test the engine's early stall uses
  const lost = snaps.filter((s) => (retr(s) > 0 || (s.retransTotal ?? 0) > 0) && dataOutstanding(s) && s.sndWnd !== 0);
  // zero-window probes raise `backoff` but are not retransmissions: the head's `retrans` stays 0
  const closed = snaps.filter((s) => s.sndWnd === 0 && (s.retrans ?? 0) === 0);
  const med = (xs: number[]): number | undefined => (xs.length ? median(xs) : undefined);
  if (lost.length * 2 >= snaps.length && lost.length > 0) {
    const ev = {
      mechanism: 'lost-segments',
      probes: lost.length,
      snapshots: snaps.length,
      stalled: stalled.length,
      medianRetrans: med(num(lost.map((s) => s.retrans))),
      medianRetransTotal: med(num(lost.map((s) => s.retransTotal))),
      medianUnacked: med(num(lost.map((s) => s.unacked))),
      medianBytesAcked: med(num(lost.map((s) => s.bytesAcked))),
      medianLastAckMs: med(num(lost.map((s) => s.lastAckMs))),
      medianRttMs: med(num(lost.map((s) => s.rttMs))),
      medianRtoMs: med(num(lost.map((s) => s.rtoMs))),
    };
    const bits: string[] = [];
    if (ev.medianRetransTotal !== undefined) bits.push(`${Math.round(ev.medianRetransTotal)} retransmissions`);
    else if (ev.medianRetrans !== undefined) bits.push(`retrans ${Math.round(ev.medianRetrans)}`);
    if (ev.medianUnacked !== undefined) bits.push(`${Math.round(ev.medianUnacked)} segments unacknowledged`);
    if (ev.medianBytesAcked !== undefined) bits.push(`bytes_acked frozen at ${approxSize(ev.medianBytesAcked)}`);
    if (ev.medianLastAckMs !== undefined) bits.push(`last ACK ${formatMs(ev.medianLastAckMs)} before`);
    return {
      kind: 'mechanism',
      stall: true,
      score: score('mechanism'),
      statement: `${lost.length}/${snaps.length} stalled probes with TCP evidence show segments sent but not acknowledged (median ${bits.join(', ')}): they are lost between sender and receiver — something on the way drops the data.`,
      evidence: ev,
    };
  }
  if (closed.length * 2 >= snaps.length && closed.length > 0) {
    const ws = closed.map((s) => s.wscale).filter((w): w is { snd: number; rcv: number } => !!w);
    const ev = {
      mechanism: 'window-closed',
      probes: closed.length,
      snapshots: snaps.length,
      stalled: stalled.length,
      medianBytesAcked: med(num(closed.map((s) => s.bytesAcked))),
      medianNotSent: med(num(closed.map((s) => s.notSent))),
      medianRwndLimitedMs: med(num(closed.map((s) => s.rwndLimitedMs))),
      wscale: ws[0],
    };
    const bits: string[] = ['send window 0', 'no retransmissions'];
    if (ev.medianBytesAcked !== undefined) bits.push(`bytes_acked ${approxSize(ev.medianBytesAcked)}`);
    if (ev.medianRwndLimitedMs !== undefined) bits.push(`held back by the peer's window for ${formatMs(ev.medianRwndLimitedMs)}`);
    if (ev.medianNotSent !== undefined) bits.push(`${approxSize(ev.medianNotSent)} waiting unsent`);
    if (ev.wscale) bits.push(`wscale ${ev.wscale.snd},${ev.wscale.rcv}`);
    return {
      kind: 'mechanism',
      stall: true,
      score: score('mechanism'),
      statement: `${closed.length}/${snaps.length} stalled probes with TCP evidence show the receiver's window closed (${bits.join(', ')}): the receiver — or a middlebox rewriting TCP windows or mishandling window scaling — stopped the flow; nothing was lost.`,
      evidence: ev,
    };
  }
  return undefined;
}

const GREYLIST_RE = /grey|gray|try again later|temporar|deferr|postpone/i;
const SIZE_RE = /size|too (big|large)|exceed/i;

function rejectionFindings(results: readonly ProbeResult[], cells: CellStats[]): Finding[] {
  const out: Finding[] = [];
  const rej = results.filter((r) => r.outcome === 'rejected' && r.reply);
  const groups = new Map<string, ProbeResult[]>();
  for (const r of rej) {
    const k = `${r.target}\u0000${r.reply!.code}\u0000${r.stage ?? ''}`;
    pushTo(groups, k, r);
  }
  for (const rs of groups.values()) {
    const r0 = rs[0]!;
    const reply = r0.reply!;
    const code = `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''}`;
    const text = reply.text.split('\n')[0]!.slice(0, 80);
    const sizes = [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b);
    const paths = [...new Set(rs.map((r) => r.path))].sort();
    const tCells = cells.filter((c) => c.target === r0.target);
    const there = tCells.filter((c) => sizes.includes(c.sizeBytes)).reduce((s, c) => s + c.total, 0);
    const evidence = { code: reply.code, enhanced: reply.enhanced, text: reply.text, stage: r0.stage, count: rs.length, total: there, sizes, paths };
    const isSize = reply.code === 552 || reply.code === 523 || reply.enhanced === '5.3.4' || reply.enhanced === '5.2.3' || (reply.code >= 500 && SIZE_RE.test(reply.text));
    const isGrey = reply.code >= 400 && reply.code < 500 && (GREYLIST_RE.test(reply.text) || reply.enhanced === '4.7.1' || reply.enhanced === '4.2.0' || reply.code === 450 || reply.code === 451);
    // the receiver gave up waiting for the data (incident 1: "421 4.4.2 timeout"): a stall seen from its side
    const inBody = r0.stage === 'body' || r0.stage === 'dataAck';
    const isReceiverTimeout = inBody && reply.code >= 400 && reply.code < 500 && (reply.enhanced === '4.4.2' || /time(d)?[ -]?out/i.test(reply.text));
    if (isReceiverTimeout) {
      const onPaths = tCells.filter((c) => sizes.includes(c.sizeBytes) && paths.includes(c.path)).reduce((s, c) => s + c.total, 0);
      out.push({
        kind: 'rejection',
        stall: true,
        score: score('rejection') + 30,
        target: r0.target,
        ...(paths.length === 1 ? { path: paths[0] } : {}),
        sizeBytes: sizes[0],
        statement: `${r0.target} gave up waiting for the message body: ${code} "${text}" at ${r0.stage} to ${rs.length}/${onPaths} probes (${sizeList(sizes)}, path${paths.length > 1 ? 's' : ''} ${paths.join(', ')}): the data did not reach it — a stall seen from the receiver's side, not a policy answer.`,
        evidence: { ...evidence, reason: 'receiver-timeout' },
      });
    } else if (isSize) {
      const minRejected = sizes[0]!;
      const delivered = tCells.filter((c) => c.delivered > 0 && c.sizeBytes < minRejected).map((c) => c.sizeBytes);
      const largestOk = delivered.length ? Math.max(...delivered) : undefined;
      out.push({
        kind: 'rejection',
        stall: false,
        score: score('rejection') + 2,
        target: r0.target,
        sizeBytes: minRejected,
        statement: `${r0.target} refuses messages from ${formatSize(minRejected)} on with ${code} "${text}" (${rs.length}/${there} probes, ${r0.stage ?? 'unknown stage'}${largestOk !== undefined ? `; ${formatSize(largestOk)} accepted` : ''}): a size limit, not a stall.`,
        evidence: { ...evidence, reason: 'size-limit', largestAcceptedBytes: largestOk },
      });
    } else if (isGrey) {
      out.push({
        kind: 'rejection',
        stall: false,
        score: score('rejection'),
        target: r0.target,
        statement: `${r0.target} answered ${code} "${text}" at ${r0.stage ?? 'an unknown stage'} to ${rs.length} probe${rs.length > 1 ? 's' : ''}: greylisting or a temporary refusal, not a network problem — retry later or allow-list the probe sender.`,
        evidence: { ...evidence, reason: 'temporary' },
      });
    } else {
      out.push({
        kind: 'rejection',
        stall: false,
        score: score('rejection') - 2,
        target: r0.target,
        statement: `${r0.target} rejected ${rs.length} probe${rs.length > 1 ? 's' : ''} with ${code} "${text}" at ${r0.stage ?? 'an unknown stage'}${paths.length > 1 ? ` (paths ${paths.join(', ')})` : ` (path ${paths[0]})`}: a policy answer from the server, not a stall.`,
        evidence: { ...evidence, reason: reply.code >= 500 ? 'permanent' : 'temporary' },
      });
    }
  }
  return out;
}

const FAILURE_WORDS: Partial<Record<ProbeResult['outcome'], string>> = {
  reset: 'reset by the peer',
  refused: 'refused',
  unreachable: 'unreachable',
  'tls-error': 'failed in TLS',
  'protocol-error': 'answered with something that is not SMTP',
  'dns-error': 'failed to resolve',
};

function failureFindings(results: readonly ProbeResult[], cells: CellStats[], multiTarget: boolean): Finding[] {
  const out: Finding[] = [];
  const groups = new Map<string, ProbeResult[]>();
  for (const r of results) {
    if (!(r.outcome in FAILURE_WORDS)) continue;
    const k = `${r.path}\u0000${r.target}\u0000${r.outcome}\u0000${r.stage ?? ''}`;
    pushTo(groups, k, r);
  }
  for (const rs of groups.values()) {
    const r0 = rs[0]!;
    const sizes = [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b);
    const total = cells.filter((c) => c.path === r0.path && c.target === r0.target).reduce((s, c) => s + c.total, 0);
    const errs = countBy(rs, (r) => (r.error ? `${r.error.code}: ${r.error.message}` : undefined));
    const err = top(errs);
    const all = rs.length === total;
    out.push({
      kind: 'failure',
      stall: false,
      score: score('failure') + (all ? 2 : 0),
      path: r0.path,
      target: r0.target,
      sizeBytes: sizes[0],
      statement: `${rs.length}/${total} probes on ${r0.path}${multiTarget ? ` to ${r0.target}` : ''} were ${FAILURE_WORDS[r0.outcome]}${r0.stage ? ` at ${r0.stage}` : ''}${all ? '' : ` (at ${sizeList(sizes)})`}${err ? ` — ${err.slice(0, 120)}` : ''}: not a stall${all ? ', and nothing was measured on this path' : ''}.`,
      evidence: { outcome: r0.outcome, stage: r0.stage, count: rs.length, total, sizes, errors: Object.fromEntries(errs) },
    });
  }
  return out;
}

/** Time from the first body byte to the final reply: what a slow path costs per message. */
function transferMs(r: ProbeResult): number | undefined {
  const b = r.stages.body;
  const d = r.stages.dataAck;
  if (typeof b !== 'number' || typeof d !== 'number') return undefined;
  return b + d;
}

function slowFindings(results: readonly ProbeResult[], paths: string[], alpha: number): Finding[] {
  const out: Finding[] = [];
  if (paths.length < 2) return out;
  const delivered = results.filter((r) => r.outcome === 'delivered' && transferMs(r) !== undefined);
  const byCell = new Map<string, number[]>();
  for (const r of delivered) {
    const k = cellKey(r);
    pushTo(byCell, k, transferMs(r)!);
  }
  const multiTarget = new Set(results.map((r) => r.target)).size > 1;
  for (const p of paths) {
    let best: Finding | undefined;
    for (const q of paths) {
      if (q === p) continue;
      const xs: number[] = [];
      const ys: number[] = [];
      const slowCells: Array<{ target: string; sizeBytes: number; ms: number; refMs: number }> = [];
      const keys = new Set(delivered.filter((r) => r.path === p).map((r) => `${r.target}\u0000${r.sizeBytes}`));
      for (const tk of keys) {
        const [target, sizeStr] = tk.split('\u0000') as [string, string];
        const sizeBytes = Number(sizeStr);
        const mine = byCell.get(cellKey({ path: p, target, sizeBytes }));
        const ref = byCell.get(cellKey({ path: q, target, sizeBytes }));
        if (!mine?.length || !ref?.length) continue;
        const m = median(ref) || 1e-3;
        for (const v of mine) xs.push(v / m);
        for (const v of ref) ys.push(v / m);
        const mm = median(mine);
        if (mm >= 3 * m && mm - m >= 200) slowCells.push({ target, sizeBytes, ms: mm, refMs: m });
      }
      if (!slowCells.length) continue;
      const { p: pv } = mannWhitney(xs, ys);
      if (pv >= alpha) continue;
      const worst = slowCells.reduce((a, b) => (b.sizeBytes > a.sizeBytes ? b : a));
      const rate = (ms: number): string => `${approxSize((worst.sizeBytes / ms) * 1000)}/s`;
      const f: Finding = {
        kind: 'slow',
        stall: false,
        score: score('slow', pv),
        path: p,
        sizeBytes: Math.min(...slowCells.map((c) => c.sizeBytes)),
        statement: `Path ${p} is slow but delivers: at ${formatSize(worst.sizeBytes)}${multiTarget ? ` to ${worst.target}` : ''} the message takes ${formatMs(worst.ms)} from first body byte to final reply vs ${formatMs(worst.refMs)} on ${q} (≈${rate(worst.ms)} vs ${rate(worst.refMs)}), ${formatP(pv)} — slow, not stalled.`,
        evidence: { reference: q, cells: slowCells, pValue: pv, test: 'Mann-Whitney U on transfer time relative to the reference median' },
        pValue: pv,
      };
      if (!best || (best.pValue ?? 1) > pv) best = f;
    }
    if (best) out.push(best);
  }
  return out;
}

// ---- the verdict -------------------------------------------------------------------------------------------

/**
 * One paragraph in plain words: the strongest stall findings merged into sentences, where transfers stop,
 * the kernel's mechanism, which sizes are clean, then what else was seen (rejections, slowness, doubt).
 */
export function verdict(fs: readonly Finding[], cells: readonly CellStats[]): string {
  const total = cells.reduce((s, c) => s + c.total, 0);
  const paths = [...new Set(cells.map((c) => c.path))];
  const targets = [...new Set(cells.map((c) => c.target))];
  const sizes = [...new Set(cells.map((c) => c.sizeBytes))].sort((a, b) => a - b);
  if (total === 0) return 'No probes to compare.';
  const s: string[] = [];
  const stall = fs.filter((f) => f.stall);
  const pathsTxt = (n: number): string => (n === 1 ? '1 path' : `${n} paths`);

  // 1. per path: threshold + path-specific, merged (thresholds to a target every path stalls to are told there)
  const done = new Set<Finding>();
  const targetWide = new Set(stall.filter((f) => f.kind === 'target-specific').map((f) => f.target));
  for (const f of stall) if (f.kind === 'size-threshold' && targetWide.has(f.target)) done.add(f);
  for (const p of paths) {
    const ps = stall.find((f) => f.kind === 'path-specific' && f.path === p);
    const th = stall.filter((f) => f.kind === 'size-threshold' && f.path === p && !done.has(f));
    if (!ps && !th.length) continue;
    if (ps) done.add(ps);
    th.forEach((f) => done.add(f));
    const thr = th.find((f) => !(f.evidence as { everySize?: boolean }).everySize);
    const ev = ps?.evidence as { stalled: number; total: number; reference: string[]; referenceStalled: number; referenceTotal: number; everySize: boolean; fromBytes?: number; sizes: number[]; targets: string[]; mode: string; stalledStages: Record<string, number> } | undefined;
    const stagesRec = (ev?.stalledStages ?? (thr?.evidence as { stalledStages?: Record<string, number> } | undefined)?.stalledStages ?? {}) as Record<string, number>;
    const stage = stagePhrase(Object.entries(stagesRec).flatMap(([k, n]) => Array<Stage>(n).fill(k as Stage)));
    const toT = targets.length > 1 && ev && ev.targets.length < targets.length ? ` to ${joinAnd(ev.targets)}` : thr && targets.length > 1 && th.length === 1 ? ` to ${thr.target}` : '';
    let where: string;
    if (thr && (!ev || ev.mode === 'stalling-cells')) where = `from ${formatSize(thr.sizeBytes!)} on`;
    else if (ev?.fromBytes !== undefined) where = `from ${formatSize(ev.fromBytes)} on`;
    else if (ev?.mode === 'all-cells') where = `intermittently`;
    else if (ev?.everySize || th.some((f) => (f.evidence as { everySize?: boolean }).everySize)) where = 'at every size tested';
    else where = `at ${sizeList(ev?.sizes ?? [])}`;
    let why = '';
    const share = (k: number, n: number): string => (n && k / n < 0.9 ? `, ${formatPct(k / n)}` : '');
    if (ev) why = `${ev.stalled}/${ev.total} probes${share(ev.stalled, ev.total)}; ${joinAnd(ev.reference)} ${ev.referenceStalled}/${ev.referenceTotal}, ${formatP(ps!.pValue!).replace(/ /g, '')}`;
    else if (thr) {
      const e = thr.evidence as { stalled: number; total: number; belowStalled: number; belowTotal: number };
      why = `${e.stalled}/${e.total} probes${share(e.stalled, e.total)}; smaller sizes ${e.belowStalled}/${e.belowTotal}, ${formatP(thr.pValue!).replace(/ /g, '')}`;
    } else {
      const e = th[0]!.evidence as { stalled: number; total: number };
      why = `${e.stalled}/${e.total} probes${share(e.stalled, e.total)}`;
    }
    s.push(`Path ${p} stalls ${stage}${toT} ${where} (${why}).`);
  }
  // 2. target-specific
  for (const f of stall.filter((x) => x.kind === 'target-specific')) {
    done.add(f);
    s.push(f.statement);
  }
  // 3. offsets / PMTU, phrased for the verdict; the same pattern on several paths (or targets) in one sentence
  type OffEv = { source: string; minBytes: number; maxBytes: number; medianBytes: number; mssBytes: number; pattern?: string };
  const offGroups = new Map<string, Finding[]>();
  for (const f of stall.filter((x) => x.kind === 'stall-offset' || x.kind === 'pmtu-blackhole')) {
    done.add(f);
    const e = f.evidence as OffEv;
    const k = `${f.kind}|${e.pattern ?? ''}|${e.source}`;
    pushTo(offGroups, k, f);
  }
  const subjects = (g: Finding[]): { on: string; something: string } => {
    const ps = g.filter((f) => f.path).map((f) => f.path!);
    const ts = g.filter((f) => !f.path && f.target).map((f) => f.target!);
    const parts: string[] = [];
    if (ps.length) parts.push(`on ${joinAnd(ps)}`);
    if (ts.length) parts.push(`between the senders and ${joinAnd(ts)}`);
    return { on: parts.join(' and '), something: `something ${parts.join(' and ')}` };
  };
  for (const g of offGroups.values()) {
    const es = g.map((f) => f.evidence as OffEv);
    const e0 = es[0]!;
    const min = Math.min(...es.map((e) => e.minBytes));
    const max = Math.max(...es.map((e) => e.maxBytes));
    const med = median(es.map((e) => e.medianBytes));
    const which = e0.source === 'sink' ? 'received' : e0.source === 'bytesAcked' ? 'acknowledged' : 'written';
    const sub = subjects(g);
    if (g[0]!.kind === 'pmtu-blackhole') s.push(`Transfers ${sub.on} stop before the first full-size segment gets through (${sizeRange(min, max)} ${which}, MSS ${e0.mssBytes}): a PMTU blackhole — check MTU / MSS clamping there.`);
    else if (e0.pattern === 'complete')
      s.push(
        e0.source === 'sink'
          ? `${sub.on.charAt(0).toUpperCase()}${sub.on.slice(1)} the receiver got the whole message but no final reply came back.`
          : `${sub.on.charAt(0).toUpperCase()}${sub.on.slice(1)} the whole message was acknowledged at the TCP level but no final reply came: the server, or a proxy / load balancer in front of it, took the data and went silent.`,
      );
    else s.push(`Transfers stop at ${sizeRange(min, max)} ${which} regardless of message size: ${sub.something} stops passing data after ~${approxSize(med)}.`);
  }
  // 4. mechanism, one sentence per mechanism
  for (const mech of ['lost-segments', 'window-closed']) {
    const g = stall.filter((x) => x.kind === 'mechanism' && (x.evidence as { mechanism: string }).mechanism === mech);
    if (!g.length) continue;
    g.forEach((f) => done.add(f));
    const probes = g.reduce((a, f) => a + (f.evidence as { probes: number }).probes, 0);
    const snaps = g.reduce((a, f) => a + (f.evidence as { snapshots: number }).snapshots, 0);
    s.push(
      mech === 'lost-segments'
        ? `The kernel shows the data sent but never acknowledged, with retransmissions (${probes}/${snaps} stalled probes): it is lost on the way.`
        : `The kernel shows the receiver's window closed with no retransmissions (${probes}/${snaps} stalled probes): the receiver, or a middlebox rewriting TCP windows, stopped the flow.`,
    );
  }
  for (const f of stall) if (!done.has(f)) s.push(f.statement);

  // 5. clean sizes, or the clean-run sentence
  const stalledTotal = cells.reduce((a, c) => a + c.stalled, 0);
  if (stall.length) {
    const stallSizes = new Set(stall.map((f) => f.sizeBytes).filter((v): v is number => v !== undefined));
    const first = stallSizes.size ? Math.min(...stallSizes) : Infinity;
    let clean: number | undefined;
    for (const sz of sizes) {
      if (sz >= first) break;
      if (cells.filter((c) => c.sizeBytes === sz).every((c) => c.stalled === 0)) clean = sz;
      else break;
    }
    if (clean !== undefined) {
      const on = paths.length === 1 ? '' : paths.length === 2 ? ' on both paths' : ` on all ${paths.length} paths`;
      s.push(`Sizes up to ${formatSize(clean)} are clean${on}.`);
    }
  } else if (stalledTotal === 0) {
    const delivered = cells.reduce((a, c) => a + c.delivered, 0);
    // probes that could have stalled in the body: delivered ones and those that got as far as the body
    const basis = cells.reduce((a, c) => a + Math.max(c.delivered, c.stages.data?.n ?? 0), 0);
    const per = Math.round(median(cells.map((c) => c.total)));
    const head = `No stalls: ${total} probes over ${pathsTxt(paths.length)}, ${targets.length === 1 ? '1 target' : `${targets.length} targets`} and ${sizes.length === 1 ? '1 size' : `${sizes.length} sizes`} (${sizeList(sizes)})${delivered < total ? `, ${delivered} delivered` : ''}`;
    if (basis === 0) s.push(`${head}; no probe got as far as the message body, so nothing says whether messages would stall.`);
    else
      s.push(
        `${head}; the stall rate is below ${formatPct(wilson(0, basis)[1])} (95% upper bound${basis < total ? ` over the ${basis} probes that reached the body` : ''})${per < 5 ? `, but with ${per} probe${per > 1 ? 's' : ''} per cell a single cell could still stall up to ${formatPct(wilson(0, per)[1])} of the time` : ''}.`,
      );
  } else {
    s.push(
      fs.some((f) => f.kind === 'insufficient-data')
        ? `No established stall pattern: ${stalledTotal} of ${total} probes stalled.`
        : `No stall pattern: ${stalledTotal} of ${total} probes stalled, scattered with no pattern by path, size or target (${formatPct(stalledTotal / total)}).`,
    );
  }

  // 6. what else: rejections, timeouts, slowness, doubt
  const other = fs.filter((f) => !f.stall && f.kind !== 'scattered-stalls');
  for (const f of other.slice(0, 4)) s.push(f.statement.replace(/^Possibly: /, 'Possibly: '));
  if (other.length > 4) s.push(`(${other.length - 4} more findings below.)`);
  const scattered = fs.find((f) => f.kind === 'scattered-stalls' && !f.stall);
  if (scattered && stall.length) s.push(`Besides that: ${scattered.statement.charAt(0).toLowerCase()}${scattered.statement.slice(1)}`);
  return s.join(' ');
}

/** The comparator's main entry: cells, ranked findings, the verdict. */
export function compare(results: readonly ProbeResult[], opts: CompareOptions = {}): CompareResult {
  const { cells, findings: fs } = analyse(results, opts);
  return { cells, findings: fs, verdict: verdict(fs, cells), stallFindings: fs.filter((f) => f.stall).length };
}

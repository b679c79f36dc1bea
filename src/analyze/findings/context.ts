/**
 * The comparator's shared, precomputed context: cells by key, the size series per path × target, every
 * stall pattern tested once (size regions, path contrasts, target contrasts) with its hypothesis count, the
 * stall kind of every stalled probe, and which cells the established patterns explain. The rules in this
 * folder only read it. Pure.
 */
import type { ProbeResult, StallKind } from '../../model.js';
import { type CellStats, cellKey, computeCells } from '../cells.js';
import { type Pool, type TestedDifference, pool, testDifference } from '../policy.js';
import { median, wilson } from '../stats.js';
import { stallKindOf } from './stall-kind.js';

export interface CompareOptions {
  /** Significance level of stall findings (default 0.05). */
  alpha?: number;
  /** Default MSS assumed when no snapshot reports one (default 1448: Ethernet MTU 1500 with timestamps). */
  segmentBytes?: number;
}

/** The sizes at which one path stalls to one target: from `from` on (tested against the smaller sizes), or every size. */
export interface Region {
  path: string;
  target: string;
  /** The stalling cells, ascending by size. */
  cells: CellStats[];
  /** The cells below the threshold (empty for `every`). */
  below: CellStats[];
  from: number;
  every: boolean;
  /** Split test: stalls above vs below (absent for `every`). */
  tested?: TestedDifference;
  a: Pool;
  b: Pool;
  /** Significant threshold, or every size stalling at a clear rate. */
  established: boolean;
}

/** A path against the least-stalling other path to the same target and size. */
export interface PathTest {
  path: string;
  /** `stalling-cells`: the path's stalling sizes vs the same cells elsewhere; `all-cells`: intermittent stalls. */
  mode: 'stalling-cells' | 'all-cells';
  cells: CellStats[];
  refCells: CellStats[];
  refPaths: string[];
  targets: string[];
  a: Pool;
  b: Pool;
  tested: TestedDifference;
  perCell: Array<Record<string, unknown>>;
  established: boolean;
  /** Not established, but a pattern worth more probes. */
  candidate: boolean;
}

/** Every path to one target stalls at some sizes; contrasted with other targets when there are any. */
export interface TargetTest {
  target: string;
  paths: string[];
  sizes: number[];
  cells: CellStats[];
  a: Pool;
  /** The other targets at the same sizes (absent with one target). */
  contrast?: { b: Pool; targets: string[]; tested: TestedDifference };
  established: boolean;
  candidate: boolean;
}

/** Cells an established stall finding is about, by path or by target: offsets and mechanisms are read over them. */
export interface StallGroup {
  by: 'path' | 'target';
  name: string;
  cells: CellStats[];
}

export interface Context {
  results: readonly ProbeResult[];
  cells: CellStats[];
  alpha: number;
  segmentBytes: number;
  paths: string[];
  targets: string[];
  /** Median probes per cell. */
  repeat: number;
  byCell: Map<string, ProbeResult[]>;
  cellAt: Map<string, CellStats>;
  kinds: Map<ProbeResult, StallKind | undefined>;
  /** Bonferroni factors: how many hypotheses each kind of pattern is chosen among. */
  hypotheses: { split: number; path: number; target: number; intermittent: number };
  regions: Map<string, Region>;
  pathTests: Map<string, PathTest>;
  targetTests: Map<string, TargetTest>;
  groups: StallGroup[];
  /** Cells explained by an established stall finding. */
  covered: Set<string>;
}

export const seriesKey = (path: string, target: string): string => `${path}\u0000${target}`;

export function cellOf(ctx: Pick<Context, 'cellAt'>, path: string, target: string, sizeBytes: number): CellStats | undefined {
  return ctx.cellAt.get(cellKey({ path, target, sizeBytes }));
}

export function probesOf(ctx: Pick<Context, 'byCell'>, cells: readonly CellStats[]): ProbeResult[] {
  return cells.flatMap((c) => ctx.byCell.get(cellKey(c)) ?? []);
}

export function stalledOf(ctx: Pick<Context, 'byCell'>, cells: readonly CellStats[]): ProbeResult[] {
  return probesOf(ctx, cells).filter((r) => r.outcome === 'stalled');
}

/** Most stalled probes of these cells got everything acknowledged and no reply: the far end went silent. */
export function isSilent(ctx: Pick<Context, 'byCell' | 'kinds'>, cells: readonly CellStats[]): boolean {
  const st = stalledOf(ctx, cells);
  return st.length > 0 && st.filter((r) => ctx.kinds.get(r) === 'no-reply').length * 2 > st.length;
}

export function regionOfCell(ctx: Pick<Context, 'regions'>, c: CellStats): Region | undefined {
  const rg = ctx.regions.get(seriesKey(c.path, c.target));
  return rg && rg.cells.includes(c) ? rg : undefined;
}

/** Each stalling cell stalls at no less than this share of the region's pooled rate (consistency). */
const CONSISTENCY = 0.35;

const rate = (p: Pool): number => (p.total ? p.stalled / p.total : 0);

/** A threshold (best split by Fisher's test) or every size; undefined when the series has no consistent stalls. */
function regionOf(series: CellStats[], hypotheses: number, alpha: number): Region | undefined {
  if (!series.length || !series.some((c) => c.stalled > 0)) return undefined;
  const { path, target } = series[0]!;
  let best: { i: number; t: TestedDifference; a: Pool; b: Pool } | undefined;
  for (let i = 1; i < series.length; i++) {
    const above = series.slice(i);
    const a = pool(above);
    const b = pool(series.slice(0, i));
    if (rate(a) <= rate(b)) continue;
    if (!above.every((c) => c.stalled > 0 && c.stallRate >= CONSISTENCY * rate(a))) continue;
    const t = testDifference(a, b, hypotheses, alpha);
    if (!best || t.pValueRaw < best.t.pValueRaw) best = { i, t, a, b };
  }
  const all = pool(series);
  const everyOk = series.every((c) => c.stalled > 0 && c.stallRate >= CONSISTENCY * rate(all));
  if (best && (best.t.significant || !everyOk)) {
    return { path, target, cells: series.slice(best.i), below: series.slice(0, best.i), from: series[best.i]!.sizeBytes, every: false, tested: best.t, a: best.a, b: best.b, established: best.t.significant };
  }
  if (!everyOk) return undefined;
  return { path, target, cells: series, below: [], from: series[0]!.sizeBytes, every: true, a: all, b: { stalled: 0, total: 0 }, established: wilson(all.stalled, all.total)[0] > 0.2 };
}

type Base = Omit<Context, 'pathTests' | 'targetTests' | 'groups' | 'covered'>;

/** The path's stalling cells against the least-stalling other path at the same (target, size). */
function stallingCellsTest(ctx: Base, p: string): Omit<PathTest, 'established' | 'candidate' | 'tested' | 'targets'> | undefined {
  const cells: CellStats[] = [];
  const refCells: CellStats[] = [];
  const perCell: Array<Record<string, unknown>> = [];
  for (const c of ctx.cells) {
    if (c.path !== p || !(regionOfCell(ctx, c) || c.stalled * 2 > c.total)) continue;
    const others = ctx.paths.filter((q) => q !== p).map((q) => cellOf(ctx, q, c.target, c.sizeBytes)).filter((x): x is CellStats => !!x);
    if (!others.length) continue;
    const ref = others.reduce((best, x) => (x.stallRate < best.stallRate || (x.stallRate === best.stallRate && x.total > best.total) ? x : best));
    if (ref.stallRate >= c.stallRate) continue;
    cells.push(c);
    refCells.push(ref);
    const t = testDifference(c, ref, 1, ctx.alpha);
    perCell.push({ target: c.target, sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total, reference: ref.path, referenceStalled: ref.stalled, referenceTotal: ref.total, pValue: t.pValueRaw });
  }
  if (!cells.length) return undefined;
  return { path: p, mode: 'stalling-cells', cells, refCells, refPaths: [...new Set(refCells.map((r) => r.path))], a: pool(cells), b: pool(refCells), perCell };
}

/** No stalling region: intermittent stalls over every cell shared with the least-stalling other path. */
function allCellsTest(ctx: Base, p: string): Omit<PathTest, 'established' | 'candidate' | 'tested' | 'targets'> | undefined {
  let best: Omit<PathTest, 'established' | 'candidate' | 'tested' | 'targets'> | undefined;
  for (const q of ctx.paths) {
    if (q === p) continue;
    const cells: CellStats[] = [];
    const refCells: CellStats[] = [];
    for (const c of ctx.cells) {
      const o = c.path === p ? cellOf(ctx, q, c.target, c.sizeBytes) : undefined;
      if (o) {
        cells.push(c);
        refCells.push(o);
      }
    }
    if (!cells.length) continue;
    const b = pool(refCells);
    if (!best || rate(b) < rate(best.b)) best = { path: p, mode: 'all-cells', cells, refCells, refPaths: [q], a: pool(cells), b, perCell: [] };
  }
  if (!best || best.a.stalled === 0 || rate(best.a) <= rate(best.b)) return undefined;
  return best;
}

function pathTest(ctx: Base, p: string): PathTest | undefined {
  const base = stallingCellsTest(ctx, p) ?? allCellsTest(ctx, p);
  if (!base) return undefined;
  const { a, b, mode } = base;
  const tested = testDifference(a, b, mode === 'all-cells' ? ctx.hypotheses.intermittent : ctx.hypotheses.path, ctx.alpha);
  const established = tested.significant && (mode === 'stalling-cells' || rate(a) > 0.05);
  // a possible pattern (intermittent stalls at a noise level of a few % are "scattered", not this)
  const candidate =
    !established && a.stalled >= 2 && (mode === 'all-cells' ? rate(a) > 0.05 && a.stalled * b.total >= 2 * b.stalled * a.total : a.stalled * 2 >= a.total);
  return { ...base, targets: [...new Set(base.cells.map((c) => c.target))], tested, established, candidate };
}

function targetTest(ctx: Base, t: string): TargetTest | undefined {
  const tCells = ctx.cells.filter((c) => c.target === t);
  const paths = [...new Set(tCells.map((c) => c.path))];
  if (paths.length < 2 && ctx.targets.length < 2) return undefined;
  const sizes = [...new Set(tCells.map((c) => c.sizeBytes))].sort((x, y) => x - y).filter((s) => {
    const cs = tCells.filter((c) => c.sizeBytes === s);
    return paths.every((q) => cs.some((c) => c.path === q && regionOfCell(ctx, c)));
  });
  if (!sizes.length) return undefined;
  const cells = tCells.filter((c) => sizes.includes(c.sizeBytes));
  const a = pool(cells);
  const contrastCells = ctx.cells.filter((c) => c.target !== t && sizes.includes(c.sizeBytes) && paths.includes(c.path));
  if (contrastCells.length) {
    const b = pool(contrastCells);
    if (b.stalled * 2 >= (a.stalled * b.total) / a.total) return undefined; // other targets stall about as much
    const tested = testDifference(a, b, ctx.hypotheses.target, ctx.alpha);
    const contrast = { b, targets: [...new Set(contrastCells.map((c) => c.target))], tested };
    return { target: t, paths, sizes, cells, a, contrast, established: tested.significant, candidate: !tested.significant };
  }
  if (paths.length < 2) return undefined;
  // a single target: nothing to contrast with; the stall itself must be well established
  return { target: t, paths, sizes, cells, a, established: wilson(a.stalled, a.total)[0] > 0.2, candidate: false };
}

/** A region the size-threshold rule reports as a stall (the path and target findings tell the rest). */
export function thresholdReported(ctx: Pick<Context, 'pathTests' | 'targetTests' | 'byCell' | 'kinds'>, rg: Region): boolean {
  if (!rg.established) return false;
  if (rg.every && (ctx.pathTests.get(rg.path)?.established || ctx.targetTests.get(rg.target)?.established)) return false;
  // the far end went silent and no other path gets replies: the no-reply rule speaks, not as a stall
  return !isSilent(ctx, rg.cells) || !!ctx.pathTests.get(rg.path)?.established;
}

/** An established target pattern that is a network stall (a silent target is the no-reply rule's). */
export function targetStallReported(ctx: Pick<Context, 'byCell' | 'kinds'>, tt: TargetTest | undefined): tt is TargetTest {
  return !!tt?.established && !isSilent(ctx, tt.cells);
}

function coverage(ctx: Omit<Context, 'groups' | 'covered'>): { groups: StallGroup[]; covered: Set<string> } {
  const covered = new Set<string>();
  const groups: StallGroup[] = [];
  const cover = (by: StallGroup['by'], name: string, cs: readonly CellStats[]): void => {
    const fresh = cs.filter((c) => !covered.has(cellKey(c)));
    for (const c of fresh) covered.add(cellKey(c));
    if (!fresh.length) return;
    const g = groups.find((x) => x.by === by && x.name === name);
    if (g) g.cells.push(...fresh);
    else groups.push({ by, name, cells: fresh });
  };
  for (const pt of ctx.pathTests.values()) {
    if (pt.established) cover('path', pt.path, pt.mode === 'stalling-cells' ? pt.cells : pt.cells.filter((c) => c.stalled > 0));
  }
  for (const tt of ctx.targetTests.values()) if (targetStallReported(ctx, tt)) cover('target', tt.target, tt.cells);
  for (const rg of ctx.regions.values()) if (thresholdReported(ctx, rg)) cover('path', rg.path, rg.cells);
  return { groups, covered };
}

/** The cells of each (path, target), by series key. */
function seriesOf(cells: readonly CellStats[]): Map<string, CellStats[]> {
  const series = new Map<string, CellStats[]>();
  for (const c of cells) {
    const l = series.get(seriesKey(c.path, c.target));
    if (l) l.push(c);
    else series.set(seriesKey(c.path, c.target), [c]);
  }
  return series;
}

/** How many hypotheses each kind of pattern is chosen among: the Bonferroni factors of policy.ts. */
function hypothesesOf(series: Map<string, CellStats[]>, paths: number, targets: number): Context['hypotheses'] {
  const nSizes = Math.max(1, ...[...series.values()].map((s) => s.length));
  return {
    split: Math.max(1, (nSizes - 1) * series.size),
    path: Math.max(1, nSizes * paths),
    target: Math.max(1, nSizes * targets),
    intermittent: Math.max(1, paths),
  };
}

export function buildContext(results: readonly ProbeResult[], opts: CompareOptions = {}): Context {
  const alpha = opts.alpha ?? 0.05;
  const segmentBytes = opts.segmentBytes ?? 1448;
  const cells = computeCells(results);
  const byCell = new Map<string, ProbeResult[]>();
  for (const r of results) {
    const l = byCell.get(cellKey(r));
    if (l) l.push(r);
    else byCell.set(cellKey(r), [r]);
  }
  const paths = [...new Set(cells.map((c) => c.path))].sort();
  const targets = [...new Set(cells.map((c) => c.target))].sort();
  const series = seriesOf(cells);
  const hypotheses = hypothesesOf(series, paths.length, targets.length);
  const kinds = new Map(results.filter((r) => r.outcome === 'stalled').map((r) => [r, stallKindOf(r, segmentBytes)] as const));
  const base: Base = {
    results, cells, alpha, segmentBytes, paths, targets, byCell, kinds, hypotheses,
    repeat: Math.round(median(cells.map((c) => c.total))) || 1,
    cellAt: new Map(cells.map((c) => [cellKey(c), c])),
    regions: new Map(),
  };
  for (const t of targets) {
    for (const p of paths) {
      const s = (series.get(seriesKey(p, t)) ?? []).sort((x, y) => x.sizeBytes - y.sizeBytes);
      const rg = regionOf(s, hypotheses.split, alpha);
      if (rg) base.regions.set(seriesKey(p, t), rg);
    }
  }
  const pathTests = new Map<string, PathTest>();
  if (paths.length > 1) for (const p of paths) {
    const pt = pathTest(base, p);
    if (pt) pathTests.set(p, pt);
  }
  const targetTests = new Map<string, TargetTest>();
  for (const t of targets) {
    const tt = targetTest(base, t);
    if (tt) targetTests.set(t, tt);
  }
  const withTests = { ...base, pathTests, targetTests };
  return { ...withTests, ...coverage(withTests) };
}

/**
 * insufficient-data: a stall pattern that is there but not significant after correction, with the probes per cell
 * that would settle it; or one with nothing clean to compare with. One doubt per path (or target), and only where
 * no established finding explains it.
 */
import type { Finding } from '../../model.js';
import { formatSize } from '../../units.js';
import type { CellStats } from '../cells.js';
import { type Pool, frac, probesNeeded } from '../policy.js';
import { score } from '../ranking.js';
import { formatP } from '../stats.js';
import { joinAnd, stagePhrase } from '../text.js';
import { type Context, stalledOf, thresholdReported } from './context.js';
import { pathWhere } from './path-specific.js';
import { pathsWord, targetWhere } from './target-specific.js';

/** A pattern before (or without) the significance call. */
export interface Doubt {
  kind: 'size-threshold' | 'path-specific' | 'target-specific';
  path?: string;
  target?: string;
  sizeBytes?: number;
  /** Adjusted p; 1 when there is nothing to compare with. */
  p: number;
  hypotheses: number;
  a: Pool;
  b: Pool;
  cellsA: number;
  cellsB: number;
  describe: string;
  cells: CellStats[];
}

function pathDoubts(ctx: Context): Doubt[] {
  return [...ctx.pathTests.values()].filter((pt) => pt.candidate).map((pt) => {
    const stage = stagePhrase(stalledOf(ctx, pt.cells).map((r) => r.stage));
    const toT = ctx.targets.length > 1 ? ` to ${joinAnd(pt.targets)}` : '';
    const describe = `path ${pt.path} stalls ${stage}${toT} ${pathWhere(ctx, pt).where} (${frac(pt.a)}; ${joinAnd(pt.refPaths)} ${frac(pt.b)})`;
    return { kind: 'path-specific', path: pt.path, p: pt.tested.pValue, hypotheses: pt.tested.hypotheses, a: pt.a, b: pt.b, cellsA: pt.cells.length, cellsB: pt.refCells.length, describe, cells: pt.cells };
  });
}

function targetDoubts(ctx: Context): Doubt[] {
  const out: Doubt[] = [];
  for (const tt of ctx.targetTests.values()) {
    if (!tt.candidate || !tt.contrast) continue;
    const { b, tested } = tt.contrast;
    const describe = `${pathsWord(tt.paths)} stall to ${tt.target} ${targetWhere(ctx, tt)} (${frac(tt.a)}; other targets ${frac(b)})`;
    out.push({ kind: 'target-specific', target: tt.target, p: tested.pValue, hypotheses: tested.hypotheses, a: tt.a, b, cellsA: tt.cells.length, cellsB: tt.cells.length, describe, cells: tt.cells });
  }
  return out;
}

function thresholdDoubts(ctx: Context): Doubt[] {
  const out: Doubt[] = [];
  for (const rg of ctx.regions.values()) {
    if (rg.established || rg.a.stalled < 2 || rg.a.stalled * 2 < rg.a.total) continue;
    const toT = ctx.targets.length > 1 ? ` to ${rg.target}` : '';
    const base = { kind: 'size-threshold' as const, path: rg.path, target: rg.target, a: rg.a, b: rg.b, cellsA: rg.cells.length, cells: rg.cells };
    if (rg.every) {
      if (ctx.pathTests.get(rg.path)?.established || ctx.targetTests.get(rg.target)?.established) continue;
      out.push({ ...base, p: 1, hypotheses: 1, cellsB: 0, describe: `path ${rg.path} stalls${toT} at every size tested (${frac(rg.a)})` });
    } else {
      const t = rg.tested!;
      out.push({ ...base, sizeBytes: rg.from, p: t.pValue, hypotheses: t.hypotheses, cellsB: rg.below.length, describe: `path ${rg.path} stalls${toT} from ${formatSize(rg.from)} on (${frac(rg.a)} vs ${frac(rg.b)} below)` });
    }
  }
  return out;
}

const RANK = { 'path-specific': 0, 'target-specific': 1, 'size-threshold': 2 } as const;

/** The doubts worth reporting, each with the probes per cell that would settle it (undefined: nothing to compare with). */
export function doubts(ctx: Context): Array<{ doubt: Doubt; need?: number }> {
  const all = [...pathDoubts(ctx), ...targetDoubts(ctx), ...thresholdDoubts(ctx)].sort((x, y) => RANK[x.kind] - RANK[y.kind] || x.p - y.p);
  const thresholdFor = new Set([...ctx.regions.values()].filter((rg) => thresholdReported(ctx, rg)).map((rg) => rg.path));
  const seen = new Set<string>();
  const out: Array<{ doubt: Doubt; need?: number }> = [];
  for (const k of all) {
    // only where no established finding already explains this path / target
    if (k.path && (ctx.pathTests.get(k.path)?.established || thresholdFor.has(k.path))) continue;
    if (k.target && !k.path && ctx.targetTests.get(k.target)?.established) continue;
    // one doubt per path (a path's threshold and its difference from other paths are the same pattern)
    const key = k.path ? `p\u0000${k.path}` : `t\u0000${k.target}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const pa = k.a.total ? k.a.stalled / k.a.total : 0;
    const pb = k.b.total ? k.b.stalled / k.b.total : 0;
    if (pa <= pb || k.a.stalled === 0) continue;
    // only a suggestive pattern is worth more probes: by itself (before correction) at least p <= 0.1
    if (k.cellsB > 0 && k.p / k.hypotheses > 0.1 + 1e-9) continue;
    if (k.cellsB === 0) {
      out.push({ doubt: k });
      continue;
    }
    const need = probesNeeded(pa, k.cellsA, pb, k.cellsB, ctx.repeat, k.hypotheses, ctx.alpha);
    // a difference no reasonable number of probes would establish is not a pattern: its stalls are "scattered"
    if (need !== undefined) out.push({ doubt: k, need });
  }
  return out;
}

function finding(ctx: Context, k: Doubt, need: number | undefined): Finding {
  const more = need !== undefined ? need - ctx.repeat : undefined;
  const statement =
    need === undefined
      ? `Possibly: ${k.describe}, but there is nothing clean to compare with; add smaller sizes or another path.`
      : `Possibly: ${k.describe}, but ${formatP(k.p)} is not significant: ${more} more probe${more! > 1 ? 's' : ''} per cell (${need} per cell) would make it significant at p<${ctx.alpha} if the pattern holds.`;
  return {
    kind: 'insufficient-data',
    stall: false,
    score: score('insufficient-data'),
    ...(k.path ? { path: k.path } : {}),
    ...(k.target ? { target: k.target } : {}),
    ...(k.sizeBytes !== undefined ? { sizeBytes: k.sizeBytes } : {}),
    statement,
    evidence: {
      pattern: k.kind, stalled: k.a.stalled, total: k.a.total, comparisonStalled: k.b.stalled, comparisonTotal: k.b.total,
      probesPerCell: ctx.repeat, probesPerCellNeeded: need, moreProbesPerCell: more,
      ...(k.cellsB ? { pValueRaw: Math.min(1, k.p / k.hypotheses), hypotheses: k.hypotheses } : {}),
    },
    ...(k.cellsB ? { pValue: k.p } : {}),
  };
}

export function insufficientData(ctx: Context): Finding[] {
  return doubts(ctx).map(({ doubt, need }) => finding(ctx, doubt, need));
}

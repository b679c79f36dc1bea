/**
 * path-specific: a path stalls where another path to the same target, at the same size, does not. When the
 * stalled probes got everything acknowledged and no reply, the far end of that path went silent while the other
 * paths get replies: a TCP-terminating device on the path swallows the data.
 */
import type { Finding } from '../../model.js';
import { formatMs, formatSize } from '../../units.js';
import { frac } from '../policy.js';
import { score } from '../ranking.js';
import { formatP, formatPct } from '../stats.js';
import { joinAnd, sizeList, stagePhrase, stageSplit } from '../text.js';
import { closedWindowSizes, closedWindowText, kindCounts, pctOf, receiverGotAll, replyMs, silentWhat, stageCounts } from './common.js';
import { type Context, type PathTest, isSilent, seriesKey, stalledOf } from './context.js';

/** `from 64KiB on`, `at every size tested`, `intermittently (20% of probes)`, `at 64KiB`. */
export function pathWhere(ctx: Context, pt: PathTest): { where: string; everySize: boolean; fromBytes?: number; sizes: number[] } {
  const sizes = [...new Set(pt.cells.map((c) => c.sizeBytes))].sort((x, y) => x - y);
  if (pt.mode === 'all-cells') return { where: `intermittently (${formatPct(pt.a.stalled / pt.a.total)} of probes)`, everySize: false, sizes };
  const allSizes = new Set(ctx.cells.filter((c) => c.path === pt.path && pt.targets.includes(c.target)).map((c) => c.sizeBytes));
  if (sizes.length === allSizes.size) return { where: 'at every size tested', everySize: true, sizes };
  const froms = [...new Set(pt.targets.map((t) => ctx.regions.get(seriesKey(pt.path, t))).filter((r) => !!r && !r.every).map((r) => r!.from))];
  if (froms.length === 1 && sizes.every((s) => s >= froms[0]!)) return { where: `from ${formatSize(froms[0]!)} on`, everySize: false, fromBytes: froms[0]!, sizes };
  return { where: `at ${sizeList(sizes)}`, everySize: false, sizes };
}

function silentStatement(ctx: Context, pt: PathTest, head: string): { statement: string; replyMs?: number } {
  const stalled = stalledOf(ctx, pt.cells);
  const { stage } = stageSplit(stalled.map((r) => r.stage));
  const refs = joinAnd(pt.refPaths);
  const ms = stage ? replyMs(ctx, pt.refCells, stage) : undefined;
  const others = `${refs} ${pt.refPaths.length > 1 ? 'get' : 'gets'} ${stage === 'greeting' ? 'a greeting' : 'replies'}${ms !== undefined ? ` in ${formatMs(ms)}` : ''}`;
  if (receiverGotAll(ctx, pt.cells)) {
    return { statement: `${head}: the receiver got the whole message but its reply never came back over ${pt.path}; ${others}.`, ...(ms !== undefined ? { replyMs: ms } : {}) };
  }
  return {
    statement: `${head}; ${others}: a TCP-terminating device on ${pt.path} (a proxy or load balancer) swallows what the server would answer.${closedWindowText(closedWindowSizes(ctx, stalled))}`,
    ...(ms !== undefined ? { replyMs: ms } : {}),
  };
}

function finding(ctx: Context, pt: PathTest): Finding {
  const stalled = stalledOf(ctx, pt.cells);
  const stage = stagePhrase(stalled.map((r) => r.stage));
  const toTargets = ctx.targets.length > 1 ? ` to ${joinAnd(pt.targets)}` : '';
  const w = pathWhere(ctx, pt);
  const { a, b, tested } = pt;
  const counts = `${frac(a)} probes${pctOf(a)} vs ${frac(b)}, ${formatP(tested.pValue)}`;
  const silent = isSilent(ctx, pt.cells);
  const { stage: st } = stageSplit(stalled.map((r) => r.stage));
  const s = silent
    ? silentStatement(ctx, pt, `Path ${pt.path}: the far end ${silentWhat(st)}${toTargets} ${w.where} (${frac(a)} probes${pctOf(a)}; ${joinAnd(pt.refPaths)} ${frac(b)}, ${formatP(tested.pValue)}; every byte acknowledged, no reply)`)
    : { statement: `Path ${pt.path} stalls ${stage}${toTargets} ${w.where} where ${joinAnd(pt.refPaths)} does not: ${counts}.` };
  return {
    kind: 'path-specific',
    stall: true,
    score: score('path-specific', tested.pValue),
    path: pt.path,
    ...(pt.targets.length === 1 ? { target: pt.targets[0] } : {}),
    ...(pt.mode === 'stalling-cells' ? { sizeBytes: Math.min(...w.sizes) } : {}),
    statement: s.statement,
    evidence: {
      mode: pt.mode,
      stalled: a.stalled,
      total: a.total,
      reference: pt.refPaths,
      referenceStalled: b.stalled,
      referenceTotal: b.total,
      everySize: w.everySize,
      ...(w.fromBytes !== undefined ? { fromBytes: w.fromBytes } : {}),
      sizes: w.sizes,
      targets: pt.targets,
      stalledStages: stageCounts(stalled),
      stallKinds: kindCounts(ctx, stalled),
      silent,
      ...(silent ? { receiverGotAll: receiverGotAll(ctx, pt.cells), windowClosedSizes: closedWindowSizes(ctx, stalled) } : {}),
      ...(s.replyMs !== undefined ? { referenceReplyMs: s.replyMs } : {}),
      ...(pt.mode === 'stalling-cells' ? { cells: pt.perCell } : {}),
      test: tested.test,
      correction: tested.correction,
      pValueRaw: tested.pValueRaw,
      hypotheses: tested.hypotheses,
    },
    pValue: tested.pValue,
  };
}

export function pathSpecific(ctx: Context): Finding[] {
  return [...ctx.pathTests.values()].filter((pt) => pt.established).map((pt) => finding(ctx, pt));
}

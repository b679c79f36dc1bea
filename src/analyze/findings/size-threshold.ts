/**
 * size-threshold: per (path, target), the size from which a path stalls, tested against the smaller sizes; or
 * "every size tested" when no size is clean (then only when no path or target finding already says it).
 */
import type { Finding } from '../../model.js';
import { formatSize } from '../../units.js';
import { frac, pool } from '../policy.js';
import { score } from '../ranking.js';
import { formatP, wilson } from '../stats.js';
import { sizeList, stagePhrase, stageSplit } from '../text.js';
import { kindCounts, pctOf, silentWhat, stageCounts } from './common.js';
import { type Context, type Region, isSilent, stalledOf, thresholdReported } from './context.js';

function everySize(ctx: Context, rg: Region, what: string, toT: string): Finding {
  const { a, cells } = rg;
  return {
    kind: 'size-threshold',
    stall: true,
    score: score('size-threshold') - 5,
    path: rg.path,
    target: rg.target,
    sizeBytes: cells[0]!.sizeBytes,
    statement: `Path ${rg.path} ${what}${toT} at every size tested, from ${formatSize(cells[0]!.sizeBytes)} on (${frac(a)} probes${pctOf(a)}); no size is clean — add smaller sizes (or another path) to see where it begins.`,
    evidence: {
      thresholdBytes: cells[0]!.sizeBytes, everySize: true, stalled: a.stalled, total: a.total, stallRateCi: wilson(a.stalled, a.total),
      stalledStages: stageCounts(stalledOf(ctx, cells)),
      perSize: cells.map((c) => ({ sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })),
    },
  };
}

function belowText(rg: Region): string {
  const cleanBelow = [...rg.below].reverse().find((c) => c.stalled === 0)?.sizeBytes;
  const last = rg.below[rg.below.length - 1]!;
  if (cleanBelow === last.sizeBytes) return `${formatSize(cleanBelow)} and below clean (${frac(rg.b)})`;
  if (cleanBelow !== undefined) return `${formatSize(last.sizeBytes)}: ${frac(pool([last]))}; ${formatSize(cleanBelow)} and below clean`;
  return `below: ${frac(rg.b)}`;
}

function threshold(ctx: Context, rg: Region, what: string, toT: string): Finding {
  const stalled = stalledOf(ctx, rg.cells);
  const t = rg.tested!;
  const last = rg.below[rg.below.length - 1]!;
  return {
    kind: 'size-threshold',
    stall: true,
    score: score('size-threshold', t.pValue),
    path: rg.path,
    target: rg.target,
    sizeBytes: rg.from,
    statement: `Path ${rg.path} ${what}${toT} from ${formatSize(rg.from)} on: ${frac(rg.a)} probes${pctOf(rg.a)} at ${sizeList(rg.cells.map((c) => c.sizeBytes))}; ${belowText(rg)}; ${formatP(t.pValue)}.`,
    evidence: {
      thresholdBytes: rg.from,
      largestCleanBytes: [...rg.below].reverse().find((c) => c.stalled === 0)?.sizeBytes,
      largestBelowBytes: last.sizeBytes,
      stalled: rg.a.stalled,
      total: rg.a.total,
      belowStalled: rg.b.stalled,
      belowTotal: rg.b.total,
      stalledStages: stageCounts(stalled),
      stallKinds: kindCounts(ctx, stalled),
      perSize: [...rg.below, ...rg.cells].map((c) => ({ sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total })),
      test: t.test,
      correction: t.correction,
      pValueRaw: t.pValueRaw,
      hypotheses: t.hypotheses,
    },
    pValue: t.pValue,
  };
}

export function sizeThreshold(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const rg of ctx.regions.values()) {
    if (!thresholdReported(ctx, rg)) continue;
    const stalled = stalledOf(ctx, rg.cells);
    const what = isSilent(ctx, rg.cells)
      ? `gets no reply: the far end ${silentWhat(stageSplit(stalled.map((r) => r.stage)).stage)}`
      : `stalls ${stagePhrase(stalled.map((r) => r.stage))}`;
    const toT = ctx.targets.length > 1 ? ` to ${rg.target}` : '';
    out.push(rg.every ? everySize(ctx, rg, what, toT) : threshold(ctx, rg, what, toT));
  }
  return out;
}

/**
 * target-specific: every path stalls to one target (at some sizes) while other targets are fine — the cause is at
 * or near that target. With a single target there is nothing to contrast with: the stall must be well established
 * and the statement says what a second target would tell. A target whose far end went silent is `no-reply`'s.
 */
import type { Finding } from '../../model.js';
import { formatSize } from '../../units.js';
import { frac } from '../policy.js';
import { score } from '../ranking.js';
import { formatP, wilson } from '../stats.js';
import { joinAnd, sizeList, stagePhrase } from '../text.js';
import { pctOf } from './common.js';
import { type Context, type TargetTest, stalledOf, targetStallReported } from './context.js';

/** `at every size tested`, `from 256KiB on`, `at 64KiB, 1MiB`. */
export function targetWhere(ctx: Context, tt: TargetTest): string {
  const sizes = [...new Set(ctx.cells.filter((c) => c.target === tt.target).map((c) => c.sizeBytes))].sort((x, y) => x - y);
  if (tt.sizes.length === sizes.length) return 'at every size tested';
  if (tt.sizes.every((x, i) => x === sizes[sizes.length - tt.sizes.length + i])) return `from ${formatSize(tt.sizes[0]!)} on`;
  return `at ${sizeList(tt.sizes)}`;
}

export function pathsWord(paths: readonly string[]): string {
  return paths.length === 1 ? `path ${paths[0]}` : paths.length === 2 ? 'both paths' : `all ${paths.length} paths`;
}

function finding(ctx: Context, tt: TargetTest): Finding {
  const stage = stagePhrase(stalledOf(ctx, tt.cells).map((r) => r.stage));
  const where = targetWhere(ctx, tt);
  const { a, target: t } = tt;
  const head = `Every path stalls ${stage} to ${t} ${where} (${frac(a)} probes${pctOf(a)} over ${pathsWord(tt.paths)})`;
  const base = { kind: 'target-specific' as const, stall: true, target: t, sizeBytes: tt.sizes[0]! };
  if (!tt.contrast) {
    return {
      ...base,
      score: score('target-specific') - 5,
      statement: `${head}: the cause is shared by all paths — at or near ${t}, or on the common part of the route — not on one egress path. Probe a second target to tell which.`,
      evidence: { paths: tt.paths, sizes: tt.sizes, stalled: a.stalled, total: a.total, stallRateCi: wilson(a.stalled, a.total) },
    };
  }
  const { b, targets: others, tested } = tt.contrast;
  return {
    ...base,
    score: score('target-specific', tested.pValue),
    statement: `${head}, while ${joinAnd(others)} ${others.length > 1 ? 'are' : 'is'} fine (${frac(b)}), ${formatP(tested.pValue)}: the cause is at or near ${t}, not on one egress path.`,
    evidence: {
      paths: tt.paths, sizes: tt.sizes, stalled: a.stalled, total: a.total, otherTargets: others, otherStalled: b.stalled, otherTotal: b.total,
      test: tested.test, correction: tested.correction, pValueRaw: tested.pValueRaw, hypotheses: tested.hypotheses,
    },
    pValue: tested.pValue,
  };
}

export function targetSpecific(ctx: Context): Finding[] {
  return [...ctx.targetTests.values()].filter((tt) => targetStallReported(ctx, tt)).map((tt) => finding(ctx, tt));
}

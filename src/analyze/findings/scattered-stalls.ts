/**
 * scattered-stalls: network stalls explained neither by an established finding nor by a doubt. All on one path
 * while the others are clean is a pattern too small to test ("possibly"); otherwise stalls with no pattern by path,
 * size or target, a stall finding only when the rate is clearly above noise. Silent far ends (no-reply) are the
 * no-reply rule's.
 */
import type { Finding } from '../../model.js';
import { cellKey, type CellStats } from '../cells.js';
import { score } from '../ranking.js';
import { formatPct, wilson } from '../stats.js';
import { sizeList } from '../text.js';
import { type Context, stalledOf } from './context.js';
import { doubts } from './insufficient-data.js';

const cellEvidence = (cs: CellStats[]): Array<Record<string, unknown>> =>
  cs.map((c) => ({ path: c.path, target: c.target, sizeBytes: c.sizeBytes, stalled: c.stalled, total: c.total }));

export function scatteredStalls(ctx: Context): Finding[] {
  const doubtCells = new Set(doubts(ctx).flatMap(({ doubt }) => doubt.cells.map(cellKey)));
  const loose = ctx.cells.filter((c) => c.stalled > 0 && !ctx.covered.has(cellKey(c)) && !doubtCells.has(cellKey(c)));
  const n = stalledOf(ctx, loose).filter((r) => ctx.kinds.get(r) !== 'no-reply').length;
  if (n === 0) return [];
  const all = ctx.results.length;
  const loosePaths = new Set(loose.map((c) => c.path));
  const looseTotal = loose.reduce((s, c) => s + c.total, 0);
  // concentrated: one path only, others clean, and most probes of those cells stalled (2/2, not 2/250)
  if (loosePaths.size === 1 && ctx.cells.some((c) => !loosePaths.has(c.path)) && n / Math.max(1, looseTotal) >= 0.5) {
    const path = [...loosePaths][0]!;
    const sizes = loose.map((c) => c.sizeBytes);
    return [{
      kind: 'insufficient-data',
      stall: false,
      score: score('insufficient-data'),
      path,
      statement: `Possibly: ${n} stall${n > 1 ? 's' : ''}, all on path ${path} (${n}/${looseTotal} at ${sizeList(sizes)}; the other paths clean), but too few probes to tell a pattern from chance: run more probes per cell (e.g. --repeat 10).`,
      evidence: { stalled: n, total: looseTotal, sizes: [...new Set(sizes)].sort((a, b) => a - b), cells: cellEvidence(loose) },
    }];
  }
  const ci = wilson(n, all);
  const serious = ci[0] > 0.05;
  return [{
    kind: 'scattered-stalls',
    stall: serious,
    score: serious ? score('scattered-stalls') : 20,
    statement: `${n} stall${n > 1 ? 's' : ''} in ${all} probes (${formatPct(n / all)}, 95% CI ${formatPct(ci[0])}–${formatPct(ci[1])}) spread over ${loose.length} cell${loose.length > 1 ? 's' : ''} with no pattern by path, size or target${serious ? ': intermittent stalls everywhere — look at what all paths share' : ''}.`,
    evidence: { stalled: n, total: all, stallRateCi: ci, cells: cellEvidence(loose) },
  }];
}

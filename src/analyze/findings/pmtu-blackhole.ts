/** pmtu-blackhole: stalled transfers stop before the first full-size segment of the body is through. */
import type { Finding } from '../../model.js';
import { score } from '../ranking.js';
import { sizeRange } from '../text.js';
import type { Context } from './context.js';
import { groupOffsets, isPmtuPattern, offsetEvidence } from './offsets.js';

export function pmtuBlackhole(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const g of ctx.groups) {
    const o = groupOffsets(ctx, g);
    if (!o || !isPmtuPattern(o)) continue;
    out.push({
      kind: 'pmtu-blackhole',
      stall: true,
      score: score('pmtu-blackhole'),
      ...o.where,
      statement: `${o.on}, stalled transfers stop before the first full-size segment of the body is through (${sizeRange(o.minBytes, o.maxBytes)} of the body ${o.which}; MSS ${o.mssBytes}): the PMTU blackhole pattern — full-size packets are dropped and no ICMP "fragmentation needed" comes back. Check the MTU / MSS clamping on ${g.by === 'path' ? 'this path' : 'the way there'}.`,
      evidence: offsetEvidence(o),
    });
  }
  return out;
}

/**
 * stall-offset: where stalled transfers stop — at the same offset whatever the message size (something passes
 * only so many bytes), or after the whole message (the far end took it and went silent).
 */
import type { Finding } from '../../model.js';
import { score } from '../ranking.js';
import { approxSize, sizeList, sizeRange } from '../text.js';
import type { Context } from './context.js';
import { type GroupOffsets, groupOffsets, isPmtuPattern, offsetEvidence } from './offsets.js';

function complete(o: GroupOffsets): Finding {
  const range = sizeRange(o.minBytes, o.maxBytes);
  return {
    kind: 'stall-offset',
    stall: true,
    score: score('stall-offset'),
    ...o.where,
    statement:
      o.source === 'sink'
        ? `${o.on}, the receiver got the whole message (${range}) but no final reply came back: the receiving server stalled after the data, or its reply was lost on the way back.`
        : `${o.on}, the whole message was acknowledged at the TCP level (${range}) but no final reply came: whatever holds the other end of the connection — the server, or a proxy / load balancer in front of it — took the data and went silent. What the receiving server saw (a sink's record) tells which.`,
    evidence: { ...offsetEvidence(o), pattern: 'complete' },
  };
}

function cluster(o: GroupOffsets): Finding {
  return {
    kind: 'stall-offset',
    stall: true,
    score: score('stall-offset'),
    ...o.where,
    statement: `${o.on}, transfers stop at ${sizeRange(o.minBytes, o.maxBytes)} ${o.which} regardless of message size (${sizeList(o.sizes)}): ${o.something} stops passing data after ~${approxSize(o.medianBytes)}.`,
    evidence: { ...offsetEvidence(o), pattern: 'cluster' },
  };
}

export function stallOffset(ctx: Context): Finding[] {
  const out: Finding[] = [];
  for (const g of ctx.groups) {
    const o = groupOffsets(ctx, g);
    if (!o || isPmtuPattern(o)) continue;
    const nearFull = o.probes.every((x) => x.bytes >= x.r.sizeBytes * 0.98);
    if (nearFull && o.source !== 'bytesWritten') out.push(complete(o));
    else if (o.sizes.length >= 2 && o.maxBytes - o.minBytes <= Math.max(0.25 * o.medianBytes, 4096) && o.medianBytes < 0.9 * o.sizes[o.sizes.length - 1]!) out.push(cluster(o));
  }
  return out;
}

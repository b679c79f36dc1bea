/**
 * kernel-unread: stalls judged without the kernel's view (`progressFrom: 'socket'`: not Linux, no `ss`). Counted
 * from our own socket, a slow path looks exactly like a stall that grows with message size — the very signal this
 * tool looks for — so every such stall is named, with how many, before anyone acts on a stall finding built on them.
 */
import type { Finding } from '../../model.js';
import { score } from '../ranking.js';
import { countBy, top } from '../text.js';
import type { Context } from './context.js';

export function kernelUnread(ctx: Context): Finding[] {
  const stalled = ctx.results.filter((r) => r.outcome === 'stalled');
  const blind = stalled.filter((r) => r.progressFrom === 'socket');
  if (!blind.length) return [];
  const why = top(countBy(blind, (r) => r.tcpUnavailable));
  const paths = [...new Set(blind.map((r) => r.path))].sort();
  return [
    {
      kind: 'kernel-unread',
      stall: false,
      score: score('kernel-unread'),
      statement:
        `${blind.length} of ${stalled.length} stalled probes (on ${paths.join(', ')}) were judged without the kernel's view` +
        `${why ? ` (${why})` : ''}: progress was counted from our own socket, where a slow path looks like a stall. ` +
        'Stall findings that rest on them are not evidence of loss; probe again from Linux with ss (iproute2).',
      evidence: { probes: blind.length, stalled: stalled.length, paths, reason: why },
    },
  ];
}

/**
 * What happened to a cell's probes, for the report's colours: delivered, a stall of each kind, a rejection, a
 * timeout, or another failure — the dominant way its probes did not deliver. The same palette serves the heatmap,
 * the time axis and their legends. Pure.
 */
import type { CellStats } from '../analyze/cells.js';
import { stallKindOf } from '../analyze/findings/stall-kind.js';
import type { ProbeResult } from '../model.js';

export const WHATS = ['delivered', 'no-ack', 'window-closed', 'no-reply', 'stalled', 'rejected', 'timeout', 'failed'] as const;
export type What = (typeof WHATS)[number];

export const WHAT_LABEL: Record<What, string> = {
  delivered: 'delivered',
  'no-ack': 'stalled: no ACK (lost on the way)',
  'window-closed': 'stalled: window closed',
  'no-reply': 'stalled: no reply (far end silent)',
  stalled: 'stalled (no TCP evidence)',
  rejected: 'rejected (4xx/5xx)',
  timeout: 'timeout (slow, still moving)',
  failed: 'other failure (reset, refused, TLS, …)',
};

/** [full colour, pale colour for a cell where some probes delivered]. */
export const WHAT_COLOR: Record<What, [string, string]> = {
  delivered: ['#bfe3c6', '#bfe3c6'],
  'no-ack': ['#b42318', '#f4b7b0'],
  'window-closed': ['#6a1b9a', '#dcc4ea'],
  'no-reply': ['#d9590b', '#ffd3b3'],
  stalled: ['#7a0d14', '#eab2b5'],
  rejected: ['#9a6a00', '#f1dfa8'],
  timeout: ['#1559b0', '#bfd6f3'],
  failed: ['#465a65', '#cfd8dc'],
};

/** What happened to one probe. */
export function whatOf(r: ProbeResult): What {
  switch (r.outcome) {
    case 'delivered':
      return 'delivered';
    case 'stalled':
      return stallKindOf(r, 1448) ?? 'stalled';
    case 'rejected':
      return 'rejected';
    case 'timeout':
      return 'timeout';
    default:
      return 'failed';
  }
}

export interface CellWhat {
  what: What;
  /** Probes of the cell with that dominant failure (0 for a delivered cell). */
  count: number;
  /** Some probes delivered, some did not. */
  mixed: boolean;
  /** Per kind, how many probes. */
  counts: Partial<Record<What, number>>;
}

export function cellWhat(c: CellStats, rs: readonly ProbeResult[]): CellWhat {
  const counts: Partial<Record<What, number>> = {};
  for (const r of rs) counts[whatOf(r)] = (counts[whatOf(r)] ?? 0) + 1;
  let what: What = 'delivered';
  let count = 0;
  for (const w of WHATS) {
    if (w === 'delivered') continue;
    if ((counts[w] ?? 0) > count) [what, count] = [w, counts[w]!];
  }
  return { what, count, mixed: c.delivered > 0 && count > 0, counts };
}

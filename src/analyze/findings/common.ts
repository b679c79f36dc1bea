/** Readings over the context that several rules share: stage and kind counts, reply times, phrases. Pure. */
import type { ProbeResult, Stage } from '../../model.js';
import type { CellStats } from '../cells.js';
import { sinkBodyBytes } from '../cells.js';
import { type Pool } from '../policy.js';
import { formatPct, median } from '../stats.js';
import { countBy, sizeList } from '../text.js';
import { type Context, probesOf, stalledOf } from './context.js';

export function stageCounts(rs: readonly ProbeResult[]): Record<string, number> {
  return Object.fromEntries(countBy(rs, (r) => r.stage));
}

export function kindCounts(ctx: Pick<Context, 'kinds'>, rs: readonly ProbeResult[]): Record<string, number> {
  return Object.fromEntries(countBy(rs, (r) => ctx.kinds.get(r) ?? 'unknown'));
}

/** `, 50%` when the share is below 90% (a plain `12/12` says it all otherwise). */
export function pctOf(x: Pool): string {
  return x.total && x.stalled / x.total < 0.9 ? `, ${formatPct(x.stalled / x.total)}` : '';
}

/** What a silent far end did, by the stage the probes waited in. */
export function silentWhat(stage: Stage | undefined): string {
  if (stage === 'greeting') return 'accepted the connection and sent no greeting';
  if (stage === 'body' || stage === 'dataAck' || stage === undefined) return 'took the data and went silent';
  return `stopped answering at ${stage === 'data' ? 'DATA' : stage.toUpperCase()}`;
}

/** Median time delivered probes of these cells spent in `stage` (how fast the others got their reply). */
export function replyMs(ctx: Pick<Context, 'byCell'>, cells: readonly CellStats[], stage: Stage): number | undefined {
  const v = probesOf(ctx, cells)
    .filter((r) => r.outcome === 'delivered')
    .map((r) => r.stages[stage])
    .filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  return v.length ? median(v) : undefined;
}

/** Most stalled probes of these cells have a sink record saying the receiver got the whole message. */
export function receiverGotAll(ctx: Pick<Context, 'byCell'>, cells: readonly CellStats[]): boolean {
  const st = stalledOf(ctx, cells);
  const whole = st.filter((r) => (sinkBodyBytes(r) ?? -1) >= r.sizeBytes);
  return st.length > 0 && whole.length * 2 > st.length;
}

/**
 * The sizes at which a silent path's probes then met a closed window: the device took what fit in its buffers and
 * stopped reading (the lab relay's `freeze-after`: a 256 KiB probe fits its buffers, a 4 MiB one meets a closed
 * window). Empty when none did.
 */
export function closedWindowSizes(ctx: Pick<Context, 'kinds'>, stalled: readonly ProbeResult[]): number[] {
  return [...new Set(stalled.filter((r) => ctx.kinds.get(r) === 'window-closed').map((r) => r.sizeBytes))].sort((x, y) => x - y);
}

/** ` At 4MiB its window then closed: …` (or nothing), for the finding and the verdict alike. */
export function closedWindowText(sizes: readonly number[]): string {
  return sizes.length ? ` At ${sizeList([...sizes])} its window then closed (nothing more acknowledged, nothing retransmitted): it stopped reading once its buffers were full.` : '';
}

/**
 * Cross-field rules of `Timeouts`, shared by the profile loader and the CLI flags so both refuse the same
 * settings with the same numbers.
 */
import type { Timeouts } from './model.js';

/**
 * The stage deadlines the stall window must stay below, by their profile key (`timeouts.<key>`): the stages the
 * watchdog watches. Not dns or connect: there is no connection to read yet, their own deadlines decide (so a 30 s
 * stall window does not collide with the 30 s DNS deadline).
 */
export const STALL_BOUNDED: ReadonlyArray<readonly [string, keyof Timeouts]> = [
  ['command', 'commandMs'],
  ['data', 'dataMs'],
  ['body', 'bodyMs'],
  ['dataAck', 'dataAckMs'],
];

/**
 * The deadlines a stall window of `t.stallMs` does not fit below (deadline ≤ window): the watchdog could never
 * call a stall there, and a deadline would pass first. Empty when the timeouts are consistent.
 */
export function stallWindowConflicts(t: Timeouts): Array<{ key: string; field: keyof Timeouts; ms: number }> {
  return STALL_BOUNDED.filter(([, f]) => t[f] <= t.stallMs).map(([key, field]) => ({ key, field, ms: t[field] }));
}

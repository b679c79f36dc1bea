/**
 * Cross-field rules of `Timeouts`, shared by the profile loader and the CLI flags so both refuse the same
 * settings with the same numbers.
 */
import type { Timeouts } from './model.js';

/** The stage deadlines the stall window must stay below, by their profile key (`timeouts.<key>`). */
export const STALL_BOUNDED: ReadonlyArray<readonly [string, keyof Timeouts]> = [
  ['dns', 'dnsMs'],
  ['connect', 'connectMs'],
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

/**
 * The one monotonic clock of every mark, deadline and interval (DESIGN.md: everything but `startedAt` is
 * monotonic ms): CLOCK_MONOTONIC through `process.hrtime()`, in milliseconds with sub-microsecond resolution.
 *
 * Not `performance.now()`: its first use loads node:perf_hooks and ten internal modules (~1.5 ms of a one-off
 * probe's start-up, issue 16), and each worker thread counts it from its own time origin; hrtime is one clock
 * for the whole process. Only differences of its values mean anything.
 */
export function clockMs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}

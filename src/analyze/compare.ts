/**
 * The comparator: which path, which target and which size trigger stalls — and how sure we are.
 *
 * Pure functions over ProbeResult arrays. One shared context is computed once (findings/context.ts: cells, size
 * series, every stall pattern tested with its hypothesis count, the stall kind of every stalled probe); one rule
 * per finding kind reads it (findings/<kind>.ts); the findings are ranked (ranking.ts) and told in one paragraph
 * (verdict.ts). Every stall finding is backed by Fisher's exact test against a comparison group, corrected for the
 * hypotheses it was chosen among (policy.ts); a pattern that is there but not significant becomes an
 * `insufficient-data` finding that says how many probes per cell would settle it. Rejections, timeouts, slowness
 * and silent servers are reported as what they are, never as network stalls.
 */
import type { Finding, ProbeResult } from '../model.js';
import type { CellStats } from './cells.js';
import { RULES, buildContext, type CompareOptions } from './findings/index.js';
import { rank } from './ranking.js';
import { verdict } from './verdict.js';

export type { CompareOptions } from './findings/index.js';
export { verdict } from './verdict.js';
export { stagePhrase, approxSize, sizeRange } from './text.js';

export interface CompareResult {
  cells: CellStats[];
  findings: Finding[];
  verdict: string;
  /** Findings with `stall: true` (drives `mxprobe compare`'s exit code). */
  stallFindings: number;
}

function analyse(results: readonly ProbeResult[], opts: CompareOptions): { cells: CellStats[]; findings: Finding[] } {
  const ctx = buildContext(results, opts);
  return { cells: ctx.cells, findings: rank(RULES.flatMap((rule) => rule(ctx))) };
}

/** The ranked findings alone. */
export function findings(results: readonly ProbeResult[], opts: CompareOptions = {}): Finding[] {
  return analyse(results, opts).findings;
}

/** The comparator's main entry: cells, ranked findings, the verdict. */
export function compare(results: readonly ProbeResult[], opts: CompareOptions = {}): CompareResult {
  const { cells, findings: fs } = analyse(results, opts);
  return { cells, findings: fs, verdict: verdict(fs, cells), stallFindings: fs.filter((f) => f.stall).length };
}

/**
 * Reading results files (JSON Lines, one ProbeResult per line) for the comparator: one or many files, e.g.
 * from several hosts. A line that is not a result is skipped and reported (file, line, why); a missing or
 * unreadable file is an error. Arrival records (`{"record":"arrival",…}`, written when an IMAP look-up ends) are
 * joined to their probe's result by probe id.
 */
import { forEachLine, LineTooLongError } from '../fsutil.js';
import type { ArrivalRecord, ProbeResult } from '../model.js';
import { checkArrivalLine, checkResultLine, isArrivalLine } from './result-schema.js';

export type ResultsInputCode = 'ENOENT' | 'EREAD';

/** A results file that is missing, unreadable, or has a line that is not a probe result. */
export class ResultsInputError extends Error {
  override name = 'ResultsInputError';
  constructor(
    readonly code: ResultsInputCode,
    message: string,
    readonly file: string,
    readonly line?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A line of a results file that was not used: where, and why. */
export interface SkippedLine {
  file: string;
  line: number;
  reason: string;
}

/** Longest line of a results file (a probe result is a few KiB): past it the file is not a results file. */
export const MAX_RESULT_LINE_BYTES = 16 * 1024 * 1024;

const TORN_HINT = ' (a last line cut short by an interrupted run? `mxprobe run --resume` repairs the file)';

/** What the lines of results files are gathered into: probe results, and arrival records to join to them. */
interface Gathered {
  results: ProbeResult[];
  arrivals: ArrivalRecord[];
}

/**
 * Each arrival record onto the result with its probe id (the last record wins; a record without its probe's line is
 * dropped: there is nothing to say it about). Mutates and returns `results`.
 */
export function joinArrivals(results: ProbeResult[], arrivals: readonly ArrivalRecord[]): ProbeResult[] {
  if (!arrivals.length) return results;
  const byId = new Map(arrivals.map((a) => [a.probeId, a.arrival] as const));
  for (const r of results) {
    const a = r.probeId === undefined ? undefined : byId.get(r.probeId);
    if (a && r.outcome === 'delivered') r.arrival = a;
  }
  return results;
}

/** One line into `out` or `skipped`. `lastUnterminated`: the file's final line, without its newline. */
function takeLine(raw: string, at: { file: string; line: number; lastUnterminated: boolean }, out: Gathered, skipped: SkippedLine[]): void {
  const line = raw.trim();
  if (!line) return;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (err) {
    skipped.push({ file: at.file, line: at.line, reason: `not JSON: ${(err as Error).message}${at.lastUnterminated ? TORN_HINT : ''}` });
    return;
  }
  if (isArrivalLine(v)) {
    const a = checkArrivalLine(v);
    if (a.ok) out.arrivals.push(a.record);
    else skipped.push({ file: at.file, line: at.line, reason: a.reason });
    return;
  }
  const c = checkResultLine(v);
  if (c.ok) out.results.push(c.result);
  else skipped.push({ file: at.file, line: at.line, reason: c.reason });
}

/**
 * Parse the text of one results file. Blank lines are skipped; a line that is not JSON, or not a probe result by
 * `ResultLineSchema` (every field checked), is left out and described in `skipped` (file, line, why): one bad
 * line never stops a comparison, and never reaches a table or a report.
 */
export function parseResults(text: string, file: string, skipped: SkippedLine[] = []): ProbeResult[] {
  const out: Gathered = { results: [], arrivals: [] };
  const lines = text.split('\n');
  lines.forEach((l, i) => takeLine(l, { file, line: i + 1, lastUnterminated: i === lines.length - 1 }, out, skipped));
  return joinArrivals(out.results, out.arrivals);
}

/** Read and concatenate results files, in order, streamed with each line bounded (memory grows with the results, not the file). */
export async function readResults(files: readonly string[], skipped: SkippedLine[] = []): Promise<ProbeResult[]> {
  const all: Gathered = { results: [], arrivals: [] };
  for (const file of files) {
    try {
      await forEachLine(file, MAX_RESULT_LINE_BYTES, (l, line, lastUnterminated) => takeLine(l, { file, line, lastUnterminated }, all, skipped));
    } catch (err) {
      if (err instanceof LineTooLongError) throw new ResultsInputError('EREAD', `${err.message}: not a results file`, file, err.line);
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ResultsInputError('ENOENT', `${file}: no such results file`, file, undefined, { cause: err });
      if (code === 'EISDIR') throw new ResultsInputError('EREAD', `${file}: is a directory, expected a results file (.jsonl)`, file, undefined, { cause: err });
      throw new ResultsInputError('EREAD', `${file}: cannot read: ${(err as Error).message}`, file, undefined, { cause: err });
    }
  }
  return joinArrivals(all.results, all.arrivals);
}

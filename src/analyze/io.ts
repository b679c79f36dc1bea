/**
 * Reading results files (JSON Lines, one ProbeResult per line) for the comparator: one or many files, e.g.
 * from several hosts. A line that is not a result is skipped and reported (file, line, why); a missing or
 * unreadable file is an error.
 */
import { readFile } from 'node:fs/promises';
import type { ProbeResult } from '../model.js';
import { checkResultLine } from './result-schema.js';

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

/**
 * Parse the text of one results file. Blank lines are skipped; a line that is not JSON, or not a probe result by
 * `ResultLineSchema` (every field checked), is left out and described in `skipped` (file, line, why): one bad
 * line never stops a comparison, and never reaches a table or a report.
 */
export function parseResults(text: string, file: string, skipped: SkippedLine[] = []): ProbeResult[] {
  const out: ProbeResult[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      const last = lines.slice(i + 1).every((l) => !l.trim());
      const hint = last ? ' (a last line cut short by an interrupted run? `mxprobe run --resume` repairs the file)' : '';
      skipped.push({ file, line: i + 1, reason: `not JSON: ${(err as Error).message}${hint}` });
      continue;
    }
    const c = checkResultLine(v);
    if (c.ok) out.push(c.result);
    else skipped.push({ file, line: i + 1, reason: c.reason });
  }
  return out;
}

/** Read and concatenate results files, in order. */
export async function readResults(files: readonly string[], skipped: SkippedLine[] = []): Promise<ProbeResult[]> {
  const all: ProbeResult[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new ResultsInputError('ENOENT', `${file}: no such results file`, file, undefined, { cause: err });
      if (code === 'EISDIR') throw new ResultsInputError('EREAD', `${file}: is a directory, expected a results file (.jsonl)`, file, undefined, { cause: err });
      throw new ResultsInputError('EREAD', `${file}: cannot read: ${(err as Error).message}`, file, undefined, { cause: err });
    }
    for (const r of parseResults(text, file, skipped)) all.push(r);
  }
  return all;
}

/**
 * Reading results files (JSON Lines, one ProbeResult per line) for the comparator: one or many files, e.g.
 * from several hosts. Strict: a line that is not a result is an error naming file and line.
 */
import { readFile } from 'node:fs/promises';
import type { ProbeResult } from '../model.js';

export type ResultsInputCode = 'ENOENT' | 'EREAD' | 'EPARSE';

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

function checkResult(v: unknown): string | undefined {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return 'not a JSON object';
  const o = v as Record<string, unknown>;
  const missing: string[] = [];
  if (typeof o.outcome !== 'string') missing.push('outcome');
  if (typeof o.path !== 'string') missing.push('path');
  if (typeof o.target !== 'string') missing.push('target');
  if (typeof o.sizeBytes !== 'number') missing.push('sizeBytes');
  if (missing.length) return `not a probe result (missing or wrong ${missing.join(', ')})`;
  if (o.stages !== undefined && (typeof o.stages !== 'object' || o.stages === null)) return 'not a probe result ("stages" is not an object)';
  return undefined;
}

/** Parse the text of one results file. Blank lines are skipped. */
export function parseResults(text: string, file: string): ProbeResult[] {
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
      throw new ResultsInputError('EPARSE', `${file}:${i + 1}: not JSON: ${(err as Error).message}${hint}`, file, i + 1, { cause: err });
    }
    const bad = checkResult(v);
    if (bad) throw new ResultsInputError('EPARSE', `${file}:${i + 1}: ${bad}`, file, i + 1);
    const r = v as ProbeResult;
    if (!r.stages) r.stages = {};
    out.push(r);
  }
  return out;
}

/** Read and concatenate results files, in order. */
export async function readResults(files: readonly string[]): Promise<ProbeResult[]> {
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
    for (const r of parseResults(text, file)) all.push(r);
  }
  return all;
}

/**
 * The results file: JSON Lines, one ProbeResult per line, appended synchronously as each probe finishes, so a
 * crash or `kill -9` loses only the probes in flight and every complete line parses.
 */
import { fsErrorWords, mkdirpSync } from '../fsutil.js';
import { closeSync, fstatSync, openSync, readFileSync, readSync, statfsSync, truncateSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ArrivalRecord, ProbeResult } from '../model.js';
import { RunError } from './errors.js';

/** An append-only JSONL file. `open` fails early (before any probe) when the file cannot be written. */
export class ResultsWriter {
  private constructor(
    readonly file: string,
    private fd: number | undefined,
  ) {}

  /**
   * Create the folder, optionally cut the file to `truncateTo` bytes (dropping a torn last line before a
   * resume), and open it for appending. Throws `RunError` (`EOUTPUT`) saying why it cannot be written.
   */
  static open(file: string, opts: { truncateTo?: number } = {}): ResultsWriter {
    const dir = dirname(file);
    try {
      mkdirpSync(dir);
    } catch (err) {
      throw new RunError('EOUTPUT', `cannot write results to ${file}: cannot create the folder ${dir} (${fsErrorWords(err)})`, { cause: err });
    }
    let fd: number;
    try {
      if (opts.truncateTo !== undefined) truncateSync(file, opts.truncateTo);
      fd = openSync(file, 'a');
    } catch (err) {
      throw new RunError('EOUTPUT', `cannot write results to ${file}: ${fsErrorWords(err)}`, { cause: err });
    }
    const w = new ResultsWriter(file, fd);
    // a file whose last line lacks its newline (written by hand, or cut by a crash and then parsed whole):
    // start our lines on a fresh one
    try {
      const size = fstatSync(fd).size;
      if (size > 0) {
        const rfd = openSync(file, 'r');
        try {
          const last = Buffer.alloc(1);
          readSync(rfd, last, 0, 1, size - 1);
          if (last[0] !== 0x0a) w.writeRaw('\n');
        } finally {
          closeSync(rfd);
        }
      }
    } catch (err) {
      w.close();
      throw err instanceof RunError ? err : new RunError('EOUTPUT', `cannot write results to ${file}: ${fsErrorWords(err)}`, { cause: err });
    }
    // a full disk must fail here, before any probe is sent, not at the first line (hostile-disk.test.ts)
    const free = freeBytes(dir);
    if (free !== undefined && free < MIN_FREE_BYTES) {
      w.close();
      throw new RunError('EOUTPUT', `cannot write results to ${file}: no space left on the device (${free} bytes free; checked before sending any probe)`);
    }
    return w;
  }

  private writeRaw(s: string): void {
    if (this.fd === undefined) throw new RunError('EOUTPUT', `results file ${this.file} is closed`);
    const buf = Buffer.from(s, 'utf8');
    let off = 0;
    try {
      while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    } catch (err) {
      throw new RunError('EOUTPUT', `cannot write results to ${this.file}: ${fsErrorWords(err)}`, { cause: err });
    }
  }

  /** Append one line (synchronously: it is in the kernel when this returns). */
  append(result: ProbeResult | ArrivalRecord): void {
    this.writeRaw(`${JSON.stringify(result)}\n`);
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
  }
}

/** Free space a results file's file system must have before a run starts: a few dozen lines. */
const MIN_FREE_BYTES = 64 * 1024;

/** Bytes available to us on the file system of `dir`; undefined when it cannot be told. */
function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}

export interface ResultsFile {
  file: string;
  results: ProbeResult[];
  /** runId of the first line, when there is one. */
  runId?: string;
  /** profileHash values found, in order of first appearance. */
  profileHashes: string[];
  /** A last line that did not parse (a write torn by a crash): where the good part ends, and the bytes dropped. */
  truncated?: { line: number; validBytes: number; droppedBytes: number };
  /** Lines without `key` (not written by the runner): they cannot be matched by resume. */
  unkeyed: number;
}

function isArrivalRecord(v: unknown): boolean {
  return !!v && typeof v === 'object' && (v as { record?: unknown }).record === 'arrival';
}

function takeResult(out: ResultsFile, r: ProbeResult): void {
  out.results.push(r);
  if (out.runId === undefined && typeof r.runId === 'string') out.runId = r.runId;
  if (typeof r.profileHash === 'string' && !out.profileHashes.includes(r.profileHash)) out.profileHashes.push(r.profileHash);
  if (typeof r.key !== 'string') out.unkeyed++;
}

function isResultLine(v: unknown): v is ProbeResult {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return typeof o.probeId === 'string' && typeof o.outcome === 'string';
}

/**
 * Read a results file. Tolerates a torn last line (reported in `truncated`, not in `results`); any other line
 * that is not a JSON result is an error naming the file and line (`RunError` `ERESUME`).
 */
export function readResultsFile(file: string): ResultsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RunError('ERESUME', `nothing to resume: ${file} does not exist`, { cause: err });
    throw new RunError('ERESUME', `cannot read ${file}: ${fsErrorWords(err)}`, { cause: err });
  }
  const out: ResultsFile = { file, results: [], profileHashes: [], unkeyed: 0 };
  let start = 0;
  let lineNo = 0;
  while (start < buf.length) {
    const nl = buf.indexOf(0x0a, start);
    const end = nl === -1 ? buf.length : nl;
    lineNo++;
    const text = buf.toString('utf8', start, end).trim();
    if (text) {
      let parsed: unknown;
      let ok = true;
      try {
        parsed = JSON.parse(text);
      } catch {
        ok = false;
      }
      if (ok && isArrivalRecord(parsed)) {
        // an arrival record: about a probe already in the file, nothing to resume
      } else if (!ok || !isResultLine(parsed)) {
        const isLast = buf.indexOf(0x0a, end + 1) === -1 && buf.subarray(end + 1).toString('utf8').trim() === '';
        if (!ok && isLast) {
          // a line torn by a crash: ignore it (the caller warns and cuts it off before appending)
          out.truncated = { line: lineNo, validBytes: start, droppedBytes: buf.length - start };
          break;
        }
        throw new RunError(
          'ERESUME',
          `${file}:${lineNo}: not a probe result line (${ok ? 'JSON without probeId/outcome' : 'invalid JSON'}); is this an mxprobe results file?`,
        );
      } else {
        takeResult(out, parsed);
      }
    }
    if (nl === -1) break;
    start = nl + 1;
  }
  return out;
}

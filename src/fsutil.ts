/** Small filesystem helpers shared by the modules that write files. */
import { createReadStream, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

function missingAncestors(dir: string, exists: (p: string) => boolean): string[] {
  const out: string[] = [];
  let p = resolve(dir);
  while (!exists(p)) {
    out.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  return out;
}

/**
 * `mkdir -p`, one level at a time. Node's `mkdirSync(dir, { recursive: true })` never returns for some paths
 * (e.g. under /proc, where each level fails with ENOENT again); creating each missing level without `recursive`
 * fails at once with the real error instead.
 */
export function mkdirpSync(dir: string): void {
  for (const p of missingAncestors(dir, (q) => { try { statSync(q); return true; } catch { return false; } })) {
    mkdirSync(p);
  }
}

export async function mkdirp(dir: string): Promise<void> {
  const { mkdir, stat } = await import('node:fs/promises'); // when needed: a one-off probe never does (issue 16)
  const levels: string[] = [];
  let p = resolve(dir);
  for (;;) {
    try {
      await stat(p);
      break;
    } catch {
      levels.unshift(p);
      const up = dirname(p);
      if (up === p) break;
      p = up;
    }
  }
  for (const l of levels) await mkdir(l);
}

/** Why a file could not be written, in words: `permission denied`, `no space left on the device`, … */
export function fsErrorWords(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e?.code) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTDIR':
    case 'EEXIST': // mkdir -p over a file
      return 'a part of the path is a file, not a folder';
    case 'EISDIR':
      return 'it is a folder';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';
    default:
      return e?.code ? `${e.code}: ${e.message}` : String(err);
  }
}

/** The soft open-file limit of this process (`ulimit -n`), when the system says it; undefined elsewhere. */
export function openFileLimit(read: () => string = () => readFileSync('/proc/self/limits', 'utf8')): number | undefined {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(read());
    if (!m || m[1] === 'unlimited') return undefined;
    return Number(m[1]);
  } catch {
    return undefined;
  }
}

/** A line longer than the reader's bound: the file is not what it was meant to be (e.g. /dev/zero). */
export class LineTooLongError extends Error {
  override name = 'LineTooLongError';
  constructor(
    readonly file: string,
    readonly line: number,
    readonly maxBytes: number,
  ) {
    super(`${file}:${line}: a line longer than ${maxBytes / 1024 / 1024} MiB`);
  }
}

/**
 * Stream a text file line by line (memory: one chunk and one line). `onLine` gets each line, its number and
 * whether it is the final line without a newline after it (a write torn by a crash). Throws LineTooLongError when
 * a line passes `maxLineBytes`, and the file system's errors as they are.
 */
export async function forEachLine(file: string, maxLineBytes: number, onLine: (line: string, lineNo: number, lastUnterminated: boolean) => void): Promise<void> {
  let pending = '';
  let lineNo = 0;
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1024 * 1024 })) {
    const parts = (pending + (chunk as string)).split('\n');
    pending = parts.pop()!;
    for (const l of parts) onLine(l, ++lineNo, false);
    if (pending.length > maxLineBytes) throw new LineTooLongError(file, lineNo + 1, maxLineBytes);
  }
  if (pending) onLine(pending, ++lineNo, true);
}

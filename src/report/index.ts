/** The HTML report: render (pure) and write (atomically). */
import { mkdirp } from '../fsutil.js';
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { compare, type CompareOptions } from '../analyze/compare.js';
import type { ProbeResult } from '../model.js';
import { renderReport, type ReportInput } from './html.js';

export { loadCaptureGraphs, type CaptureGraph } from './captures.js';
export { parsePcap, type TcpPacket } from './pcap.js';
export { timeSequence, type TimeSequence } from './tsg.js';
export { renderReport, stallColor, stallPoints, esc, jsonForScript, type ReportInput, type ReportVerify } from './html.js';

/** Why a report could not be written (the file is named in the message). */
export class ReportWriteError extends Error {
  override name = 'ReportWriteError';
  constructor(
    message: string,
    readonly code: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Render a report and write it to `file`: the folder is created, the document is written to a temporary file
 * beside it and renamed over `file`, so a reader never sees half a report. Resolves to the bytes written.
 */
export async function writeReport(file: string, input: ReportInput): Promise<number> {
  const html = renderReport(input);
  const target = resolve(file);
  const tmp = `${target}.${process.pid}.${randomBytes(3).toString('hex')}.tmp`;
  try {
    await mkdirp(dirname(target));
    await writeFile(tmp, html, 'utf8');
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'EACCES' || e.code === 'EPERM'
        ? 'permission denied'
        : e.code === 'ENOTDIR'
          ? 'a part of the path is a file, not a folder'
          : e.code === 'EISDIR'
            ? 'it is a folder'
            : e.code === 'ENOSPC'
              ? 'no space left on the device'
              : `${e.code ? `${e.code} ` : ''}${e.message}`;
    throw new ReportWriteError(`cannot write the report ${file}: ${why}`, e.code, { cause: err });
  }
  return Buffer.byteLength(html);
}

/** Report input for a set of results: the comparator's cells, findings and verdict. */
export function reportInputFor(
  results: readonly ProbeResult[],
  opts: { title?: string; subtitle?: string; generatedAt?: string } & CompareOptions = {},
): ReportInput {
  const { title, subtitle, generatedAt, ...cmp } = opts;
  const r = compare(results, cmp);
  const input: ReportInput = { results, cells: r.cells, findings: r.findings, verdict: r.verdict };
  if (title !== undefined) input.title = title;
  if (subtitle !== undefined) input.subtitle = subtitle;
  if (generatedAt !== undefined) input.generatedAt = generatedAt;
  return input;
}

/**
 * `--report FILE.html` of `run`, `compare` and `verify`: write the self-contained HTML report after the
 * command's own output. A report that cannot be written is an environment error (exit 3), named.
 */
import { randomBytes } from 'node:crypto';
import { stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fsErrorWords, mkdirp } from '../fsutil.js';
import { loadCaptureGraphs, ReportWriteError, writeReport, type ReportInput } from '../report/index.js';
import { formatSize } from '../units.js';
import { CliError, EXIT } from './exit.js';

/** Help text of the option, the same for every command. */
export const REPORT_OPTION_HELP =
  'also write a self-contained HTML report: verdict, heatmap of delivered/total coloured by what happened (size x path; stall rate as a second view), stage waterfall per cell, stall offsets vs size, every probe on a time axis and in a table (opens offline)';

/** Write the report; prints `report: FILE (size)` on stderr (stdout stays the command's, e.g. its --json). */
export async function writeCommandReport(file: string, input: ReportInput): Promise<void> {
  let bytes: number;
  try {
    const captures = input.captures ?? (await loadCaptureGraphs(input.results));
    bytes = await writeReport(file, { generatedAt: new Date().toISOString(), ...input, ...(captures.length ? { captures } : {}) });
  } catch (err) {
    if (err instanceof ReportWriteError) throw new CliError(err.message, EXIT.ENV);
    throw err;
  }
  process.stderr.write(`report: ${file} (${formatSize(bytes)})\n`);
}

/**
 * Before a command sends anything (`run`, `verify --profile`): can `--report FILE` be written? Does what writing
 * it will do (create the folder, write a file beside it) and removes the trace; throws CliError exit 3 if not.
 */
export async function checkReportWritable(file: string): Promise<void> {
  const target = resolve(file);
  const tmp = `${target}.${process.pid}.${randomBytes(3).toString('hex')}.check`;
  try {
    const st = await stat(target).catch(() => undefined);
    if (st?.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    await mkdirp(dirname(target));
    await writeFile(tmp, '');
    await unlink(tmp);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw new CliError(`cannot write the report ${file}: ${fsErrorWords(err)} (checked before sending any probe)`, EXIT.ENV);
  }
}

/**
 * `mxprobe compare FILE...`: the table of cells, the findings with their evidence, and the verdict, from one or
 * many results files (e.g. one per sending host).
 */
import { Command, InvalidArgumentError } from 'commander';
import { compare } from '../analyze/compare.js';
import { ResultsInputError, readResults, type SkippedLine } from '../analyze/io.js';
import type { ProbeResult } from '../model.js';
import { joinSink, loadSinkRecords, sinkEvidenceByCell, SinkRecordsError, type SinkRecord } from '../sink/index.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { renderCompare } from './render.js';
import { renderSinkEvidence } from './sink.js';
import { REPORT_OPTION_HELP, writeCommandReport } from './report.js';
import { forTerminal, forTerminalDeep } from '../text.js';

interface CompareFlags {
  json?: boolean;
  sink?: string[];
  alpha?: number;
  color?: boolean;
  report?: string;
}

const HELP_AFTER = `
What it says:
  the table       one row per size, one column per path (x target): ✓ delivered/total median time,
                  ✗ failures/total outcome@stage, ~ mixed
  findings        ranked, each with its evidence: the size from which a path stalls, a path that stalls where
                  another does not (Fisher's exact test, Bonferroni-corrected: raw p, adjusted p, hypotheses), a
                  target every path stalls to, the byte offset where stalled transfers stop (kernel bytes_acked, or
                  bytes written — it says which), the kernel's mechanism (segments or their ACKs lost, a window
                  below one segment, no window scaling on one path), a far end that took the data and went silent
                  (a device on one path, or a slow / silent server when every path sees it: not a network stall),
                  rejections (552 size limit, 4xx greylisting), slow paths and timeouts (not stalls), and
                  "N more probes per cell would settle this"
  the verdict     one paragraph in plain words

Examples:
  mxprobe compare results/run-20240501.jsonl
  mxprobe compare host-a.jsonl host-b.jsonl          # several senders: cells pool every file
  mxprobe compare results/*.jsonl --json | jq '.findings[0]'
  mxprobe compare run.jsonl --sink sink-records.jsonl # join what the receiver got, by probe id

Exit codes: 0 no stall finding, 1 stall findings (a path, size or target that stalls, with p < alpha),
            2 bad input (a missing or unreadable file, no probe result at all). A line that is not a probe
            result (not JSON, or a field of the wrong type) is skipped, named as file:line on stderr.`;

function alphaArg(v: string): number {
  const x = Number(v);
  if (!(x > 0 && x < 1)) throw new InvalidArgumentError('expected a significance level between 0 and 1, e.g. 0.05');
  return x;
}

/** Skipped lines shown one by one on stderr; the rest are counted. */
const SKIPPED_SHOWN = 10;

/** The stderr lines for results lines left out: each (up to SKIPPED_SHOWN) as file:line, then the count. */
export function skippedLines(skipped: readonly SkippedLine[]): string[] {
  if (skipped.length === 0) return [];
  const out = skipped.slice(0, SKIPPED_SHOWN).map((s) => `mxprobe: warning: ${s.file}:${s.line}: skipped: ${forTerminal(s.reason, { oneLine: true })}`);
  const more = skipped.length > SKIPPED_SHOWN ? ` (${skipped.length - SKIPPED_SHOWN} not shown)` : '';
  out.push(`mxprobe: warning: ${skipped.length} line${skipped.length === 1 ? '' : 's'} skipped: not probe results${more}; the rest was used`);
  return out;
}

/** Read results files for a command; missing or unreadable files become exit 2; bad lines are skipped, said on stderr. */
export async function loadResults(files: string[]): Promise<ProbeResult[]> {
  try {
    const skipped: SkippedLine[] = [];
    const results = await readResults(files, skipped);
    for (const l of skippedLines(skipped)) process.stderr.write(`${l}\n`);
    return results;
  } catch (err) {
    if (err instanceof ResultsInputError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
}

async function loadSink(sources: string[]): Promise<SinkRecord[]> {
  const all: SinkRecord[] = [];
  for (const src of sources) {
    try {
      all.push(...(await loadSinkRecords(src)));
    } catch (err) {
      // records that are not records: bad input (2); a source that cannot be read in bounds: the environment (3)
      if (err instanceof SinkRecordsError) throw new CliError(err.message, err.code === 'ESOURCE' && /^https?:\/\//i.test(src) ? EXIT.ENV : EXIT.USAGE);
      throw err;
    }
  }
  return all;
}

export function register(program: Command): void {
  program
    .command('compare')
    .summary('name the path and size that stall: table of cells, findings with evidence, verdict')
    .description(
      'Read results files (JSON Lines, one probe per line, as written by `mxprobe run`) and compare the cells ' +
        '(path x target x size): which path stalls, from which size, to which target, where in the body, and how ' +
        'sure that is. Rejections, timeouts and slow paths are reported as what they are, never as stalls.',
    )
    .argument('<files...>', 'results files (.jsonl); several files are pooled')
    .option('--json', 'print {cells, findings, verdict} as JSON on stdout')
    .option('--sink <source...>', "the receiving sink's records (file or http URL of `mxprobe sink`): stall offsets then use the bytes the receiver got")
    .option('--alpha <p>', 'significance level of stall findings', alphaArg, 0.05)
    .option('--no-color', 'no ANSI colours (also: NO_COLOR=1, or when stdout is not a terminal)')
    .option('--report <file.html>', REPORT_OPTION_HELP)
    .addHelpText('after', HELP_AFTER)
    .action(async (files: string[], flags: CompareFlags, cmd: Command) => {
      let results = await loadResults(files);
      if (results.length === 0) throw new CliError(`no probe results in ${files.join(', ')}`, EXIT.USAGE);
      if (flags.sink?.length) results = joinSink(results, await loadSink(flags.sink));
      const r = compare(results, { alpha: flags.alpha ?? 0.05 });
      // the receiver's view of the probes that did not deliver, per cell (only with --sink)
      const receiver = flags.sink?.length ? sinkEvidenceByCell(results) : undefined;
      if (flags.json) {
        process.stdout.write(`${JSON.stringify({ cells: r.cells, findings: r.findings, verdict: r.verdict, ...(receiver ? { receiver } : {}) }, null, 2)}\n`);
      } else {
        const color = flags.color !== false && !!process.stdout.isTTY && !process.env.NO_COLOR;
        const width = process.stdout.columns || 120;
        const runs = [...new Set(results.map((x) => x.runId).filter(Boolean))];
        const head = `${results.length} probes from ${files.length === 1 ? files[0] : `${files.length} files`}${runs.length > 1 ? ` (${runs.length} runs)` : ''}`;
        // names, reply texts and statements come from results files and servers: stripped before the terminal
        process.stdout.write(`${forTerminal(head)}\n\n${renderCompare(forTerminalDeep({ cells: r.cells, findings: r.findings, verdict: r.verdict }), { color, width })}\n`);
        if (receiver?.length) process.stdout.write(`\n${renderSinkEvidence(forTerminalDeep(receiver)).join('\n')}\n`);
      }
      if (flags.report) {
        await writeCommandReport(flags.report, { title: 'mxprobe compare', subtitle: files.join(', '), results, cells: r.cells, findings: r.findings, verdict: r.verdict });
      }
      setExitCode(cmd, r.stallFindings > 0 ? EXIT.FINDINGS : EXIT.OK);
    });
}

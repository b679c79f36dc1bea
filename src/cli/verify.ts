/**
 * `mxprobe verify --baseline BEFORE.jsonl AFTER.jsonl` (or `--profile P` to run the after side now): did the
 * change fix the stalls, and did it break anything? Per cell: fixed / still failing / regressed / unchanged
 * (/ inconclusive), each with Fisher's exact test behind it; thresholds (k6 style) on the new run.
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { evaluateThresholds, verifyRuns, type ThresholdResult } from '../analyze/verify.js';
import type { ProbeResult } from '../model.js';
import { loadProfile, parseThreshold, ProfileError, type Plan, type Threshold } from '../profile/index.js';
import { createRunEmitter, newRunId, RunError, runPlan } from '../run/index.js';
import { loadResults } from './compare.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { attachProgress } from './progress.js';
import { RUN_ERROR_EXIT } from './run.js';
import { renderVerify } from './render.js';
import { reportInputFor } from '../report/index.js';
import { checkReportWritable, REPORT_OPTION_HELP, writeCommandReport } from './report.js';
import { forTerminal, forTerminalDeep } from '../text.js';

interface VerifyFlags {
  baseline: string;
  profile?: string;
  out?: string;
  expectFixed?: boolean;
  threshold?: Threshold[];
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
  report?: string;
}

const HELP_AFTER = `
Each cell (path x target x size) of the baseline is compared with the same cell of the new run: failed probes
(not delivered) before vs after, Fisher's exact test (two-sided), Bonferroni-corrected for the number of cells
compared, p < 0.05 after the correction — the same policy as compare; each call shows the adjusted p, the raw p
and the number of hypotheses:
  fixed           the baseline cell failed; the new run fails significantly less and no longer fails
  still failing   fails in both runs
  regressed       significantly more failures than before
  unchanged       no significant difference, and it did not fail before
  inconclusive    not enough data to call: looks fixed (or newly broken) but is not significant; it says how many
                  probes per cell would decide
A cell "fails" when the 95% lower bound of its failure rate is above 5% (one random stall in 100 is not a failure).

Thresholds, k6 style, are checked on the new run: from the profile's "thresholds:" (with --profile) and from
--threshold, e.g. 'body: p95 < 2s', 'dataAck: p99 <= 500ms', 'total: p50 < 1s', 'arrival: p95 < 1m', 'arrival_rate >= 99%', 'stall_rate < 1%',
'success_rate >= 99%'. A stage's statistic counts the partial time of probes that stalled in it.

Examples:
  mxprobe verify --baseline before.jsonl after.jsonl
  mxprobe verify --baseline before.jsonl --profile profiles/verify-fix.yaml --expect-fixed
  mxprobe verify --baseline before.jsonl after.jsonl --threshold 'stall_rate < 1%' --threshold 'body: p95 < 2s'

Exit codes: 0 nothing regressed (and with --expect-fixed: every baseline failure fixed), 1 otherwise,
            99 a threshold failed (takes precedence), 2 bad input, 3 environment error (running --profile).`;

function thresholdArg(v: string, prev: Threshold[] = []): Threshold[] {
  try {
    return [...prev, parseThreshold(v)];
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}


/** Load a profile for a command; profile problems become exit 2 with the field named. */
export async function loadPlanOrExit(profile: string): Promise<Plan> {
  try {
    return await loadProfile(profile);
  } catch (err) {
    if (err instanceof ProfileError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
}

/**
 * Run a plan for a command (verify --profile, bisect): progress on stderr unless quiet, Ctrl-C stops after the
 * probes in flight. Runner errors become CLI errors with their exit code.
 */
export async function runPlanForCommand(plan: Plan, out: string, quiet: boolean): Promise<{ results: ProbeResult[]; interrupted: boolean; out: string }> {
  const emitter = createRunEmitter();
  const progress = quiet ? undefined : attachProgress(emitter, { stream: process.stderr });
  if (!progress) emitter.on('run:warning', (e) => process.stderr.write(`warning: ${e.message}\n`));
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  try {
    const s = await runPlan(plan, { out, emitter, signal: stop.signal });
    return { results: s.results, interrupted: s.interrupted, out: s.out };
  } catch (err) {
    if (err instanceof RunError) throw new CliError(err.message, RUN_ERROR_EXIT[err.code]);
    throw err;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
  }
}

export function register(program: Command): void {
  program
    .command('verify')
    .summary('did the fix work? baseline vs new run, per cell fixed / still failing / regressed, plus thresholds')
    .description(
      'Compare a baseline results file with a new run — a results file, or the profile run now with --profile — ' +
        'cell by cell (path x target x size), each call backed by Fisher\'s exact test; then check thresholds on the new run.',
    )
    .argument('[after]', 'results file of the run after the change (or use --profile to run it now)')
    .requiredOption('-b, --baseline <file>', 'results file of the run before the change')
    .option('-p, --profile <file>', 'run this profile now as the "after" side (instead of an AFTER file)')
    .option('-o, --out <file>', 'with --profile: results file of the new run (default results/<runId>.jsonl)')
    .option('--expect-fixed', 'exit 1 unless every cell that failed in the baseline is fixed')
    .option('-t, --threshold <expr>', "a threshold on the new run, repeatable: 'body: p95 < 2s', 'stall_rate < 1%'", thresholdArg)
    .option('--json', 'print the result as JSON on stdout')
    .option('-q, --quiet', 'with --profile: no progress on stderr')
    .option('--no-color', 'no ANSI colours')
    .option('--report <file.html>', REPORT_OPTION_HELP)
    .addHelpText('after', HELP_AFTER)
    .action(async (after: string | undefined, flags: VerifyFlags, cmd: Command) => {
      setExitCode(cmd, await verifyCommand(after, flags));
    });
}

export async function verifyCommand(after: string | undefined, f: VerifyFlags): Promise<number> {
  if (after && f.profile) throw new CliError(`give either an AFTER results file (${after}) or --profile ${f.profile}, not both`);
  if (!after && !f.profile) throw new CliError('nothing to compare the baseline with: give the AFTER results file, or --profile P to run it now');
  if (f.out && !f.profile) throw new CliError('--out only applies with --profile (the new run is written there)');
  const before = await loadResults([f.baseline]);
  if (!before.length) throw new CliError(`no probe results in the baseline ${f.baseline}`);
  const thresholds: Threshold[] = [];
  let afterResults: ProbeResult[];
  let afterLabel: string;
  if (f.profile) {
    const plan = await loadPlanOrExit(f.profile);
    if (f.report) await checkReportWritable(f.report); // before any probe is sent
    thresholds.push(...(plan.thresholds ?? []));
    const out = f.out ?? join('results', `${newRunId()}.jsonl`);
    const run = await runPlanForCommand(plan, out, !!f.quiet || !!f.json);
    if (run.interrupted) {
      process.stderr.write(`interrupted: the new run is incomplete (${run.results.length} probes in ${run.out}); not verifying\n`);
      return EXIT.INTERRUPTED;
    }
    afterResults = run.results;
    afterLabel = `${run.out} (run of ${f.profile})`;
  } else {
    afterResults = await loadResults([after!]);
    afterLabel = after!;
  }
  if (!afterResults.length) throw new CliError(`no probe results in the new run ${afterLabel}`);
  thresholds.push(...(f.threshold ?? []));

  const v = verifyRuns(before, afterResults);
  const th: ThresholdResult[] = evaluateThresholds(afterResults, thresholds);
  const thresholdFailed = th.some((t) => !t.ok);
  const unfixed = v.cells.filter((c) => c.baselineFailing && c.status !== 'fixed');
  const failedExpectation = v.regressed > 0 || (!!f.expectFixed && unfixed.length > 0);
  const code = thresholdFailed ? EXIT.THRESHOLD : failedExpectation ? EXIT.FINDINGS : EXIT.OK;

  let summary: string;
  if (v.regressed > 0) summary = `${v.regressed} cell${v.regressed > 1 ? 's' : ''} regressed.`;
  else if (v.baselineFailing === 0) summary = 'The baseline had no failing cell; nothing regressed.';
  else if (unfixed.length === 0) summary = v.baselineFailing === 1 ? 'Fixed: the failing baseline cell is fixed, nothing regressed.' : `Fixed: all ${v.baselineFailing} failing baseline cells are fixed, nothing regressed.`;
  else summary = `Not fixed: ${unfixed.length} of ${v.baselineFailing} failing baseline cells are not fixed (${[...new Set(unfixed.map((c) => c.status))].join(', ')}); nothing regressed.`;
  if (thresholdFailed) summary += ` ${th.filter((t) => !t.ok).length} threshold${th.filter((t) => !t.ok).length > 1 ? 's' : ''} failed.`;

  if (f.json) {
    process.stdout.write(
      `${JSON.stringify({ baseline: f.baseline, after: afterLabel, summary, exitCode: code, ...v, thresholds: th }, null, 2)}\n`,
    );
  } else {
    const color = f.color !== false && !!process.stdout.isTTY && !process.env.NO_COLOR;
    const width = process.stdout.columns || 120;
    process.stdout.write(
      `baseline ${f.baseline} (${before.length} probes) → new run ${afterLabel} (${afterResults.length} probes)\n\n` +
        `${renderVerify(forTerminalDeep(v), forTerminalDeep(th), { color, width, expectFixed: !!f.expectFixed })}\n${forTerminal(summary)}\n`,
    );
  }
  if (f.report) {
    const input = reportInputFor(afterResults, { title: 'mxprobe verify', subtitle: `baseline ${f.baseline} → new run ${afterLabel}` });
    input.verdict = summary;
    input.verify = { baseline: f.baseline, after: afterLabel, baselineProbes: before.length, result: v, thresholds: th, expectFixed: !!f.expectFixed };
    await writeCommandReport(f.report, input);
  }
  return code;
}

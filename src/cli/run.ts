/**
 * `mxprobe run PROFILE`: execute a profile's plan (paths × targets × sizes × repeat, interleaved), write one
 * JSONL line per probe as it finishes, show progress on stderr, and end with the table of cells.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { computeCells } from '../analyze/cells.js';
import { readResults } from '../analyze/io.js';
import { evaluateThresholds } from '../analyze/verify.js';
import type { Outcome, ProbeResult } from '../model.js';
import { applyOverrides, loadProfile, ProfileError, type Plan, type PlanOverrides } from '../profile/index.js';
import { createRunEmitter, MAX_WORKERS, newRunId, RunError, runPlan, slimResult, type RunSummary } from '../run/index.js';
import { formatMs, formatSizeExact, parseSize } from '../units.js';
import { countBy } from '../analyze/text.js';
import { median } from '../analyze/stats.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { intArg } from './options.js';
import { attachProgress } from './progress.js';
import { renderCellTable } from './render.js';
import { reportInputFor } from '../report/index.js';
import { checkReportWritable, REPORT_OPTION_HELP, writeCommandReport } from './report.js';
import { statSync } from 'node:fs';
import { forTerminal, forTerminalDeep } from '../text.js';

export interface RunFlags {
  out?: string;
  append?: boolean;
  resume?: string;
  concurrency?: number;
  /** Threads to run the probes in: a number, or `auto` (this machine's available parallelism). */
  workers?: number | 'auto';
  repeat?: number;
  sizes?: number[];
  paths?: string[];
  seed?: number;
  json?: boolean;
  quiet?: boolean;
  force?: boolean;
  report?: string;
  transcript?: boolean;
}

/** A comma-separated list flag: `--sizes 1KiB,64KiB`. */
function listArg<T>(parse: (v: string) => T) {
  return (v: string): T[] => {
    const items = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new InvalidArgumentError('empty list');
    return items.map((s) => {
      try {
        return parse(s);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
  };
}

/** `--workers`: 1 … MAX_WORKERS, or `auto`. */
export function workersArg(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new InvalidArgumentError(`expected a whole number from 1 to ${MAX_WORKERS}, or auto; got "${v}"`);
  return n;
}

/** The threads `--workers` asks for: `auto` is this machine's available parallelism (os.availableParallelism). */
export function resolveWorkers(w: number | 'auto' | undefined): number {
  if (w === undefined) return 1;
  return w === 'auto' ? Math.min(MAX_WORKERS, Math.max(1, availableParallelism())) : w;
}

const HELP_AFTER = `
Examples:
  mxprobe run profiles/lb-vs-direct.yaml
  mxprobe run lb.yaml --sizes 16KiB,64KiB,1MiB --repeat 10 --out results/lb.jsonl
  mxprobe run lb.yaml --resume results/lb.jsonl       # finish an interrupted run (same runId, appends)
                                                      # (same profile and overrides: another plan is refused)
  mxprobe run lb.yaml --json > summary.json            # machine-readable summary on stdout, progress on stderr

A profile (YAML) in brief — see profiles/ for commented examples, \`mxprobe schema\` for every key:
  name: lb-vs-direct
  targets: [{host: mx1.example.net, port: 25}, {mx: example.net, allMx: true}]
  tls: starttls                         # none | starttls | require-starttls | implicit
  paths:                                # egress routes to compare
    - {name: via-lb, localAddress: 192.0.2.10}
    - {name: direct, localAddress: 192.0.2.20}      # or proxy: socks5://host:1080, relay: host:587
  sizes: [1KiB, 64KiB, 1MiB]            # exact bytes on the wire
  repeat: 5                             # probes per cell (path x target x size)
  concurrency: 4                        # probes in flight over the whole run
  rate: 1/s                             # max probe starts per second per target
  envelope: {from: probe@your.domain, to: test-mailbox@example.net}
  timeouts: {stall: 10s, body: 3m}      # and dns, connect, command, data, dataAck

Probes of all cells are shuffled (seeded) and interleaved in time, so network drift is not mistaken for a
difference between paths. Each finished probe is appended to the results file at once (default
results/<runId>.jsonl): a crash loses only the probes in flight, and --resume runs the missing ones.

--workers N runs the probes in N worker threads (never more than --concurrency), each with an engine of its own;
scheduling, the results file and the progress stay in the main thread. It helps when the prober's one thread is
the limit: many probes in flight (say 10 or more), the receiver on another machine. On one box with the receiver
(a lab, smtp-sink on loopback) the threads take CPU from the receiver and it can be slower: measure with
bench/workers.mjs. Default 1: every probe in the main thread; auto: one thread per core.

Ctrl-C stops starting probes, gives those in flight 2 s to finish (a second Ctrl-C ends them at once),
writes the summary so far and exits 130.

The profile's thresholds: (k6 style, e.g. 'body: p95 < 2s', 'stall_rate < 1%') are checked at the end of every
run; each failed one is printed with its value and by how much it missed.

Exit codes: 0 every probe delivered, 1 some probe did not deliver (see the table; \`mxprobe compare FILE\` names
the path and size), 2 bad profile or options (nothing sent; also: a profile above 1 MiB, a plan above 10000
probes without --force, --out on a file that holds results without --append or --resume), 3 environment error
(results file or --report not writable, checked before sending; disk full mid-run, with the resume command;
source address not on this machine, tcpdump unavailable), 99 a threshold failed (k6's convention; takes
precedence over 1, also with --json), 130 interrupted.
Real servers: a target is "real" unless every host a probe of it connects to (target, MX hosts, relay) is a
loopback (127.0.0.0/8, ::1) or benchmark (198.18.0.0/15) address. Against real targets mxprobe is a careful
sender: at most 1 probe/s per target when the profile sets no rate, a profile rate above 1/s is refused
without --force, a probe larger than the SIZE the server advertises is not sent (rejected at mail, ESIZE)
without --force, certificates are verified (insecure: true to skip), and every message says it is a test
(Auto-Submitted: auto-generated, X-Mxprobe: probe=…). envelope.to has no default: name the mailboxes.
Only probe servers and mailboxes you are allowed to send test mail to.`;

export function register(program: Command): void {
  program
    .command('run')
    .summary('run a profile: every path x target x size, interleaved, then the table of cells')
    .description(
      'Run the probes a profile describes: each (path, target, size) cell gets `repeat` probes, in a seeded ' +
        'random order that interleaves the cells in time. Results go to a JSONL file, one line per probe, as each ' +
        'finishes; progress goes to stderr; the table of cells (rows = sizes, columns = paths) ends the run.',
    )
    .argument('<profile>', 'profile file (YAML)')
    .option('-o, --out <file>', 'results file (JSON Lines; default results/<runId>.jsonl)')
    .option('--append', 'with --out FILE that holds results already: add this run to it (default: refused)')
    .option('--resume <file>', 'continue the run recorded in FILE: same runId, skip recorded probes, append')
    .option('-c, --concurrency <n>', 'probes in flight at once (overrides the profile)', intArg(1))
    .option('-w, --workers <n>', `threads to run the probes in: 1 (default, the main thread) to ${MAX_WORKERS}, or auto (one per core); helps when many probes are in flight and the receiver is elsewhere (see below)`, workersArg)
    .option('-r, --repeat <n>', 'probes per cell (overrides the profile)', intArg(1))
    .option('-s, --sizes <list>', 'message sizes, comma-separated: 1KiB,64KiB,1MiB (overrides the profile)', listArg(parseSize))
    .option('-p, --paths <list>', "only these paths, comma-separated by name (from the profile's paths)", listArg((s) => s))
    .option('--seed <n>', 'seed of the probe order and message contents (overrides the profile)', intArg(0))
    .option('--json', 'print one JSON summary on stdout at the end (nothing else on stdout)')
    .option('-q, --quiet', 'no progress on stderr')
    .option('--force', 'real (non-loopback) targets: allow a profile rate above 1/s, and probes above the SIZE the server advertises; any plan: more than 10000 probes; --resume: append to a file another plan wrote')
    .option('--report <file.html>', REPORT_OPTION_HELP)
    .option('--transcript', "record each probe's SMTP conversation in its result line (AUTH masked, message elided); `compare FILE --report` shows it per probe")
    .addHelpText('after', HELP_AFTER)
    .action(async (profile: string, flags: RunFlags, cmd: Command) => {
      setExitCode(cmd, await runCommand(profile, flags));
    });
}

async function loadPlan(profile: string, f: RunFlags): Promise<Plan> {
  try {
    const plan = await loadProfile(profile);
    const o: PlanOverrides = {};
    if (f.sizes) o.sizes = f.sizes;
    if (f.paths) o.paths = f.paths;
    if (f.repeat !== undefined) o.repeat = f.repeat;
    if (f.concurrency !== undefined) o.concurrency = f.concurrency;
    if (f.seed !== undefined) o.seed = f.seed;
    const next = Object.keys(o).length ? applyOverrides(plan, o) : plan;
    return f.transcript ? { ...next, transcript: true } : next;
  } catch (err) {
    if (err instanceof ProfileError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
}

/** Runner errors → exit codes (shared by every command that runs a plan). */
export const RUN_ERROR_EXIT: Record<RunError['code'], number> = {
  EOUTPUT: EXIT.ENV,
  ECAPTURE: EXIT.ENV,
  EBIND: EXIT.ENV,
  EENV: EXIT.ENV,
  EINPUT: EXIT.USAGE,
  EDNS: EXIT.USAGE,
  ERESUME: EXIT.USAGE,
};

function countOutcomes(rs: readonly ProbeResult[]): Partial<Record<Outcome, number>> {
  const c: Partial<Record<Outcome, number>> = {};
  for (const r of rs) c[r.outcome] = (c[r.outcome] ?? 0) + 1;
  return c;
}

function describeCounts(c: Partial<Record<Outcome, number>>): string {
  const parts = Object.entries(c)
    .sort((a, b) => (a[0] === 'delivered' ? -1 : b[0] === 'delivered' ? 1 : b[1] - a[1]))
    .map(([o, n]) => `${n} ${o}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** A word for a POSIX shell: left as it is when safe, else single-quoted. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command that finishes an interrupted run: the same profile with every override it had (so it is the same
 * plan, which `--resume` checks), `--resume FILE`, and `--force` when the run had it.
 */
export function resumeCommand(profile: string, f: RunFlags, out: string): string {
  const args = ['mxprobe', 'run', profile];
  if (f.sizes) args.push('--sizes', f.sizes.map(formatSizeExact).join(','));
  if (f.paths) args.push('--paths', f.paths.join(','));
  if (f.repeat !== undefined) args.push('--repeat', String(f.repeat));
  if (f.seed !== undefined) args.push('--seed', String(f.seed));
  if (f.concurrency !== undefined) args.push('--concurrency', String(f.concurrency));
  if (f.workers !== undefined) args.push('--workers', String(f.workers));
  if (f.force) args.push('--force');
  if (f.transcript) args.push('--transcript');
  args.push('--resume', out);
  return args.map(shellWord).join(' ');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `--out FILE` that already holds results: refused (exit 2) unless --append or --resume says what is meant. */
function refuseExistingOut(file: string, profile: string): void {
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    return; // absent: the run creates it
  }
  if (size === 0) return;
  throw new CliError(
    `${file} already holds results: add --append to add this run to it, or --resume ${file} to finish the run in it ` +
      `(mxprobe run ${profile} --resume ${file}), or give another --out`,
  );
}

/** The summary of a run whose results file failed mid-run: what was recorded, and the resume command. */
/** `arrival: 27/36 accepted probes found in the mailbox (18 INBOX, 9 Junk), 3 not intact, p50 61ms`, or undefined. */
export function arrivalSummary(rs: readonly ProbeResult[]): string | undefined {
  const looked = rs.filter((r) => r.outcome === 'delivered' && r.arrival);
  if (!looked.length) return undefined;
  const found = looked.filter((r) => r.arrival!.found);
  const folders = [...countBy(found, (r) => r.arrival!.folder ?? '?')].map(([f, n]) => `${n} ${forTerminal(f, { oneLine: true })}`);
  const bad = found.filter((r) => !r.arrival!.intact).length;
  const lat = found.map((r) => r.arrival!.latencyMs).filter((x): x is number => x !== undefined);
  return (
    `arrival: ${found.length}/${looked.length} accepted probes found in the mailbox${folders.length ? ` (${folders.join(', ')})` : ''}` +
    `${bad ? `, ${bad} not intact` : ''}${lat.length ? `, p50 ${formatMs(median(lat))}` : ''}`
  );
}

function writeFailedLines(kept: readonly ProbeResult[], profile: string, out: string): string[] {
  return [
    `${plural(kept.length, 'probe')} recorded before the results file failed: ${describeCounts(countOutcomes(kept))}`,
    `once there is room again, finish with: mxprobe run ${profile} --resume ${out}`,
  ];
}

export async function runCommand(profile: string, f: RunFlags): Promise<number> {
  if (f.resume && f.out && f.out !== f.resume) {
    throw new CliError(`--resume ${f.resume} appends to that file; drop --out ${f.out} (or give the same file)`);
  }
  const plan = await loadPlan(profile, f);
  const runId = newRunId();
  const out = f.resume ?? f.out ?? join('results', `${runId}.jsonl`);
  if (f.out && !f.resume && !f.append) refuseExistingOut(f.out, profile);
  if (f.report) await checkReportWritable(f.report);

  const stderr = process.stderr;
  const emitter = createRunEmitter();
  const progress = f.quiet ? undefined : attachProgress(emitter, { stream: stderr });
  const say = (s: string): void => {
    if (progress) progress.line(s);
  };
  emitter.on('run:start', (e) => {
    const shape = `${plural(e.paths.length, 'path')} x ${plural(e.targets.length, 'target')} x ${plural(e.sizes.length, 'size')} x ${e.repeat}`;
    const rate = e.ratePerTarget ? `, at most ${+e.ratePerTarget.toFixed(3)}/s per target` : '';
    const threads = e.workers > 1 ? `, ${e.workers} worker threads` : '';
    say(`run ${e.runId}: ${plural(e.total, 'probe')} (${shape}), concurrency ${e.concurrency}${threads}${rate} → ${e.out}`);
    if (e.resumed) say(`resuming: ${e.skipped} already recorded, ${e.pending} to go`);
  });
  // the summary needs every result: keep slim copies (the full ones are on their JSONL lines), so memory
  // stays small over long runs
  const kept: ProbeResult[] = [];
  emitter.on('probe:end', (e) => kept.push(slimResult(e.result)));
  // arrivals come later than their probe's line: put them on the kept copy (a recent one, so search from the end)
  emitter.on('probe:arrival', (e) => {
    for (let i = kept.length - 1; i >= 0; i--) {
      if (kept[i]!.probeId !== e.result.probeId) continue;
      kept[i]!.arrival = e.arrival;
      break;
    }
  });
  // a warning when the run starts without progress output still matters
  if (!progress) emitter.on('run:warning', (e) => stderr.write(`warning: ${e.message}\n`));

  const stop = new AbortController();
  const abandon = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals === 1) {
      stop.abort();
      if (!progress) stderr.write('stopping (Ctrl-C again to abandon the probes in flight)\n');
    } else {
      abandon.abort();
      // a third Ctrl-C gets the default behaviour: the process ends at once (every finished line is written)
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let summary: RunSummary;
  try {
    summary = await runPlan(plan, {
      out,
      resume: !!f.resume,
      // --force also lets --resume append to a file another plan wrote (refused otherwise)
      resumeOtherPlan: !!f.force,
      // a resumed run keeps the runId recorded in its file
      ...(f.resume ? {} : { runId }),
      emitter,
      keepResults: false,
      signal: stop.signal,
      abandonSignal: abandon.signal,
      force: !!f.force, // real-target guard override: rate above 1/s, probes above SIZE (src/probe/guards.ts)
      workers: resolveWorkers(f.workers),
    });
  } catch (err) {
    progress?.stop();
    // the results file failed mid-run (disk full): what was recorded is still said, and how to finish
    if (err instanceof RunError && err.code === 'EOUTPUT' && kept.length > 0) process.stderr.write(`${writeFailedLines(kept, profile, out).join('\n')}\n`);
    if (err instanceof RunError) throw new CliError(err.message, RUN_ERROR_EXIT[err.code]);
    throw err;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  const all = [...summary.previous.map(slimResult), ...kept];
  const cells = computeCells(all);
  const counts = countOutcomes(all);
  const notDelivered = all.length - (counts.delivered ?? 0);
  const thresholds = evaluateThresholds(all, plan.thresholds ?? []);
  const thresholdFailed = thresholds.some((t) => !t.ok);
  const code = summary.interrupted || signals > 0 ? EXIT.INTERRUPTED : thresholdFailed ? EXIT.THRESHOLD : notDelivered > 0 ? EXIT.FINDINGS : EXIT.OK;
  const missing = summary.total - all.filter((r) => typeof r.key === 'string').length;

  if (f.json) {
    const doc = {
      runId: summary.runId,
      out: summary.out,
      profile: plan.name,
      profileHash: summary.profileHash,
      interrupted: summary.interrupted,
      total: summary.total,
      recorded: all.length,
      skipped: summary.skipped,
      sent: summary.recorded,
      dropped: summary.dropped,
      notStarted: summary.notStarted,
      counts,
      warnings: summary.warnings,
      exitCode: code,
      thresholds,
      cells,
      // the command that finishes an interrupted run, with its overrides
      ...(code === EXIT.INTERRUPTED ? { resumeWith: resumeCommand(profile, f, summary.out) } : {}),
    };
    process.stdout.write(`${JSON.stringify(doc, null, 2)}\n`);
  } else {
    const color = !!process.stdout.isTTY && !process.env.NO_COLOR;
    const lines: string[] = [];
    lines.push('');
    lines.push(renderCellTable(forTerminalDeep(cells), { color, width: process.stdout.columns || 120 }));
    lines.push('');
    lines.push(`${plural(all.length, 'probe')} recorded: ${describeCounts(counts)}${summary.skipped ? ` (${summary.skipped} from before the resume)` : ''}`);
    const arrivals = arrivalSummary(all);
    if (arrivals) lines.push(arrivals);
    if (thresholds.length) lines.push(`thresholds: ${thresholdFailed ? `${thresholds.filter((t) => !t.ok).length} of ${thresholds.length} FAILED (exit 99)` : 'all hold'}`, ...thresholds.map((t) => `  ${t.ok ? '✓' : '✗'} ${t.message}`));
    if (summary.interrupted || signals > 0) {
      const lost = summary.dropped ? `; ${plural(summary.dropped, 'probe')} in flight ended by the stop, not recorded` : '';
      lines.push(`interrupted: ${Math.max(0, missing)} of ${summary.total} probes still to run${lost}`);
      lines.push(`finish with: ${resumeCommand(profile, f, summary.out)}`);
    }
    lines.push(`results: ${summary.out}`);
    lines.push(`next: mxprobe compare ${summary.out}    (names the path and size that stall, with evidence)`);
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  if (f.report) {
    // the report shows every probe whole (reply texts, errors, kernel snapshots): read them back from the file
    const full = (await readResults([summary.out])).filter((r) => r.runId === summary.runId);
    await writeCommandReport(f.report, reportInputFor(full, { title: `mxprobe run — ${plan.name}`, subtitle: `profile ${profile} · results ${summary.out}` }));
  }
  if (code === EXIT.INTERRUPTED) {
    // never hang after an interrupt: a probe that ignored its abort must not keep the process alive
    setTimeout(() => process.exit(EXIT.INTERRUPTED), 3000).unref();
  }
  return code;
}

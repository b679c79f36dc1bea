/**
 * `mxprobe bisect PROFILE --path NAME`: find the message size from which a path stalls, adaptively, in a few
 * probes: check that the high size stalls and the low size does not, then bisect (geometrically) with repeats
 * for confidence, down to 10% or one TCP segment.
 */
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { bisect, BisectError, type BisectStep } from '../analyze/bisect.js';
import type { ProbeResult } from '../model.js';
import { applyOverrides, computeProfileHash, ProfileError, type Plan } from '../profile/index.js';
import { newRunId, targetLabel } from '../run/index.js';
import { formatSize, parseSize } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { intArg } from './options.js';
import { renderBisectResult, renderBisectStep } from './render.js';
import { loadPlanOrExit, runPlanForCommand } from './verify.js';
import { forTerminalDeep } from '../text.js';

interface BisectFlags {
  path: string;
  target?: string;
  low?: number;
  high?: number;
  repeat?: number;
  maxProbes?: number;
  out?: string;
  json?: boolean;
  quiet?: boolean;
  color?: boolean;
}

const HELP_AFTER = `
How it searches:
  1. the high size must stall (one stall is enough; otherwise --repeat deliveries say it does not),
  2. the low size must go through (--repeat deliveries),
  3. then the geometric middle of the bracket, again and again: one stall marks a size as stalling, --repeat
     deliveries mark it clean; it stops when the bracket is within 10% or one TCP segment (1448 bytes).
  A clean-cut threshold between 4KiB and 1MiB is found in at most ~15 probes with --repeat 2.
  "Stalling" means stalled (or reset / timed out in the body); a rejection (e.g. 552) or a connection failure
  stops the search with the reason.

--low / --high default to the smallest / largest size of the profile. Every probe is recorded in --out.

Examples:
  mxprobe bisect profiles/lb-vs-direct.yaml --path via-lb
  mxprobe bisect lb.yaml --path via-lb --low 16KiB --high 4MiB --repeat 3
  mxprobe bisect lb.yaml --path via-lb --target mx1 --json

Exit codes: 0 a threshold was found, 1 no threshold (the high size does not stall, the low one does, or the
            budget ran out), 2 bad profile or options, 3 environment error.`;

const sizeOpt = (v: string): number => {
  try {
    const n = parseSize(v);
    if (n < 1) throw new Error('a size must be at least 1 byte');
    return n;
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function register(program: Command): void {
  program
    .command('bisect')
    .summary('find the size from which a path stalls, adaptively, in a handful of probes')
    .description(
      'Search the message size at which a path starts to stall, between a size that goes through and one that ' +
        'stalls, sending one probe at a time over the path (and target) of a profile; prints each step and the bracket.',
    )
    .argument('<profile>', 'profile file (YAML): the path, target, envelope and timeouts to probe with')
    .requiredOption('-p, --path <name>', 'the path to search on (a path name of the profile)')
    .option('-t, --target <name>', 'the target, when the profile has several (its name or host:port)')
    .option('--low <size>', 'a size that goes through (default: the profile\'s smallest size)', sizeOpt)
    .option('--high <size>', 'a size that stalls (default: the profile\'s largest size)', sizeOpt)
    .option('-r, --repeat <n>', 'deliveries needed to call a size clean', intArg(1), 2)
    .option('--max-probes <n>', 'probe budget', intArg(1), 40)
    .option('-o, --out <file>', 'results file for the probes (default results/bisect-<runId>.jsonl)')
    .option('--json', 'print the steps and the bracket as JSON on stdout')
    .option('-q, --quiet', 'no per-probe progress on stderr')
    .option('--no-color', 'no ANSI colours')
    .addHelpText('after', HELP_AFTER)
    .action(async (profile: string, flags: BisectFlags, cmd: Command) => {
      setExitCode(cmd, await bisectCommand(profile, flags));
    });
}

function selectTarget(plan: Plan, name: string | undefined): Plan {
  const labels = plan.targets.map((t) => ({ t, label: targetLabel(t), hp: t.host ? `${t.host}:${t.port}` : undefined }));
  if (!name) {
    if (plan.targets.length > 1) {
      throw new CliError(`the profile has ${plan.targets.length} targets (${labels.map((l) => l.label).join(', ')}): choose one with --target`);
    }
    return plan;
  }
  const hit = labels.filter((l) => l.label === name || l.hp === name || l.t.host === name);
  if (hit.length !== 1) {
    throw new CliError(`${hit.length ? 'ambiguous' : 'unknown'} target "${name}"; the profile has: ${labels.map((l) => l.label).join(', ')}`);
  }
  const next: Plan = { ...plan, targets: [hit[0]!.t] };
  next.profileHash = computeProfileHash(next);
  return next;
}

export async function bisectCommand(profile: string, f: BisectFlags): Promise<number> {
  const loaded = await loadPlanOrExit(profile);
  let base: Plan;
  try {
    base = selectTarget(applyOverrides(loaded, { paths: [f.path], concurrency: 1 }), f.target);
  } catch (err) {
    if (err instanceof ProfileError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
  const low = f.low ?? Math.min(...loaded.sizes);
  const high = f.high ?? Math.max(...loaded.sizes);
  if (!(high > low)) {
    throw new CliError(
      f.low === undefined && f.high === undefined
        ? `the profile has a single size (${formatSize(low)}): give --low (a size that goes through) and --high (one that stalls)`
        : `--high (${formatSize(high)}) must be larger than --low (${formatSize(low)})`,
    );
  }
  const out = f.out ?? join('results', `bisect-${newRunId()}.jsonl`);
  const color = f.color !== false && !!process.stdout.isTTY && !process.env.NO_COLOR;
  const all: ProbeResult[] = [];
  let call = 0;
  const runStep = async (sizeBytes: number, count: number): Promise<ProbeResult[]> => {
    let plan: Plan;
    try {
      plan = applyOverrides(base, { sizes: [sizeBytes], repeat: count, seed: (base.seed + ++call) % 0xffff_ffff });
    } catch (err) {
      if (err instanceof ProfileError) throw new CliError(err.message, EXIT.USAGE);
      throw err;
    }
    const r = await runPlanForCommand(plan, out, true);
    if (r.interrupted) throw new CliError(`interrupted; the probes so far are in ${out}`, EXIT.INTERRUPTED);
    all.push(...r.results);
    if (!f.quiet && !f.json) for (const x of r.results) process.stderr.write(`  probe ${formatSize(x.sizeBytes)} → ${x.outcome}${x.stage && x.outcome !== 'delivered' ? `@${x.stage}` : ''}\n`);
    return r.results;
  };
  if (!f.json) process.stdout.write(`bisect path ${f.path}${f.target ? ` → ${f.target}` : ''}: between ${formatSize(low)} and ${formatSize(high)}, ${f.repeat ?? 2} deliveries per clean step; probes → ${out}\n`);
  let result;
  try {
    result = await bisect(runStep, {
      low,
      high,
      repeat: f.repeat ?? 2,
      maxProbes: f.maxProbes ?? 40,
      onStep: (s: BisectStep) => {
        if (!f.json) process.stdout.write(`${renderBisectStep(forTerminalDeep(s), color)}\n`);
      },
    });
  } catch (err) {
    if (err instanceof BisectError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
  const code = result.converged ? EXIT.OK : EXIT.FINDINGS;
  if (f.json) {
    process.stdout.write(`${JSON.stringify({ path: f.path, target: f.target ?? targetLabel(base.targets[0]!), out, exitCode: code, ...result }, null, 2)}\n`);
  } else {
    const shown = forTerminalDeep(result);
    process.stdout.write(`\n${renderBisectResult(shown, f.path, color)}\n${shown.evidence ? `  ${shown.evidence.statement}\n` : ''}  results: ${out}\n`);
  }
  return code;
}

/**
 * `mxprobe demo`: incident 1 (a load balancer that drops DATA after ~64 KiB) reproduced on loopback and answered
 * by the comparator, in seconds, with no setup. The first thing a new user runs.
 */
import { Command } from 'commander';
import { describeSinkEvidence } from '../sink/index.js';
import { formatFault, parseFault, type FaultSpec } from '../lab/relay.js';
import { DEFAULT_DEMO_FAULT, runDemo, type DemoResult } from '../lab/demo.js';
import { createRunEmitter, RunError } from '../run/index.js';
import { formatMs } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { RUN_ERROR_EXIT } from './run.js';
import { durationArg, intArg, sizeArg } from './options.js';
import { attachProgress } from './progress.js';
import { renderCompare } from './render.js';
import { InvalidArgumentError } from 'commander';

interface DemoFlags {
  fault: string;
  serverFault?: string;
  sizes?: number[];
  repeat?: number;
  concurrency?: number;
  stall?: number;
  out?: string;
  json?: boolean;
  quiet?: boolean;
}

const faultArg = (v: string): string => {
  try {
    parseFault(v);
    return v;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

export function register(program: Command): void {
  program
    .command('demo')
    .summary('reproduce a load-balancer stall on loopback and watch mxprobe name the path and size (start here)')
    .description(
      'Starts a local receiving sink and two egress paths to it: "direct", and "via-lb" through a relay that\n' +
        'stops forwarding the sender\'s data after 64 KiB (the load balancer of incident 1). Runs the demo profile\n' +
        '(sizes 1 KiB … 4 MiB, interleaved across paths), then prints the table, the findings and the verdict,\n' +
        'joined with what the receiver saw. Everything on 127.0.0.1; nothing leaves this machine.',
    )
    .option('--fault <fault>', 'fault on via-lb, client→server: blackhole-after=N, freeze-after=N, reset-after=N, delay=MS, throttle=N/s, none', faultArg, DEFAULT_DEMO_FAULT)
    .option('--server-fault <fault>', 'fault on via-lb, server→client (default none)', faultArg)
    .option('--sizes <list>', 'message sizes, comma-separated (default from profiles/demo.yaml)', (v: string) => v.split(',').map((s) => sizeArg(s.trim())))
    .option('--repeat <n>', 'probes per cell', intArg(1))
    .option('--concurrency <n>', 'probes in flight', intArg(1))
    .option('--stall <duration>', 'stall window (default 1500ms from the profile: loopback is fast)', durationArg)
    .option('--out <file>', 'results file (default results/demo-<runId>.jsonl)')
    .option('--json', 'print {runId, out, fault, cells, findings, verdict} as JSON on stdout, no progress')
    .option('--quiet', 'no progress output')
    .addHelpText(
      'after',
      `
Examples:
  npx mxprobe demo                                  the load balancer of incident 1
  npx mxprobe demo --fault freeze-after=256KiB      a middlebox that stops the window (incident 2's family)
  npx mxprobe demo --fault none                     a clean run: must yield no finding
  npx mxprobe demo --json | jq .verdict

Exit codes: 0 the demo showed what it should (a stall finding naming via-lb with a fault; none without),
            1 it did not, 2 bad usage, 130 interrupted.`,
    )
    .action(async (f: DemoFlags, cmd: Command) => {
      setExitCode(cmd, await demoCommand(f));
    });
}

async function demoCommand(f: DemoFlags): Promise<number> {
  const fault: FaultSpec = parseFault(f.fault);
  const emitter = createRunEmitter();
  const progress = f.json || f.quiet ? undefined : attachProgress(emitter, { stream: process.stderr });
  if (progress) {
    emitter.on('run:start', (e) =>
      progress.line(
        `demo: sink on loopback; paths "direct" and "via-lb" (relay with ${formatFault(fault)}); ${e.total} probes, ${e.sizes.length} sizes x ${e.paths.length} paths x ${e.repeat}, interleaved`,
      ),
    );
  }
  const stop = new AbortController();
  const abandon = new AbortController();
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals === 1) stop.abort();
    else abandon.abort();
  };
  process.on('SIGINT', onSignal);
  let d: DemoResult;
  try {
    d = await runDemo({
      fault,
      ...(f.serverFault ? { serverFault: parseFault(f.serverFault) } : {}),
      ...(f.sizes ? { sizes: f.sizes } : {}),
      ...(f.repeat ? { repeat: f.repeat } : {}),
      ...(f.concurrency ? { concurrency: f.concurrency } : {}),
      ...(f.stall ? { stallMs: f.stall } : {}),
      ...(f.out ? { out: f.out } : {}),
      emitter,
      signal: stop.signal,
      abandonSignal: abandon.signal,
    });
  } catch (e) {
    if (e instanceof RunError) throw new CliError(e.message, RUN_ERROR_EXIT[e.code]);
    throw e;
  } finally {
    progress?.stop();
    process.off('SIGINT', onSignal);
  }

  const stallFindings = d.analysis.findings.filter((x) => x.stall);
  const namesViaLb = stallFindings.some((x) => x.path === 'via-lb');
  const ok = fault.kind === 'none' ? stallFindings.length === 0 : namesViaLb;
  const code = d.interrupted ? EXIT.INTERRUPTED : ok ? EXIT.OK : EXIT.FINDINGS;

  if (f.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          runId: d.runId,
          out: d.out,
          fault: d.fault,
          wallMs: Math.round(d.wallMs),
          interrupted: d.interrupted,
          sinkGreetingDelayMs: d.sinkGreetingDelayMs,
          cells: d.analysis.cells,
          findings: d.analysis.findings,
          verdict: d.analysis.verdict,
          exitCode: code,
        },
        null,
        2,
      )}\n`,
    );
    return code;
  }
  const color = !!process.stdout.isTTY && !process.env.NO_COLOR;
  const out: string[] = [''];
  out.push(renderCompare(d.analysis, { color, width: process.stdout.columns || 120 }));
  // the receiver's side of the stalled probes: proof that the loss is between the two ends
  const evidence = d.results
    .filter((r) => r.outcome === 'stalled')
    .sort((a, b) => b.sizeBytes - a.sizeBytes)
    .map((r) => ({ r, text: describeSinkEvidence(r) }))
    .filter((x) => x.text);
  if (evidence.length) {
    out.push('');
    out.push('What the receiver saw of the stalled probes (mxprobe sink, joined by probe id):');
    const seen = new Set<number>();
    for (const { r, text } of evidence) {
      if (seen.has(r.sizeBytes)) continue;
      seen.add(r.sizeBytes);
      out.push(`  ${r.path} ${r.probeId}: ${text}`);
    }
  }
  out.push('');
  out.push(`${d.results.length} probes in ${formatMs(d.wallMs)}; results: ${d.out}`);
  out.push(
    fault.kind === 'none'
      ? ok
        ? 'Clean run: no stall finding, as expected with --fault none.'
        : 'Unexpected: a stall finding on a clean run (is this machine overloaded? try a longer --stall).'
      : ok
        ? 'Next: point the same profile at your real paths (two source addresses, a proxy or a relay): see profiles/lb-vs-direct.yaml and the README.'
        : 'Unexpected: no stall finding naming via-lb (try a longer --stall or more --repeat).',
  );
  process.stdout.write(`${out.join('\n')}\n`);
  return code;
}

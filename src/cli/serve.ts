/**
 * `mxprobe serve [--profile P] [--interval 5m] [--listen 127.0.0.1:9466]`: run a profile on a schedule and
 * expose Prometheus metrics on /metrics; answer /probe?target=H:P&path=NAME&size=1MiB with one probe's metrics
 * (the blackbox_exporter multi-target pattern). Logs one line per run and per /probe request.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { formatPct } from '../analyze/stats.js';
import type { Plan } from '../profile/index.js';
import { AllowPatternError, parseAllowPattern } from '../serve/allow.js';
import { ServeError, startServe, type Serve, type ServeOptions } from '../serve/server.js';
import { formatMs, formatSize } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { addressArg as mailAddressArg, collect, durationArg, intArg, parseHostPort } from './options.js';
import { loadPlanOrExit } from './verify.js';
import { forTerminal } from '../text.js';

interface ServeFlags {
  maxConnections?: number;
  profile?: string;
  interval: number;
  listen: { host: string; port: number };
  out?: string;
  allowTarget?: string[];
  from?: string;
  to?: string[];
  window: number;
  maxProbes: number;
  json?: boolean;
  quiet?: boolean;
}

const HELP_AFTER = `
Endpoints:
  /metrics    the schedule's metrics (with --profile): per path/target/size histograms of every stage
              (mxprobe_probe_stage_duration_seconds), probes by outcome and stage (mxprobe_probes_total),
              mxprobe_probe_success (last probe of a cell), mxprobe_last_stall_offset_bytes, the comparator's
              current findings over the last --window runs (mxprobe_findings, mxprobe_stall_findings),
              mxprobe_last_run_timestamp_seconds, mxprobe_run_duration_seconds, mxprobe_skipped_intervals_total
  /probe      ONE probe now, its metrics only (probe_success, probe_duration_seconds,
              probe_stage_duration_seconds{stage}, probe_body_bytes_written, probe_outcome{outcome,stage}, …):
                /probe?target=HOST:PORT&path=NAME&size=1MiB[&tls=none][&stall=5s][&timeout=60][&format=json]
              target may be mx:DOMAIN; path must be one of the profile's (without --profile only "direct");
              the time budget is timeout=, else Prometheus' scrape timeout header minus 0.5 s, else 60 s
  /findings   the comparator's verdict, findings and cells (JSON);  /report  the same as an HTML report
  /healthz    200 and a JSON status

Safety: /probe makes this host open SMTP connections and send test messages, so it only probes allowed
targets: the profile's targets, plus --allow-target patterns (without a profile and patterns: loopback
only). Patterns: mx1.example.net, *.example.net, 192.0.2.10, 10.0.0.0/8, [2001:db8::/32], mx:example.net,
each with an optional :PORT; "*" allows anything — only behind your own access control. Names are matched as
names, addresses as addresses (nothing is resolved). Requests for other targets get 403. Listen on loopback
(the default) unless Prometheus scrapes from another host; then use a firewall as for any exporter.

Prometheus, pattern 1 — scrape the schedule of each agent (one agent per egress host):
  scrape_configs:
    - job_name: mxprobe
      scrape_interval: 1m
      static_configs:
        - targets: ['egress-a.example.net:9466', 'egress-b.example.net:9466']

Prometheus, pattern 2 — one Prometheus probes many targets through an agent (like blackbox_exporter):
  scrape_configs:
    - job_name: mxprobe-probe
      metrics_path: /probe
      scrape_interval: 5m
      scrape_timeout: 60s
      params: {path: [via-lb], size: [1MiB], stall: [10s]}
      static_configs:
        - targets: ['mx1.example.net:25', 'mx2.example.org:25']
      relabel_configs:
        - {source_labels: [__address__], target_label: __param_target}
        - {source_labels: [__param_target], target_label: instance}
        - {target_label: __address__, replacement: 'egress-a.example.net:9466'}

  Full examples with alert rules: examples/prometheus.yml, examples/mxprobe-alerts.yml.

Examples:
  mxprobe serve --profile profiles/lb-vs-direct.yaml --interval 5m
  mxprobe serve --profile lb.yaml --listen :9466 --allow-target '*.example.net:25'
  mxprobe serve --listen 127.0.0.1:9466      # no schedule: /probe to loopback targets only (a lab)
  curl 'http://127.0.0.1:9466/probe?target=127.0.0.1:2525&size=256KiB&tls=none'

Runs never overlap: a run that outlasts --interval is followed by the next at once (counted in
mxprobe_skipped_intervals_total). Results are appended to --out (default results/serve-YYYYMMDD.jsonl, a
new file each UTC day): \`mxprobe compare\` reads them. SIGINT/SIGTERM: stop scheduling, give probes in flight
1.5 s, close, exit 0.

Exit codes: 0 stopped by a signal, 2 bad flags or profile, 3 cannot listen (address in use, permission) or a
source address of the profile is not on this machine.`;

/** `127.0.0.1:9466`, `[::1]:9466`, `:9466` (all interfaces), or a bare port (127.0.0.1). */
export function listenArg(v: string): { host: string; port: number } {
  const s = v.trim();
  try {
    let hp: { host: string; port: number };
    if (/^\d+$/.test(s)) hp = { host: '127.0.0.1', port: Number(s) };
    else if (/^:\d+$/.test(s)) hp = { host: '', port: Number(s.slice(1)) };
    else hp = parseHostPort(s);
    if (hp.port > 65535) throw new Error(`not a TCP port: "${v}"`);
    return hp;
  } catch (e) {
    throw new InvalidArgumentError(`${(e as Error).message} (expected HOST:PORT, :PORT for all interfaces, or PORT)`);
  }
}

function allowArg(v: string, prev: string[] | undefined): string[] {
  try {
    parseAllowPattern(v);
  } catch (e) {
    throw new InvalidArgumentError((e as AllowPatternError).message);
  }
  return [...(prev ?? []), v];
}

export function register(program: Command): void {
  program
    .command('serve')
    .summary('probe on a schedule and expose Prometheus metrics; /probe answers one probe per scrape (blackbox style)')
    .description(
      'Run a profile every --interval and expose its metrics for Prometheus on /metrics; answer ' +
        '/probe?target=H:P&path=NAME&size=1MiB with the metrics of one probe, so one Prometheus can scrape many ' +
        'egress hosts (an mxprobe agent on each) for many targets, and alert on stalls.',
    )
    .option('-p, --profile <file>', 'profile to run on the schedule (its paths and targets also serve /probe)')
    .addOption(new Option('-i, --interval <duration>', 'time between the starts of two runs').argParser(durationArg).default(300_000, '5m'))
    .addOption(
      new Option('-l, --listen <addr>', 'HTTP address: HOST:PORT, :PORT (all interfaces) or PORT (loopback)')
        .argParser(listenArg)
        .default({ host: '127.0.0.1', port: 9466 }, '127.0.0.1:9466'),
    )
    .option('-o, --out <file>', 'results file of the schedule (JSON Lines, appended; default results/serve-YYYYMMDD.jsonl)')
    .option('--allow-target <pattern>', 'a target /probe may probe, repeatable (see Safety below)', allowArg)
    .option('--from <address>', 'without --profile: envelope sender of /probe messages', mailAddressArg)
    .option('--to <address>', 'without --profile: recipient of /probe messages, repeatable', collect(mailAddressArg))
    .option('--window <runs>', 'runs the findings on /metrics and /findings are computed over', intArg(1), 6)
    .option('--max-probes <n>', '/probe requests probing at once; more get 429', intArg(1), 8)
    .option('--max-connections <n>', 'concurrent HTTP connections (lowered to keep file descriptors for probes under ulimit -n)', intArg(1), 64)
    .option('--json', 'log one JSON object per line (event: listening | run | probe-request | stopped)')
    .option('-q, --quiet', 'log only errors')
    .addHelpText('after', HELP_AFTER)
    .action(async (flags: ServeFlags, cmd: Command) => {
      setExitCode(cmd, await serveCommand(flags));
    });
}

function plural(n: number, w: string): string {
  return `${n} ${w}${n === 1 ? '' : 's'}`;
}

function describePlan(plan: Plan): string {
  const n = plan.paths.length * plan.targets.length * plan.sizes.length * plan.repeat;
  return `${plural(plan.paths.length, 'path')} x ${plural(plan.targets.length, 'target')} x ${plural(plan.sizes.length, 'size')} x ${plan.repeat} = ${plural(n, 'probe')}`;
}

export async function serveCommand(f: ServeFlags): Promise<number> {
  if (f.profile && (f.from || f.to)) throw new CliError('--from/--to apply without --profile only (a profile has its own envelope:)');
  const plan = f.profile ? await loadPlanOrExit(f.profile) : undefined;
  const json = !!f.json;
  const quiet = !!f.quiet;
  const log = (obj: Record<string, unknown>, text: string): void => {
    if (quiet) return;
    process.stdout.write(json ? `${JSON.stringify({ time: new Date().toISOString(), ...obj })}\n` : `${forTerminal(text)}\n`);
  };
  const logError = (obj: Record<string, unknown>, text: string): void => {
    if (json) process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...obj })}\n`);
    else process.stderr.write(`${forTerminal(text)}\n`);
  };

  const opts: ServeOptions = {
    host: f.listen.host,
    port: f.listen.port,
    intervalMs: f.interval,
    windowRuns: f.window,
    maxConcurrentProbes: f.maxProbes,
    maxConnections: f.maxConnections,
  };
  if (plan) opts.plan = plan;
  if (f.out) opts.out = f.out;
  if (f.allowTarget?.length) opts.allowTargets = f.allowTarget;
  if (f.from || f.to) opts.envelope = { from: f.from ?? 'probe@mxprobe.test', to: f.to?.length ? f.to : ['sink@mxprobe.test'] };

  let serve: Serve;
  try {
    serve = await startServe(opts);
  } catch (err) {
    if (err instanceof ServeError) {
      if (err.code === 'EINPUT') throw new CliError(err.message, EXIT.USAGE);
      if (err.code === 'ELISTEN' && (err.sysCode === 'ENOTFOUND' || err.sysCode === 'EAI_AGAIN')) throw new CliError(err.message, EXIT.USAGE);
      throw new CliError(err.message, EXIT.ENV);
    }
    throw err;
  }

  const where = f.listen.host === '' ? `all interfaces, port ${serve.port}` : serve.url;
  log(
    { event: 'listening', url: serve.url, host: serve.host, port: serve.port, profile: plan?.name ?? null, intervalMs: plan ? f.interval : null, allow: serve.allow.describe() },
    `mxprobe serve: listening on ${where}  (/metrics /probe /findings /report /healthz)`,
  );
  if (plan) log({ event: 'schedule' }, `profile ${plan.name}: ${describePlan(plan)} every ${formatMs(f.interval)}`);
  else log({ event: 'schedule' }, 'no --profile: nothing is scheduled; /probe only');
  log({ event: 'allow' }, `/probe allows: ${serve.allow.describe()}${serve.allow.open ? '  (OPEN: anyone who reaches this port can make it send to any server)' : ''}`);

  const sch = serve.scheduler;
  sch?.on('run:start', (e) => log({ event: 'run:start', n: e.n, runId: e.runId, out: e.out }, `run ${e.n} (${e.runId}) started → ${e.out}`));
  sch?.on('run:end', (e) => {
    const rs = e.summary.results;
    const counts = new Map<string, number>();
    for (const r of rs) counts.set(r.outcome, (counts.get(r.outcome) ?? 0) + 1);
    const parts = [...counts].sort((a, b) => (a[0] === 'delivered' ? -1 : b[0] === 'delivered' ? 1 : b[1] - a[1])).map(([o, n]) => `${n} ${o}`);
    const stall = e.compare.stallFindings;
    log(
      {
        event: 'run',
        n: e.n,
        runId: e.summary.runId,
        probes: rs.length,
        counts: Object.fromEntries(counts),
        durationMs: Math.round(e.durationMs),
        interrupted: e.summary.interrupted,
        stallFindings: stall,
        verdict: e.compare.verdict,
      },
      `run ${e.n} done in ${formatMs(e.durationMs)}: ${plural(rs.length, 'probe')} (${parts.join(', ') || 'none'})${e.summary.interrupted ? ', interrupted' : ''}` +
        (stall ? `; ${plural(stall, 'stall finding')}: ${e.compare.verdict}` : ''),
    );
  });
  sch?.on('run:error', (e) => logError({ event: 'run:error', n: e.n, runId: e.runId, error: e.error.message }, `run ${e.n} failed: ${e.error.message}`));
  sch?.on('overrun', (e) =>
    log(
      { event: 'overrun', durationMs: Math.round(e.durationMs), skipped: e.skipped },
      `the run took ${formatMs(e.durationMs)}, longer than --interval ${formatMs(f.interval)}: the next starts now (${plural(e.skipped, 'interval')} skipped)`,
    ),
  );
  serve.on('server-error', (e) => logError({ event: 'server-error', code: e.code, error: e.message }, `mxprobe serve: ${e.message}`));
  serve.on('probe-request', (e) => {
    const what = `${e.target ?? '?'}${e.path ? ` ${e.path}` : ''}${e.sizeBytes !== undefined ? ` ${formatSize(e.sizeBytes)}` : ''}`;
    const text =
      e.status === 200
        ? `/probe ${what} → ${e.outcome}${e.stage ? `@${e.stage}` : ''} (${formatMs(e.durationMs)})`
        : `/probe ${what} → ${e.status} ${e.message ?? ''}`;
    log({ event: 'probe-request', ...e, durationMs: Math.round(e.durationMs) }, text);
  });

  // until SIGINT / SIGTERM
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const on = (s: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(s);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
  log({ event: 'stopping', signal }, `stopping (${signal}): no new runs; probes in flight get 1.5 s`);
  // a second signal, or anything that refuses to end, must not keep the process alive
  const force = (): void => process.exit(EXIT.OK);
  process.once('SIGINT', force);
  process.once('SIGTERM', force);
  setTimeout(force, 5000).unref();
  await serve.close();
  process.off('SIGINT', force);
  process.off('SIGTERM', force);
  const w = sch?.window() ?? [];
  const stalled = w.filter((r) => r.outcome === 'stalled').length;
  log(
    { event: 'stopped', signal, runs: sch?.runsStarted ?? 0, windowProbes: w.length },
    `stopped after ${plural(sch?.runsStarted ?? 0, 'run')}${w.length ? ` (last window: ${plural(w.length, 'probe')}, ${formatPct(stalled / w.length)} stalled)` : ''}` +
      (sch?.lastOut ? `; results in ${sch.lastOut}` : ''),
  );
  return EXIT.OK;
}

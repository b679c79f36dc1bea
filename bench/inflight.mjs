// Many probes in flight (issue 19, point 4): 2,000 probes of 1 KiB at once through the lab relay holding every
// server reply for 1 s (`delay=1s`), so every probe is in flight for ~7 s.
//
//   npm run build && ulimit -n 8192 && node bench/inflight.mjs     (INFLIGHT=2000 by default; SINK=postfix: smtp-sink)
//
// The relay and the receiver (a minimal SMTP server, or Postfix smtp-sink) run in a process of their own, so what
// is printed is the prober's: peak RSS, peak open fds, event-loop delay (perf_hooks monitorEventLoopDelay, 1 ms
// resolution: its floor is ~1 ms), ss(8) runs, and each reply stage's skew (its duration − the relay's 1,000 ms)
// with 10 in flight and with INFLIGHT in flight: what the others add to one probe's timing is the difference, to
// be read against the loop delay. Probes start 0.5 ms apart (accept queues are finite: a burst of SYNs above them
// would measure the backlog, not the engine).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { benchSpec, fmt, startSmtpSink } from './_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(here, '../dist');
const INFLIGHT = Number(process.env.INFLIGHT ?? 2000);
const DELAY_MS = 1000;
const REPLY_STAGES = ['greeting', 'ehlo', 'mail', 'rcpt', 'data', 'dataAck', 'quit'];

const { probe } = await import(pathToFileURL(join(DIST, 'probe/index.js')).href);
const { DEFAULT_TIMEOUTS } = await import(pathToFileURL(join(DIST, 'model.js')).href);
const { ssRunCount } = await import(pathToFileURL(join(DIST, 'probe/tcpinfo.js')).href);

/**
 * The receiver and the lab relay in a child process of their own, replies held DELAY_MS: the receiver is the
 * engine's minimal SMTP session server (warmup.ts) unless SINK=postfix (Postfix smtp-sink at `sinkPort`).
 */
function startRelayChild(sinkPort) {
  const url = (f) => JSON.stringify(pathToFileURL(join(DIST, f)).href);
  const code = `
    import net from 'node:net';
    import { startRelay } from ${url('lab/relay.js')};
    import { minimalSmtpSession } from ${url('probe/warmup.js')};
    let port = ${sinkPort ?? 0};
    if (!port) {
      const srv = net.createServer(minimalSmtpSession);
      await new Promise((r) => srv.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, r));
      port = srv.address().port;
    }
    const r = await startRelay({ targetHost: '127.0.0.1', targetPort: port, serverToClient: { kind: 'delay', ms: ${DELAY_MS} } });
    const { monitorEventLoopDelay } = await import('node:perf_hooks');
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    // a line on stdin: print this process's loop delay since the last one (ms), and start again
    process.stdin.on('data', () => {
      console.log(JSON.stringify({ p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }));
      loop.reset();
    });
    console.log(r.port);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  const loopDelay = () =>
    new Promise((res) => {
      child.stdout.once('data', (d) => res(JSON.parse(String(d))));
      child.stdin.write('\n');
    });
  return new Promise((res) => child.stdout.once('data', (d) => res({ port: Number(String(d).trim()), loopDelay, stop: () => child.kill('SIGKILL') })));
}

const spec = (port, i) => benchSpec(port, `f-${i}`, 'relay-delay', DEFAULT_TIMEOUTS);

const fds = () => readdirSync('/proc/self/fd').length;
const quantile = (xs, q) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] : NaN);

/** `count` probes started 0.5 ms apart; peak RSS / fds sampled every 100 ms, the loop delay over the whole round. */
async function round(port, count) {
  const loop = monitorEventLoopDelay({ resolution: 1 });
  let peakRss = 0;
  let peakFds = 0;
  const sample = () => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
    peakFds = Math.max(peakFds, fds());
  };
  const sampler = setInterval(sample, 100);
  const ss0 = ssRunCount();
  const fds0 = fds();
  loop.enable();
  const t0 = performance.now();
  const results = await Promise.all(
    Array.from({ length: count }, (_, i) => new Promise((r) => setTimeout(r, i / 2)).then(() => probe(spec(port, i)))),
  );
  const wallS = (performance.now() - t0) / 1000;
  loop.disable();
  clearInterval(sampler);
  sample();
  const skew = Object.fromEntries(REPLY_STAGES.map((s) => [s, results.flatMap((r) => (r.stages[s] === undefined ? [] : [r.stages[s] - DELAY_MS]))]));
  const outcomes = results.reduce((m, r) => ((m[r.outcome] = (m[r.outcome] ?? 0) + 1), m), {});
  return { count, wallS, outcomes, peakRss, fds0, peakFds, fdsAfter: fds(), ss: ssRunCount() - ss0, loop, skew, connect: results.flatMap((r) => (r.stages.connect === undefined ? [] : [r.stages.connect])) };
}

function print(r, relayLoop) {
  const ms = (ns) => fmt(ns / 1e6, 1);
  console.log(`${fmt(r.count)} in flight: ${fmt(r.wallS, 1)} s wall, outcomes ${JSON.stringify(r.outcomes)}`);
  console.log(`  peak RSS ${fmt(r.peakRss / 2 ** 20)} MiB; open fds ${r.fds0} before, ${r.peakFds} at peak, ${r.fdsAfter} after; ss runs ${r.ss}`);
  console.log(`  event-loop delay: p50 ${ms(r.loop.percentile(50))} ms, p99 ${ms(r.loop.percentile(99))} ms, max ${ms(r.loop.max)} ms`);
  console.log(`  the relay's (and receiver's) process: event-loop delay p99 ${fmt(relayLoop.p99, 1)} ms, max ${fmt(relayLoop.max, 1)} ms`);
  console.log(`  connect: p50 ${fmt(quantile(r.connect, 0.5), 3)} ms, p99 ${fmt(quantile(r.connect, 0.99), 3)} ms`);
  console.log('  stage skew (duration − 1,000 ms):  p50 ms   p99 ms   max ms');
  for (const s of REPLY_STAGES) {
    const xs = r.skew[s];
    console.log(`    ${s.padEnd(30)} ${fmt(quantile(xs, 0.5), 2).padStart(7)}  ${fmt(quantile(xs, 0.99), 2).padStart(7)}  ${fmt(Math.max(...xs), 2).padStart(7)}`);
  }
}

const sink = process.env.SINK === 'postfix' ? await startSmtpSink({ backlog: 4096 }) : undefined;
if (process.env.SINK === 'postfix' && !sink) {
  console.log('smtp-sink not installed (apt-get install postfix): skipped');
  process.exit(0);
}
const relay = await startRelayChild(sink?.port);
try {
  const receiver = sink ? 'Postfix smtp-sink' : 'a minimal SMTP server (warmup.ts)';
  console.log(`1 KiB probes through the lab relay (delay=1s on replies) to ${receiver}; fd limit (ulimit -n) ${fdLimit()}\n`);
  await round(relay.port, 10); // the relay's and the receiver's own warm-up
  for (const n of [10, INFLIGHT]) {
    await relay.loopDelay();
    const r = await round(relay.port, n);
    print(r, await relay.loopDelay());
  }
} finally {
  relay.stop();
  sink?.stop();
}

function fdLimit() {
  return /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? '?';
}

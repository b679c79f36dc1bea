// Soak (issue 9): 10,000 probes through the runner and the real engine over the lab — an SMTP server and four
// fault-injecting relays (none, blackhole, reset, freeze) in a child process — so outcomes are mixed: delivered,
// stalled and reset. Prints open file descriptors, RSS and heap at the start, every 10 % and at the end, and
// counts unhandled rejections. Resource leaks are what this looks for: the figures should be flat.
//
//   node --expose-gc bench/soak.mjs                 (after npm run build)
//   MXPROBE_SOAK_PROBES=2000 MXPROBE_SOAK_CONCURRENCY=50 MXPROBE_SOAK_STALL=2s node bench/soak.mjs
//
// Prints figures; exits 1 only when something leaked (fds or handles not back to the start, an unhandled
// rejection), never because the machine was slow.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { DEFAULT_TIMEOUTS } from '../dist/model.js';
import { probe } from '../dist/probe/index.js';
import { createRunEmitter, runPlan } from '../dist/run/index.js';
import { parseDuration } from '../dist/units.js';
import { fmt } from './_util.mjs';

const COUNT = Number(process.env.MXPROBE_SOAK_PROBES ?? 10_000);
const CONCURRENCY = Number(process.env.MXPROBE_SOAK_CONCURRENCY ?? 50);
const STALL_MS = parseDuration(process.env.MXPROBE_SOAK_STALL ?? '2s');
const FAULTS = { clean: 'none', blackhole: 'blackhole-after=64KiB', reset: 'reset-after=64KiB', freeze: 'freeze-after=64KiB' };
const SIZES = [2048, 256 * 1024];
const ROOT = fileURLToPath(new URL('../', import.meta.url));

let rejections = 0;
process.on('unhandledRejection', (e) => {
  rejections++;
  console.error('unhandled rejection:', e);
});

const fds = () => readdirSync('/proc/self/fd').length;
const mb = (n) => fmt(n / 1024 / 1024, 1);
function handles() {
  const c = {};
  for (const r of process.getActiveResourcesInfo()) c[r] = (c[r] ?? 0) + 1;
  return c;
}
function sample(label) {
  globalThis.gc?.();
  const m = process.memoryUsage();
  return { label, fds: fds(), rss: m.rss, heap: m.heapUsed, handles: handles() };
}
const row = (s) => `${s.label.padEnd(14)} fds ${String(s.fds).padStart(4)}   RSS ${mb(s.rss).padStart(7)} MiB   heap ${mb(s.heap).padStart(6)} MiB`;

/** The lab in its own process: smtp-server + one relay per fault, all on 127.0.0.1. Prints the ports as JSON. */
async function startLab() {
  const code = `
    import { SMTPServer } from 'smtp-server';
    import { startRelay, parseFault } from './dist/lab/relay.js';
    const faults = ${JSON.stringify(FAULTS)};
    const s = new SMTPServer({ disableReverseLookup: true, authOptional: true, hideSTARTTLS: true, logger: false, maxClients: 5000,
      onData(stream, session, cb) { stream.resume(); stream.on('end', () => cb()); } });
    s.on('error', () => {});
    await new Promise((r) => s.listen(0, '127.0.0.1', r));
    const port = s.server.address().port;
    const relays = {};
    for (const [name, f] of Object.entries(faults)) {
      const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: port, clientToServer: parseFault(f) });
      relay.on('warning', () => {});
      relays[name] = relay.port;
    }
    process.stdout.write(JSON.stringify({ port, relays }) + '\\n');`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const info = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(JSON.parse(buf));
    });
    child.once('exit', (c) => reject(new Error(`lab exited with ${c}`)));
  });
  return { ...info, stop: () => child.kill('SIGKILL') };
}

const lab = await startLab();
const dir = mkdtempSync(join(tmpdir(), 'mxprobe-soak-'));
const out = join(dir, 'soak.jsonl');
const paths = Object.keys(FAULTS);
const repeat = Math.max(1, Math.round(COUNT / (paths.length * SIZES.length)));
const plan = {
  name: 'soak',
  profileHash: 'bench-soak-00001',
  targets: [{ host: '127.0.0.1', port: lab.port, tls: 'none', name: 'sink' }],
  paths: paths.map((name) => ({ name, relay: { host: '127.0.0.1', port: lab.relays[name] } })),
  sizes: SIZES,
  repeat,
  envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
  timeouts: { ...DEFAULT_TIMEOUTS, stallMs: STALL_MS, noReplyMs: STALL_MS },
  concurrency: CONCURRENCY,
  seed: 1,
  tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER, // snapshots at stalls only
};
const total = repeat * paths.length * SIZES.length;
console.log(
  `${fmt(total)} probes (${paths.length} paths: ${Object.values(FAULTS).join(', ')} x ${SIZES.length} sizes x ${fmt(repeat)}), ` +
    `concurrency ${CONCURRENCY}, stall window ${STALL_MS} ms, lab on 127.0.0.1:${lab.port} (child process)\n`,
);

// one warm-up probe so lazily loaded modules and the first socket are not counted as growth
await probe({ probeId: 'warm', target: plan.targets[0], path: { name: 'w' }, sizeBytes: 2048, seed: 1, envelope: plan.envelope, timeouts: plan.timeouts });
await new Promise((r) => setTimeout(r, 200));
const samples = [sample('start')];
console.log(row(samples[0]));

const counts = {};
const ee = createRunEmitter();
const step = Math.max(1, Math.floor(total / 10));
ee.on('probe:end', (e) => {
  counts[e.result.outcome] = (counts[e.result.outcome] ?? 0) + 1;
  if (e.done % step === 0 && e.done < total) {
    const s = sample(`${fmt(e.done)}`);
    samples.push(s);
    console.log(`${row(s)}   in flight ≤ ${CONCURRENCY}   ${JSON.stringify(counts)}`);
  }
});
const t0 = performance.now();
let summary;
let end;
try {
  summary = await runPlan(plan, { out, emitter: ee, keepResults: false, probeFn: (spec, o) => probe({ ...spec, earlyStall: false }, o) });
  // the end figures are taken with the lab still up: our side alone must have closed everything
  const settled = () => fds() <= samples[0].fds && Object.entries(handles()).every(([k, v]) => v <= (samples[0].handles[k] ?? 0));
  for (let i = 0; i < 50 && !settled(); i++) await new Promise((r) => setTimeout(r, 100));
  end = sample('end');
  samples.push(end);
  console.log(row(end));
  if (process.env.MXPROBE_SOAK_DEBUG) {
    const { execFileSync } = await import('node:child_process');
    console.log(execFileSync('ss', ['-tanp'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`pid=${process.pid},`)).join('\n'));
  }
} finally {
  lab.stop();
}
const secs = (performance.now() - t0) / 1000;

const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean);
let bad = 0;
for (const l of lines) {
  try {
    JSON.parse(l);
  } catch {
    bad++;
  }
}
rmSync(dir, { recursive: true, force: true });

const mid = samples[Math.floor(samples.length / 2)];
console.log(`\n${fmt(summary.recorded)} probes recorded in ${fmt(secs, 1)} s (${fmt(summary.recorded / secs)} probes/s): ${JSON.stringify(counts)}`);
console.log(`JSONL: ${fmt(lines.length)} lines, ${bad} that do not parse`);
console.log(`open fds: start ${samples[0].fds}, middle ${mid.fds}, end ${end.fds}`);
console.log(`RSS: start ${mb(samples[0].rss)} MiB, middle ${mb(mid.rss)} MiB, end ${mb(end.rss)} MiB; heap end ${mb(end.heap)} MiB`);
console.log(`active handles: start ${JSON.stringify(samples[0].handles)}, end ${JSON.stringify(end.handles)}`);
console.log(`unhandled rejections: ${rejections}`);
const leakedHandles = Object.entries(end.handles).filter(([k, v]) => v > (samples[0].handles[k] ?? 0));
if (rejections > 0 || end.fds > samples[0].fds + 2 || leakedHandles.length > 0 || bad > 0 || summary.recorded !== total) {
  console.log(`LEAK OR LOSS: ${JSON.stringify({ rejections, fds: [samples[0].fds, end.fds], leakedHandles, bad, recorded: summary.recorded, total })}`);
  process.exitCode = 1;
} else {
  console.log('flat: no descriptor, handle or rejection left over; every probe recorded');
}

// Runner benchmark (issue 3): 10,000 probes of 1 KiB at concurrency 50 against Postfix's smtp-sink, through the
// whole runner (expansion, validation, scheduling, events, one JSONL line written per probe) next to the engine
// alone in a p-limit loop; RSS sampled every 1,000 probes (it should stay flat) and the peak.
// Falls back to a smtp-server child process when smtp-sink is not installed (apt-get install postfix).
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { DEFAULT_TIMEOUTS } from '../dist/model.js';
import { probe } from '../dist/probe/index.js';
import { createRunEmitter, expandPlan, runPlan, slimResult } from '../dist/run/index.js';
import { fmt, freePort, startSmtpSink } from './_util.mjs';

const COUNT = Number(process.env.MXPROBE_BENCH_PROBES ?? 10_000);
const CONCURRENCY = 50;
const SIZE = 1024;
const mb = (bytes) => bytes / 1024 / 1024;

/** smtp-server in its own process (so it does not share the runner's event loop). */
async function startSmtpServerChild() {
  const port = await freePort();
  const root = fileURLToPath(new URL('../', import.meta.url));
  const code = `
    const { SMTPServer } = require('smtp-server');
    const s = new SMTPServer({ disableReverseLookup: true, authOptional: true, hideSTARTTLS: true, logger: false,
      maxClients: 1000, onData(stream, session, cb) { stream.resume(); stream.on('end', () => cb()); } });
    s.listen(${port}, '127.0.0.1', () => process.stdout.write('ready\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (c) => reject(new Error(`smtp-server exited with ${c}`)));
  });
  return { port, stop: () => child.kill('SIGKILL'), name: 'smtp-server (node, child process; adds its 100 ms greeting delay)' };
}

function plan(port, count) {
  return {
    name: 'bench',
    profileHash: 'bench-runner-0001',
    targets: [{ host: '127.0.0.1', port, tls: 'none' }],
    paths: [{ name: 'direct' }],
    sizes: [SIZE],
    repeat: count,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    timeouts: { ...DEFAULT_TIMEOUTS, stallMs: 10_000 },
    concurrency: CONCURRENCY,
    seed: 1,
    tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER, // measure SMTP and the runner, not the ss(8) call
  };
}

/** The engine alone: the same specs, a p-limit loop, results dropped. */
async function engineAlone(p, count) {
  globalThis.gc?.();
  const specs = expandPlan(p, { runId: 'bench-engine' }).slice(0, count);
  const limit = pLimit(CONCURRENCY);
  let ok = 0;
  const t0 = performance.now();
  await Promise.all(specs.map((s) => limit(async () => {
    const r = await probe(s);
    if (r.outcome === 'delivered') ok++;
  })));
  return { perSec: count / ((performance.now() - t0) / 1000), ok };
}

/** The runner as `mxprobe run` drives it: JSONL lines, events, slim copies kept for the summary. */
async function throughRunner(p, out) {
  globalThis.gc?.();
  const ee = createRunEmitter();
  const rss = [];
  const kept = [];
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 100);
  ee.on('probe:end', (e) => {
    kept.push(slimResult(e.result));
    if (e.done % 1000 === 0) rss.push([e.done, process.memoryUsage().rss]);
  });
  let stageEvents = 0;
  ee.on('probe:stage', () => stageEvents++); // a subscriber, as the CLI's progress is
  const t0 = performance.now();
  const res = await runPlan(p, { out, emitter: ee, runId: 'bench-runner', keepResults: false });
  const s = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage().rss);
  const ok = kept.filter((r) => r.outcome === 'delivered').length;
  return { perSec: res.recorded / s, ok, n: res.recorded, rss, peak, stageEvents };
}

/**
 * The runner's own CPU per probe: the same plan through runPlan with an engine that answers at once (a canned
 * result, nine stage events), JSONL lines written. Robust on a busy machine, where probes/s figures are noisy.
 */
async function runnerAlone(p, out) {
  const canned = {
    target: `127.0.0.1:${p.targets[0].port}`, path: 'direct', sizeBytes: SIZE, seed: 1, outcome: 'delivered',
    stages: { connect: 0.2, greeting: 0.4, ehlo: 0.1, mail: 0.1, rcpt: 0.1, data: 0.1, body: 0.1, dataAck: 0.3, quit: 0.1 },
    startedAt: new Date().toISOString(), durationMs: 1.5, bytesWritten: 1090, bytesRead: 216, bodyBytesWritten: SIZE,
    reply: { code: 250, text: '2.0.0 Ok: queued as 4Xk2' }, recipients: [{ address: 'sink@mxprobe.test', code: 250 }],
    localAddress: '127.0.0.1', localPort: 40000, remoteAddress: '127.0.0.1', remotePort: p.targets[0].port,
    capabilities: ['PIPELINING', 'SIZE 10240000', '8BITMIME'],
  };
  const stages = Object.keys(canned.stages);
  const instant = async (spec, o) => {
    for (const stage of stages) o.onStage?.({ probeId: spec.probeId, stage, tMs: 0.1 });
    return { ...canned, probeId: spec.probeId, seed: spec.seed, stages: { ...canned.stages } };
  };
  const ee = createRunEmitter();
  const kept = [];
  ee.on('probe:end', (e) => kept.push(slimResult(e.result)));
  ee.on('probe:stage', () => undefined);
  globalThis.gc?.();
  const t0 = performance.now();
  await runPlan(p, { out, emitter: ee, probeFn: instant, keepResults: false, runId: 'bench-instant' });
  return ((performance.now() - t0) * 1000) / kept.length;
}

// `--runner-only PORT OUT`: the runner phase alone in a fresh process, for a clean RSS figure (the parent's
// engine-alone phases leave their garbage in its heap)
if (process.argv[2] === '--runner-only') {
  const r = await throughRunner(plan(Number(process.argv[3]), COUNT), process.argv[4]);
  console.log(JSON.stringify({ perSec: r.perSec, ok: r.ok, rss: r.rss, peak: r.peak, maxRssKiB: process.resourceUsage().maxRSS }));
  process.exit(0);
}

const sink = (await startSmtpSink()) ?? (await startSmtpServerChild());
const sinkName = sink.name ?? 'Postfix smtp-sink';
const dir = mkdtempSync(join(tmpdir(), 'mxprobe-bench-'));
try {
  const p = plan(sink.port, COUNT);
  console.log(`${fmt(COUNT)} probes of ${SIZE} bytes at concurrency ${CONCURRENCY} against ${sinkName} on 127.0.0.1:${sink.port}\n`);

  // expansion alone (done once before the first probe)
  const t0 = performance.now();
  const specs = expandPlan(p, { runId: 'x' });
  console.log(`plan expansion of ${fmt(specs.length)} specs (shuffle, ids, seeds): ${fmt(performance.now() - t0)} ms`);

  await engineAlone(plan(sink.port, 2000), 2000); // warm-up (JIT, caches)
  const e1 = await engineAlone(p, COUNT);
  const r = await throughRunner(p, join(dir, 'bench.jsonl'));
  const e2 = await engineAlone(p, COUNT); // again, to bracket the runner and see the noise
  const fresh = JSON.parse(
    execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--runner-only', String(sink.port), join(dir, 'fresh.jsonl')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop(),
  );
  const engine = (e1.perSec + e2.perSec) / 2;
  const lines = readFileSync(join(dir, 'bench.jsonl'), 'utf8').split('\n').filter(Boolean).length;

  console.log('\n                               probes/s   delivered');
  console.log(`  engine alone (p-limit loop)  ${fmt(e1.perSec).padStart(8)}   ${e1.ok}/${COUNT}`);
  console.log(`  whole runner (JSONL, events) ${fmt(r.perSec).padStart(8)}   ${r.ok}/${r.n}   (${fmt(lines)} lines written)`);
  console.log(`  engine alone, again          ${fmt(e2.perSec).padStart(8)}   ${e2.ok}/${COUNT}`);
  const cost = (1 - r.perSec / engine) * 100;
  console.log(`\nrunner cost: ${fmt(cost, 1)}% of the engine's rate (target < 10%; noisy when other work shares the CPU)`);
  const us = await runnerAlone(p, join(dir, 'instant.jsonl'));
  console.log(
    `runner's own CPU: ${fmt(us)} µs per probe with an instant engine (expansion, validation, scheduling, events, JSONL) ` +
      `= ${fmt((us * engine) / 1e4, 1)}% of the time per probe at the engine's ${fmt(engine)} probes/s`,
  );
  console.log(`stage events delivered to a subscriber: ${fmt(r.stageEvents)}`);
  console.log(`RSS of the runner in a fresh process (MB), every 1,000 probes: ${fresh.rss.map(([, v]) => fmt(mb(v))).join(' ')}`);
  const first = fresh.rss[0]?.[1] ?? 0;
  const last = fresh.rss.at(-1)?.[1] ?? 0;
  console.log(`RSS growth from 1,000 to ${fmt(fresh.rss.at(-1)?.[0] ?? 0)} probes: ${fmt(mb(last - first), 1)} MB; peak RSS ${fmt(fresh.maxRssKiB / 1024)} MB (target < 150 MB); ${fmt(fresh.perSec)} probes/s`);
  console.log(`(slim copies of every result are kept for the summary, as mxprobe run does: ~${fmt((last - first) / Math.max(1, (fresh.rss.at(-1)?.[0] ?? 1) - 1000))} bytes per probe)`);
} finally {
  sink.stop();
  rmSync(dir, { recursive: true, force: true });
}

// Timing fidelity (issue 19, point 3): each stage's duration as the engine measured it, against the same interval
// between packets on loopback captured by tcpdump, for 1 KiB probes to Postfix's smtp-sink.
//
//   npm run build && node bench/fidelity.mjs                (root or CAP_NET_RAW for tcpdump; apt-get install postfix)
//   MXPROBE_BASELINE_DIST=/path/to/old/dist node bench/fidelity.mjs      the same for an earlier build, same capture
//   FIDELITY_CLI=1 node bench/fidelity.mjs     also FRESH one-off `mxprobe probe --json` runs of bin/mxprobe.js (the
//                                              bundle with its code cache: what a user's first probe is)
//
// Probes run in fresh processes: FRESH processes of one probe each (the first probe of a process, where warm-up
// used to land inside `connect`), and one process of MANY probes. Printed per stage: p50 / p99 / max of
// (stage duration − packet interval) in ms; connect = SYN → SYN-ACK, greeting = SYN-ACK → the greeting, each
// command → its reply, body = first → last segment of the message, dataAck = the final dot's segment → the reply.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { byClientPort, packetStages, readPcap } from './_pcap.mjs';
import { fmt, startSmtpSink, which, loadEngine } from './_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CURRENT = resolve(here, '../dist');
const BASELINE = process.env.MXPROBE_BASELINE_DIST;
const FRESH = Number(process.env.FIDELITY_FRESH ?? 20);
const MANY = Number(process.env.FIDELITY_MANY ?? 300);
const STAGES = ['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit'];

/** Child mode: `count` probes in this (fresh) process; prints one JSON line per probe. */
async function child(dist, port, count) {
  const probe = await loadEngine(dist, 'fid');
  for (let i = 0; i < count; i++) {
    const r = await probe(port, i);
    process.stdout.write(`${JSON.stringify({ i, outcome: r.outcome, localPort: r.localPort, startedAt: r.startedAt, stages: r.stages })}\n`);
  }
}

/** One `mxprobe probe --json` of the shipped CLI (bin/mxprobe.js): the first probe of its process. */
function runCli(bin, port) {
  const args = ['probe', '--host', '127.0.0.1', '--port', String(port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--size', '1KiB', '--json'];
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  const j = JSON.parse(r.stdout);
  return [{ outcome: j.outcome, localPort: j.localPort, startedAt: j.startedAt, stages: j.stages }];
}

function runChild(dist, port, count) {
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dist, String(port), String(count)], { encoding: 'utf8' });
  return r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

async function startCapture(file, port) {
  const p = spawn(which('tcpdump') ?? 'tcpdump', ['-i', 'lo', '-U', '-n', '--time-stamp-precision=nano', '-B', '65536', '-w', file, `tcp port ${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise((res, rej) => {
    p.stderr.on('data', (d) => String(d).includes('listening on') && res());
    p.on('exit', (c) => rej(new Error(`tcpdump exited ${c}`)));
  });
  return () => new Promise((res) => { p.on('exit', res); p.kill('SIGINT'); });
}

const quantile = (xs, q) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))] : NaN);

/** Per stage, the differences (ms) between each probe's stage and its packets. */
function differences(results, conns) {
  const d = Object.fromEntries(STAGES.map((s) => [s, []]));
  for (const r of results) {
    // the probe's connection: the first one on its port since it started (capture and Date share the wall clock)
    const after = Date.parse(r.startedAt) - 2;
    const conn = conns.get(r.localPort)?.find((c) => c[0]?.tMs >= after && !c.used);
    if (conn) conn.used = true;
    const pk = conn && packetStages(conn);
    if (!pk || r.outcome !== 'delivered') continue;
    for (const s of STAGES) if (r.stages[s] !== undefined && pk[s] !== undefined) d[s].push(r.stages[s] - pk[s]);
  }
  return d;
}

function table(title, d) {
  console.log(`${title}\n  stage       n     p50 ms    p99 ms    max ms`);
  for (const s of STAGES) {
    const xs = d[s];
    console.log(`  ${s.padEnd(9)} ${String(xs.length).padStart(4)}  ${fmt(quantile(xs, 0.5), 3).padStart(8)}  ${fmt(quantile(xs, 0.99), 3).padStart(8)}  ${fmt(Math.max(...xs), 3).padStart(8)}`);
  }
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]), Number(process.argv[5]));
  process.exit(0);
}

const sink = await startSmtpSink();
if (!sink || !which('tcpdump')) {
  console.log('needs Postfix smtp-sink and tcpdump (apt-get install postfix tcpdump), run as root: skipped');
  process.exit(0);
}
const dir = mkdtempSync(join(tmpdir(), 'fidelity-'));
try {
  const builds = [['this build', CURRENT], ...(BASELINE ? [['baseline', BASELINE]] : [])];
  const cli = process.env.FIDELITY_CLI ? { label: 'this build, `mxprobe probe` (bin/mxprobe.js)', fresh: [] } : undefined;
  const file = join(dir, 'lo.pcap');
  const stop = await startCapture(file, sink.port);
  const runs = builds.map(([label]) => ({ label, fresh: [], many: [] }));
  for (let k = 0; k < FRESH; k++) {
    builds.forEach(([, dist], j) => runs[j].fresh.push(...runChild(dist, sink.port, 1)));
    cli?.fresh.push(...runCli(resolve(here, '../bin/mxprobe.js'), sink.port));
  }
  builds.forEach(([, dist], j) => (runs[j].many = runChild(dist, sink.port, MANY)));
  await new Promise((r) => setTimeout(r, 300));
  await stop();
  const conns = byClientPort(readPcap(file), sink.port);
  console.log(`1 KiB probes to smtp-sink, captured on lo: stage duration − packet interval (ms)\n`);
  for (const r of runs) {
    table(`${r.label}: the first (only) probe of ${FRESH} fresh processes`, differences(r.fresh, conns));
    table(`${r.label}: ${MANY} probes in one process`, differences(r.many, conns));
    console.log('');
  }
  if (cli) table(`${cli.label}: ${FRESH} one-off probes`, differences(cli.fresh, conns));
} finally {
  sink.stop();
  rmSync(dir, { recursive: true, force: true });
}

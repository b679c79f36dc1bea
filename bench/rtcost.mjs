// Per-round-trip cost of the engine (issue 19, point 1): what one 1 KiB probe costs the client process above the
// minimal Node SMTP client (bench/_util.mjs), against Postfix's smtp-sink.
//
//   npm run build && node bench/rtcost.mjs
//   MXPROBE_BASELINE_DIST=/path/to/old/dist node bench/rtcost.mjs      also an earlier build, same run, same sink
//
// Two measures, each for this build, the baseline (when given) and the minimal client:
// - instructions per probe: valgrind (callgrind, no cache simulation) counts the client process's instructions for
//   W + N and for W + 2N sequential probes in one process each; the difference / N removes start-up and warm-up.
//   W (RTCOST_WARM, default 2,000) must be long enough for V8 to finish optimizing the hot code: with a warm-up of
//   50, as this bench first had, ~70 % of the "per probe" difference was TurboFan compiling (v8::internal::compiler
//   functions), not running, so it measured JIT warm-up rather than steady-state cost. The share still spent in
//   the compiler is printed so that a too-short warm-up shows. Counts do not depend on the load from other
//   processes, unlike wall time. A 1 KiB probe is 7 replies (greeting, EHLO, MAIL, RCPT, DATA, the final dot, QUIT).
// - sessions/s at concurrency 1, alternating rounds (median of 5), as a ratio against the minimal client.
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { performance } from 'node:perf_hooks';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, loadEngine, minimalNode, startSmtpSink, which } from './_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CURRENT = resolve(here, '../dist');
const BASELINE = process.env.MXPROBE_BASELINE_DIST;
const REPLIES = 7;

const loadProbe = (dist) => loadEngine(dist, 'rt');

/** One client kind: a function running `count` sequential sessions. */
async function client(kind, port) {
  if (kind === 'minimal') return (count) => minimalNode(port, { count, concurrency: 1 });
  const one = await loadProbe(kind);
  return async (count) => {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      const r = await one(port, i);
      if (r.outcome !== 'delivered') throw new Error(`probe ${i}: ${r.outcome} ${r.error?.message ?? ''}`);
    }
    return { perSec: count / ((performance.now() - t0) / 1000) };
  };
}

/** `run(count)` with this process's CPU time (user + system) per session, µs. */
async function withCpu(run, count) {
  const c0 = process.cpuUsage();
  const r = await run(count);
  const c = process.cpuUsage(c0);
  return { ...r, cpuUs: (c.user + c.system) / count };
}

/** Child mode: warm up (`warm` sessions), then `count` sessions. */
async function child(kind, port, count, warm) {
  const run = await client(kind, port);
  await run(warm);
  await run(count);
}

/** Instructions of a callgrind output spent in V8's optimizing compiler (TurboFan's `compiler::` functions, their zones and register allocator). */
function compilerInstructions(file) {
  const r = spawnSync(which('callgrind_annotate') ?? 'callgrind_annotate', ['--threshold=100', file], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  let sum = 0;
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*)$/.exec(line);
    if (m && /v8::internal::compiler::|v8::internal::Zone|LiveRange/.test(m[2])) sum += Number(m[1].replaceAll(',', ''));
  }
  return sum;
}

const WARM = Number(process.env.RTCOST_WARM ?? 2000);

function callgrindInstructions(kind, port, count) {
  const dir = mkdtempSync(join(tmpdir(), 'rtcost-'));
  const out = join(dir, 'cg.out');
  const r = spawnSync(
    which('valgrind') ?? 'valgrind',
    // --single-threaded: no concurrent compiler or GC threads, so the count is the same from run to run
    ['--tool=callgrind', '--cache-sim=no', '--smc-check=all', `--callgrind-out-file=${out}`, process.execPath, '--single-threaded', fileURLToPath(import.meta.url), '--child', kind, String(port), String(count), String(WARM)],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`valgrind: ${r.stderr.slice(-500)}`);
  const m = /^summary:\s+(\d+)/m.exec(readFileSync(out, 'utf8'));
  const compiler = compilerInstructions(out);
  rmSync(dir, { recursive: true, force: true });
  return { total: Number(m?.[1]), compiler };
}

/** Instructions per probe, and the part of them V8's optimizing compiler took. */
function perProbe(kind, port, n) {
  const a = callgrindInstructions(kind, port, n);
  const b = callgrindInstructions(kind, port, 2 * n);
  return { total: (b.total - a.total) / n, compiler: (b.compiler - a.compiler) / n };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function wallRounds(kinds, port) {
  const runs = Object.fromEntries(kinds.map((k) => [k, []]));
  const cpu = Object.fromEntries(kinds.map((k) => [k, []]));
  const clients = Object.fromEntries(await Promise.all(kinds.map(async (k) => [k, await client(k, port)])));
  for (const k of kinds) await clients[k](200);
  for (let round = 0; round < 5; round++) {
    for (const k of kinds) {
      const r = await withCpu(clients[k], 1000);
      runs[k].push(r.perSec);
      cpu[k].push(r.cpuUs);
    }
  }
  return Object.fromEntries(kinds.map((k) => [k, { perSec: median(runs[k]), cpuUs: median(cpu[k]) }]));
}

if (process.argv[2] === '--child') {
  await child(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), Number(process.argv[6] ?? 2000));
  process.exit(0);
}

const sink = await startSmtpSink();
if (!sink) {
  console.log('smtp-sink not installed (apt-get install postfix): skipped');
  process.exit(0);
}
try {
  const kinds = [CURRENT, ...(BASELINE ? [BASELINE] : []), 'minimal'];
  const label = (k) => (k === CURRENT ? 'this build' : k === 'minimal' ? 'minimal client' : 'baseline');
  const wall = await wallRounds(kinds, sink.port);
  console.log('1 KiB probes, concurrency 1, against smtp-sink: sessions/s and this process\'s CPU time per session (medians of 5 alternating rounds of 1,000)');
  for (const k of kinds) {
    const w = wall[k];
    console.log(`  ${label(k).padEnd(16)} ${fmt(w.perSec).padStart(7)}/s   ${fmt(w.perSec / wall.minimal.perSec, 2)}× minimal   CPU ${fmt(w.cpuUs)} µs/session   ${fmt(w.cpuUs / wall.minimal.cpuUs, 2)}× minimal`);
  }
  if (!which('valgrind')) console.log('valgrind not installed: instruction counts skipped');
  else {
    const n = Number(process.env.RTCOST_N ?? 200);
    const ins = Object.fromEntries(kinds.map((k) => [k, perProbe(k, sink.port, n)]));
    console.log(`instructions per probe after ${fmt(WARM)} warm-up probes (callgrind, (I(W+${2 * n}) - I(W+${n})) / ${n}), above the minimal client per reply (${REPLIES} per probe), and the share V8's optimizing compiler still took`);
    // what is left once the compiler's share is taken out: the steady-state cost, which the comparison is about
    // (how much compiling falls inside the window varies by ±100 k instructions a probe from run to run)
    const run = (k) => ins[k].total - ins[k].compiler;
    for (const k of kinds) {
      const above = (run(k) - run('minimal')) / REPLIES;
      const jit = `${fmt((100 * ins[k].compiler) / ins[k].total, 0)} % compiling`;
      console.log(
        `  ${label(k).padEnd(16)} ${fmt(ins[k].total).padStart(10)} (${jit}); without compiling ${fmt(run(k)).padStart(9)}   ` +
          `${fmt(run(k) / run('minimal'), 2)}× minimal   ${k === 'minimal' ? '' : `+${fmt(above)} per reply`}`,
      );
    }
  }
} finally {
  sink.stop();
}

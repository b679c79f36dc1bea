// Both cores (issue 19, point 2): 1 KiB probes to Postfix's smtp-sink through the whole runner, `runPlan` as
// `mxprobe run` drives it, with `workers: 1` (every probe in the main thread) and `workers: N` (probes in N worker
// threads, `openProbePool`; scheduling, the one JSONL file in order of completion and the one event stream stay in
// the main thread). Compared in the same run, alternating rounds, medians of 3.
//
//   npm run build && node bench/workers.mjs            (WORKERS=2, COUNT=3000 per round; concurrency 10 and 50)
//
// STAGES=1 adds a probe:stage subscriber (`mxprobe run` has none): the engine then reports every stage, and with
// workers each is a message to the main thread.
//
// On a 2-core machine smtp-sink runs on the same cores: when the receiver is the limit, a second prober thread
// only takes CPU from it.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { DEFAULT_TIMEOUTS } from '../dist/model.js';
import { createRunEmitter, runPlan } from '../dist/run/index.js';
import { fmt, startSmtpSink } from './_util.mjs';

const WORKERS = Number(process.env.WORKERS ?? 2);
const COUNT = Number(process.env.COUNT ?? 3000);
const STAGES = process.env.STAGES === '1';

/**
 * CPU time of the main thread alone (user + system, ms), from Linux's per-thread /proc stat (the main thread's id
 * is the process id); undefined elsewhere. Wall-clock measures (event-loop utilisation) count the time a busy thread
 * waits for a core, which on a shared 2-core box is most of it.
 */
const TASK = `/proc/self/task/${process.pid}/stat`;
const TICK_MS = existsSync(TASK) ? 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })) : 0;
function mainThreadCpuMs() {
  if (!TICK_MS) return undefined;
  const stat = readFileSync(TASK, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * TICK_MS; // utime, stime (fields 14 and 15 of stat)
}

function plan(port, concurrency) {
  return {
    name: 'bench-workers',
    profileHash: 'bench-workers-001',
    targets: [{ host: '127.0.0.1', port, tls: 'none' }],
    paths: [{ name: 'direct' }],
    sizes: [1024],
    repeat: COUNT,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    timeouts: { ...DEFAULT_TIMEOUTS },
    concurrency,
    seed: 1,
    tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER, // measure SMTP and the threads, not the ss(8) call
  };
}

/** One round through runPlan: `workers` 1 = the main thread. Results → one file, events → one stream. */
async function round(port, file, workers, concurrency) {
  const ee = createRunEmitter();
  let ended = 0;
  let stages = 0;
  let threads;
  ee.on('run:start', (e) => (threads = e.workers));
  if (STAGES) ee.on('probe:stage', () => stages++);
  ee.on('probe:end', () => ended++);
  const t0 = performance.now();
  const cpu0 = mainThreadCpuMs();
  const res = await runPlan(plan(port, concurrency), { out: file, emitter: ee, workers, keepResults: false });
  const perSec = res.recorded / ((performance.now() - t0) / 1000);
  // the main thread's CPU per probe: what caps a run when the receiver is elsewhere (1 / this = its ceiling)
  const busyUs = cpu0 === undefined ? NaN : ((mainThreadCpuMs() - cpu0) * 1000) / res.recorded;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const delivered = lines.filter((l) => JSON.parse(l).outcome === 'delivered').length;
  return { perSec, busyUs, lines: lines.length, delivered, ended, stages, threads };
}

async function main() {
  const sink = await startSmtpSink();
  if (!sink) {
    console.log('smtp-sink not installed (apt-get install postfix): skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'workers-'));
  try {
    console.log(
      `1 KiB probes to smtp-sink through runPlan, ${fmt(COUNT)} a round, sessions/s (median of 3 alternating rounds); ${availableParallelism()} cores available; ` +
        `${STAGES ? 'with' : 'no'} probe:stage subscriber`,
    );
    for (const c of [10, 50]) {
      const one = [];
      const many = [];
      const oneBusy = [];
      const manyBusy = [];
      let check;
      for (let k = 0; k < 3; k++) {
        const m = await round(sink.port, join(dir, `one-${c}-${k}.jsonl`), 1, c);
        one.push(m.perSec);
        oneBusy.push(m.busyUs);
        const r = await round(sink.port, join(dir, `w-${c}-${k}.jsonl`), WORKERS, c);
        many.push(r.perSec);
        manyBusy.push(r.busyUs);
        check = r;
      }
      const med = (xs) => [...xs].sort((a, b) => a - b)[1];
      console.log(
        `  concurrency ${String(c).padEnd(3)} main thread ${fmt(med(one)).padStart(6)}/s   ${check.threads} workers ${fmt(med(many)).padStart(6)}/s   ` +
          `${fmt(med(many) / med(one), 2)}×   (rounds: main ${one.map((x) => fmt(x)).join(' / ')}, workers ${many.map((x) => fmt(x)).join(' / ')}; ` +
          `one file: ${check.lines} lines, ${check.delivered} delivered; one stream: ${check.ended} probe:end, ${check.stages} probe:stage events)`,
      );
      console.log(
        `                  main thread CPU per probe: ${fmt(med(oneBusy))} µs alone, ${fmt(med(manyBusy))} µs with ${check.threads} workers ` +
          `(${fmt(med(oneBusy) / med(manyBusy), 2)}× less: the runner's ceiling when the receiver and the workers have cores of their own)`,
      );
    }
  } finally {
    sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

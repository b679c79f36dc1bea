// The stall watchdog's cost (issue 12). Progress comes from the kernel (ss) only when our own socket has been quiet
// for a second, so a healthy probe should cost what it cost before; a slow one costs a few ss runs per second,
// shared by every probe that asks at the same moment.
//
//   node bench/watchdog.mjs                          this build alone
//   MXPROBE_BASELINE_DIST=/path/to/old/dist node bench/watchdog.mjs
//                                                    alternating with an earlier build, same run, same sink
//
// Part 1: 1 KiB probes to Postfix's smtp-sink (apt-get install postfix; an smtp-server child otherwise) at
// concurrency 1 and 10, five alternating rounds; sessions/s per build and the ratio, and the ss runs started.
// Part 2: 20 probes of 1 MiB through the lab relay throttled to 64 KiB/s: ss runs per probe-second and the CPU
// time of this process per probe-second, against the same probes with kernel readings off (MXPROBE_SS=none in a
// child process).
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import pLimit from 'p-limit';
import { fmt, startSmtpSink } from './_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const CURRENT = resolve(here, '../dist');
const BASELINE = process.env.MXPROBE_BASELINE_DIST;

async function load(dist) {
  const probeMod = await import(pathToFileURL(join(dist, 'probe/index.js')).href);
  const model = await import(pathToFileURL(join(dist, 'model.js')).href);
  return { probe: probeMod.probe, DEFAULT_TIMEOUTS: model.DEFAULT_TIMEOUTS };
}

const spec = (eng, port, sizeBytes, i) => ({
  probeId: `w-${i}`,
  target: { host: '127.0.0.1', port, tls: 'none' },
  path: { name: 'direct' },
  sizeBytes,
  seed: i,
  envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
  timeouts: { ...eng.DEFAULT_TIMEOUTS },
  tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER,
});

async function sessions(eng, port, count, concurrency) {
  const limit = pLimit(concurrency);
  const t0 = performance.now();
  let ok = 0;
  await Promise.all(Array.from({ length: count }, (_, i) => limit(async () => {
    if ((await eng.probe(spec(eng, port, 1024, i))).outcome === 'delivered') ok++;
  })));
  return { perSec: count / ((performance.now() - t0) / 1000), ok };
}

async function part1() {
  const sink = await startSmtpSink();
  if (!sink) {
    console.log('smtp-sink not installed (apt-get install postfix): part 1 skipped');
    return;
  }
  const cur = await load(CURRENT);
  const base = BASELINE ? await load(BASELINE) : undefined;
  const { ssRunCount } = await import(pathToFileURL(join(CURRENT, 'probe/tcpinfo.js')).href);
  try {
    for (const c of [1, 10]) {
      await sessions(cur, sink.port, 300, c); // warm-up
      if (base) await sessions(base, sink.port, 300, c);
      const runs = { cur: [], base: [] };
      const ss0 = ssRunCount();
      for (let round = 0; round < 5; round++) {
        runs.cur.push((await sessions(cur, sink.port, 1000, c)).perSec);
        if (base) runs.base.push((await sessions(base, sink.port, 1000, c)).perSec);
      }
      const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      const line = [`1 KiB probes, concurrency ${c}: this build ${fmt(med(runs.cur))}/s (rounds ${runs.cur.map((x) => fmt(x)).join(', ')})`];
      if (base) line.push(`baseline ${fmt(med(runs.base))}/s (rounds ${runs.base.map((x) => fmt(x)).join(', ')}); ratio ${(med(runs.cur) / med(runs.base)).toFixed(2)}×`);
      line.push(`ss runs during 5,000 healthy probes: ${ssRunCount() - ss0}`);
      console.log(line.join('\n  '));
    }
  } finally {
    sink.stop();
  }
}

async function slowProbes() {
  const cur = await load(CURRENT);
  const { startRelay } = await import(pathToFileURL(join(CURRENT, 'lab/relay.js')).href);
  const { startSink } = await import(pathToFileURL(join(CURRENT, 'sink/index.js')).href);
  const { ssRunCount } = await import(pathToFileURL(join(CURRENT, 'probe/tcpinfo.js')).href);
  const sink = await startSink();
  const relay = await startRelay({ targetHost: '127.0.0.1', targetPort: sink.port, clientToServer: { kind: 'throttle', bytesPerSec: 64 * 1024 } });
  const cpu0 = process.cpuUsage();
  const ss0 = ssRunCount();
  const t0 = performance.now();
  const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => cur.probe({ ...spec(cur, relay.port, 1024 * 1024, i), timeouts: { ...cur.DEFAULT_TIMEOUTS, stallMs: 20_000 } })));
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await relay.close();
  await sink.close();
  const probeSeconds = rs.reduce((a, r) => a + r.durationMs / 1000, 0);
  return {
    outcomes: rs.map((r) => r.outcome).reduce((m, o) => ((m[o] = (m[o] ?? 0) + 1), m), {}),
    wall,
    ssRuns: ssRunCount() - ss0,
    cpuMsPerProbeSecond: (cpu.user + cpu.system) / 1000 / probeSeconds,
    ssPerProbeSecond: (ssRunCount() - ss0) / probeSeconds,
  };
}

if (process.argv[2] === '--slow-child') {
  console.log(JSON.stringify(await slowProbes()));
  process.exit(0);
}

await part1();
const child = (env) => JSON.parse(spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--slow-child'], { env: { ...process.env, ...env }, encoding: 'utf8' }).stdout.trim().split('\n').pop());
const withKernel = child({});
const without = child({ MXPROBE_SS: 'none' });
console.log(
  `20 probes of 1 MiB at 64 KiB/s (lab relay), ${fmt(withKernel.wall, 1)} s wall: outcomes ${JSON.stringify(withKernel.outcomes)}; ` +
    `${withKernel.ssRuns} ss runs (${fmt(withKernel.ssPerProbeSecond, 2)} per probe-second); ` +
    `CPU ${fmt(withKernel.cpuMsPerProbeSecond, 2)} ms per probe-second with kernel readings, ${fmt(without.cpuMsPerProbeSecond, 2)} without ` +
    `(outcomes without: ${JSON.stringify(without.outcomes)})`,
);

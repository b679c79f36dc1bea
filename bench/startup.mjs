// Start-up: the wall time of one one-off probe (1 KiB to a local smtp-sink), next to `node -e 0` and swaks, in
// the same run on the same machine. mxprobe's goal (issue 16): ≤ 1.3× `node -e 0`. Prints figures; never fails.
//
//   npm run build && node bench/startup.mjs [runs]      (Postfix's smtp-sink and swaks: apt-get install postfix swaks)
//   MXPROBE_BEFORE=/path/to/old/bin/mxprobe.js node bench/startup.mjs   adds the same probe with another build
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmt, startSmtpSink, which } from './_util.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const BIN = join(ROOT, 'bin', 'mxprobe.js');
const RUNS = Number(process.argv[2] ?? 20);
const TIME = which('time'); // GNU time, for the peak RSS of each child

/** Wall ms and peak RSS (KiB, when GNU time is there) of one run of a command. */
function once(cmd, args) {
  const argv = TIME ? [TIME, ['-f', '%M', cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv[1], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const rss = TIME ? Number(r.stderr.trim().split('\n').at(-1)) : undefined;
  return { ms, rss };
}

/**
 * Median and min wall time, median peak RSS of each command. The commands take turns (one run of each, RUNS
 * times) so that load from elsewhere on the machine falls on all of them alike.
 */
function measureAll(cmds) {
  for (const [, cmd, args] of cmds) once(cmd, args); // warm the page cache
  const runs = cmds.map(() => []);
  for (let i = 0; i < RUNS; i++) cmds.forEach(([, cmd, args], j) => runs[j].push(once(cmd, args)));
  return runs.map((rs) => {
    const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
    const rss = rs.map((r) => r.rss ?? 0).sort((a, b) => a - b);
    return { median: ms[Math.floor(ms.length / 2)], min: ms[0], rss: TIME ? rss[Math.floor(rss.length / 2)] / 1024 : undefined };
  });
}

const sink = await startSmtpSink();
if (!sink) {
  console.log('smtp-sink not installed (apt-get install postfix): no probe to time');
  process.exit(0);
}
try {
  const node = process.execPath;
  const probeArgs = ['probe', '--host', '127.0.0.1', '--port', String(sink.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--size', '1KiB'];
  const cmds = [
    ['node -e 0', node, ['-e', '0']],
    ['mxprobe --version', node, [BIN, '--version']],
    ['mxprobe probe --size 1KiB', node, [BIN, ...probeArgs]],
  ];
  if (process.env.MXPROBE_BEFORE) cmds.push(['  (before: MXPROBE_BEFORE)', node, [process.env.MXPROBE_BEFORE, ...probeArgs]]);
  const swaks = which('swaks');
  if (swaks) cmds.push(['swaks (1 message)', swaks, ['--server', `127.0.0.1:${sink.port}`, '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--silent', '2']]);
  else console.log('(swaks not installed: apt-get install swaks)');
  const rows = measureAll(cmds).map((m, i) => [cmds[i][0], m]);
  const base = rows[0][1].median;
  console.log(`start-up, ${RUNS} runs each, against smtp-sink on 127.0.0.1 (node ${process.version}):`);
  console.log(`  ${'command'.padEnd(28)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'× node -e 0'.padStart(12)} ${'peak RSS'.padStart(9)}`);
  for (const [name, m] of rows) {
    const rss = m.rss === undefined ? '' : `${fmt(m.rss, 0)} MiB`;
    console.log(`  ${name.padEnd(28)} ${`${fmt(m.median, 1)} ms`.padStart(9)} ${`${fmt(m.min, 1)} ms`.padStart(9)} ${fmt(m.median / base, 2).padStart(12)} ${rss.padStart(9)}`);
  }
} finally {
  sink.stop();
}

// Start-up: the wall time of one one-off probe (1 KiB to a local smtp-sink), next to `node -e 0` and swaks, in
// the same run on the same machine. mxprobe's goal (issue 16): ≤ 1.3× `node -e 0`. Prints figures; never fails.
//
// The ratio depends on what node itself does at start: with NODE_EXTRA_CA_CERTS set (as on the machine the issue was
// measured on) every node process parses that CA file first (~70 ms for Debian's bundle), `node -e 0` included. So
// when it is set the commands are measured twice, as they are and without it, and the ms above `node -e 0` (what
// mxprobe adds, the same either way) is printed beside the ratio.
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
function once(cmd, args, env) {
  const argv = TIME ? [TIME, ['-f', '%M', cmd, ...args]] : [cmd, args];
  const t0 = process.hrtime.bigint();
  const r = spawnSync(argv[0], argv[1], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const rss = TIME ? Number(r.stderr.trim().split('\n').at(-1)) : undefined;
  return { ms, rss };
}

/**
 * Median and min wall time, median peak RSS of each command. The commands take turns (one run of each, RUNS
 * times) so that load from elsewhere on the machine falls on all of them alike.
 */
function measureAll(cmds, env) {
  for (const [, cmd, args] of cmds) once(cmd, args, env); // warm the page cache
  const runs = cmds.map(() => []);
  for (let i = 0; i < RUNS; i++) cmds.forEach(([, cmd, args], j) => runs[j].push(once(cmd, args, env)));
  return runs.map((rs) => {
    const ms = rs.map((r) => r.ms).sort((a, b) => a - b);
    const rss = rs.map((r) => r.rss ?? 0).sort((a, b) => a - b);
    return { median: ms[Math.floor(ms.length / 2)], min: ms[0], rss: TIME ? rss[Math.floor(rss.length / 2)] / 1024 : undefined };
  });
}

/**
 * The floor: the same SMTP transaction (1 KiB) from a Node process that loads nothing but net, times nothing and
 * prints nothing. What mxprobe adds on top of it is mxprobe's own start-up; below it is Node's.
 */
const FLOOR = `const s = require('node:net').connect(+process.argv[1], '127.0.0.1');
const steps = ['EHLO floor', 'MAIL FROM:<a@mxprobe.test>', 'RCPT TO:<b@mxprobe.test>', 'DATA', 'Subject: x\\r\\n\\r\\n' + 'a'.repeat(1009) + '\\r\\n.', 'QUIT'];
let buf = '';
s.on('data', (d) => {
  buf += d;
  for (let i; (i = buf.indexOf('\\r\\n')) >= 0; buf = buf.slice(i + 2)) {
    if (buf[3] === '-') continue;
    const next = steps.shift();
    if (next === undefined) s.end(); else s.write(next + '\\r\\n');
  }
});`;

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
    ['node: net + 1 transaction', node, ['-e', FLOOR, String(sink.port)]],
  ];
  if (process.env.MXPROBE_BEFORE) cmds.push(['  (before: MXPROBE_BEFORE)', node, [process.env.MXPROBE_BEFORE, ...probeArgs]]);
  const swaks = which('swaks');
  if (swaks) cmds.push(['swaks (1 message)', swaks, ['--server', `127.0.0.1:${sink.port}`, '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--silent', '2']]);
  else console.log('(swaks not installed: apt-get install swaks)');
  // the bundle's code cache (bin/mxprobe.js): a rejected one would make these figures a slower mxprobe's
  const check = spawnSync(node, [BIN, ...probeArgs], { encoding: 'utf8', env: { ...process.env, MXPROBE_CODE_CACHE: 'check' } });
  const cache = /code cache: [\w ().]+/.exec(check.stderr)?.[0] ?? 'code cache: ?';
  const envs = [['as this shell runs node', process.env]];
  if (process.env.NODE_EXTRA_CA_CERTS) {
    const { NODE_EXTRA_CA_CERTS, ...rest } = process.env;
    envs[0][0] = `with NODE_EXTRA_CA_CERTS=${NODE_EXTRA_CA_CERTS}`;
    envs.push(['without NODE_EXTRA_CA_CERTS', rest]);
  }
  for (const [label, env] of envs) {
    const rows = measureAll(cmds, env).map((m, i) => [cmds[i][0], m]);
    const base = rows[0][1].median;
    console.log(`start-up, ${RUNS} runs each, against smtp-sink on 127.0.0.1, ${label} (node ${process.version}; ${cache}):`);
    console.log(`  ${'command'.padEnd(28)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'× node -e 0'.padStart(12)} ${'+ ms'.padStart(7)} ${'peak RSS'.padStart(9)}`);
    for (const [name, m] of rows) {
      const rss = m.rss === undefined ? '' : `${fmt(m.rss, 0)} MiB`;
      console.log(`  ${name.padEnd(28)} ${`${fmt(m.median, 1)} ms`.padStart(9)} ${`${fmt(m.min, 1)} ms`.padStart(9)} ${fmt(m.median / base, 2).padStart(12)} ${fmt(m.median - base, 1).padStart(7)} ${rss.padStart(9)}`);
    }
  }
} finally {
  sink.stop();
}

// Probe engine benchmark (issue 2): sessions/s for 1 KiB probes at concurrency 1/10/50, MB/s for 1 MiB and
// 16 MiB probes, each next to Postfix's smtp-source against the same smtp-sink in the same run; the message
// generator's MB/s into a discard receiver; peak RSS of one 64 MiB probe.
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import pLimit from 'p-limit';
import { probe } from '../dist/probe/index.js';
import { generatedMessage } from '../dist/probe/message.js';
import { DEFAULT_TIMEOUTS } from '../dist/model.js';
import { fmt, minimalNode, startSmtpSink, which } from './_util.mjs';

const spec = (port, sizeBytes, i) => ({
  probeId: `b-${i}`,
  target: { host: '127.0.0.1', port, tls: 'none' },
  path: { name: 'direct' },
  sizeBytes,
  seed: 1,
  envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
  timeouts: { ...DEFAULT_TIMEOUTS, stallMs: 10_000 },
  tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER, // measure SMTP, not the ss(8) call
});

async function engine(port, { sizeBytes, count, concurrency }) {
  const limit = pLimit(concurrency);
  let ok = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: count }, (_, i) => limit(async () => {
    const r = await probe(spec(port, sizeBytes, i));
    if (r.outcome === 'delivered') ok++;
  })));
  const s = (performance.now() - t0) / 1000;
  return { perSec: count / s, mbPerSec: (count * sizeBytes) / s / 1e6, ok, count };
}

function source(port, { sizeBytes, count, concurrency }) {
  const bin = which('smtp-source');
  const t0 = performance.now();
  const r = spawnSync(bin, ['-s', String(concurrency), '-m', String(count), '-l', String(sizeBytes), '-f', 'probe@mxprobe.test', '-t', 'sink@mxprobe.test', `127.0.0.1:${port}`], { stdio: 'ignore' });
  const s = (performance.now() - t0) / 1000;
  return { perSec: count / s, mbPerSec: (count * sizeBytes) / s / 1e6, status: r.status };
}

const sink = await startSmtpSink();
if (!sink) {
  console.log('smtp-sink not installed (apt-get install postfix): engine vs smtp-source comparison skipped');
} else {
  try {
    console.log(`against Postfix smtp-sink on 127.0.0.1:${sink.port}\n`);
    console.log('1 KiB probes, sessions/s      mxprobe    smtp-source   ratio   (minimal Node client)');
    for (const c of [1, 10, 50]) {
      const count = c === 1 ? 1500 : 5000;
      await engine(sink.port, { sizeBytes: 1024, count: 200, concurrency: c }); // warm-up
      const m = await engine(sink.port, { sizeBytes: 1024, count, concurrency: c });
      const s = source(sink.port, { sizeBytes: 1024, count, concurrency: c });
      const n = await minimalNode(sink.port, { count, concurrency: c });
      console.log(`  concurrency ${String(c).padEnd(4)}          ${fmt(m.perSec).padStart(8)}   ${fmt(s.perSec).padStart(10)}   ${fmt(m.perSec / s.perSec, 2)}x   (${fmt(n.perSec)})   (${m.ok}/${m.count} delivered)`);
    }
    console.log('\nthroughput, MB/s (1 session)  mxprobe    smtp-source   ratio');
    for (const [label, size, count] of [['1 MiB', 1 << 20, 200], ['16 MiB', 16 << 20, 20]]) {
      const m = await engine(sink.port, { sizeBytes: size, count, concurrency: 1 });
      const s = source(sink.port, { sizeBytes: size, count, concurrency: 1 });
      console.log(`  ${label.padEnd(28)} ${fmt(m.mbPerSec).padStart(8)}   ${fmt(s.mbPerSec).padStart(10)}   ${fmt(m.mbPerSec / s.mbPerSec, 2)}x`);
    }
  } finally {
    sink.stop();
  }
}

// generator into a discard receiver
{
  const size = 1 << 30;
  const t0 = performance.now();
  let n = 0;
  for (const c of generatedMessage({ probeId: 'g', sizeBytes: size, seed: 3, from: 'a@b.test', to: ['c@d.test'] }).chunks()) n += c.length;
  const s = (performance.now() - t0) / 1000;
  console.log(`\nmessage generator: ${fmt(n / s / 1e9, 2)} GB/s (${fmt(n)} bytes into a discard receiver)`);
}

// peak RSS of one 64 MiB probe, in a fresh process
{
  const { startSmtpSink: start } = await import('./_util.mjs');
  const s2 = await start();
  if (s2) {
    const code = `
      import { probe } from '${new URL('../dist/probe/index.js', import.meta.url).href}';
      import { DEFAULT_TIMEOUTS } from '${new URL('../dist/model.js', import.meta.url).href}';
      const r = await probe({ probeId: 'rss', target: { host: '127.0.0.1', port: ${s2.port}, tls: 'none' }, path: { name: 'direct' },
        sizeBytes: 64 * 1024 * 1024, seed: 1, envelope: { from: 'a@mxprobe.test', to: ['b@mxprobe.test'] }, timeouts: DEFAULT_TIMEOUTS });
      console.log(JSON.stringify({ outcome: r.outcome, maxRssKiB: process.resourceUsage().maxRSS }));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
    s2.stop();
    const out = JSON.parse(r.stdout.trim().split('\n').pop());
    console.log(`peak RSS of one 64 MiB probe: ${fmt(out.maxRssKiB / 1024, 1)} MB (outcome ${out.outcome})`);
  }
}

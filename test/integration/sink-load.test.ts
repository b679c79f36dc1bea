/**
 * Bounded memory: 200 concurrent 16 MiB uploads into `mxprobe sink` running as a child process. The sink never
 * holds a body, so its resident memory must not grow with (connections × message size) = 3.2 GB. The test
 * process is only the client; the sink's RSS is read from /proc/PID/status (Linux). Prints the figures.
 */
import { expect, test } from 'vitest';
import { loadSinkRecords } from '../../src/sink/index.js';
import { ensureBuilt, probeMessage, procMemory, RawSmtp, runSinkCli, sendWhole } from './sink-helpers.js';

const MiB = 1024 * 1024;

test('200 concurrent 16 MiB uploads: all arrive whole and verified; the sink stays under 300 MB of growth', async () => {
  ensureBuilt();
  const s = runSinkCli(['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0']);
  try {
    const { port, httpPort } = await s.ready;
    const pid = s.child.pid!;
    // warm up (code loaded, JIT, first hashes) so the baseline is the sink at rest, not at birth
    expect((await sendWhole(port, probeMessage('p-warm', 1 * MiB, 1).chunks() as Iterable<Buffer>)).code).toBe(250);
    const base = procMemory(pid);
    if (!base || !Number.isFinite(base.rss)) {
      console.log('sink memory: /proc not available here, checking delivery only');
    }
    let peakRss = base?.rss ?? 0;
    const sampler = setInterval(() => {
      const m = procMemory(pid);
      if (m && m.rss > peakRss) peakRss = m.rss;
    }, 50);

    const N = 200;
    const size = 16 * MiB;
    const t0 = performance.now();
    // while the uploads run: how long does a new session wait for its greeting? (printed, not asserted)
    const greetings = (async () => {
      await new Promise((r) => setTimeout(r, 2000));
      const g: number[] = [];
      for (let k = 0; k < 5; k++) {
        const c = await RawSmtp.connect(port);
        g.push((await c.reply()).atMs);
        await c.cmd('QUIT').catch(() => undefined);
        c.destroy();
      }
      return g;
    })();
    const replies = await Promise.all(
      Array.from({ length: N }, (_, i) => sendWhole(port, probeMessage(`p-load-${i}`, size, 100 + (i % 4)).chunks() as Iterable<Buffer>)),
    );
    const wallS = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    console.log(`greeting of a new session during the uploads: ${(await greetings).map((x) => `${x.toFixed(1)} ms`).join(', ')}`);
    expect(replies.every((r) => r.code === 250)).toBe(true);

    // every record written (verification finishes after the reply)
    let probes = (await loadSinkRecords(`http://127.0.0.1:${httpPort}/records?kind=probe`)).filter((r) => r.probeId?.startsWith('p-load-'));
    for (let i = 0; i < 200 && probes.length < N; i++) {
      await new Promise((r) => setTimeout(r, 50));
      probes = (await loadSinkRecords(`http://127.0.0.1:${httpPort}/records?kind=probe`)).filter((r) => r.probeId?.startsWith('p-load-'));
    }
    expect(probes).toHaveLength(N);
    expect(probes.filter((r) => !(r.whole && r.verified && r.bodyBytes === size))).toEqual([]);

    const end = procMemory(pid);
    if (base && end && Number.isFinite(base.rss)) {
      const peak = Math.max(peakRss, end.hwm);
      const growth = peak - base.rss;
      console.log(
        `sink under ${N} concurrent ${size / MiB} MiB uploads: ${((N * size) / 1e9).toFixed(2)} GB in ${wallS.toFixed(1)} s ` +
          `(${((N * size) / 1e6 / wallS).toFixed(0)} MB/s, parse + hash + verify on one core); ` +
          `RSS at rest ${(base.rss / MiB).toFixed(0)} MiB, peak ${(peak / MiB).toFixed(0)} MiB, growth ${(growth / MiB).toFixed(0)} MiB`,
      );
      expect(growth).toBeLessThan(300 * MiB);
    }
    s.child.kill('SIGINT');
    expect(await s.exit).toBe(0);
  } finally {
    s.kill();
  }
}, 600_000);

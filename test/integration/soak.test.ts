/**
 * A test-sized soak: 304 probes through the runner and the real engine, over four lab relays with different
 * faults (none, blackhole, reset, freeze), concurrency 20, short stall window. Afterwards, with everything closed:
 * no unhandled rejection, open file descriptors back to the baseline (within a few), active handles and timers
 * back to the baseline, RSS growth printed and bounded (generously). The long soak is `bench/soak.mjs`.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_TIMEOUTS, type Outcome, type ProbeResult } from '../../src/model.js';
import type { Plan } from '../../src/profile/plan.js';
import { probe } from '../../src/probe/index.js';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import { createRunEmitter, runPlan } from '../../src/run/index.js';
import { startSmtpServer } from '../helpers/servers.js';

const fds = (): number => readdirSync('/proc/self/fd').length;
const TRACKED = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout', 'TLSWrap', 'ProcessWrap', 'PipeWrap', 'FSReqCallback'];
function handles(): Record<string, number> {
  const c: Record<string, number> = Object.fromEntries(TRACKED.map((k) => [k, 0]));
  for (const r of process.getActiveResourcesInfo()) if (r in c) c[r]!++;
  return c;
}
const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

describe('soak (test-sized)', () => {
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);
  let dir: string;
  beforeAll(() => {
    process.on('unhandledRejection', onRejection);
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-soak-'));
  });
  afterAll(() => {
    process.off('unhandledRejection', onRejection);
    rmSync(dir, { recursive: true, force: true });
  });

  test('304 probes, mixed faults, concurrency 20: every line written, fds and handles back to baseline', async () => {
    // warm up module loading and the engine once, so lazily opened things are in the baseline
    {
      const warm = await startSmtpServer();
      await probe({ probeId: 'warm', target: { host: '127.0.0.1', port: warm.port, tls: 'none' }, path: { name: 'w' }, sizeBytes: 2048, seed: 1, envelope: { from: 'a@mxprobe.test', to: ['b@mxprobe.test'] }, timeouts: { ...DEFAULT_TIMEOUTS } });
      await warm.close();
    }
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 100));
    const fd0 = fds();
    const h0 = handles();
    const rss0 = process.memoryUsage().rss;

    const sink = await startSmtpServer({ size: 0 });
    const faults: Record<string, string> = { clean: 'none', blackhole: 'blackhole-after=64KiB', reset: 'reset-after=64KiB', freeze: 'freeze-after=64KiB' };
    const relays: Record<string, Relay> = {};
    for (const [name, f] of Object.entries(faults)) {
      relays[name] = await startRelay({ targetHost: '127.0.0.1', targetPort: sink.port, clientToServer: parseFault(f) });
    }
    const plan: Plan = {
      name: 'soak',
      profileHash: 'soak-test-000001',
      targets: [{ host: '127.0.0.1', port: sink.port, tls: 'none', name: 'sink' }],
      paths: Object.keys(faults).map((name) => ({ name, relay: { host: '127.0.0.1', port: relays[name]!.port } })),
      sizes: [2048, 256 * 1024],
      repeat: 38,
      envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
      timeouts: { ...DEFAULT_TIMEOUTS, stallMs: 1500, noReplyMs: 1500, dataAckMs: 20_000, bodyMs: 20_000 },
      concurrency: 20,
      seed: 9,
      tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER, // measure the soak, not ss(8) at every delivery
    };
    const out = join(dir, 'soak.jsonl');
    const emitter = createRunEmitter();
    const counts: Partial<Record<Outcome, number>> = {};
    let rssMid = 0;
    let ended = 0;
    emitter.on('probe:end', (e) => {
      counts[e.result.outcome] = (counts[e.result.outcome] ?? 0) + 1;
      if (++ended === 152) rssMid = process.memoryUsage().rss;
    });
    const t0 = performance.now();
    let summary;
    try {
      summary = await runPlan(plan, {
        out,
        emitter,
        keepResults: false,
        // no early-stall snapshots: the soak is about the engine and runner, not about spawning ss(8)
        probeFn: (spec, o) => probe({ ...spec, earlyStall: false }, o),
      });
    } finally {
      await Promise.all(Object.values(relays).map((r) => r.close()));
      await sink.close();
    }
    const elapsed = performance.now() - t0;

    expect(summary.total).toBe(304);
    expect(summary.recorded).toBe(304);
    expect(summary.interrupted).toBe(false);
    const lines = readFileSync(out, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as ProbeResult);
    expect(lines).toHaveLength(304);
    expect(new Set(lines.map((l) => l.key)).size).toBe(304);
    // mixed outcomes, each classified with a stage when not delivered
    expect(counts.delivered ?? 0).toBeGreaterThan(100);
    expect(counts.stalled ?? 0).toBeGreaterThan(20);
    expect(counts.reset ?? 0).toBeGreaterThan(10);
    for (const l of lines) {
      if (l.outcome !== 'delivered') {
        expect(l.stage).toBeDefined();
        expect(l.error?.code).toMatch(/^E[A-Z]+$/);
      }
    }
    // the large probes through the broken relays never delivered; the small ones through them did
    const big = (p: string) => lines.filter((l) => l.path === p && l.sizeBytes === 256 * 1024);
    expect(big('blackhole').every((l) => l.outcome === 'stalled')).toBe(true);
    expect(big('freeze').every((l) => l.outcome === 'stalled')).toBe(true);
    expect(big('reset').every((l) => l.outcome === 'reset')).toBe(true);

    // everything closed: descriptors, handles and timers back where they were
    const settle = performance.now() + 5000;
    const over = () => fds() > fd0 + 3 || TRACKED.some((k) => handles()[k]! > h0[k]!);
    while (over() && performance.now() < settle) await new Promise((r) => setTimeout(r, 50));
    globalThis.gc?.();
    const fd1 = fds();
    const h1 = handles();
    const rss1 = process.memoryUsage().rss;
    console.log(
      `soak: 304 probes in ${(elapsed / 1000).toFixed(1)} s (${JSON.stringify(counts)}); ` +
        `fds ${fd0} → ${fd1}; RSS ${mib(rss0)} → ${mib(rssMid)} (middle) → ${mib(rss1)} (${rss1 >= rss0 ? '+' : ''}${mib(rss1 - rss0)}); ` +
        `handles ${JSON.stringify(h0)} → ${JSON.stringify(h1)}`,
    );
    expect(fd1).toBeLessThanOrEqual(fd0 + 3);
    for (const k of TRACKED) expect(h1[k], `${k} ${h1[k]} vs ${h0[k]} before`).toBeLessThanOrEqual(h0[k]!);
    expect(rss1 - rss0).toBeLessThan(300 * 1024 * 1024);
    expect(rejections).toEqual([]);
  }, 120_000);
});

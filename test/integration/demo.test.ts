/**
 * The demo is the product's first impression: run a short variant through the CLI and check that its JSON verdict
 * names the right path and threshold, and that a clean run yields no finding. Then each relay mode with the engine.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { probe } from '../../src/probe/index.js';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import { spec, startSmtpServer } from '../helpers/servers.js';

const dir = mkdtempSync(join(tmpdir(), 'mxprobe-demo-'));
beforeAll(() => ensureBuilt());

describe('mxprobe demo (short variant)', () => {
  test('blackhole-after=64KiB: the verdict names via-lb and the 64 KiB threshold, direct is clean', async () => {
    const r = await runCli(['demo', '--json', '--sizes', '16KiB,48KiB,64KiB,256KiB,1MiB', '--repeat', '2', '--stall', '1s', '--out', join(dir, 'bh.jsonl')]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.fault).toBe('blackhole-after=64KiB');
    const stall = j.findings.filter((f: { stall: boolean }) => f.stall);
    expect(stall.length).toBeGreaterThan(0);
    expect(stall.every((f: { path?: string }) => f.path === undefined || f.path === 'via-lb')).toBe(true);
    const threshold = j.findings.find((f: { kind: string }) => f.kind === 'size-threshold');
    expect(threshold.path).toBe('via-lb');
    expect(threshold.sizeBytes ?? threshold.evidence.thresholdBytes).toBe(65536);
    expect(j.verdict).toMatch(/via-lb/);
    expect(j.verdict).toMatch(/64\s?KiB/);
    expect(j.verdict).not.toMatch(/PMTU/); // loopback MSS is ~64 KiB: not a blackhole pattern
    // every direct cell delivered
    for (const c of j.cells.filter((c: { path: string }) => c.path === 'direct')) expect(c.delivered).toBe(c.total);
  }, 90_000);

  test('--fault none: no finding about stalls, exit 0', async () => {
    const r = await runCli(['demo', '--json', '--fault', 'none', '--sizes', '16KiB,256KiB', '--repeat', '2', '--out', join(dir, 'none.jsonl')]);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.findings.filter((f: { stall: boolean }) => f.stall)).toEqual([]);
    expect(j.verdict).toMatch(/No stalls/i);
  }, 90_000);

  test('human output: table, findings, verdict, receiver evidence', async () => {
    const r = await runCli(['demo', '--quiet', '--sizes', '16KiB,64KiB,256KiB', '--repeat', '3', '--stall', '1s', '--out', join(dir, 'human.jsonl')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/direct\s+via-lb/);
    expect(r.stdout).toMatch(/Verdict/);
    expect(r.stdout).toMatch(/the receiver got 65,\d{3} of 262,144 bytes/);
  }, 90_000);

  test('bad --fault → exit 2 naming the valid forms', async () => {
    const r = await runCli(['demo', '--fault', 'explode']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/blackhole-after/);
  });
});

describe('each relay mode with the engine: outcome and stage', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  let relay: Relay | undefined;
  beforeAll(async () => { srv = await startSmtpServer(); });
  afterAll(async () => { await relay?.close(); await srv.close(); });

  async function through(fault: string, sizeBytes: number, stallMs = 800) {
    await relay?.close();
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: srv.port, clientToServer: parseFault(fault) });
    return probe(spec(0, { sizeBytes, path: { name: 'via-lb', relay: { host: relay.host, port: relay.port } }, timeouts: { stallMs, dataAckMs: 20_000 } }));
  }

  test('none → delivered', async () => {
    const r = await through('none', 1024 * 1024);
    expect(r.outcome).toBe('delivered');
  });
  test('blackhole-after → stalled, body fully written, waiting in dataAck (incident 1 as the application sees it)', async () => {
    const r = await through('blackhole-after=64KiB', 1024 * 1024);
    expect(r.outcome).toBe('stalled');
    expect(r.stage).toBe('dataAck');
    expect(r.bodyBytesWritten).toBe(1024 * 1024);
  });
  test('blackhole below the message size but above the dialogue → small messages still delivered', async () => {
    const r = await through('blackhole-after=64KiB', 16 * 1024);
    expect(r.outcome).toBe('delivered');
  });
  test('freeze-after → stalled (the window closes: body or dataAck)', async () => {
    const r = await through('freeze-after=64KiB', 32 * 1024 * 1024);
    expect(r.outcome).toBe('stalled');
    expect(['body', 'dataAck']).toContain(r.stage);
    expect(r.bodyBytesWritten).toBeLessThan(32 * 1024 * 1024);
  }, 30_000);
  test('reset-after → reset', async () => {
    const r = await through('reset-after=64KiB', 1024 * 1024);
    expect(r.outcome).toBe('reset');
    expect(['body', 'dataAck']).toContain(r.stage);
  });
  test('delay → delivered, slower', async () => {
    const r = await through('delay=100ms', 4096);
    expect(r.outcome).toBe('delivered');
    expect(r.stages.ehlo! + r.stages.mail!).toBeGreaterThanOrEqual(180);
  });
  test('throttle below the stall window → delivered; throughput bounded', async () => {
    const r = await through('throttle=256KiB/s', 256 * 1024, 3000);
    expect(r.outcome).toBe('delivered');
    expect(r.durationMs).toBeGreaterThanOrEqual(700);
  });
  test('delay longer than the stall window → stalled at the first command that waits', async () => {
    const r = await through('delay=1500ms', 4096, 500);
    expect(r.outcome).toBe('stalled');
    expect(r.stage).toBe('ehlo');
  });
});

/**
 * `mxprobe run` checks the profile's thresholds at the end of the run (k6's convention): a failed threshold is
 * named with its value and by how much it missed, and the run exits 99 — with and without --json.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

describe('mxprobe run: thresholds', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let dir: string;
  const profile = (thresholds: string[]): string => {
    const file = join(dir, `p${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      `name: thresholds
tls: none
targets:
  - {host: 127.0.0.1, port: ${smtp.port}, name: sink}
paths:
  - name: direct
sizes: [1KiB, 16KiB]
repeat: 2
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {connect: 5s, command: 10s, data: 10s, body: 10s, dataAck: 10s, stall: 2s}
thresholds:
${thresholds.map((t) => `  - '${t}'`).join('\n')}
`,
    );
    return file;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-run-thresholds-'));
    smtp = await startSmtpServer();
  });
  afterAll(async () => {
    await smtp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  // smtp-server waits 100 ms before its greeting (early-talker detection): a greeting under 1 ms fails on any machine
  it('a failed threshold exits 99, says which and by how much; the ones that hold are listed as ok', async () => {
    const r = await runMain('run', profile(['greeting: p95 < 1ms', 'success_rate >= 99%']), '--out', join(dir, 'a.jsonl'), '--quiet');
    expect(r.code).toBe(99);
    expect(r.stdout).toMatch(/thresholds: 1 of 2 FAILED \(exit 99\)/);
    expect(r.stdout).toMatch(/✗ greeting: p95 < 1ms — p95 [\d.]+ ?m?s over 4 probes: FAILED by [\d.]+ ?m?s/);
    expect(r.stdout).toContain('✓ success_rate >= 99% — 100% (4/4): ok');
  });

  it('with --json: exit 99 and the thresholds in the summary', async () => {
    const r = await runMain('run', profile(['total: p50 < 1ms']), '--out', join(dir, 'b.jsonl'), '--json', '--quiet');
    expect(r.code).toBe(99);
    const j = JSON.parse(r.stdout) as { exitCode: number; thresholds: Array<{ ok: boolean; missedBy: number; threshold: { source: string } }> };
    expect(j.exitCode).toBe(99);
    expect(j.thresholds).toHaveLength(1);
    expect(j.thresholds[0]).toMatchObject({ ok: false, threshold: { source: 'total: p50 < 1ms' } });
    expect(j.thresholds[0]!.missedBy).toBeGreaterThan(0);
  });

  it('thresholds that hold leave the exit code to the probes (0 when every probe delivered)', async () => {
    const r = await runMain('run', profile(['stall_rate < 1%', 'total: p95 < 30s']), '--out', join(dir, 'c.jsonl'), '--quiet');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('thresholds: all hold');
  });
});

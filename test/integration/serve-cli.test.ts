/** `mxprobe serve` as a process: help, address in use (exit 3), bad flags (exit 2), SIGTERM (clean exit 0). */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, ensureBuilt, runCli } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

describe('mxprobe serve (CLI)', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let dir: string;

  beforeAll(async () => {
    ensureBuilt();
    smtp = await startSmtpServer();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-serve-cli-'));
  });
  afterAll(async () => {
    await smtp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('--help teaches both Prometheus patterns and the safety rule', async () => {
    const r = await runCli(['serve', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('scrape_configs:');
    expect(r.stdout).toContain('metrics_path: /probe');
    expect(r.stdout).toContain('__param_target');
    expect(r.stdout).toContain('--allow-target');
    expect(r.stdout).toContain('(default: 5m)');
  });

  it('an address in use is exit 3 with a clear message', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = await runCli(['serve', '--listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port}: address already in use`);
    } finally {
      await new Promise<void>((r) => busy.close(() => r()));
    }
  });

  it('bad flags are exit 2', async () => {
    const r = await runCli(['serve', '--allow-target', '10.0.0.0/99']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('prefix length');
    const r2 = await runCli(['serve', '--interval', 'soon']);
    expect(r2.code).toBe(2);
  });

  it('runs the schedule, logs it, and stops cleanly on SIGTERM (exit 0)', async () => {
    const profile = join(dir, 'p.yaml');
    writeFileSync(
      profile,
      `name: cli-serve
tls: none
targets: [{host: 127.0.0.1, port: ${smtp.port}, name: sink}]
paths: [{name: direct}]
sizes: [1KiB]
repeat: 2
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {stall: 2s}
`,
    );
    const out = join(dir, 'serve.jsonl');
    const child = spawn(process.execPath, [BIN, 'serve', '--profile', profile, '--listen', '127.0.0.1:0', '--interval', '1h', '--out', out, '--json'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    try {
      // wait for the first run to finish
      const t = Date.now();
      while (!stdout.includes('"event":"run"') && Date.now() - t < 20_000) await new Promise((r) => setTimeout(r, 50));
      const events = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      const listening = events.find((e) => e.event === 'listening')!;
      expect(listening.profile).toBe('cli-serve');
      const url = listening.url as string;
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).toMatch(/^mxprobe_probes_total\{path="direct",target="sink",size="1KiB",outcome="delivered",stage=""\} 2$/m);
      const run = events.find((e) => e.event === 'run')!;
      expect(run).toMatchObject({ probes: 2, counts: { delivered: 2 } });
      child.kill('SIGTERM');
      const t0 = Date.now();
      expect(await exited, stderr).toBe(0);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(stdout).toContain('"event":"stopped"');
      expect(readFileSync(out, 'utf8').trim().split('\n')).toHaveLength(2);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
  });
});

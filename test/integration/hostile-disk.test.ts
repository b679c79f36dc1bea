/**
 * A hostile environment for the results file: a full disk and a read-only file system (small tmpfs mounts;
 * needs root — skipped otherwise). kill -9 + --resume and an unwritable path are in run.test.ts.
 *
 * - full before the run: a clear error (exit 3) before any probe is sent;
 * - read-only: the same;
 * - full in the middle of a run: a clear error (exit 3), every complete line parses (at most the last is cut
 *   short), and once there is room again `--resume` completes the run with every probe exactly once.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ProbeResult } from '../../src/model.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

function tryMount(dir: string, opts: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Fill a file system: write until ENOSPC, leaving `leaveBytes` (rounded to pages) free. */
function fill(dir: string, leaveBytes: number): void {
  const free = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  const want = Math.max(0, free() - leaveBytes);
  try {
    writeFileSync(join(dir, 'filler'), Buffer.alloc(want + (leaveBytes === 0 ? 4096 : 0)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

const isRoot = process.getuid?.() === 0;
const lines = (file: string): { parsed: ProbeResult[]; torn: number } => {
  const all = readFileSync(file, 'utf8').split('\n');
  const parsed: ProbeResult[] = [];
  let torn = 0;
  all.forEach((l, i) => {
    if (!l.trim()) return;
    try {
      parsed.push(JSON.parse(l) as ProbeResult);
    } catch {
      // only the very last line may be cut short by the full disk
      expect(i, `line ${i + 1} of ${all.length} does not parse`).toBe(all.length - 1);
      torn++;
    }
  });
  return { parsed, torn };
};

describe.skipIf(!isRoot)('results on a full or read-only disk (tmpfs; root)', () => {
  let base: string;
  let full: string;
  let ro: string;
  let mounted: string[] = [];
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  let connections = 0;

  beforeAll(async () => {
    ensureBuilt();
    base = mkdtempSync(join(tmpdir(), 'mxprobe-disk-'));
    full = join(base, 'full');
    ro = join(base, 'ro');
    if (tryMount(full, 'size=256k')) mounted.push(full);
    if (tryMount(ro, 'ro,size=64k')) mounted.push(ro);
    srv = await startSmtpServer({
      onConnect(_s, cb) {
        connections++;
        cb();
      },
    });
    writeFileSync(
      join(base, 'p.yaml'),
      `name: disk
targets: [{host: 127.0.0.1, port: ${srv.port}}]
tls: none
sizes: [1KiB]
repeat: 150
concurrency: 8
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
`,
    );
  }, 300_000);

  afterAll(async () => {
    await srv?.close();
    for (const m of mounted) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        /* already gone */
      }
    }
    mounted = [];
    if (base) rmSync(base, { recursive: true, force: true });
  });

  test('a full disk: exit 3 with the reason, before any probe is sent', async (ctx) => {
    if (!mounted.includes(full)) return ctx.skip();
    fill(full, 0);
    const before = connections;
    const r = await runCli(['run', 'p.yaml', '--out', join(full, 'r.jsonl')], { cwd: base });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^mxprobe: cannot write results to .*r\.jsonl: no space left on the device \(\d+ bytes free; checked before sending any probe\)$/m);
    expect(connections).toBe(before);
    if (existsSync(join(full, 'r.jsonl'))) expect(statSync(join(full, 'r.jsonl')).size).toBe(0);
    rmSync(join(full, 'filler'));
    rmSync(join(full, 'r.jsonl'), { force: true });
  });

  test('a read-only file system: exit 3 with the reason, before any probe is sent', async (ctx) => {
    if (!mounted.includes(ro)) return ctx.skip();
    const before = connections;
    const r = await runCli(['run', 'p.yaml', '--out', join(ro, 'r.jsonl')], { cwd: base });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot write results to .*r\.jsonl: read-only file system/);
    expect(connections).toBe(before);
  });

  test('the disk fills mid-run: exit 3, whole lines only (but a torn last one), then --resume completes it', async (ctx) => {
    if (!mounted.includes(full)) return ctx.skip();
    fill(full, 96 * 1024); // room for the preflight and some lines, not for 150
    const file = join(full, 'mid.jsonl');
    const r = await runCli(['run', 'p.yaml', '--out', file], { cwd: base });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/mxprobe: cannot write results to .*mid\.jsonl: no space left on the device/);
    // the summary of what was recorded, and how to finish, are still said
    expect(r.stderr).toMatch(/^\d+ probes recorded before the results file failed: \d+ delivered/m);
    expect(r.stderr).toContain(`once there is room again, finish with: mxprobe run p.yaml --resume ${file}`);
    const partial = lines(file);
    expect(partial.parsed.length).toBeGreaterThan(10);
    expect(partial.parsed.length).toBeLessThan(150);

    rmSync(join(full, 'filler')); // room again
    const resumed = await runCli(['run', 'p.yaml', '--resume', file], { cwd: base });
    expect(resumed.code, resumed.stderr).toBe(0);
    if (partial.torn) expect(resumed.stderr).toMatch(/is incomplete .* it is dropped and that probe runs again/);
    const done = lines(file);
    expect(done.torn).toBe(0);
    expect(done.parsed).toHaveLength(150);
    expect(new Set(done.parsed.map((l) => l.key)).size).toBe(150);
    expect(new Set(done.parsed.map((l) => l.runId)).size).toBe(1);
  }, 120_000);
});

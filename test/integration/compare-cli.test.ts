/**
 * `mxprobe compare`, `verify`, `bisect` through the CLI entry (in process): exit codes, human output, --json,
 * input errors; `bisect` and `verify --profile` end to end against a real smtp-server behind the lab's
 * fault-injecting relay on 127.0.0.1.
 */
import { runMain } from '../helpers/cli.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import type { ProbeResult } from '../../src/model.js';
import { startSmtpServer } from '../helpers/servers.js';
import { KiB, MiB, SIZES, grid } from '../unit/fixtures.js';


const cli = runMain;

let dir: string;
const jsonl = (rs: ProbeResult[]): string => rs.map((r) => JSON.stringify(r)).join('\n') + '\n';
async function file(name: string, content: string): Promise<string> {
  const p = join(dir, name);
  await writeFile(p, content);
  return p;
}

const lbShape = ({ path, sizeBytes, rand }: { path: string; sizeBytes: number; rand: () => number }) =>
  path === 'via-lb' && sizeBytes >= 64 * KiB
    ? { outcome: 'stalled' as const, ackedBytes: Math.min(sizeBytes, Math.round(61 * KiB + rand() * 3 * KiB)) }
    : undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mxprobe-compare-'));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('mxprobe compare', () => {
  it('prints the table, the numbered findings with evidence, the verdict; exit 1 on stall findings', async () => {
    const f = await file('lb.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 12, shape: lbShape })));
    const r = await cli('compare', f);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`144 probes from ${f}`);
    expect(r.stdout).toMatch(/\n\s+64KiB\s+✓ 12\/12 \S+\s+✗ 12\/12 stalled\(no-ack\)@body\n/);
    expect(r.stdout).toContain('\nFindings\n');
    expect(r.stdout).toMatch(/\n1\. \[path-specific\] Path via-lb stalls in the message body from 64KiB on where direct does not: 36\/36/);
    expect(r.stdout).toMatch(/\n\s+evidence: mode stalling-cells · stalled 36 · total 36 · reference direct/);
    expect(r.stdout).toMatch(/\n2\. \[size-threshold\]/);
    expect(r.stdout).toContain('\nVerdict\n  Path via-lb stalls in the message body from 64KiB on (36/36 probes; direct 0/36,');
    expect(r.stdout).not.toContain('\u001b[');
  });

  it('--json prints {cells, findings, verdict}', async () => {
    const f = await file('lb2.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: lbShape })));
    const r = await cli('compare', f, '--json');
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { cells: unknown[]; findings: Array<{ kind: string; path?: string }>; verdict: string };
    expect(Object.keys(doc)).toEqual(['cells', 'findings', 'verdict']);
    expect(doc.cells).toHaveLength(12);
    expect(doc.findings[0]).toMatchObject({ kind: 'path-specific', path: 'via-lb' });
    expect(doc.verdict).toMatch(/^Path via-lb stalls in the message body from 64KiB on/);
  });

  it('exit 0 on a clean run; several files are pooled; blank lines are skipped', async () => {
    const a = await file('a.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: [4 * KiB, MiB], repeat: 3 })) + '\n\n');
    const b = await file('b.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: [4 * KiB, MiB], repeat: 2 })));
    const r = await cli('compare', a, b);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('20 probes from 2 files');
    expect(r.stdout).toMatch(/\s+4KiB\s+✓ 5\/5/);
    expect(r.stdout).toContain('Verdict\n  No stalls: 20 probes over 2 paths, 1 target and 2 sizes');
    expect(r.stdout).toContain('(no findings)');
  });

  it('--sink joins what the receiver got: stall offsets then come from the sink', async () => {
    const rs = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 4, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? { outcome: 'stalled', tcp: null } : undefined) });
    const f = await file('s.jsonl', jsonl(rs));
    const records = rs
      .filter((r) => r.outcome === 'stalled')
      .map((r, i) => ({ kind: 'probe', probeId: r.probeId, sessionId: `s${i}`, remoteAddress: '127.0.0.1', remotePort: 1, startedAt: r.startedAt, commands: [], bodyBytes: 60 * KiB + i * 100, expectedBytes: r.sizeBytes, whole: false, ended: 'client-silent' }));
    const sink = await file('sink.jsonl', jsonl(records as unknown as ProbeResult[]));
    const r = await cli('compare', f, '--sink', sink, '--json');
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { findings: Array<{ kind: string; evidence: Record<string, unknown> }>; verdict: string };
    const off = doc.findings.find((x) => x.kind === 'stall-offset')!;
    expect(off.evidence).toMatchObject({ source: 'sink', pattern: 'cluster' });
    expect(doc.verdict).toContain('Transfers stop at 60–61KiB received regardless of message size: something on via-lb stops passing data after ~61KiB.');
    const bad = await cli('compare', f, '--sink', f);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('this is a probe result');
  });

  it('a results line with a field of the wrong type is skipped, never rendered (report included)', async () => {
    const rs = grid({ paths: ['direct'], sizes: [4 * KiB], repeat: 2 });
    const xss = '"><svg onload=alert(1)>';
    const hostile = { ...rs[1], durationMs: xss, stages: { body: xss } };
    const f = await file('xss.jsonl', jsonl([rs[0]!, hostile as unknown as ProbeResult]));
    const report = join(dir, 'xss.html');
    const r = await cli('compare', f, '--report', report);
    expect(r.stderr).toContain(`${f}:2: skipped: not a probe result (`);
    expect(r.stderr).toContain('durationMs');
    expect(r.stdout).toContain('1 probes from');
    const { readFile } = await import('node:fs/promises');
    expect(await readFile(report, 'utf8')).not.toContain('<svg onload');
    expect(r.stdout + r.stderr).not.toContain('<svg onload');
  });

  it('terminal output carries no control character from a results file (names, reply texts)', async () => {
    const ESC = '\x1b';
    const rs = grid({ paths: ['direct'], sizes: [4 * KiB], repeat: 3 }).map((x) => ({
      ...x,
      path: `dir${ESC}]52;c;ZXZpbA==\x07ect`,
      outcome: 'rejected' as const,
      stage: 'rcpt' as const,
      reply: { code: 550, text: `no${ESC}[2J such user` },
      error: { code: 'EREJECTED', message: `rcpt: 550 no${ESC}[2J such user` },
    }));
    const f = await file('esc.jsonl', jsonl(rs));
    const human = await cli('compare', f, '--no-color');
    expect(human.stdout).toContain('such user');
    expect(human.stdout).not.toContain(ESC);
    expect(human.stdout).not.toContain('\x07');
    // JSON stays exact: the escape is there, escaped by JSON itself
    const json = await cli('compare', f, '--json');
    expect(json.stdout).toContain('\\u001b[2J');
  });

  it('--sink http:// that never ends: cut off at the documented bound, exit 3 with the reason in words', async () => {
    const http = await import('node:http');
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      const chunk = Buffer.alloc(256 * 1024, 0x7b);
      const pump = () => { while (!res.destroyed && res.write(chunk)); };
      res.on('drain', pump);
      pump();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as import('node:net').AddressInfo).port;
    try {
      const f = await file('one.jsonl', jsonl(grid({ paths: ['direct'], sizes: [4 * KiB], repeat: 1 })));
      const r = await cli('compare', f, '--sink', `http://127.0.0.1:${port}`);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`mxprobe: sink records from http://127.0.0.1:${port}/records: more than 64 MiB, not read further`);
      expect(r.stderr).not.toContain('internal error');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('bad lines: not JSON or not a result are skipped, named as file:line and counted; a missing file exit 2', async () => {
    const rs = grid({ paths: ['direct'], sizes: [4 * KiB], repeat: 2 });
    const bad = await file('bad.jsonl', `${JSON.stringify(rs[0])}\n{"oops": \n${JSON.stringify(rs[1])}\n`);
    let r = await cli('compare', bad);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`mxprobe: warning: ${bad}:2: skipped: not JSON`);
    expect(r.stderr).toContain('1 line skipped');
    expect(r.stdout).toContain('2 probes from');
    const notResult = await file('nr.jsonl', `${JSON.stringify(rs[0])}\n{"hello":1}\n`);
    r = await cli('compare', notResult);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`${notResult.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: skipped: not a probe result \\(target: .*; path: .*; sizeBytes: `));
    r = await cli('compare', join(dir, 'nope.jsonl'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`mxprobe: ${join(dir, 'nope.jsonl')}: no such results file`);
    const empty = await file('empty.jsonl', '\n');
    r = await cli('compare', empty);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no probe results in');
  });
});

describe('mxprobe verify (files)', () => {
  const before = () => grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: lbShape });

  it('fixed: every baseline failure gone, exit 0 even with --expect-fixed', async () => {
    const b = await file('before.jsonl', jsonl(before()));
    const a = await file('after.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6 })));
    const r = await cli('verify', '--baseline', b, a, '--expect-fixed');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\n\s+64KiB\s+= unchanged 0\/6→0\/6\s+✓ fixed 6\/6→0\/6\n/);
    expect(r.stdout).toContain('✓ fixed via-lb 64KiB: Fisher exact: 6/6 → 0/6 failed, p = 0.026 (raw = 0.002, 12 hypotheses) — was (6 stalled)');
    expect(r.stdout).toContain('Summary: 3 fixed, 0 still failing, 0 regressed, 9 unchanged; baseline failures: 3, fixed: 3.');
    expect(r.stdout).toContain('Fixed: all 3 failing baseline cells are fixed, nothing regressed.');
  });

  it('still failing: exit 0 without --expect-fixed, 1 with it; --json', async () => {
    const b = await file('before2.jsonl', jsonl(before()));
    const a = await file('after2.jsonl', jsonl(before()));
    expect((await cli('verify', '--baseline', b, a)).code).toBe(0);
    const r = await cli('verify', '--baseline', b, a, '--expect-fixed', '--json');
    expect(r.code).toBe(1);
    const doc = JSON.parse(r.stdout) as { counts: Record<string, number>; exitCode: number; summary: string; cells: Array<{ status: string; pValue: number }> };
    expect(doc.counts).toMatchObject({ 'still-failing': 3, unchanged: 9, fixed: 0, regressed: 0 });
    expect(doc.exitCode).toBe(1);
    expect(doc.summary).toBe('Not fixed: 3 of 3 failing baseline cells are not fixed (still-failing); nothing regressed.');
  });

  it('regressed: exit 1', async () => {
    const b = await file('before3.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6 })));
    const a = await file('after3.jsonl', jsonl(before()));
    const r = await cli('verify', '--baseline', b, a);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('✗ regressed via-lb 1MiB: Fisher exact: 0/6 → 6/6 failed, p = 0.026 (raw = 0.002, 12 hypotheses) — now (6 stalled)');
    expect(r.stdout).toContain('3 cells regressed.');
  });

  it('thresholds on the new run: exit 99 when one fails; a bad threshold is exit 2', async () => {
    const b = await file('before4.jsonl', jsonl(before()));
    const a = await file('after4.jsonl', jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6 })));
    let r = await cli('verify', '--baseline', b, a, '--threshold', 'stall_rate < 1%', '--threshold', 'body: p95 < 1ms');
    expect(r.code).toBe(99);
    expect(r.stdout).toContain('Thresholds (new run)');
    expect(r.stdout).toContain('✓ stall_rate < 1% — 0% (0/72): ok');
    expect(r.stdout).toMatch(/✗ body: p95 < 1ms — p95 \S+ over 72 probes: FAILED/);
    r = await cli('verify', '--baseline', b, a, '--threshold', 'stall_rate < 1%', '--threshold', 'body: p95 < 10s');
    expect(r.code).toBe(0);
    r = await cli('verify', '--baseline', b, a, '--threshold', 'bdy: p95 < 2s');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown metric "bdy"');
  });

  it('usage errors: neither AFTER nor --profile, or both', async () => {
    const b = await file('before5.jsonl', jsonl(before()));
    let r = await cli('verify', '--baseline', b);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('nothing to compare the baseline with');
    r = await cli('verify', '--baseline', b, b, '--profile', 'x.yaml');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not both');
  });
});

describe('end to end against a relay that blackholes data after 64KiB', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let relay: Relay;
  let profile: string;
  beforeAll(async () => {
    smtp = await startSmtpServer();
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: parseFault('blackhole-after=64KiB') });
    profile = await file(
      'e2e.yaml',
      `name: e2e
tls: none
targets:
  - {host: 127.0.0.1, port: ${smtp.port}, tls: none, name: sink}
paths:
  - name: direct
  - name: via-lb
    relay: '127.0.0.1:${relay.port}'
sizes: [4KiB, 1MiB]
repeat: 3
concurrency: 4
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {connect: 5s, command: 10s, data: 10s, body: 30s, dataAck: 30s, stall: 1s}
thresholds: ['stall_rate < 1%']
`,
    );
  });
  afterEach(() => relay.setFaults(parseFault('blackhole-after=64KiB')));
  afterAll(async () => {
    await relay?.close();
    await smtp?.close();
  });

  it('bisect finds the size from which via-lb stalls, within 10%, in at most 15 probes', async () => {
    const out = join(dir, 'bisect.jsonl');
    const r = await cli('bisect', profile, '--path', 'via-lb', '--low', '4KiB', '--high', '1MiB', '--out', out, '--json');
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { low: number; high: number; converged: boolean; probes: number; steps: Array<{ verdict: string }>; out: string };
    expect(doc.converged).toBe(true);
    expect(doc.out).toBe(out);
    // the relay passes 65536 bytes per connection, SMTP commands included: messages of ~65.4KiB and more stall
    expect(doc.low).toBeLessThan(64 * KiB);
    expect(doc.low).toBeGreaterThan(56 * KiB);
    expect(doc.high).toBeGreaterThan(doc.low);
    expect(doc.high - doc.low).toBeLessThanOrEqual(Math.max(1448, 0.1 * doc.low));
    expect(doc.probes).toBeLessThanOrEqual(15);
    // and every probe is in the results file, readable by compare
    const c = await cli('compare', out, '--json');
    expect([0, 1]).toContain(c.code);
    const cells = (JSON.parse(c.stdout) as { cells: Array<{ total: number }> }).cells;
    expect(cells.reduce((s, x) => s + x.total, 0)).toBe(doc.probes);
  }, 120_000);

  it('verify --profile runs the profile now and calls the fixed cells (the relay no longer drops)', async () => {
    const baseline = await file(
      'e2e-before.jsonl',
      jsonl(
        grid({
          paths: ['direct', 'via-lb'], targets: ['sink'], sizes: [4 * KiB, MiB], repeat: 8,
          shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes === MiB ? 'stalled' : undefined),
        }),
      ),
    );
    relay.setFaults(parseFault('none'));
    const r = await cli('verify', '--baseline', baseline, '--profile', profile, '--out', join(dir, 'e2e-after.jsonl'), '--expect-fixed', '--quiet');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/✓ fixed via-lb 1MiB: Fisher exact: 8\/8 → 0\/3 failed, p = 0\.024 \(raw = 0\.006, 4 hypotheses\)/);
    expect(r.stdout).toContain('✓ stall_rate < 1% — 0% (0/12): ok');
    expect(r.stdout).toContain('Fixed: the failing baseline cell is fixed, nothing regressed.');
  }, 120_000);
});

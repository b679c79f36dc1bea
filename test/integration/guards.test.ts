/**
 * Real-target safety rules end to end, on loopback only: a "real" target is simulated by a non-loopback target
 * address (192.0.2.1, TEST-NET-1, never connected to) reached through a relay path on 127.0.0.1 — the probe
 * connects to the loopback relay, which would pass the message on, so the rules apply.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probe } from '../../src/probe/index.js';
import { DEFAULT_TIMEOUTS, type ProbeResult, type ProbeSpec } from '../../src/model.js';
import type { Plan } from '../../src/profile/plan.js';
import { createRunEmitter, runPlan, RunError } from '../../src/run/index.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { spec, startSmtpServer } from '../helpers/servers.js';

const REAL = '192.0.2.1';

describe('SIZE guard in the engine', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => { srv = await startSmtpServer({ size: 10_240_000 }); });
  afterAll(async () => { await srv.close(); });
  const real = (over: Parameters<typeof spec>[1] = {}) =>
    spec(srv.port, { target: { host: REAL, port: 25, tls: 'none' }, path: { name: 'smarthost', relay: { host: '127.0.0.1', port: srv.port } }, ...over });

  test('a real target advertising SIZE 10240000: a 16 MiB probe is not sent; QUIT instead of MAIL; rejected@mail ESIZE', async () => {
    const before = srv.received.length;
    const r = await probe(real({ sizeBytes: 16 * 1024 * 1024 }));
    expect(r.outcome).toBe('rejected');
    expect(r.stage).toBe('mail');
    expect(r.error).toMatchObject({
      code: 'ESIZE',
      message: 'server advertises SIZE 10240000; probe of 16777216 bytes refused (use --force to send anyway)',
    });
    expect(r.stages.mail).toBeUndefined(); // MAIL was never sent
    expect(r.stages.quit).toBeGreaterThan(0);
    expect(r.bodyBytesWritten).toBeUndefined();
    expect(r.capabilities).toContain('SIZE 10240000');
    expect(r.error?.lastCommand).toMatch(/^EHLO /); // what was said last before the refusal, not the QUIT after it
    expect(srv.received.length).toBe(before);
  });

  test('within the advertised SIZE it is sent; with force it is sent and the server answers for itself', async () => {
    expect((await probe(real({ sizeBytes: 1024 * 1024 }))).outcome).toBe('delivered');
    const forced = await probe(real({ sizeBytes: 16 * 1024 * 1024, force: true }));
    expect(forced.outcome).toBe('rejected');
    expect(forced.error?.code).toBe('EREJECTED');
    expect(forced.reply?.code).toBe(552);
  });

  test('a loopback (lab) target is not guarded: the server answers for itself', async () => {
    const r = await probe(spec(srv.port, { sizeBytes: 16 * 1024 * 1024 }));
    expect(r.outcome).toBe('rejected');
    expect(r.error?.code).toBe('EREJECTED');
    expect(r.reply?.code).toBe(552);
  });
});

describe('runPlan applies the rate rule (so run, verify --profile, bisect, serve and library callers all get it)', () => {
  const plan = (ratePerTarget?: number): Plan => ({
    name: 'lib',
    profileHash: 'lib-guard-000001',
    targets: [{ host: REAL, port: 25, tls: 'none', name: 'real' }],
    paths: [{ name: 'd' }],
    sizes: [2048],
    repeat: 3,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    timeouts: { ...DEFAULT_TIMEOUTS },
    concurrency: 3,
    seed: 1,
    ...(ratePerTarget === undefined ? {} : { ratePerTarget }),
  });
  /** An engine that answers at once (nothing is sent anywhere), recording what it was asked. */
  const fake = (seen: Array<{ spec: ProbeSpec; at: number }>) => async (spec: ProbeSpec): Promise<ProbeResult> => {
    seen.push({ spec, at: performance.now() });
    return { probeId: spec.probeId, target: 'real', path: 'd', sizeBytes: spec.sizeBytes, seed: spec.seed, outcome: 'delivered', stages: {}, startedAt: new Date().toISOString(), durationMs: 1, bytesWritten: 0, bytesRead: 0 };
  };
  let dir: string;
  beforeAll(() => { dir = mkdtempSync(join(tmpdir(), 'mxprobe-guards-lib-')); });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test('no rate: 1 probe/s per real target, announced as a run warning', async () => {
    const seen: Array<{ spec: ProbeSpec; at: number }> = [];
    const ee = createRunEmitter();
    const warnings: string[] = [];
    ee.on('run:warning', (e) => warnings.push(e.message));
    let rate: number | undefined;
    ee.on('run:start', (e) => (rate = e.ratePerTarget));
    const s = await runPlan(plan(), { out: join(dir, 'a.jsonl'), emitter: ee, probeFn: fake(seen), checkBind: false });
    expect(s.recorded).toBe(3);
    expect(rate).toBe(1);
    expect(warnings).toEqual([`target real is a real server (target ${REAL} is not a loopback or benchmark address): at most 1/s per target (set rate: in the profile to change it)`]);
    expect(seen[2]!.at - seen[0]!.at).toBeGreaterThanOrEqual(1900);
    expect(seen.every((x) => x.spec.force === undefined)).toBe(true);
  });

  test('a rate above 1/s: RunError EINPUT before anything is sent; with force the plan runs and every probe has force', async () => {
    const seen: Array<{ spec: ProbeSpec; at: number }> = [];
    const err = await runPlan(plan(50), { out: join(dir, 'b.jsonl'), probeFn: fake(seen), checkBind: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunError);
    expect((err as RunError).code).toBe('EINPUT');
    expect((err as Error).message).toMatch(/^nothing sent: rate 50\/s per target is above 1\/s, and target real is a real server/);
    expect(seen).toHaveLength(0);
    const s = await runPlan(plan(50), { out: join(dir, 'b.jsonl'), probeFn: fake(seen), checkBind: false, force: true });
    expect(s.recorded).toBe(3);
    expect(seen.every((x) => x.spec.force === true)).toBe(true);
  });
});

describe('CLI', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  let dir: string;
  beforeAll(async () => {
    ensureBuilt();
    srv = await startSmtpServer({ size: 10_240_000 });
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-guards-'));
  }, 300_000);
  afterAll(async () => {
    await srv.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const probeArgs = (...more: string[]) => [
    'probe', '--host', REAL, '--relay', `127.0.0.1:${srv.port}`, '--tls', 'none', '--from', 'probe@mxprobe.test', '--to', 'sink@mxprobe.test', ...more,
  ];

  test('probe: above SIZE is refused with the reason and what to do (exit 1); --force sends it', async () => {
    const human = await runCli(probeArgs('--size', '16MiB'));
    expect(human.code).toBe(1);
    expect(human.stdout).toContain('✗ rejected in mail');
    expect(human.stdout).toContain('server advertises SIZE 10240000; probe of 16777216 bytes refused (use --force to send anyway)');
    const json = await runCli(probeArgs('--size', '16MiB', '--json'));
    const r = JSON.parse(json.stdout) as ProbeResult;
    expect(r).toMatchObject({ outcome: 'rejected', stage: 'mail', error: { code: 'ESIZE' } });
    const forced = await runCli(probeArgs('--size', '16MiB', '--json', '--force'));
    expect((JSON.parse(forced.stdout) as ProbeResult).reply?.code).toBe(552);
  });

  test('probe --message to a real target needs a test header (exit 2, nothing sent), or --force', async () => {
    const plain = join(dir, 'plain.eml');
    writeFileSync(plain, 'Subject: hello\r\n\r\nhi\r\n');
    const before = srv.received.length;
    const refused = await runCli(probeArgs('--message', plain));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/--message .*plain\.eml: the target is a real server and the message has no Auto-Submitted: or X-Mxprobe: header/);
    expect(srv.received.length).toBe(before);
    const marked = join(dir, 'marked.eml');
    writeFileSync(marked, 'Subject: hello\r\nAuto-Submitted: auto-generated\r\n\r\nhi\r\n');
    expect((await runCli(probeArgs('--message', marked))).code).toBe(0);
    expect((await runCli(probeArgs('--message', plain, '--force'))).code).toBe(0);
    // a lab target takes any message
    const lab = await runCli(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--message', plain]);
    expect(lab.code).toBe(0);
  });

  const profile = (extra = '') => `name: guard
targets: [{host: ${REAL}, port: 25, name: real-mx}]
tls: none
paths: [{name: smarthost, relay: '127.0.0.1:${srv.port}'}]
sizes: [1KiB]
repeat: 3
concurrency: 3
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
${extra}`;

  test('run: a real target gets 1 probe/s when the profile sets no rate, and says so', async () => {
    writeFileSync(join(dir, 'real.yaml'), profile());
    const r = await runCli(['run', 'real.yaml', '--out', 'real.jsonl'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`target real-mx is a real server (target ${REAL} is not a loopback or benchmark address): at most 1/s per target`);
    expect(r.stderr).toMatch(/concurrency 3, at most 1\/s per target/);
    const lines = readFileSync(join(dir, 'real.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ProbeResult);
    expect(lines).toHaveLength(3);
    // starts spaced by ≥ 1 s (generous lower bound: 3 probes take at least ~2 s of spacing)
    const starts = lines.map((l) => Date.parse(l.startedAt)).sort((a, b) => a - b);
    expect(starts[2]! - starts[0]!).toBeGreaterThanOrEqual(1900);
  });

  test('run: a profile rate above 1/s to a real target is refused (exit 2, nothing sent) unless --force', async () => {
    writeFileSync(join(dir, 'fast.yaml'), profile('rate: 20/s'));
    const before = srv.received.length;
    const r = await runCli(['run', 'fast.yaml', '--out', 'fast.jsonl'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('mxprobe: nothing sent: rate 20/s per target is above 1/s, and target real-mx is a real server');
    expect(r.stderr).toContain('--force');
    expect(srv.received.length).toBe(before);
    const forced = await runCli(['run', 'fast.yaml', '--out', 'fast.jsonl', '--force'], { cwd: dir });
    expect(forced.code, forced.stderr).toBe(0);
    expect(srv.received.length).toBe(before + 3);
  });

  test('run: a lab profile keeps its own pace (no rate imposed)', async () => {
    writeFileSync(join(dir, 'lab.yaml'), profile().replace(`host: ${REAL}`, 'host: 127.0.0.1'));
    const r = await runCli(['run', 'lab.yaml', '--out', 'lab.jsonl'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/per target/);
    expect(r.stderr).not.toMatch(/real server/);
  });

  test('--help teaches the rules', async () => {
    const p = await runCli(['probe', '--help']);
    expect(p.stdout).toMatch(/--force/);
    expect(p.stdout).toMatch(/SIZE the server advertises/);
    const r = await runCli(['run', '--help']);
    expect(r.stdout).toMatch(/at most 1 probe\/s per target when the profile sets no rate/);
  });
});

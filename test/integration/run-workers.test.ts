/**
 * Both cores (issue 19, point 2): probes in worker threads (`openProbePool`, src/run/workers.ts) behind runPlan's
 * `probeFn`, against a real smtp-server on loopback, and `mxprobe run --workers` end to end.
 *
 * The workers run the build (dist/run/probe-worker.js and dist/probe, built here when stale): a worker thread
 * cannot load TypeScript. Failures the real engine cannot be made to show on demand come from
 * test/helpers/worker-engine.mjs, which otherwise is the real engine.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUTS, type ProbeResult, type ProbeSpec } from '../../src/model.js';
import type { CaptureSession } from '../../src/probe/capture.js';
import { ProbeEnvError, ProbeInputError } from '../../src/probe/errors.js';
import { AbortError } from '../../src/probe/session.js';
import type { Plan } from '../../src/profile/plan.js';
import { createRunEmitter, RunError, runPlan, type RunEvents } from '../../src/run/index.js';
import { openProbePool, ProbeWorkerError, type ProbePool } from '../../src/run/workers.js';
import { BIN, ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { startRawServer, startSmtpServer, spec } from '../helpers/servers.js';

const ENTRY = join(ROOT, 'dist/run/probe-worker.js');
const ENGINE = join(ROOT, 'dist/probe/index.js');
const FAKE_ENGINE = pathToFileURL(join(ROOT, 'test/helpers/worker-engine.mjs'));

const pools: ProbePool[] = [];
function pool(workers: number, engine: string | URL = ENGINE): ProbePool {
  const p = openProbePool({ workers, entry: ENTRY, engine });
  pools.push(p);
  return p;
}

function readLines(file: string): ProbeResult[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProbeResult);
}

let srv: Awaited<ReturnType<typeof startSmtpServer>>;
let dir: string;
beforeAll(() => {
  ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'mxprobe-workers-'));
}, 300_000);
beforeAll(async () => {
  srv = await startSmtpServer({
    allowInsecureAuth: true,
    onAuth(auth, _session, cb) {
      if (auth.username === 'u' && auth.password === 'worker-s3cret') cb(null, { user: 'u' });
      else cb(new Error('535 bad credentials'));
    },
  });
});
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  await srv?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function plan(over: Partial<Plan> = {}): Plan {
  return {
    name: 'workers',
    profileHash: 'int-workers-0001',
    targets: [{ host: '127.0.0.1', port: srv.port, tls: 'none' }],
    paths: [{ name: 'direct' }],
    sizes: [1024, 16384],
    repeat: 6,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    timeouts: { ...DEFAULT_TIMEOUTS },
    concurrency: 4,
    seed: 9,
    ...over,
  };
}

/** Every event of a run in the order heard, with the probe it is about. */
function record(ee: ReturnType<typeof createRunEmitter>): Array<[keyof RunEvents, string?]> {
  const seen: Array<[keyof RunEvents, string?]> = [];
  ee.on('run:start', () => seen.push(['run:start']));
  ee.on('probe:start', (e) => seen.push(['probe:start', e.spec.probeId]));
  ee.on('probe:stage', (e) => seen.push(['probe:stage', e.probeId]));
  ee.on('probe:end', (e) => seen.push(['probe:end', e.result.probeId]));
  ee.on('probe:dropped', (e) => seen.push(['probe:dropped', e.spec.probeId]));
  ee.on('run:end', () => seen.push(['run:end']));
  return seen;
}

describe('runPlan with probes in worker threads', () => {
  it('records every probe once in one file, one event stream, lines shaped as in the main thread; fewest-in-flight worker first', async () => {
    const p = pool(2);
    const spread: number[][] = [];
    const probeFn: ProbePool['probeFn'] = (s, o) => {
      const r = p.probeFn(s, o);
      spread.push(p.inFlight());
      return r;
    };
    const before = srv.received.length;
    const ee = createRunEmitter();
    const seen = record(ee);
    const out = join(dir, 'w.jsonl');
    const res = await runPlan(plan(), { out, emitter: ee, probeFn });
    expect(res.interrupted).toBe(false);
    const lines = readLines(out);
    expect(lines).toHaveLength(12);
    expect(new Set(lines.map((l) => l.key)).size).toBe(12);
    expect(lines.every((l) => l.outcome === 'delivered' && l.runId === res.runId)).toBe(true);
    expect(srv.received.length - before).toBe(12);
    expect(srv.received.slice(before).filter((r) => r.bytes === 16384)).toHaveLength(6);
    // the second probe went to the idle worker
    expect(spread[1]).toEqual([1, 1]);

    // one stream: run:start first, run:end last; per probe: start, its stages, then one end
    expect(seen[0]![0]).toBe('run:start');
    expect(seen.at(-1)![0]).toBe('run:end');
    for (const l of lines) {
      const mine = seen.filter(([, id]) => id === l.probeId).map(([k]) => k);
      expect(mine[0]).toBe('probe:start');
      expect(mine.at(-1)).toBe('probe:end');
      expect(mine.filter((k) => k === 'probe:end')).toHaveLength(1);
      expect(mine.filter((k) => k === 'probe:stage').length).toBeGreaterThanOrEqual(8); // connect … quit
    }

    // the same plan in the main thread: the same fields, in the same order, on every line
    const inThread = join(dir, 'main.jsonl');
    await runPlan(plan(), { out: inThread });
    const shape = (ls: ProbeResult[]) => [...new Set(ls.map((l) => Object.keys(l).join(',')))].sort();
    expect(shape(lines)).toEqual(shape(readLines(inThread)));
  });

  it('runPlan({ workers }) is checked before anything is sent; run:start says how many threads (1: this one)', async () => {
    // the default worker entry exists only in the build (the CLI tests below run it); here no thread starts
    const ee = createRunEmitter();
    await expect(runPlan(plan(), { out: join(dir, 'bad.jsonl'), workers: 0, emitter: ee })).rejects.toMatchObject({ code: 'EINPUT', message: expect.stringMatching(/workers: expected a whole number from 1 to 64, got 0/) });
    await expect(runPlan(plan(), { out: join(dir, 'bad.jsonl'), workers: 2, probeFn: pool(1).probeFn })).rejects.toThrow(/give openProbePool\(…\)\.probeFn as probeFn/);
    let workers: number | undefined;
    ee.on('run:start', (e) => (workers = e.workers));
    await runPlan(plan({ repeat: 1 }), { out: join(dir, 'one.jsonl'), emitter: ee });
    expect(workers).toBe(1);
  });

  it('a stop mid-run ends the probes in flight in their workers: dropped as aborted, none recorded', async () => {
    // a server that never greets: every probe waits in greeting far longer than the test
    const silent = await startRawServer(() => undefined);
    try {
      const slow = { ...DEFAULT_TIMEOUTS, commandMs: 120_000, stallMs: 120_000, noReplyMs: 120_000 };
      const p = plan({ targets: [{ host: '127.0.0.1', port: silent.port, tls: 'none' }], timeouts: slow, concurrency: 4 });
      const ee = createRunEmitter();
      const stop = new AbortController();
      const reasons: string[] = [];
      ee.on('probe:dropped', (e) => reasons.push(e.reason));
      let started = 0;
      ee.on('probe:start', () => {
        if (++started === 4) setImmediate(() => stop.abort());
      });
      const out = join(dir, 'stop.jsonl');
      // settle window far above any abort's round trip: an abandoned probe would mean the abort did not cross
      const res = await runPlan(p, { out, emitter: ee, probeFn: pool(2).probeFn, signal: stop.signal, graceMs: 0, settleMs: 30_000 });
      expect(res.interrupted).toBe(true);
      expect(res.dropped).toBe(4);
      expect(reasons).toEqual(['aborted', 'aborted', 'aborted', 'aborted']);
      expect(res.notStarted).toBe(8);
      expect(existsSync(out) ? readLines(out) : []).toEqual([]);
    } finally {
      await silent.close();
    }
  });

  it("an abort crosses as the engine's AbortError, with what the probe measured until then", async () => {
    const silent = await startRawServer(() => undefined);
    try {
      const p = pool(1);
      const ctrl = new AbortController();
      const stages: string[] = [];
      const run = p.probeFn(spec(silent.port, { timeouts: { commandMs: 120_000, stallMs: 120_000, noReplyMs: 120_000 } }), {
        signal: ctrl.signal,
        onStage: (e) => {
          stages.push(e.stage);
          if (e.stage === 'greeting') ctrl.abort();
        },
      });
      const err = await run.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AbortError);
      expect((err as AbortError).result).toMatchObject({ outcome: 'aborted', stage: 'greeting' });
      expect(stages).toContain('greeting');
      await expect(p.probeFn(spec(silent.port), { signal: ctrl.signal })).rejects.toBeInstanceOf(AbortError); // aborted before start
    } finally {
      await silent.close();
    }
  });

  it('AUTH secrets are read from the process environment at probe time (shared with the workers); a missing one is a ProbeInputError', async () => {
    const p = pool(1);
    const auth = { user: 'u', passEnv: 'MXPROBE_T_WORKER_SECRET' };
    delete process.env['MXPROBE_T_WORKER_SECRET'];
    const missing = await p.probeFn(spec(srv.port, { auth })).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ProbeInputError);
    expect((missing as Error).message).toBe('AUTH secret: environment variable MXPROBE_T_WORKER_SECRET is not set');
    process.env['MXPROBE_T_WORKER_SECRET'] = 'worker-s3cret'; // set after the worker started
    try {
      const r = await p.probeFn(spec(srv.port, { auth }));
      expect(r.outcome).toBe('delivered');
      expect(r.stages.auth).toBeGreaterThan(0);
    } finally {
      delete process.env['MXPROBE_T_WORKER_SECRET'];
    }
  });

  it('engine errors cross as their classes: ProbeInputError → EINPUT, ProbeEnvError → EENV; others keep name, code and the worker stack', async () => {
    const p = pool(2, FAKE_ENGINE);
    const one = (name: string): ProbeSpec => spec(srv.port, { path: { name } });
    await expect(p.probeFn(one('input'))).rejects.toBeInstanceOf(ProbeInputError);
    const env = await p.probeFn(one('env')).catch((e: unknown) => e);
    expect(env).toBeInstanceOf(ProbeEnvError);
    expect(env).toMatchObject({ code: 'EENV', message: expect.stringMatching(/^out of file descriptors \(EMFILE\)/) });
    const bug = await p.probeFn(one('bug')).catch((e: unknown) => e);
    expect(bug).toMatchObject({ name: 'TypeError', message: "Cannot read properties of undefined (reading 'x')" });
    expect((bug as Error).stack).toMatch(/worker-engine\.mjs[\s\S]*\(in probe worker thread [12]\)/);

    for (const [path, code] of [['env', 'EENV'], ['input', 'EINPUT']] as const) {
      const err = await runPlan(plan({ paths: [{ name: path }] }), { out: join(dir, `${path}.jsonl`), probeFn: p.probeFn }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RunError);
      expect((err as RunError).code).toBe(code);
    }
  });

  it('a worker that crashes fails its probes in flight with a ProbeWorkerError, and the others go on', async () => {
    const p = pool(2, FAKE_ENGINE);
    const first = p.probeFn(spec(srv.port, { path: { name: 'hang' } })); // worker 1, until aborted
    const crash = await p.probeFn(spec(srv.port, { path: { name: 'crash' } })).catch((e: unknown) => e); // worker 2
    expect(crash).toBeInstanceOf(ProbeWorkerError);
    expect((crash as Error).message).toBe('probe worker thread 2 of 2 failed: boom in the worker with 1 probe in flight (not measured)');
    expect(p.inFlight()).toEqual([1, 0]);
    expect((await p.probeFn(spec(srv.port))).outcome).toBe('delivered'); // on worker 1, the one alive
    await p.close();
    await expect(first).rejects.toThrow(/probe worker thread 1 of 2 was stopped \(the pool was closed\)/);
    await expect(p.probeFn(spec(srv.port))).rejects.toThrow(/the probe worker pool is closed/);
  });

  it('an idle pool does not keep the process alive; one with a probe in flight does, until the result', async () => {
    const script = `
      const { openProbePool } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist/run/workers.js')).href)});
      openProbePool({ workers: 2 }); // never closed, never used
      const p = openProbePool({ workers: 1 }); // never closed
      const r = await p.probeFn(${JSON.stringify(spec(srv.port, { probeId: 'alive-1' }))});
      process.stdout.write(r.outcome);`;
    const r = await new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, signal: (err as { signal?: string } | null)?.signal ?? null, stdout, stderr });
      });
    });
    expect(r, r.stderr).toMatchObject({ code: 0, signal: null, stdout: 'delivered' });
  });

  it('a run whose worker dies ends with its error, every probe that finished in the file (not hung)', async () => {
    const p = pool(1, FAKE_ENGINE);
    const out = join(dir, 'dies.jsonl');
    const ee = createRunEmitter();
    const ended: string[] = [];
    ee.on('probe:end', (e) => ended.push(e.result.probeId));
    const err = await runPlan(plan({ paths: [{ name: 'direct' }, { name: 'exit' }], concurrency: 1, seed: 3 }), { out, emitter: ee, probeFn: p.probeFn }).catch((e: unknown) => e);
    // an environment error of the run (exit 3 in the CLI, one line), its cause the worker's own error
    expect(err).toMatchObject({ code: 'EENV', message: expect.stringContaining('probe worker thread 1 of 1 exited (code 7) with 1 probe in flight (not measured)') });
    expect((err as Error).cause).toBeInstanceOf(ProbeWorkerError);
    const lines = existsSync(out) ? readLines(out) : [];
    expect(lines.map((l) => l.probeId)).toEqual(ended);
    expect(lines.every((l) => l.outcome === 'delivered')).toBe(true);
  });

  it("the run's capture is the main thread's: a worker's extract is asked of it, the answer (path or error) comes back", async () => {
    const asked: Array<{ localPort: number; name: string }> = [];
    let fail = false;
    const capture: CaptureSession = {
      dir: '/tmp/caps',
      iface: 'any',
      extract: async (t, name) => {
        asked.push({ localPort: t.localPort, name });
        if (fail) throw new Error('tcpdump went away');
        return `/tmp/caps/${name}.pcap`;
      },
      stop: async () => undefined,
    };
    const out = join(dir, 'cap.jsonl');
    const res = await runPlan(plan({ paths: [{ name: 'capture' }], sizes: [1024], repeat: 2 }), { out, probeFn: pool(2, FAKE_ENGINE).probeFn, capture });
    expect(res.results.map((r) => r.capture).sort()).toEqual(res.results.map((r) => `/tmp/caps/${r.probeId}.pcap`).sort());
    expect(asked.map((a) => a.name).sort()).toEqual(res.results.map((r) => r.probeId).sort());
    expect(asked.every((a) => a.localPort === 40000)).toBe(true);
    fail = true;
    const r = await pool(1, FAKE_ENGINE).probeFn(spec(srv.port, { path: { name: 'capture' } }), { capture });
    expect(r).toMatchObject({ captureError: 'tcpdump went away' });
    expect(r.capture).toBeUndefined();
  });
});

describe('mxprobe run --workers (CLI)', () => {
  const profile = (port: number, extra = ''): string =>
    `name: cli-workers\ntargets: [{host: 127.0.0.1, port: ${port}}]\ntls: none\npaths: [{name: lo1, localAddress: 127.0.0.1}, {name: lo2, localAddress: 127.0.0.2}]\n` +
    `sizes: [1KiB, 16KiB]\nrepeat: 3\nconcurrency: 4\nseed: 3\nenvelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}\n${extra}`;

  it('runs a profile in 2 worker threads: every probe delivered and recorded, the progress says so, exit 0 (and the process ends by itself)', async () => {
    writeFileSync(join(dir, 'p.yaml'), profile(srv.port));
    const r = await runCli(['run', 'p.yaml', '--workers', '2', '--out', 'cli.jsonl'], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^run \S+: 12 probes \(2 paths x 1 target x 2 sizes x 3\), concurrency 4, 2 worker threads → cli\.jsonl$/m);
    expect((r.stderr.match(/^probe \d+\/12 /gm) ?? []).length).toBe(12);
    const lines = readLines(join(dir, 'cli.jsonl'));
    expect(lines).toHaveLength(12);
    expect(new Set(lines.map((l) => l.key)).size).toBe(12);
    expect(new Set(lines.map((l) => l.localAddress))).toEqual(new Set(['127.0.0.1', '127.0.0.2']));
    expect(r.stdout).toContain('12 probes recorded: 12 delivered');
  });

  it('--workers under node flags a worker inherits but refuses as execArgv (--max-old-space-size, --stack-size): still runs', async () => {
    writeFileSync(join(dir, 'flags.yaml'), profile(srv.port));
    const child = spawn(process.execPath, ['--max-old-space-size=300', '--stack-size=2000', BIN, 'run', 'flags.yaml', '--workers', '2', '--out', 'flags.jsonl'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code, stderr).toBe(0);
    expect(readLines(join(dir, 'flags.jsonl')).filter((l) => l.outcome === 'delivered')).toHaveLength(12);
  });

  it('Ctrl-C with --workers: the probes in flight in the workers are ended and not recorded, exit 130, and "finish with" carries --workers', async () => {
    const silent = await startRawServer(() => undefined); // never greets: every probe stays in flight
    try {
      writeFileSync(join(dir, 'silent.yaml'), profile(silent.port, 'timeouts: {command: 2m, stall: 1m, noReply: 1m}\n'));
      const child = spawn(process.execPath, [BIN, 'run', 'silent.yaml', '--workers', '2', '--out', 'sig.jsonl'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      const started = new Promise<void>((resolve) =>
        child.stderr.on('data', (d) => {
          stderr += d;
          if (/2 worker threads/.test(stderr)) resolve();
        }),
      );
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await started;
      child.kill('SIGINT');
      const code = await exited;
      expect(code, stderr).toBe(130);
      expect(stdout).toMatch(/interrupted: 12 of 12 probes still to run; 4 probes in flight ended by the stop, not recorded/);
      expect(stdout).toContain('finish with: mxprobe run silent.yaml --workers 2 --resume sig.jsonl');
      expect(readLines(join(dir, 'sig.jsonl'))).toEqual([]);
    } finally {
      await silent.close();
    }
  });

  it('--workers: bad values are refused (exit 2, nothing sent); auto and --help', async () => {
    const before = srv.received.length;
    for (const v of ['0', '65', '1.5', 'two']) {
      const r = await runCli(['run', 'p.yaml', '--workers', v, '--out', 'bad.jsonl'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`option '-w, --workers <n>' argument '${v}' is invalid. expected a whole number from 1 to 64, or auto; got "${v}"`);
    }
    expect(srv.received.length).toBe(before);
    const auto = await runCli(['run', 'p.yaml', '--workers', 'auto', '--repeat', '1', '--out', 'auto.jsonl', '-q'], { cwd: dir });
    expect(auto.code, auto.stderr).toBe(0);
    expect(readLines(join(dir, 'auto.jsonl'))).toHaveLength(4);
    // never more threads than probes in flight
    const capped = await runCli(['run', 'p.yaml', '--workers', '8', '--concurrency', '3', '--repeat', '1', '--out', 'capped.jsonl'], { cwd: dir });
    expect(capped.code, capped.stderr).toBe(0);
    expect(capped.stderr).toMatch(/, concurrency 3, 3 worker threads → capped\.jsonl$/m);
    const help = await runCli(['run', '--help']);
    expect(help.stdout).toMatch(/-w, --workers <n>/);
    expect(help.stdout).toMatch(/On one box with the receiver/);
  });

  it('out of file descriptors in a worker (ulimit -n 150, 200 probes at once, 2 workers): exit 3 in words, no probe recorded as a network failure', async () => {
    writeFileSync(
      join(dir, 'fd.yaml'),
      `name: fd\ntargets: [{host: 127.0.0.1, port: ${srv.port}, tls: none}]\nsizes: [1KiB]\nrepeat: 200\nconcurrency: 200\n` +
        'envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}\n',
    );
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile('bash', ['-c', `ulimit -n 150 && exec "${process.execPath}" "${BIN}" run fd.yaml --workers 2 --out fd.jsonl -q`], { cwd: dir, timeout: 60_000 }, (err, _stdout, stderr) => {
        const e = err as (Error & { code?: unknown }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stderr });
      });
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/out of file descriptors \(EMFILE\): this process has reached its limit of 150 open files \(ulimit -n\)/);
    const recorded = existsSync(join(dir, 'fd.jsonl')) ? readLines(join(dir, 'fd.jsonl')) : [];
    expect(recorded.filter((l) => l.outcome !== 'delivered')).toEqual([]);
  });
});

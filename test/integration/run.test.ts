/**
 * The runner with the real probe engine against a real smtp-server on loopback: two egress paths (source
 * addresses 127.0.0.1 and 127.0.0.2), and the `mxprobe run` CLI as a child process (SIGINT, kill -9, --resume).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUTS, type ProbeResult } from '../../src/model.js';
import type { Plan } from '../../src/profile/plan.js';
import { createRunEmitter, runPlan } from '../../src/run/index.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/mxprobe.js');

interface Sink {
  port: number;
  /** Source address of every message received (IPv4-mapped prefix removed). */
  sources: string[];
  bytes: number[];
  /** Hold each message this long before the final reply (keeps probes in flight). */
  delayMs: number;
  close(): Promise<void>;
}

async function startSink(delayMs = 0): Promise<Sink> {
  const sockets = new Set<net.Socket>();
  const sink: Sink = { port: 0, sources: [], bytes: [], delayMs, close: async () => undefined };
  const server = new SMTPServer({
    disableReverseLookup: true,
    authOptional: true,
    hideSTARTTLS: true,
    logger: false,
    onConnect(session, cb) {
      cb();
    },
    onData(stream, session, cb) {
      let n = 0;
      stream.on('data', (d: Buffer) => (n += d.length));
      stream.on('end', () => {
        sink.sources.push(session.remoteAddress.replace(/^::ffff:/, ''));
        sink.bytes.push(n);
        setTimeout(() => cb(null, 'queued'), sink.delayMs);
      });
    },
  } as SMTPServerOptions);
  server.server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sink.port = (server.server.address() as net.AddressInfo).port;
  sink.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return sink;
}

function readLines(file: string): ProbeResult[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as ProbeResult); // throws on a torn line: the test fails
}

describe('runPlan with the real engine', () => {
  let sink: Sink;
  let dir: string;
  beforeAll(async () => {
    sink = await startSink();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-run-int-'));
  });
  afterAll(async () => {
    await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs two paths (127.0.0.1 and 127.0.0.2) x two sizes, interleaved, and the server sees both sources', async () => {
    const plan: Plan = {
      name: 'two-paths',
      profileHash: 'int-two-paths-01',
      targets: [{ host: '127.0.0.1', port: sink.port, tls: 'none' }],
      paths: [
        { name: 'lo1', localAddress: '127.0.0.1' },
        { name: 'lo2', localAddress: '127.0.0.2' },
      ],
      sizes: [1024, 65536],
      repeat: 3,
      envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
      timeouts: { ...DEFAULT_TIMEOUTS, stallMs: 5000 },
      concurrency: 3,
      seed: 5,
    };
    const out = join(dir, 'two.jsonl');
    const ee = createRunEmitter();
    const stages = new Set<string>();
    ee.on('probe:stage', (e) => stages.add(e.stage));
    const res = await runPlan(plan, { out, emitter: ee });
    expect(res.interrupted).toBe(false);
    expect(res.results).toHaveLength(12);
    expect(res.results.every((r) => r.outcome === 'delivered')).toBe(true);
    const lines = readLines(out);
    expect(lines).toHaveLength(12);
    for (const l of lines) {
      expect(l.runId).toBe(res.runId);
      expect(l.profileHash).toBe('int-two-paths-01');
      expect(l.key).toBe(`${l.path}|127.0.0.1:${sink.port}|${l.sizeBytes}|${l.key!.split('|')[3]}`);
      expect(l.localAddress).toBe(l.path === 'lo1' ? '127.0.0.1' : '127.0.0.2');
    }
    expect(sink.sources.filter((s) => s === '127.0.0.1')).toHaveLength(6);
    expect(sink.sources.filter((s) => s === '127.0.0.2')).toHaveLength(6);
    expect(sink.bytes.filter((b) => b === 65536)).toHaveLength(6);
    expect(stages.has('body')).toBe(true);
  });

  it('refuses a source address this machine does not have, before sending anything', async () => {
    const before = sink.sources.length;
    const plan: Plan = {
      name: 'bad-bind',
      profileHash: 'int-bad-bind-001',
      targets: [{ host: '127.0.0.1', port: sink.port, tls: 'none' }],
      paths: [{ name: 'ok', localAddress: '127.0.0.1' }, { name: 'elsewhere', localAddress: '192.0.2.77' }],
      sizes: [1024],
      repeat: 1,
      envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
      timeouts: { ...DEFAULT_TIMEOUTS },
      concurrency: 2,
      seed: 1,
    };
    const err = await runPlan(plan, { out: join(dir, 'bind.jsonl') }).catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('EBIND');
    expect((err as Error).message).toMatch(/path elsewhere: cannot bind source address 192\.0\.2\.77: it is not an address of this machine/);
    expect(sink.sources.length).toBe(before);
  });
});

// ------------------------------------------------------------------------------------------------- CLI

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function exec(args: string[], cwd: string, timeout = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: NodeJS.Signals }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout, stderr });
    });
  });
}

/** Spawn the CLI; `until(stderr)` resolves when stderr satisfies the predicate. */
function spawnCli(args: string[], cwd: string) {
  const child: ChildProcess = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ test: (s: string) => boolean; resolve: () => void }> = [];
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...waiters]) if (w.test(stderr)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  const exited = new Promise<Ran>((resolve) =>
    child.on('exit', (code, signal) => {
      // let the pipes drain
      setTimeout(() => resolve({ code, signal, stdout, stderr }), 50);
    }),
  );
  return {
    child,
    exited,
    until(test: (s: string) => boolean, timeoutMs = 60_000): Promise<void> {
      if (test(stderr)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`timed out waiting; stderr so far:\n${stderr}`)), timeoutMs);
        waiters.push({ test, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
  };
}

function profileYaml(port: number, extra = ''): string {
  return `name: cli-test
targets:
  - host: 127.0.0.1
    port: ${port}
tls: none
paths:
  - {name: lo1, localAddress: 127.0.0.1}
  - {name: lo2, localAddress: 127.0.0.2}
sizes: [1KiB, 16KiB]
repeat: 6
concurrency: 2
seed: 3
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {stall: 10s}
${extra}`;
}

const doneCount = (s: string): number => (s.match(/^probe \d+\/\d+ /gm) ?? []).length;

describe('mxprobe run (CLI)', () => {
  let sink: Sink;
  let dir: string;
  beforeAll(async () => {
    // build once unless dist/ is newer than every file of the runner and CLI; tsc writes dist/ even when
    // someone else's in-progress file has type errors, so the assertions below decide
    const built = existsSync(join(ROOT, 'dist/cli/run.js')) ? statSync(join(ROOT, 'dist/cli/run.js')).mtimeMs : 0;
    const srcs = ['src/cli/run.ts', 'src/cli/progress.ts', 'src/run/index.ts', 'src/run/jsonl.ts', 'src/run/expand.ts', 'src/cli/main.ts'];
    if (srcs.some((f) => statSync(join(ROOT, f)).mtimeMs > built)) {
      await new Promise<void>((r) => execFile('npm', ['run', 'build'], { cwd: ROOT, timeout: 300_000 }, () => r()));
    }
    expect(existsSync(join(ROOT, 'dist/cli/run.js'))).toBe(true);
    sink = await startSink();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-run-cli-'));
    writeFileSync(join(dir, 'p.yaml'), profileYaml(sink.port));
  }, 300_000);
  afterAll(async () => {
    await sink?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a profile: plain progress lines on stderr, the table and the file path on stdout, exit 0', async () => {
    sink.delayMs = 0;
    const r = await exec(['run', 'p.yaml', '--repeat', '2', '--out', 'out/ok.jsonl'], dir);
    expect(r.code).toBe(0);
    expect(doneCount(r.stderr)).toBe(8);
    expect(r.stderr).toMatch(/^run \S+: 8 probes \(2 paths x 1 target x 2 sizes x 2\), concurrency 2 → out\/ok\.jsonl$/m);
    expect(r.stderr).toMatch(/^probe 8\/8 lo[12] (1KiB|16KiB) delivered \S+$/m);
    expect(r.stdout).toMatch(/size\s+lo1\s+lo2/);
    expect(r.stdout).toMatch(/16KiB\s+✓ 2\/2 \S+\s+✓ 2\/2/);
    expect(r.stdout).toContain('results: out/ok.jsonl');
    expect(r.stdout).toContain('mxprobe compare out/ok.jsonl');
    expect(readLines(join(dir, 'out/ok.jsonl'))).toHaveLength(8);
  });

  it('--json prints one JSON document on stdout and nothing else', async () => {
    const r = await exec(['run', 'p.yaml', '--repeat', '1', '--sizes', '2KiB', '--paths', 'lo2', '--json', '--out', 'j.jsonl'], dir);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { runId: string; out: string; interrupted: boolean; total: number; counts: Record<string, number>; cells: Array<{ path: string; sizeBytes: number }> };
    expect(doc).toMatchObject({ out: 'j.jsonl', interrupted: false, total: 1, counts: { delivered: 1 } });
    expect(doc.cells).toEqual([expect.objectContaining({ path: 'lo2', sizeBytes: 2048, delivered: 1, total: 1 })]);
  });

  it('--transcript records each probe\'s conversation in its line, and does not change the plan hash', async () => {
    const plain = await exec(['run', 'p.yaml', '--repeat', '1', '--sizes', '2KiB', '--paths', 'lo2', '--out', 'nt.jsonl'], dir);
    const r = await exec(['run', 'p.yaml', '--repeat', '1', '--sizes', '2KiB', '--paths', 'lo2', '--transcript', '--out', 't.jsonl'], dir);
    expect([plain.code, r.code]).toEqual([0, 0]);
    const [line] = readLines(join(dir, 't.jsonl'));
    expect(line!.transcript!.some((l) => l.dir === '>' && l.text.startsWith('MAIL FROM:'))).toBe(true);
    expect(readLines(join(dir, 'nt.jsonl'))[0]!.transcript).toBeUndefined();
    expect(line!.profileHash).toBe(readLines(join(dir, 'nt.jsonl'))[0]!.profileHash);
  });

  it('a bad profile exits 2 with the field named, and an unwritable results file exits 3; nothing is sent', async () => {
    const before = sink.sources.length;
    writeFileSync(join(dir, 'bad.yaml'), profileYaml(sink.port).replace('localAddress: 127.0.0.2', 'localAddress: 127.0.0.300'));
    const bad = await exec(['run', 'bad.yaml'], dir);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/bad\.yaml: paths\[1\]\.localAddress: not an IP address/);
    writeFileSync(join(dir, 'plainfile'), 'x');
    const unwritable = await exec(['run', 'p.yaml', '--out', 'plainfile/r.jsonl'], dir);
    expect(unwritable.code).toBe(3);
    expect(unwritable.stderr).toMatch(/mxprobe: cannot write results to plainfile\/r\.jsonl/);
    const unknownPath = await exec(['run', 'p.yaml', '--paths', 'lo3'], dir);
    expect(unknownPath.code).toBe(2);
    expect(unknownPath.stderr).toMatch(/unknown path "lo3"/);
    expect(sink.sources.length).toBe(before);
  });

  it('an unwritable --report, and --out on a file that holds results: refused before anything is sent', async () => {
    const before = sink.sources.length;
    writeFileSync(join(dir, 'plainfile2'), 'x');
    const rep = await exec(['run', 'p.yaml', '--repeat', '1', '--out', 'rep.jsonl', '--report', 'plainfile2/r.html'], dir);
    expect(rep.code).toBe(3);
    expect(rep.stderr).toMatch(/mxprobe: cannot write the report plainfile2\/r\.html: a part of the path is a file, not a folder \(checked before sending any probe\)/);
    expect(sink.sources.length).toBe(before);

    writeFileSync(join(dir, 'held.jsonl'), readFileSync(join(dir, 'j.jsonl')));
    const again = await exec(['run', 'p.yaml', '--repeat', '1', '--sizes', '2KiB', '--out', 'held.jsonl'], dir);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('held.jsonl already holds results: add --append to add this run to it, or --resume held.jsonl');
    expect(sink.sources.length).toBe(before);
    expect(readLines(join(dir, 'held.jsonl'))).toHaveLength(1);
    const appended = await exec(['run', 'p.yaml', '--repeat', '1', '--sizes', '2KiB', '--paths', 'lo1', '--out', 'held.jsonl', '--append'], dir);
    expect(appended.code, appended.stderr).toBe(0);
    expect(readLines(join(dir, 'held.jsonl'))).toHaveLength(2);
  });

  it('out of file descriptors (ulimit -n 150, 200 probes at once): exit 3 in words, no probe recorded as a network failure', async () => {
    writeFileSync(
      join(dir, 'fd.yaml'),
      `name: fd\ntargets: [{host: 127.0.0.1, port: ${sink.port}, tls: none}]\nsizes: [1KiB]\nrepeat: 200\nconcurrency: 200\n` +
        'envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}\n',
    );
    const r = await new Promise<Ran>((resolve) => {
      execFile('bash', ['-c', `ulimit -n 150 && exec "${process.execPath}" "${BIN}" run fd.yaml --out fd.jsonl -q`], { cwd: dir, timeout: 60_000 }, (err, stdout, stderr) => {
        const e = err as (Error & { code?: unknown }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: null, stdout, stderr });
      });
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/out of file descriptors \(EMFILE\): this process has reached its limit of 150 open files \(ulimit -n\)/);
    const recorded = existsSync(join(dir, 'fd.jsonl')) ? readLines(join(dir, 'fd.jsonl')) : [];
    expect(recorded.filter((l) => l.outcome !== 'delivered')).toEqual([]);
  });

  it('SIGINT: stops scheduling, lets in-flight probes finish, prints the summary so far, exits 130; the file is valid', async () => {
    sink.delayMs = 700; // each probe waits 0.7 s for its final reply
    const cli = spawnCli(['run', 'p.yaml', '--out', 'int.jsonl'], dir);
    await cli.until((s) => doneCount(s) >= 2);
    cli.child.kill('SIGINT');
    const r = await cli.exited;
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/stopping: waiting up to 2s for [12] probes? in flight \(Ctrl-C again to abandon\)/);
    const lines = readLines(join(dir, 'int.jsonl'));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(lines.length).toBeLessThan(24);
    // in-flight probes were allowed to finish (0.7 s < 2 s grace): every probe started was recorded
    expect(doneCount(r.stderr)).toBe(lines.length);
    expect(r.stdout).toMatch(/size\s+lo1\s+lo2/);
    expect(r.stdout).toMatch(new RegExp(`interrupted: ${24 - lines.length} of 24 probes still to run`));
    expect(r.stdout).toContain('finish with: mxprobe run p.yaml --resume int.jsonl');
  });

  it('a second SIGINT ends the probes in flight at once; they are not recorded', async () => {
    sink.delayMs = 8000; // far beyond the 2 s grace
    const cli = spawnCli(['run', 'p.yaml', '--out', 'abandon.jsonl'], dir);
    await cli.until((s) => /^run \S+: 24 probes/m.test(s));
    await new Promise((r) => setTimeout(r, 1000)); // two probes now wait for their final reply
    cli.child.kill('SIGINT');
    await cli.until((s) => s.includes('stopping: waiting up to 2s for 2 probes in flight'));
    cli.child.kill('SIGINT');
    const r = await cli.exited;
    expect(r.code).toBe(130);
    expect(readLines(join(dir, 'abandon.jsonl'))).toHaveLength(0);
    expect(r.stdout).toContain('interrupted: 24 of 24 probes still to run; 2 probes in flight ended by the stop, not recorded');
    expect(r.stdout).toContain('(no probes)');
  });

  it('kill -9 mid-run leaves only whole lines; --resume completes the run with the same runId', async () => {
    sink.delayMs = 300;
    const file = join(dir, 'k9.jsonl');
    const cli = spawnCli(['run', 'p.yaml', '--out', 'k9.jsonl'], dir);
    await cli.until((s) => doneCount(s) >= 3);
    cli.child.kill('SIGKILL');
    const r = await cli.exited;
    expect(r.signal).toBe('SIGKILL');
    const partial = readLines(file);
    expect(partial.length).toBeGreaterThanOrEqual(3);
    expect(partial.length).toBeLessThan(24);
    const runId = partial[0]!.runId;

    sink.delayMs = 0;
    const resumed = await exec(['run', 'p.yaml', '--resume', 'k9.jsonl'], dir);
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(`resuming: ${partial.length} already recorded, ${24 - partial.length} to go`);
    expect(doneCount(resumed.stderr)).toBe(24 - partial.length);
    const all = readLines(file);
    expect(all).toHaveLength(24);
    expect(new Set(all.map((l) => l.key)).size).toBe(24);
    expect(new Set(all.map((l) => l.runId))).toEqual(new Set([runId]));
    expect(resumed.stdout).toContain(`24 probes recorded: 24 delivered (${partial.length} from before the resume)`);
  });

  it('interrupted with overrides: "finish with" repeats them; another plan is refused (exit 2) unless --force', async () => {
    sink.delayMs = 400;
    const cli = spawnCli(['run', 'p.yaml', '--repeat', '10', '--sizes', '1KiB,2KiB', '--out', 'ov.jsonl'], dir);
    await cli.until((s) => doneCount(s) >= 2);
    cli.child.kill('SIGINT');
    const r = await cli.exited;
    expect(r.code).toBe(130);
    expect(r.stdout).toContain('finish with: mxprobe run p.yaml --sizes 1KiB,2KiB --repeat 10 --resume ov.jsonl');
    const recorded = readLines(join(dir, 'ov.jsonl')).length;
    sink.delayMs = 0;
    const before = sink.sources.length;
    const other = await exec(['run', 'p.yaml', '--resume', 'ov.jsonl'], dir);
    expect(other.code).toBe(2);
    expect(other.stderr).toMatch(/ov\.jsonl was written with a different plan .*--force to append anyway/);
    expect(sink.sources.length).toBe(before);
    expect(readLines(join(dir, 'ov.jsonl'))).toHaveLength(recorded);
    const same = await exec(['run', 'p.yaml', '--sizes', '1KiB,2KiB', '--repeat', '10', '--concurrency', '4', '--resume', 'ov.jsonl'], dir);
    expect(same.code).toBe(0);
    expect(readLines(join(dir, 'ov.jsonl'))).toHaveLength(40);
  });
});

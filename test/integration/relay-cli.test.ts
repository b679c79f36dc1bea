/**
 * `mxprobe lab relay` as a user runs it: a child process, real sockets on 127.0.0.1, SIGINT to stop.
 * Also measures the relay's own memory while 64 MiB pass through it (Linux: /proc/PID/status).
 */
import { spawnCli } from '../helpers/cli.js';
import { type ChildProcess, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const KiB = 1024;
const MiB = 1024 * 1024;

beforeAll(() => {
  const out = path.join(ROOT, 'dist/cli/lab.js');
  const sources = ['src/cli/lab.ts', 'src/cli/main.ts', 'src/lab/relay.ts', 'src/lab/fault.ts'].map((f) => path.join(ROOT, f));
  const stale = !existsSync(out) || sources.some((s) => statSync(s).mtimeMs > statSync(out).mtimeMs);
  if (stale) {
    try {
      execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'pipe' });
    } catch {
      // tsc still emits when other files have type errors; what matters is that our output exists
    }
  }
  expect(existsSync(out)).toBe(true);
}, 180_000);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

interface Running {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Resolves with the first stdout line matching. */
  waitLine: (re: RegExp, timeoutMs?: number) => Promise<string>;
  exit: Promise<number | null>;
}

function runCli(args: string[]): Running {
  const r = spawnCli(args);
  cleanups.push(r.kill);
  return r;
}

interface SinkConn {
  bytes: number;
  hash: ReturnType<typeof createHash>;
  ended: boolean;
}

async function startSink(): Promise<{ port: number; conns: SinkConn[] }> {
  const conns: SinkConn[] = [];
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    const c: SinkConn = { bytes: 0, hash: createHash('sha256'), ended: false };
    conns.push(c);
    sockets.push(socket);
    socket.on('data', (d: Buffer) => {
      c.bytes += d.length;
      c.hash.update(d);
    });
    socket.on('end', () => (c.ended = true));
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, conns };
}

async function connect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  cleanups.push(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function listenPort(line: string): number {
  const m = /^relay 127\.0\.0\.1:(\d+) → /.exec(line);
  if (!m) throw new Error(`not a listening line: ${line}`);
  return Number(m[1]);
}

/** Resident set size of a process in bytes, and its peak (Linux). */
function memoryOf(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

describe('mxprobe lab relay', () => {
  it('prints a listening line, blackholes after 64 KiB, logs the connection, and exits 0 on SIGINT', async () => {
    const sink = await startSink();
    const cli = runCli(['lab', 'relay', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${sink.port}`, '--client-to-server', 'blackhole-after=64KiB']);
    const listening = await cli.waitLine(/^relay /);
    expect(listening).toMatch(new RegExp(`^relay 127\\.0\\.0\\.1:\\d+ → 127\\.0\\.0\\.1:${sink.port}  client→server: blackhole-after=64KiB$`));
    const port = listenPort(listening);

    const client = await connect(port);
    await new Promise<void>((resolve, reject) => client.write(randomBytes(MiB), (err) => (err ? reject(err) : resolve())));
    await cli.waitLine(/^#1 client→server blackhole-after=64KiB acted at /);
    client.end();
    const line = await cli.waitLine(/^#1 127\.0\.0\.1:\d+ /);
    expect(line).toContain('client→server 64KiB');
    expect(line).toContain('ended: client closed');
    expect(line).toContain('swallowed 960KiB');
    expect(sink.conns[0]!.bytes).toBe(64 * KiB);

    cli.child.kill('SIGINT');
    expect(await cli.exit).toBe(0);
    expect(cli.lines.at(-1)).toMatch(/^relay closed \(SIGINT\) after .*: 1 connection, client→server 64KiB, server→client 0B$/);
    expect(cli.stderr()).toBe('');
  });

  it('keeps its own memory bounded while 64 MiB pass byte-exact, and --json prints one event per line', async () => {
    const sink = await startSink();
    const cli = runCli(['lab', 'relay', '--listen', '127.0.0.1:0', '--to', `127.0.0.1:${sink.port}`, '--json']);
    const listening = JSON.parse(await cli.waitLine(/"event":"listening"/)) as { listen: string; clientToServer: string };
    expect(listening.clientToServer).toBe('none');
    const port = Number(listening.listen.split(':').at(-1));
    const before = memoryOf(cli.child.pid!);

    const client = await connect(port);
    const hash = createHash('sha256');
    const block = randomBytes(256 * KiB);
    for (let i = 0; i < 256; i++) {
      const buf = Buffer.from(block);
      buf.writeUInt32BE(i, 0);
      hash.update(buf);
      if (!client.write(buf)) await once(client, 'drain');
    }
    client.end();
    await waitFor('64 MiB at the sink', () => sink.conns[0]?.ended === true, 60_000);
    expect(sink.conns[0]!.bytes).toBe(64 * MiB);
    expect(sink.conns[0]!.hash.digest('hex')).toBe(hash.digest('hex'));

    const report = JSON.parse(await cli.waitLine(/"event":"connection"/)) as { c2sBytes: number; endedBy: string };
    expect(report).toMatchObject({ c2sBytes: 64 * MiB, endedBy: 'client-closed' });
    const after = memoryOf(cli.child.pid!);
    if (before && after) expect(after.peak - before.rss).toBeLessThan(64 * MiB);

    cli.child.kill('SIGTERM');
    expect(await cli.exit).toBe(0);
    expect(JSON.parse(cli.lines.at(-1)!)).toMatchObject({ event: 'closed', signal: 'SIGTERM', connections: 1, bytesClientToServer: 64 * MiB });
  });

  it('exits 2 with the valid forms on bad fault text', async () => {
    const cli = runCli(['lab', 'relay', '--listen', '127.0.0.1:0', '--to', '127.0.0.1:25', '--server-to-client', 'freeze-after=lots']);
    expect(await cli.exit).toBe(2);
    expect(cli.stderr()).toContain('bad fault "freeze-after=lots": not a byte size: "lots"');
    for (const form of ['blackhole-after=SIZE', 'freeze-after=SIZE', 'reset-after=SIZE', 'delay=DURATION', 'throttle=SIZE/s']) {
      expect(cli.stderr()).toContain(form);
    }
  });

  it('exits 3 with a clear message when the listen address is in use', async () => {
    const sink = await startSink();
    const cli = runCli(['lab', 'relay', '--listen', `127.0.0.1:${sink.port}`, '--to', '127.0.0.1:25']);
    expect(await cli.exit).toBe(3);
    expect(cli.stderr()).toMatch(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${sink.port}: address already in use`));
  });

  it('--help explains every fault and the incident it models', async () => {
    const cli = runCli(['lab', 'relay', '--help']);
    expect(await cli.exit).toBe(0);
    const help = cli.lines.join('\n');
    for (const form of ['none', 'blackhole-after=SIZE', 'freeze-after=SIZE', 'reset-after=SIZE', 'close-after=SIZE', 'delay=DURATION', 'throttle=SIZE/s']) {
      expect(help).toContain(form);
    }
    expect(help).toMatch(/incident 1/);
    expect(help).toMatch(/incident 2/);
  });
});

/**
 * The warm-up (src/probe/warmup.ts): a throwaway probe through the real engine over an in-memory socket pair, and a
 * TCP connection on 127.0.0.1 connected to itself. What it must never do: talk to anyone else, leave anything
 * behind, or load Node's cluster/child_process (a listener would) into a one-off probe.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, test } from 'vitest';
import { STAGES } from '../../src/model.js';
import { resolvesNames, warmUpProbe, warmUpSpec } from '../../src/probe/session.js';
import { memoryOpener, memoryPair, minimalSmtpSession, runWarmUp, selfConnected, type SocketOpener } from '../../src/probe/warmup.js';
import { ensureBuilt, ROOT } from '../helpers/cli.js';
import { startRawServer } from '../helpers/servers.js';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

/** A listener on 127.0.0.1 (port 0: the kernel's pick) that counts the connections it accepts. */
async function countingListener(): Promise<{ port: number; accepted: () => number }> {
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  return { port: (server.address() as net.AddressInfo).port, accepted: () => n };
}

describe('the in-memory half', () => {
  test('the throwaway probe runs every stage of a plain probe through the real engine, and delivers', async () => {
    const r = await warmUpProbe(memoryOpener(minimalSmtpSession));
    expect(r.outcome).toBe('delivered');
    const ran = STAGES.filter((s) => r.stages[s] !== undefined);
    expect(ran).toEqual(['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit']);
    expect(r.bodyBytesWritten).toBe(1024);
    expect(r.reply?.code).toBe(250);
  });

  test('bytes written to one end arrive at the other in a later turn, never inside the write', async () => {
    const [a, b] = memoryPair();
    const got: string[] = [];
    b.on('data', (d: Buffer) => got.push(d.toString()));
    a.write('one');
    a.cork();
    a.write('two');
    a.write('three');
    a.uncork();
    expect(got).toEqual([]);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(got.join('')).toBe('onetwothree');
    const ended = new Promise((r) => b.on('end', r));
    a.end();
    await ended;
  });
});

/** minimalSmtpSession, each reply `ms` late. */
function slowSession(ms: number): (s: Duplex) => void {
  return (s) => {
    const write = s.write.bind(s);
    const end = s.end.bind(s);
    s.write = ((d: string) => (setTimeout(() => !s.destroyed && write(d), ms), true)) as typeof s.write;
    s.end = ((d: string) => (setTimeout(() => !s.destroyed && end(d), ms), s)) as typeof s.end;
    minimalSmtpSession(s);
  };
}

describe('the bound', () => {
  test('at the bound the throwaway probe is aborted and its connection ended: nothing of it runs beside a real probe', async () => {
    let serverEnded = false;
    const silent = (s: Duplex): void => {
      s.on('data', () => undefined); // never answers: no greeting
      s.on('end', () => (serverEnded = true));
    };
    const r = await runWarmUp(warmUpProbe, { boundMs: 150, server: silent });
    expect(r.probe).toBe('aborted');
    await new Promise((res) => setImmediate(res));
    await new Promise((res) => setImmediate(res));
    expect(serverEnded).toBe(true);
  });
});

describe('no kernel readings for the in-memory connection', () => {
  test('a throwaway probe slow enough for the watchdog to look never runs ss; the same probe over a connection with a port does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-warm-ss-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const log = join(dir, 'calls');
    const ss = join(dir, 'ss');
    writeFileSync(ss, `#!/bin/sh\necho "$@" >> ${log}\n[ "$1" = "-V" ] && echo "ss utility, iproute2-6.1.0"\nexit 0\n`);
    chmodSync(ss, 0o755);
    const before = process.env['MXPROBE_SS'];
    process.env['MXPROBE_SS'] = ss;
    closers.push(async () => {
      if (before === undefined) delete process.env['MXPROBE_SS'];
      else process.env['MXPROBE_SS'] = before;
    });
    // replies 200 ms late: past the watchdog's first look (a quarter of the warm-up's 500 ms stall window)
    const r = await warmUpProbe(memoryOpener(slowSession(200)));
    expect(r.outcome).toBe('delivered');
    expect(existsSync(log)).toBe(false);
    // the control: a connection that claims a port is looked at, so the fake ss is what would have run
    const withPort: SocketOpener = (o) =>
      memoryOpener(slowSession(200))({
        ...o,
        onSocket: (s) => {
          Object.defineProperty(s, 'localPort', { value: 40000 });
          o.onSocket(s);
        },
      });
    await warmUpProbe(withPort);
    expect(readFileSync(log, 'utf8')).toMatch(/sport = :40000/);
  });
});

describe('the self-connected half', () => {
  test('exchanges its lines with itself and closes', async () => {
    // a port of the kernel's own choosing that is free: taken by a listener, then released
    const free = await countingListener();
    await closers.pop()!();
    expect(await selfConnected(free.port)).toBe(true);
  });

  test('leaves no TIME_WAIT on its port (it ends with a reset)', async () => {
    const free = await countingListener();
    await closers.pop()!();
    expect(await selfConnected(free.port)).toBe(true);
    // the port binds again at once without SO_REUSEADDR-style leniency being needed: a listener takes it
    const again = net.createServer();
    await new Promise<void>((res, rej) => {
      again.once('error', rej);
      again.listen(free.port, '127.0.0.1', res);
    });
    closers.push(() => new Promise((r) => again.close(r)));
  });

  test('a port someone listens on: gives up without a byte to them', async () => {
    const taken = await countingListener();
    expect(await selfConnected(taken.port)).toBe(false);
    await new Promise((r) => setTimeout(r, 50));
    expect(taken.accepted()).toBe(0);
  });
});

describe('a one-off probe (a fresh process)', () => {
  let srv: Awaited<ReturnType<typeof startRawServer>> | undefined;
  afterEach(async () => {
    await srv?.close();
    srv = undefined;
  });

  test('connects once, to its target; loads no cluster, child_process, perf_hooks or dns (an address needs no resolver)', async () => {
    ensureBuilt();
    let connections = 0;
    srv = await startRawServer((s) => {
      connections++;
      minimalSmtpSession(s);
    });
    const script = `
      const { probe } = await import(${JSON.stringify(join(ROOT, 'dist', 'probe', 'index.js'))});
      const r = await probe({ probeId: 'p-1', target: { host: '127.0.0.1', port: ${srv.port}, tls: 'none' }, path: { name: 'direct' },
        sizeBytes: 1024, seed: 1, envelope: { from: 'a@mxprobe.test', to: ['b@mxprobe.test'] },
        timeouts: { dnsMs: 5000, connectMs: 5000, commandMs: 5000, dataMs: 5000, bodyMs: 5000, dataAckMs: 5000, stallMs: 5000, noReplyMs: 5000 } });
      const { warmUp } = await import(${JSON.stringify(join(ROOT, 'dist', 'probe', 'warmup.js'))});
      const warm = await warmUp(() => { throw new Error('the warm-up ran again'); });
      console.log(JSON.stringify({ outcome: r.outcome, warm, modules: process.moduleLoadList }));`;
    // not spawnSync: the server answering the probe is in this process
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (out.stdout += d));
    child.stderr.on('data', (d) => (out.stderr += d));
    await new Promise((r) => child.on('close', r));
    expect(out.stderr).toBe('');
    const { outcome, warm, modules } = JSON.parse(out.stdout) as { outcome: string; warm: { probe: string; selfConnected: boolean }; modules: string[] };
    expect(outcome).toBe('delivered');
    // the warm-up did run, both halves, before the probe
    expect(warm).toMatchObject({ probe: 'delivered', selfConnected: true });
    expect(connections).toBe(1);
    const builtins = modules.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
    expect(builtins).toContain('net'); // the hook does see what is loaded
    expect(builtins.filter((m) => /^(cluster|child_process|dgram|perf_hooks|dns)$/.test(m))).toEqual([]);
  });

  test('a probe that resolves a name has node:dns loaded before its clock starts (the first `dns` stage is the lookup)', async () => {
    ensureBuilt();
    srv = await startRawServer(minimalSmtpSession);
    const script = `
      const { probe } = await import(${JSON.stringify(join(ROOT, 'dist', 'probe', 'index.js'))});
      let loadedAtDns;
      const r = await probe({ probeId: 'p-1', target: { host: 'localhost', port: ${srv.port}, tls: 'none', family: 4 }, path: { name: 'direct' },
        sizeBytes: 1024, seed: 1, envelope: { from: 'a@mxprobe.test', to: ['b@mxprobe.test'] },
        timeouts: { dnsMs: 5000, connectMs: 5000, commandMs: 5000, dataMs: 5000, bodyMs: 5000, dataAckMs: 5000, stallMs: 5000, noReplyMs: 5000 } },
        { onStage: (e) => { if (e.stage === 'dns') loadedAtDns = process.moduleLoadList.includes('NativeModule dns'); } });
      console.log(JSON.stringify({ outcome: r.outcome, dnsStage: r.stages.dns !== undefined, loadedAtDns }));`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    await new Promise((r) => child.on('close', r));
    expect(JSON.parse(stdout)).toEqual({ outcome: 'delivered', dnsStage: true, loadedAtDns: true });
  });
});

describe('resolvesNames: which probes load node:dns before their clock', () => {
  const base = warmUpSpec();
  test.each([
    ['an address', {}, false],
    ['a host name', { target: { ...base.target, host: 'mx.example.test' } }, true],
    ['an MX domain', { target: { ...base.target, mx: 'example.test' } }, true],
    ['its own DNS servers', { dnsServers: ['127.0.0.1'] }, true],
    ['a relay by name', { path: { name: 'r', relay: { host: 'relay.example.test', port: 25, tls: 'none' as const } } }, true],
    ['a proxy by name', { path: { name: 'p', proxy: 'socks5://proxy.example.test:1080' } }, true],
    ['a proxy by address', { path: { name: 'p', proxy: 'socks5://127.0.0.1:1080' } }, false],
  ])('%s → %s', (_label, patch, expected) => {
    expect(resolvesNames({ ...base, ...patch })).toBe(expected);
  });
});

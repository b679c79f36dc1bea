/**
 * The warm-up (src/probe/warmup.ts): a throwaway probe through the real engine over an in-memory socket pair, and a
 * TCP connection on 127.0.0.1 connected to itself. What it must never do: talk to anyone else, leave anything
 * behind, or load Node's cluster/child_process (a listener would) into a one-off probe.
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { STAGES } from '../../src/model.js';
import { warmUpProbe } from '../../src/probe/session.js';
import { memoryOpener, memoryPair, minimalSmtpSession, selfConnected } from '../../src/probe/warmup.js';
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

describe('the self-connected half', () => {
  test('exchanges its lines with itself and closes', async () => {
    // a port of the kernel's own choosing that is free: taken by a listener, then released
    const free = await countingListener();
    await closers.pop()!();
    expect(await selfConnected(free.port)).toBe(true);
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
      console.log(JSON.stringify({ outcome: r.outcome, modules: process.moduleLoadList }));`;
    // not spawnSync: the server answering the probe is in this process
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT });
    const out = { stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (out.stdout += d));
    child.stderr.on('data', (d) => (out.stderr += d));
    await new Promise((r) => child.on('close', r));
    expect(out.stderr).toBe('');
    const { outcome, modules } = JSON.parse(out.stdout) as { outcome: string; modules: string[] };
    expect(outcome).toBe('delivered');
    expect(connections).toBe(1);
    const builtins = modules.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
    expect(builtins).toContain('net'); // the hook does see what is loaded
    expect(builtins.filter((m) => /^(cluster|child_process|dgram|perf_hooks|dns)$/.test(m))).toEqual([]);
  });
});

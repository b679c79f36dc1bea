/**
 * MX targets end to end, against a DNS server written for the test (test/helpers/dns.ts) that this process's
 * resolver is pointed at with `dns.setServers`: the engine's MX lookup (`dns.promises.resolveMx`), preference
 * order and fallback while connections fail, DNS failures at stage `dns`, a resolver that never answers, and the
 * runner's `allMx` expansion.
 *
 * Where the MX hosts live. The engine resolves each exchange with `dns.promises.lookup` (getaddrinfo, /etc/hosts),
 * which the test DNS server cannot answer, and connects to the target's one port on every MX host. So exchanges are
 * either `localhost` (in /etc/hosts: 127.0.0.1, looked up in the `dns` stage) or loopback addresses written as
 * names (`127.0.0.2`, `127.0.0.3`: valid DNS names, which c-ares returns as they are and the engine connects to
 * without a lookup), and the SMTP servers listen on the same port P at 127.0.0.1 and 127.0.0.2 while nothing
 * listens at 127.0.0.3:P (connection refused). Editing /etc/hosts would give real names, but it is a file shared
 * with every other process on the machine; the loopback names need no privilege and leave nothing behind.
 */
import dns from 'node:dns';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_TIMEOUTS, type Stage } from '../../src/model.js';
import type { Plan } from '../../src/profile/plan.js';
import { probe } from '../../src/probe/index.js';
import { createRunEmitter, expandMxTargets, runPlan } from '../../src/run/index.js';
import { startDnsServer, type DnsServer } from '../helpers/dns.js';
import { spec } from '../helpers/servers.js';

/** A real smtp-server on host:port (port 0: any) that counts the messages it accepts. */
async function smtpOn(host: string, port: number) {
  const received: { bytes: number; remoteAddress: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    hideSTARTTLS: true,
    logger: false,
    onData(stream, session, cb) {
      let bytes = 0;
      stream.on('data', (d: Buffer) => (bytes += d.length));
      stream.on('end', () => {
        received.push({ bytes, remoteAddress: session.remoteAddress });
        cb(null, 'queued');
      });
    },
  } as SMTPServerOptions);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(port, host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  return {
    host,
    port: (server.server.address() as net.AddressInfo).port,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
type Smtp = Awaited<ReturnType<typeof smtpOn>>;

/** SMTP servers on 127.0.0.1:P and 127.0.0.2:P (one port: the target's port applies to every MX host). */
async function smtpPair(): Promise<[Smtp, Smtp]> {
  for (let attempt = 0; ; attempt++) {
    const a = await smtpOn('127.0.0.1', 0);
    try {
      return [a, await smtpOn('127.0.0.2', a.port)];
    } catch (err) {
      await a.close();
      // P happened to be taken on 127.0.0.2: take another
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt >= 5) throw err;
    }
  }
}

let dnsSrv: DnsServer;
let one: Smtp; // 127.0.0.1:P, reached as `localhost`
let two: Smtp; // 127.0.0.2:P
let port: number;
const savedServers = dns.getServers();

beforeAll(async () => {
  dnsSrv = await startDnsServer();
  [one, two] = await smtpPair();
  port = one.port;
  dns.setServers([dnsSrv.server]);
});

afterAll(async () => {
  dns.setServers(savedServers);
  await Promise.all([dnsSrv?.close(), one?.close(), two?.close()]);
});

beforeEach(() => {
  dnsSrv.zone = {};
  dnsSrv.drop = false;
  dnsSrv.compress = true;
});

/** A probe of an MX target (domain `mx`), recording the stages in the order they began. */
async function probeMx(mx: string, timeouts: Partial<typeof DEFAULT_TIMEOUTS> = {}) {
  const stages: Stage[] = [];
  const r = await probe(spec(port, { target: { mx, port, tls: 'none' }, sizeBytes: 2048, timeouts: { dnsMs: 5000, connectMs: 5000, ...timeouts } }), {
    onStage: (e) => stages.push(e.stage),
  });
  return { r, stages };
}

function mxQueries(name: string) {
  return dnsSrv.queries.filter((q) => q.name === name && q.type === 'MX');
}

describe('the engine with an MX target', () => {
  test.each([true, false])('one MX host: delivered through it, the MX lookup and the host lookup timed in dns (compressed names: %s)', async (compress) => {
    dnsSrv.compress = compress;
    dnsSrv.zone = { mx: { 'one.mxprobe.test': [{ priority: 10, exchange: 'localhost' }] } };
    const before = one.received.length;
    const { r, stages } = await probeMx('one.mxprobe.test');
    expect(r.outcome).toBe('delivered');
    expect(r.error).toBeUndefined();
    expect(r.target).toBe('mx:one.mxprobe.test');
    expect(r.server).toBe('localhost');
    expect(r.remoteAddress).toBe('127.0.0.1');
    expect(r.remotePort).toBe(port);
    expect(r.stages.dns).toBeGreaterThan(0);
    // the MX lookup, then the exchange's address lookup, both in `dns`
    expect(stages.slice(0, 4)).toEqual(['dns', 'dns', 'connect', 'greeting']);
    expect(mxQueries('one.mxprobe.test').filter((q) => q.rcode === 'NOERROR' && q.answers === 1).length).toBeGreaterThanOrEqual(1);
    expect(one.received.length).toBe(before + 1);
    expect(one.received.at(-1)!.bytes).toBe(2048);
  });

  test('preference order: the lowest preference is tried first even when the answer lists it last', async () => {
    // both hosts accept: only the order decides which one gets the message
    dnsSrv.zone = {
      mx: {
        'order.mxprobe.test': [
          { priority: 30, exchange: 'localhost' },
          { priority: 5, exchange: '127.0.0.2' },
          { priority: 20, exchange: '127.0.0.3' },
        ],
      },
    };
    const [b1, b2] = [one.received.length, two.received.length];
    const { r, stages } = await probeMx('order.mxprobe.test');
    expect(r.outcome).toBe('delivered');
    expect(r.server).toBe('127.0.0.2');
    expect(r.remoteAddress).toBe('127.0.0.2');
    // an address needs no lookup: one dns stage (the MX query), one connection
    expect(stages.slice(0, 3)).toEqual(['dns', 'connect', 'greeting']);
    expect(two.received.length).toBe(b2 + 1);
    expect(one.received.length).toBe(b1);
  });

  test('fallback: MX 10 refuses the connection, MX 20 takes the message', async () => {
    // 127.0.0.3:P has no listener (refused); localhost:P is the first server
    dnsSrv.zone = {
      mx: {
        'fallback.mxprobe.test': [
          { priority: 20, exchange: 'localhost' },
          { priority: 10, exchange: '127.0.0.3' },
        ],
      },
    };
    const before = one.received.length;
    const { r, stages } = await probeMx('fallback.mxprobe.test');
    expect(r.outcome).toBe('delivered');
    expect(r.error).toBeUndefined();
    expect(r.server).toBe('localhost');
    expect(r.remoteAddress).toBe('127.0.0.1');
    // MX lookup → connect to 127.0.0.3 (refused) → look up localhost → connect → SMTP
    expect(stages.slice(0, 5)).toEqual(['dns', 'connect', 'dns', 'connect', 'greeting']);
    expect(r.stages.connect).toBeGreaterThan(0);
    expect(one.received.length).toBe(before + 1);
  });

  test('every MX host refuses: refused at connect, naming the last host tried', async () => {
    dnsSrv.zone = {
      mx: {
        'down.mxprobe.test': [
          { priority: 10, exchange: '127.0.0.3' },
          { priority: 20, exchange: '127.0.0.4' },
        ],
      },
    };
    const { r, stages } = await probeMx('down.mxprobe.test');
    expect(r.outcome).toBe('refused');
    expect(r.stage).toBe('connect');
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(r.server).toBe('127.0.0.4');
    expect(stages).toEqual(['dns', 'connect', 'connect']);
    expect(r.stages.greeting).toBeUndefined();
  });

  test('NXDOMAIN: dns-error at stage dns, naming the domain, nothing connected', async () => {
    const { r, stages } = await probeMx('nowhere.mxprobe.test');
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.error?.code).toBe('EDNS');
    expect(r.error?.message).toMatch(/nowhere\.mxprobe\.test/);
    expect(r.error?.message).toMatch(/ENOTFOUND/);
    expect(r.stages.dns).toBeGreaterThan(0);
    expect(r.stages.connect).toBeUndefined();
    expect(stages).toEqual(['dns']);
    expect(r.remoteAddress).toBeUndefined();
    expect(mxQueries('nowhere.mxprobe.test').some((q) => q.rcode === 'NXDOMAIN')).toBe(true);
  });

  test('a domain without MX records (NODATA) gets mail at its own address (RFC 5321 implicit MX)', async () => {
    // `localhost` has no MX in the test zone: the engine falls back to the domain itself, which resolves locally
    dnsSrv.zone = { a: { localhost: ['127.0.0.1'] } };
    const { r, stages } = await probeMx('localhost');
    expect(r.outcome).toBe('delivered');
    expect(r.server).toBe('localhost');
    expect(stages.slice(0, 3)).toEqual(['dns', 'dns', 'connect']);
  });

  test('implicit MX whose address does not resolve: dns-error at stage dns, naming the domain', async () => {
    dnsSrv.zone = { a: { 'nomx.mxprobe.test': ['127.0.0.1'] } }; // in the test DNS, but not known to getaddrinfo
    const { r } = await probeMx('nomx.mxprobe.test');
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.error?.code).toBe('EDNS');
    expect(r.error?.message).toMatch(/nomx\.mxprobe\.test/);
    expect(r.stages.connect).toBeUndefined();
  });

  test('SERVFAIL: dns-error at stage dns', async () => {
    dnsSrv.zone = { fail: { 'broken.mxprobe.test': 'SERVFAIL' } };
    const { r } = await probeMx('broken.mxprobe.test');
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.error?.message).toMatch(/broken\.mxprobe\.test.*ESERVFAIL/);
  });

  test('a null MX (RFC 7505): dns-error saying the domain accepts no mail, and no connection anywhere', async () => {
    dnsSrv.zone = { mx: { 'nullmx.mxprobe.test': [{ priority: 0, exchange: '.' }] } };
    const before = one.received.length + two.received.length;
    const { r, stages } = await probeMx('nullmx.mxprobe.test');
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.error?.message).toMatch(/nullmx\.mxprobe\.test.*null MX.*accepts no mail/);
    expect(stages).toEqual(['dns']);
    expect(r.remoteAddress).toBeUndefined();
    expect(one.received.length + two.received.length).toBe(before);
  });

  test('a resolver that never answers: dns-error at stage dns when dnsMs passes', async () => {
    // c-ares would give up by itself after ~5 s; the probe's dns deadline (1.5 s) must end it first
    dnsSrv.drop = true;
    const { r, stages } = await probeMx('silent.mxprobe.test', { dnsMs: 1500 });
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.error?.code).toBe('ETIMEDOUT');
    expect(r.error?.message).toMatch(/dns deadline of 1500 ms/);
    expect(stages).toEqual(['dns']);
    expect(r.stages.dns).toBeGreaterThanOrEqual(1400);
    expect(r.durationMs).toBeLessThan(1500 + 3000); // generous: ended by the deadline, not by c-ares (~5 s)
    expect(mxQueries('silent.mxprobe.test').some((q) => q.dropped)).toBe(true);
    // let c-ares's own retry get an answer so no query is left pending when the servers are restored
    dnsSrv.drop = false;
    const deadline = Date.now() + 10_000;
    while (!mxQueries('silent.mxprobe.test').some((q) => !q.dropped) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  }, 20_000);
});

describe('the runner with allMx', () => {
  test.each([true, false])('expandMxTargets: one target per MX host, in preference order (compressed names: %s)', async (compress) => {
    dnsSrv.compress = compress;
    dnsSrv.zone = {
      mx: {
        'all.mxprobe.test': [
          { priority: 20, exchange: 'mx2.all.mxprobe.test' },
          { priority: 10, exchange: 'mx1.all.mxprobe.test' },
          { priority: 20, exchange: 'backup.elsewhere.test' },
        ],
      },
    };
    const plain = { host: '127.0.0.1', port: 25, tls: 'none' as const };
    const out = await expandMxTargets([{ mx: 'all.mxprobe.test', allMx: true, port: 2525, tls: 'none' }, plain]);
    expect(out).toEqual([
      { host: 'mx1.all.mxprobe.test', name: 'mx:all.mxprobe.test/mx1.all.mxprobe.test', port: 2525, tls: 'none' },
      { host: 'backup.elsewhere.test', name: 'mx:all.mxprobe.test/backup.elsewhere.test', port: 2525, tls: 'none' },
      { host: 'mx2.all.mxprobe.test', name: 'mx:all.mxprobe.test/mx2.all.mxprobe.test', port: 2525, tls: 'none' },
      plain,
    ]);
    expect(mxQueries('all.mxprobe.test').length).toBeGreaterThanOrEqual(1);
  });

  test('expandMxTargets: NXDOMAIN and a null MX are EDNS errors naming the target', async () => {
    dnsSrv.zone = { mx: { 'nullmx.mxprobe.test': [{ priority: 0, exchange: '' }] } };
    const nx = await expandMxTargets([{ name: 'gone', mx: 'gone.mxprobe.test', allMx: true, port: 25, tls: 'none' }]).catch((e: unknown) => e);
    expect((nx as { code?: string }).code).toBe('EDNS');
    expect((nx as Error).message).toMatch(/target gone: cannot list the MX hosts of gone\.mxprobe\.test \(allMx\): the domain has no MX records \(ENOTFOUND\)/);
    const nul = await expandMxTargets([{ mx: 'nullmx.mxprobe.test', allMx: true, port: 25, tls: 'none' }]).catch((e: unknown) => e);
    expect((nul as { code?: string }).code).toBe('EDNS');
    expect((nul as Error).message).toMatch(/nullmx\.mxprobe\.test publishes a null MX \(RFC 7505\)/);
  });

  test('runPlan: an allMx target becomes two targets, each probed and delivered', async () => {
    dnsSrv.zone = {
      mx: {
        'both.mxprobe.test': [
          { priority: 20, exchange: '127.0.0.2' },
          { priority: 10, exchange: 'localhost' },
        ],
      },
    };
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-mx-'));
    try {
      const plan: Plan = {
        name: 'all-mx',
        profileHash: 'int-all-mx-00001',
        targets: [{ mx: 'both.mxprobe.test', allMx: true, port, tls: 'none' }],
        paths: [{ name: 'direct' }],
        sizes: [1024],
        repeat: 2,
        envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
        timeouts: { ...DEFAULT_TIMEOUTS, dnsMs: 5000, connectMs: 5000, stallMs: 5000 },
        concurrency: 2,
        seed: 3,
      };
      const [b1, b2] = [one.received.length, two.received.length];
      const starts: string[] = [];
      const ee = createRunEmitter();
      ee.on('run:start', (e) => starts.push(...e.targets));
      const res = await runPlan(plan, { out: join(dir, 'mx.jsonl'), emitter: ee });
      expect(starts).toEqual(['mx:both.mxprobe.test/localhost', 'mx:both.mxprobe.test/127.0.0.2']);
      expect(res.results).toHaveLength(4);
      expect(res.results.every((r) => r.outcome === 'delivered')).toBe(true);
      const byTarget = (t: string) => res.results.filter((r) => r.target === t);
      expect(byTarget('mx:both.mxprobe.test/localhost').map((r) => r.remoteAddress)).toEqual(['127.0.0.1', '127.0.0.1']);
      expect(byTarget('mx:both.mxprobe.test/127.0.0.2').map((r) => r.remoteAddress)).toEqual(['127.0.0.2', '127.0.0.2']);
      expect(one.received.length).toBe(b1 + 2);
      expect(two.received.length).toBe(b2 + 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

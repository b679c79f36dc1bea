/**
 * Deliver like an MTA (RFC 5321 §5.1): every address of every MX host, the next MX on a 4xx greeting or a 421
 * before MAIL, the attempt chain in the result, AAAA-only hosts, equal preferences shuffled by the seed, and a
 * resolver of the probe's own (`dnsServers`) that the `dns` deadline cancels.
 *
 * The DNS server is the test's own (test/helpers/dns.ts), asked through `dnsServers`, so every name here is
 * resolved by it (no /etc/hosts, no process-wide `dns.setServers`). Every MX host listens on the same port P (the
 * target's port applies to each): good SMTP on 127.0.0.2 and [::1], a 421 greeting on 127.0.0.4, 421 to EHLO on
 * 127.0.0.5, nothing on 127.0.0.3 (refused).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ProbeResult, TargetSpec } from '../../src/model.js';
import { probe } from '../../src/probe/index.js';
import { orderMx } from '../../src/probe/endpoints.js';
import { compare } from '../../src/analyze/index.js';
import { runCli } from '../helpers/cli.js';
import { startDnsServer, type DnsServer } from '../helpers/dns.js';
import { spec, startSmtpServer } from '../helpers/servers.js';

interface Listening {
  close(): Promise<void>;
  accepted: number;
}

/** A raw server on host:port: `greeting` then, for each line, `answer(line)` (or nothing). */
function rawOn(host: string, port: number, greeting: string, answer: (line: string) => string | undefined): Promise<Listening> {
  const sockets = new Set<net.Socket>();
  const h = { accepted: 0, close: async () => undefined as void };
  const server = net.createServer((s) => {
    h.accepted++;
    sockets.add(s);
    s.on('error', () => undefined);
    s.write(greeting);
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const a = answer(buf.slice(0, i));
        buf = buf.slice(i + 2);
        if (a) s.write(a);
      }
    });
  });
  h.close = () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(h));
  });
}

let dnsSrv: DnsServer;
let hung: DnsServer;
let port: number;
type Smtp = Awaited<ReturnType<typeof startSmtpServer>>;
let good: Smtp;
let good6: Smtp;
const others: Listening[] = [];

beforeAll(async () => {
  dnsSrv = await startDnsServer();
  hung = await startDnsServer({ drop: true });
  for (let attempt = 0; ; attempt++) {
    const g = await startSmtpServer({ listen: { host: '127.0.0.2' } });
    try {
      good6 = await startSmtpServer({ listen: { host: '::1', port: g.port } });
      good = g;
      port = g.port;
      break;
    } catch (err) {
      await g.close();
      if (attempt >= 5) throw err;
    }
  }
  others.push(await rawOn('127.0.0.4', port, '421 4.3.2 busy, try later\r\n', () => undefined));
  others.push(await rawOn('127.0.0.5', port, '220 ok\r\n', (l) => (/^EHLO/i.test(l) ? '421 4.7.0 too many connections\r\n' : l.toUpperCase() === 'QUIT' ? '221 bye\r\n' : undefined)));
  dnsSrv.zone = {
    mx: {
      'two-a.test': [{ priority: 10, exchange: 'mx.two-a.test' }],
      'greet421.test': [{ priority: 20, exchange: 'mxb.greet421.test' }, { priority: 10, exchange: 'mxa.greet421.test' }],
      'ehlo421.test': [{ priority: 10, exchange: 'mxa.ehlo421.test' }, { priority: 20, exchange: 'mxb.ehlo421.test' }],
      'v6.test': [{ priority: 10, exchange: 'mx6.v6.test' }],
      'equal.test': [{ priority: 10, exchange: 'a.equal.test' }, { priority: 10, exchange: 'b.equal.test' }],
      'hung.test': [{ priority: 10, exchange: 'mx1.hung.test' }, { priority: 20, exchange: 'mx2.hung.test' }],
    },
    fail: { 'mx1.hung.test': 'DROP' },
    a: {
      'mx.two-a.test': ['127.0.0.3', '127.0.0.2'],
      'mxa.greet421.test': ['127.0.0.4'],
      'mxb.greet421.test': ['127.0.0.2'],
      'mxa.ehlo421.test': ['127.0.0.5'],
      'mxb.ehlo421.test': ['127.0.0.2'],
      'a.equal.test': ['127.0.0.2'],
      'mx2.hung.test': ['127.0.0.2'],
    },
    aaaa: { 'mx6.v6.test': ['::1'], 'b.equal.test': ['::1'] },
  };
});

afterAll(async () => {
  await Promise.all([dnsSrv?.close(), hung?.close(), good?.close(), good6?.close(), ...others.map((o) => o.close())]);
});

function mx(domain: string, over: Partial<TargetSpec> = {}, seed = 42): Promise<ProbeResult> {
  return probe(spec(port, { target: { mx: domain, port, tls: 'none', ...over }, seed, dnsServers: [dnsSrv.server], timeouts: { dnsMs: 3000, connectMs: 3000 } }));
}

describe('every address of every MX host, in order', () => {
  test('an MX host with two A records, the first refusing: 8 of 8 delivered through the second, the chain recorded', async () => {
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => mx('two-a.test', {}, i)));
    for (const r of rs) {
      expect(r.outcome).toBe('delivered');
      expect(r.remoteAddress).toBe('127.0.0.2');
      expect(r.attempts?.map((a) => `${a.address} ${a.outcome}${a.stage ? `@${a.stage}` : ''}`)).toEqual(['127.0.0.3 refused@connect', '127.0.0.2 delivered']);
      expect(r.attempts![0]!.server).toBe('mx.two-a.test');
      expect(r.resolved?.addresses?.['mx.two-a.test']).toEqual(['127.0.0.3', '127.0.0.2']);
      expect(r.resolved?.mx).toEqual([{ exchange: 'mx.two-a.test', priority: 10 }]);
      expect(r.resolved?.servers).toEqual([dnsSrv.server]);
      // the final connection's stages are the probe's; the refused one is timed apart
      expect(r.stages.connect).toBeLessThan(r.durationMs);
    }
  });

  test('MX 10 answers 421 at the greeting: the next MX delivers, the 421 is in the chain', async () => {
    const r = await mx('greet421.test');
    expect(r.outcome).toBe('delivered');
    expect(r.server).toBe('mxb.greet421.test');
    expect(r.attempts).toHaveLength(2);
    expect(r.attempts![0]).toMatchObject({ server: 'mxa.greet421.test', address: '127.0.0.4', outcome: 'rejected', stage: 'greeting', reply: { code: 421 } });
    expect(r.attempts![1]).toMatchObject({ server: 'mxb.greet421.test', outcome: 'delivered' });
  });

  test('421 to EHLO: the next MX', async () => {
    const r = await mx('ehlo421.test');
    expect(r.outcome).toBe('delivered');
    expect(r.attempts![0]).toMatchObject({ outcome: 'rejected', stage: 'ehlo', reply: { code: 421 } });
  });

  test('fallback none: the 421 greeting is the outcome, and lastCommand is not "QUIT"', async () => {
    const r = await mx('greet421.test', { fallback: 'none' });
    expect(r.outcome).toBe('rejected');
    expect(r.stage).toBe('greeting');
    expect(r.reply?.code).toBe(421);
    expect(r.attempts).toBeUndefined();
    expect(r.error?.lastCommand).not.toBe('QUIT');
  });

  test('an AAAA-only MX host is reached over IPv6; -4 finds no address for it', async () => {
    const r = await mx('v6.test');
    expect(r.outcome).toBe('delivered');
    expect(r.remoteAddress).toBe('::1');
    const r4 = await mx('v6.test', { family: 4 });
    expect(r4.outcome).toBe('dns-error');
    expect(r4.error?.message).toMatch(/no IPv4 address|cannot resolve/);
  });

  test('equal preferences: the seed decides the order, the same seed the same order, and both come first for some seed', async () => {
    const first = async (seed: number) => (await mx('equal.test', {}, seed)).remoteAddress;
    const seen = new Set<string | undefined>();
    for (let seed = 0; seed < 12; seed++) seen.add(await first(seed));
    expect(seen).toEqual(new Set(['127.0.0.2', '::1']));
    expect(await first(7)).toBe(await first(7));
    expect(orderMx([{ exchange: 'a', priority: 10 }, { exchange: 'b', priority: 10 }, { exchange: 'c', priority: 5 }], 7)[0]!.exchange).toBe('c');
  });
});

describe('a resolver of the probe\'s own', () => {
  test('an abort while the first MX host\'s lookup hangs ends the probe: nothing is sent through the next one', async () => {
    const before = good.received.length;
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 300);
    const p = probe(spec(port, { target: { mx: 'hung.test', port, tls: 'none' }, dnsServers: [dnsSrv.server], timeouts: { dnsMs: 5000 } }), { signal: ac.signal });
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    await new Promise((r) => setTimeout(r, 300));
    expect(good.received.length).toBe(before);
  });

  test('the first MX host\'s lookup times out: the next MX host delivers, the dns failure is an attempt', async () => {
    const r = await probe(spec(port, { target: { mx: 'hung.test', port, tls: 'none' }, dnsServers: [dnsSrv.server], timeouts: { dnsMs: 800 } }));
    expect(r.outcome).toBe('delivered');
    expect(r.attempts?.[0]).toMatchObject({ server: 'mx1.hung.test', outcome: 'dns-error', stage: 'dns' });
  });

  test('a DNS server that never answers: dns-error at the dns deadline, not seconds after it', async () => {
    const r = await probe(spec(port, { target: { mx: 'two-a.test', port, tls: 'none' }, dnsServers: [hung.server], timeouts: { dnsMs: 700 } }));
    expect(r.outcome).toBe('dns-error');
    expect(r.stage).toBe('dns');
    expect(r.durationMs).toBeLessThan(700 + 1500);
  });
});

describe('the chain where people read it', () => {
  test('compare: "refused at connect in 4/4; delivered through the second address"', async () => {
    const rs = await Promise.all(Array.from({ length: 4 }, (_, i) => mx('two-a.test', {}, i)));
    const f = compare(rs).findings.find((x) => x.kind === 'fallback');
    expect(f, JSON.stringify(compare(rs).findings.map((x) => x.kind))).toBeDefined();
    expect(f!.stall).toBe(false);
    expect(f!.statement).toMatch(/mx\.two-a\.test \(127\.0\.0\.3\) was refused at connect in 4\/4 probes; delivered through mx\.two-a\.test \(127\.0\.0\.2\) \(4\/4\)/);
  });

  test('mxprobe probe --mx --dns-server: the attempts in --json; --host [::1]:PORT bracketed in the output', async () => {
    const j = await runCli(['probe', '--mx', 'greet421.test', '--dns-server', dnsSrv.server, '--port', String(port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--json']);
    expect(j.code).toBe(0);
    const r = JSON.parse(j.stdout) as ProbeResult;
    expect(r.attempts?.map((a) => a.outcome)).toEqual(['rejected', 'delivered']);
    const h = await runCli(['probe', '--host', `[::1]:${port}`, '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test']);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain(`[::1]:${port}`);
    const bad = await runCli(['probe', '--host', `[::1]:${port}`, '--port', '25', '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/differ/);
  });
});

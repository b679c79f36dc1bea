/**
 * The hostile-server panel: servers that misbehave in every way we know of. Every probe must end within its
 * deadlines with a classified outcome and the stage it ended in, never crash the process, and leave no socket
 * or timer behind (counted with `process.getActiveResourcesInfo()` once the server is closed).
 *
 * Some of these behaviours are also in probe.test.ts with more detail about one aspect; here each one is a row
 * of the same table, checked the same way, with the resource accounting on top.
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { probe } from '../../src/probe/index.js';
import type { Outcome, ProbeResult, ProbeSpec, Stage } from '../../src/model.js';
import { spec } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

// ------------------------------------------------------------------------------------------------ servers

interface Server {
  port: number;
  close(): Promise<void>;
}

/** A TCP server on 127.0.0.1:0 running `handler` per connection; `close` destroys every socket and timer. */
async function rawServer(handler: (s: net.Socket, timers: Set<NodeJS.Timeout>) => void, opts: net.ServerOpts = {}): Promise<Server> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const server = net.createServer(opts, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    handler(s, timers);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearInterval(t);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

type Reply = string | ((s: net.Socket, line: string) => void);

/**
 * Scripted SMTP: each command verb maps to the raw reply text (or a function that does anything). The body is
 * answered by `BODY` once `\r\n.\r\n` is seen. Defaults make a well-behaved server.
 */
function smtp(script: Partial<Record<'GREETING' | 'EHLO' | 'HELO' | 'STARTTLS' | 'MAIL' | 'RCPT' | 'DATA' | 'BODY' | 'QUIT', Reply>> = {}) {
  const r = {
    GREETING: '220 hostile.test ESMTP\r\n',
    EHLO: '250-hostile.test\r\n250 SIZE 100000000\r\n',
    HELO: '250 hostile.test\r\n',
    MAIL: '250 ok\r\n',
    RCPT: '250 ok\r\n',
    DATA: '354 go\r\n',
    BODY: '250 queued\r\n',
    QUIT: (s: net.Socket) => s.end('221 bye\r\n'),
    STARTTLS: '454 4.7.0 TLS not available\r\n',
    ...script,
  } as Record<string, Reply>;
  const say = (s: net.Socket, reply: Reply, line: string) => {
    if (s.destroyed) return;
    if (typeof reply === 'string') s.write(reply);
    else reply(s, line);
  };
  return (s: net.Socket) => {
    say(s, r.GREETING!, '');
    let buf = '';
    let inData = false;
    let tail = '';
    const onData = (d: Buffer) => {
      if (inData) {
        tail = (tail + d.toString('latin1')).slice(-5);
        if (tail === '\r\n.\r\n') {
          inData = false;
          say(s, r.BODY!, '.');
        }
        return;
      }
      buf += d.toString('latin1');
      let i: number;
      while (!inData && (i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const verb = line.split(/[ :]/)[0]!.toUpperCase();
        if (verb === 'DATA') {
          const before = s.listenerCount('data');
          say(s, r.DATA!, line);
          // a DATA handler that takes over the socket (removes us) decides; otherwise the body follows
          if (s.listenerCount('data') === before && typeof r.DATA === 'string' && r.DATA.startsWith('354')) {
            inData = true;
            tail = '';
            if (buf.length) {
              const rest = buf;
              buf = '';
              onData(Buffer.from(rest, 'latin1'));
            }
          }
        } else if (verb in r) say(s, r[verb]!, line);
        else s.write('500 5.5.1 unknown command\r\n');
      }
    };
    s.on('data', onData);
  };
}

// ------------------------------------------------------------------------------------------------ accounting

const TRACKED = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout', 'TLSWrap', 'Immediate'] as const;

function resources(): Record<string, number> {
  const c: Record<string, number> = {};
  for (const k of TRACKED) c[k] = 0;
  for (const r of process.getActiveResourcesInfo()) if (r in c) c[r]!++;
  return c;
}

/** Wait (up to 3 s) until no tracked resource count exceeds the baseline; then assert it. */
async function expectNoLeak(before: Record<string, number>): Promise<void> {
  const over = () => TRACKED.filter((k) => resources()[k]! > before[k]!);
  const end = performance.now() + 3000;
  while (over().length > 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
  const now = resources();
  for (const k of TRACKED) expect(now[k], `${k}: ${now[k]} open, ${before[k]} before the probe`).toBeLessThanOrEqual(before[k]!);
}

const crashes: unknown[] = [];
const onCrash = (e: unknown) => crashes.push(e);
beforeAll(() => {
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
});
afterAll(() => {
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
});
afterEach(() => {
  expect(crashes, 'no uncaught exception or unhandled rejection').toEqual([]);
});

interface Case {
  name: string;
  server: () => Promise<Server>;
  spec: (port: number) => ProbeSpec;
  outcome: Outcome | Outcome[];
  stage?: Stage | Stage[] | 'none';
  code?: string | RegExp;
  /** The probe must be over within this many ms (its governing deadline); 3 s of slack for busy machines. */
  withinMs: number;
  check?: (r: ProbeResult) => void;
  /** The server trickles bytes on a timer: its outcome depends on timing, so it stays out of the parallel run. */
  trickle?: boolean;
}

const { key, cert } = selfSigned();
const oneOf = <T,>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

/** Run one case: probe, check outcome/stage/deadline, close the server, check nothing is left. */
async function runCase(c: Case): Promise<ProbeResult> {
  const before = resources();
  const srv = await c.server();
  let r: ProbeResult;
  const t0 = performance.now();
  try {
    r = await probe(c.spec(srv.port));
  } finally {
    await srv.close();
  }
  const wall = performance.now() - t0;
  // a probe is plain data: it survives JSON whatever bytes the server sent
  expect(JSON.parse(JSON.stringify(r))).toEqual(JSON.parse(JSON.stringify(r)));
  expect(oneOf(c.outcome), `${r.outcome}@${r.stage}: ${r.error?.code} ${r.error?.message}`).toContain(r.outcome);
  if (c.stage === 'none') expect(r.stage).toBeUndefined();
  else if (c.stage) expect(oneOf(c.stage)).toContain(r.stage);
  if (r.outcome !== 'delivered') {
    expect(r.stage, 'a probe that did not deliver names its stage').toBeDefined();
    expect(r.error?.code).toMatch(/^E[A-Z]+$/);
    expect(r.error?.message.length).toBeGreaterThan(0);
  }
  if (typeof c.code === 'string') expect(r.error?.code).toBe(c.code);
  else if (c.code) expect(r.error?.code).toMatch(c.code);
  expect(r.durationMs).toBeLessThan(c.withinMs + 3000);
  expect(wall).toBeLessThan(c.withinMs + 3500);
  c.check?.(r);
  await expectNoLeak(before);
  return r;
}

// ------------------------------------------------------------------------------------------------ the panel

const S = (port: number, over: Parameters<typeof spec>[1] = {}) => spec(port, { ehloName: 'probe.mxprobe.test', ...over });

const CASES: Case[] = [
  {
    name: 'no greeting',
    server: () => rawServer(() => undefined),
    spec: (p) => S(p, { timeouts: { stallMs: 500 } }),
    outcome: 'stalled',
    stage: 'greeting',
    code: 'ESTALL',
    withinMs: 500,
  },
  {
    name: 'greeting one byte per second (trickling is not a stall; the command deadline ends it)',
    server: () =>
      rawServer((s, timers) => {
        const text = '220 slow.test ESMTP\r\n';
        let i = 0;
        const t = setInterval(() => (!s.destroyed && i < text.length ? s.write(text[i++]!) : undefined), 1000);
        timers.add(t);
        s.on('close', () => clearInterval(t));
      }),
    spec: (p) => S(p, { timeouts: { stallMs: 2500, commandMs: 4000 } }),
    outcome: 'timeout',
    stage: 'greeting',
    code: 'ETIMEDOUT',
    withinMs: 4000,
    trickle: true,
    check: (r) => expect(r.bytesRead).toBeGreaterThanOrEqual(2),
  },
  {
    name: 'a multiline reply that never ends, sent fast (a line cap ends it)',
    server: () =>
      rawServer((s) => {
        s.write('220-hello\r\n'.repeat(2000));
      }),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'greeting',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => expect(r.error?.message).toMatch(/did not end within \d+ lines/),
  },
  {
    name: 'a multiline reply that never ends, trickled (the command deadline ends it)',
    server: () =>
      rawServer((s, timers) => {
        s.write('220-hello\r\n');
        const t = setInterval(() => (!s.destroyed ? s.write('220-still here\r\n') : undefined), 100);
        timers.add(t);
        s.on('close', () => clearInterval(t));
      }),
    spec: (p) => S(p, { timeouts: { stallMs: 1000, commandMs: 2000 } }),
    outcome: ['timeout', 'protocol-error'],
    stage: 'greeting',
    withinMs: 2000,
    trickle: true,
  },
  {
    name: 'a 1 MiB line with no CRLF',
    server: () => rawServer((s) => s.write(Buffer.alloc(1024 * 1024, 0x32))),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'greeting',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => expect(r.error?.message).toMatch(/longer than \d+ bytes/),
  },
  {
    name: 'a reply code that does not match the command: 354 to EHLO',
    server: () => rawServer(smtp({ EHLO: '354 start mail input\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'ehlo',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => expect(r.reply?.code).toBe(354),
  },
  {
    name: 'a reply code that does not match the command: 334 to MAIL',
    server: () => rawServer(smtp({ MAIL: '334 VXNlcm5hbWU6\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'mail',
    code: 'EPROTOCOL',
    withinMs: 1000,
  },
  {
    name: 'a reply code that does not match the command: 354 to the final dot',
    server: () => rawServer(smtp({ BODY: '354 more please\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'dataAck',
    code: 'EPROTOCOL',
    withinMs: 1000,
  },
  {
    name: 'a multiline reply that changes its code',
    server: () => rawServer(smtp({ EHLO: '250-hostile.test\r\n220 SIZE 1000\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'ehlo',
    code: 'EPROTOCOL',
    withinMs: 1000,
  },
  {
    name: '8-bit and NUL bytes in reply text are kept, the dialogue goes on',
    server: () => rawServer(smtp({ GREETING: Buffer.from('220 h\u00e9llo \u0000 w\u00f6rld \u00ff\r\n', 'latin1').toString('latin1') })),
    spec: (p) => S(p),
    outcome: 'delivered',
    stage: 'none',
    withinMs: 1000,
  },
  {
    name: 'binary garbage with NUL bytes instead of a reply',
    server: () => rawServer((s) => s.write(Buffer.from([0, 0x32, 0x32, 0x30, 0, 0xff, 0xfe, 0x0d, 0x0a]))),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'greeting',
    code: 'EPROTOCOL',
    withinMs: 1000,
  },
  {
    name: '354 then close',
    server: () => rawServer(smtp({ DATA: (s) => s.end('354 go\r\n') })),
    spec: (p) => S(p, { sizeBytes: 256 * 1024 }),
    outcome: 'reset',
    stage: ['body', 'dataAck'],
    withinMs: 1000,
  },
  {
    name: 'an error reply to DATA before the body is sent',
    server: () => rawServer(smtp({ DATA: (s) => s.write('354 go\r\n554 5.7.1 changed my mind\r\n') })),
    spec: (p) => S(p, { sizeBytes: 8 * 1024 * 1024 }),
    outcome: 'rejected',
    stage: 'body',
    code: 'EREJECTED',
    withinMs: 2000,
    check: (r) => expect(r.reply?.code).toBe(554),
  },
  {
    name: 'a success reply to DATA before the body is sent',
    server: () => rawServer(smtp({ DATA: (s) => s.write('354 go\r\n250 2.0.0 queued already\r\n') })),
    spec: (p) => S(p, { sizeBytes: 8 * 1024 * 1024 }),
    outcome: 'protocol-error',
    stage: 'body',
    code: 'EPROTOCOL',
    withinMs: 2000,
  },
  {
    name: 'implicit TLS: a handshake that stalls',
    server: () => rawServer(() => undefined),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'implicit' }, timeouts: { stallMs: 500 } }),
    outcome: 'stalled',
    stage: 'tls',
    code: 'ESTALL',
    withinMs: 500,
  },
  {
    name: 'STARTTLS accepted, then the handshake stalls',
    server: () => rawServer(smtp({ EHLO: '250-hostile.test\r\n250 STARTTLS\r\n', STARTTLS: (s) => { s.write('220 go ahead\r\n'); s.pause(); } })),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'require-starttls' }, timeouts: { stallMs: 500 } }),
    outcome: 'stalled',
    stage: 'starttls',
    code: 'ESTALL',
    withinMs: 500,
  },
  {
    name: 'STARTTLS advertised then refused, with require-starttls',
    server: () => rawServer(smtp({ EHLO: '250-hostile.test\r\n250 STARTTLS\r\n' })),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'require-starttls' } }),
    outcome: 'tls-error',
    stage: 'starttls',
    code: 'ETLS',
    withinMs: 1000,
    check: (r) => expect(r.error?.message).toMatch(/STARTTLS refused: 454/),
  },
  {
    name: 'STARTTLS advertised then refused, opportunistic: carries on in plain text',
    server: () => rawServer(smtp({ EHLO: '250-hostile.test\r\n250 STARTTLS\r\n' })),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'starttls' } }),
    outcome: 'delivered',
    stage: 'none',
    withinMs: 1000,
    check: (r) => expect(r.tls).toBeUndefined(),
  },
  {
    name: 'implicit TLS: reset during the handshake',
    server: () => rawServer((s) => s.once('data', () => s.resetAndDestroy())),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'implicit' } }),
    outcome: ['reset', 'tls-error'],
    stage: 'tls',
    withinMs: 1000,
  },
  {
    name: 'STARTTLS: reset during the handshake',
    server: () =>
      rawServer(smtp({
        EHLO: '250-hostile.test\r\n250 STARTTLS\r\n',
        STARTTLS: (s) => {
          s.write('220 go ahead\r\n');
          s.removeAllListeners('data');
          s.once('data', () => s.resetAndDestroy());
        },
      })),
    spec: (p) => S(p, { target: { host: '127.0.0.1', port: p, tls: 'require-starttls' } }),
    outcome: ['reset', 'tls-error'],
    stage: 'starttls',
    withinMs: 1000,
  },
  {
    name: 'TLS established, then reset mid-dialogue (after EHLO over TLS)',
    server: async () => {
      const sockets = new Set<tls.TLSSocket>();
      const server = tls.createServer({ key, cert }, (s) => {
        sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => sockets.delete(s));
        s.write('220 tls.test ESMTP\r\n');
        s.once('data', () => {
          s.write('250-tls.test\r\n250 SIZE 1000000\r\n');
          s.once('data', () => (s as unknown as { _parent?: net.Socket })._parent?.resetAndDestroy?.() ?? s.destroy());
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return {
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
      };
    },
    spec: (p) => S(p, { insecure: true, target: { host: '127.0.0.1', port: p, tls: 'implicit' } }),
    outcome: 'reset',
    stage: 'mail',
    withinMs: 1000,
    check: (r) => expect(r.tls?.version).toMatch(/^TLSv1\.[23]$/),
  },
  {
    name: 'a server that stops reading after 354 (the body fills the buffers)',
    server: () =>
      rawServer(
        // answers every command up to DATA (replies written up front would be a desync, see below), then not one
        // byte more is ever read
        smtp({
          EHLO: '250-deaf.test\r\n250 SIZE 1000000000\r\n',
          DATA: (s) => {
            s.removeAllListeners('data');
            s.pause();
            s.write('354 go\r\n');
          },
        }),
      ),
    spec: (p) => S(p, { sizeBytes: 64 * 1024 * 1024, earlyStall: false, timeouts: { stallMs: 600 } }),
    outcome: 'stalled',
    stage: 'body',
    code: 'ESTALL',
    withinMs: 600 + 4000, // the kernel takes megabytes before writes stop draining, then the snapshot
    check: (r) => {
      expect(r.bodyBytesWritten).toBeGreaterThan(0);
      expect(r.bodyBytesWritten).toBeLessThan(64 * 1024 * 1024);
    },
  },
  {
    name: 'accepts and never reads, never writes',
    server: () => rawServer(() => undefined, { pauseOnConnect: true }),
    spec: (p) => S(p, { timeouts: { stallMs: 500 } }),
    outcome: 'stalled',
    stage: 'greeting',
    withinMs: 500,
  },
  {
    name: 'reset as soon as accepted',
    server: () => rawServer((s) => s.resetAndDestroy()),
    spec: (p) => S(p),
    outcome: 'reset',
    stage: ['greeting', 'connect'],
    withinMs: 1000,
  },
  {
    name: 'closes cleanly right after answering EHLO',
    server: () => rawServer(smtp({ EHLO: (s) => s.end('250 hostile.test\r\n') })),
    spec: (p) => S(p),
    outcome: 'reset',
    stage: 'mail',
    code: 'ECLOSED',
    withinMs: 1000,
  },
  {
    name: '421 greeting (service not available) is a rejection at greeting',
    server: () => rawServer((s) => s.end('421 4.3.2 too busy, try later\r\n')),
    spec: (p) => S(p),
    outcome: 'rejected',
    stage: 'greeting',
    code: 'EREJECTED',
    withinMs: 1000,
    check: (r) => expect(r.reply?.enhanced).toBe('4.3.2'),
  },
  {
    name: 'never answers QUIT: the mail was delivered, QUIT is bounded by the stall window',
    server: () => rawServer(smtp({ QUIT: () => undefined })),
    spec: (p) => S(p, { timeouts: { stallMs: 500 } }),
    outcome: 'delivered',
    stage: 'none',
    withinMs: 500,
    check: (r) => expect(r.stages.quit).toBeGreaterThanOrEqual(400),
  },
  {
    name: 'final reply trickled forever after the body (the dataAck deadline ends it)',
    server: () =>
      rawServer(smtp({
        BODY: (s) => {
          const t = setInterval(() => (!s.destroyed ? s.write('2') : undefined), 100);
          s.on('close', () => clearInterval(t));
        },
      })),
    spec: (p) => S(p, { timeouts: { stallMs: 1000, dataAckMs: 2000 } }),
    outcome: ['timeout', 'protocol-error'],
    stage: 'dataAck',
    withinMs: 2000,
    trickle: true,
  },
  {
    name: 'MAIL answered twice in one write (desync: named at mail, not blamed on RCPT or DATA)',
    server: () => rawServer(smtp({ MAIL: '250 ok\r\n250 2.1.0 extra line\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'mail',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => expect(r.error?.message).toMatch(/unsolicited reply after MAIL FROM:<probe@mxprobe.test>.*: 250 2\.1\.0 extra line/),
  },
  {
    name: 'an extra reply right after the greeting (desync at greeting, before EHLO is sent)',
    server: () => rawServer(smtp({ GREETING: '220 hostile.test ESMTP\r\n250 \x1b[2Jsurprise\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'greeting',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => {
      expect(r.error?.message).toContain('unsolicited reply after the greeting: 250');
      expect(r.error?.message).toContain('surprise');
    },
  },
  {
    name: 'an unasked 421 before the next command (RFC 5321 §3.8: closing) is a rejection, not a desync',
    server: () => rawServer(smtp({ MAIL: '250 ok\r\n421 4.4.2 idle too long, closing\r\n' })),
    spec: (p) => S(p),
    outcome: 'rejected',
    stage: 'mail',
    code: 'EREJECTED',
    withinMs: 1000,
    check: (r) => expect(r.reply?.code).toBe(421),
  },
  {
    name: 'RCPT answered with two replies (the second would be read as the answer to DATA)',
    server: () => rawServer(smtp({ RCPT: '250 ok\r\n354 go ahead\r\n', DATA: '554 no\r\n' })),
    spec: (p) => S(p),
    outcome: 'protocol-error',
    stage: 'rcpt',
    code: 'EPROTOCOL',
    withinMs: 1000,
    check: (r) => {
      expect(r.error?.message).toContain('354 go ahead');
      expect(r.error?.lastCommand).toBe('RCPT TO:<sink@mxprobe.test>');
    },
  },
];

describe('hostile-server panel: classified outcome, stage, deadline, nothing left open', () => {
  test('the panel covers at least 12 behaviours', () => {
    expect(CASES.length).toBeGreaterThanOrEqual(12);
  });
  for (const c of CASES) {
    test(c.name, async () => {
      await runCase(c);
    }, 30_000);
  }
});

describe('the same hostile servers, many probes at once', () => {
  test('every short case in parallel, twice: all classified, nothing left open', async () => {
    const quick = CASES.filter((c) => c.withinMs <= 1500 && !c.trickle);
    const before = resources();
    const servers = await Promise.all(quick.map((c) => c.server()));
    try {
      const rs = await Promise.all([...quick, ...quick].map((c, i) => probe(c.spec(servers[i % quick.length]!.port)).then((r) => ({ c, r }))));
      for (const { c, r } of rs) {
        expect(oneOf(c.outcome), `${c.name}: ${r.outcome}@${r.stage} ${r.error?.message}`).toContain(r.outcome);
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
    await expectNoLeak(before);
  }, 60_000);
});

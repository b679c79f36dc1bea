import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probe, AbortError, ProbeInputError, bodyChunks } from '../../src/probe/index.js';
import { scriptedSmtp, spec, startRawServer, startSmtpServer } from '../helpers/servers.js';
import { startHttpConnect, startSocks5 } from '../helpers/proxies.js';
import { selfSigned } from '../helpers/tls.js';

/** Every probe must end within the deadline it was given (plus scheduling slack for a busy machine). */
function within(r: { durationMs: number }, ms: number) {
  expect(r.durationMs).toBeLessThan(ms + 3000); // a busy machine schedules late; the hostile panel allows the same
}

describe('against a real smtp-server', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => { srv = await startSmtpServer({ size: 80 * 1024 * 1024 }); });
  afterAll(async () => { await srv.close(); });

  test('delivers 1 KiB with every stage timed, SIZE= sent, several recipients', async () => {
    const s = spec(srv.port, { sizeBytes: 1024, envelope: { from: 'a@mxprobe.test', to: ['b@mxprobe.test', 'c@mxprobe.test'] } });
    const r = await probe(s);
    expect(r.outcome).toBe('delivered');
    expect(r.stage).toBeUndefined();
    for (const st of ['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit'] as const) {
      expect(r.stages[st]).toBeGreaterThan(0);
    }
    expect(r.stages.dns).toBeUndefined(); // IP literal: no lookup happened
    expect(r.stages.tls).toBeUndefined();
    expect(r.reply?.code).toBe(250);
    expect(r.bodyBytesWritten).toBe(1024);
    expect(r.recipients?.map((x) => x.code)).toEqual([250, 250]);
    expect(r.capabilities).toContain('SIZE 83886080');
    expect(r.localAddress).toBe('127.0.0.1');
    expect(r.remotePort).toBe(srv.port);
    const got = srv.received.at(-1)!;
    expect(got.to).toEqual(['b@mxprobe.test', 'c@mxprobe.test']);
    expect(got.bytes).toBe(1024);
  });

  test('the message is exactly sizeBytes at the server and matches the generator', async () => {
    const size = 1048576;
    const s = spec(srv.port, { sizeBytes: size, seed: 7 });
    const r = await probe(s);
    expect(r.outcome).toBe('delivered');
    const got = srv.received.at(-1)!;
    expect(got.bytes).toBe(size);
  });

  test('a 64 MiB probe is exactly 67,108,864 bytes at the server', async () => {
    const r = await probe(spec(srv.port, { sizeBytes: 64 * 1024 * 1024 }));
    expect(r.outcome).toBe('delivered');
    expect(srv.received.at(-1)!.bytes).toBe(67_108_864);
    expect(r.bodyBytesWritten).toBe(67_108_864);
  }, 120_000);

  test('binds the source address (127.0.0.2)', async () => {
    const r = await probe(spec(srv.port, { path: { name: 'alt', localAddress: '127.0.0.2' } }));
    expect(r.outcome).toBe('delivered');
    expect(r.localAddress).toBe('127.0.0.2');
    expect(srv.received.at(-1)!.remoteAddress).toMatch(/127\.0\.0\.2$/);
  });

  test('a host name is resolved in the dns stage', async () => {
    const r = await probe(spec(srv.port, { target: { host: 'localhost', port: srv.port, tls: 'none' } }));
    expect(r.outcome).toBe('delivered');
    expect(r.stages.dns).toBeGreaterThan(0);
  });

  test('relay path replaces the target', async () => {
    const r = await probe(spec(1, { path: { name: 'relay', relay: { host: '127.0.0.1', port: srv.port } } }));
    expect(r.outcome).toBe('delivered');
    expect(r.remotePort).toBe(srv.port);
    expect(r.server).toBe(`127.0.0.1:${srv.port}`);
  });

  test('a replayed .eml file is dot-stuffed and its size counted after LF→CRLF', async () => {
    const { writeFileSync, mkdtempSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-eml-'));
    const file = join(dir, 'm.eml');
    writeFileSync(file, 'Subject: replay\n\n.leading dot\nline\r\n..two\n.');
    const s2 = await startSmtpServer({ keep: true });
    try {
      const r = await probe(spec(s2.port, { messageFile: file }));
      expect(r.outcome).toBe('delivered');
      const expected = 'Subject: replay\r\n\r\n.leading dot\r\nline\r\n..two\r\n.\r\n';
      expect(r.sizeBytes).toBe(expected.length);
      expect(s2.received[0]!.data!.toString()).toBe(expected);
    } finally {
      await s2.close();
    }
  });

  test('a size too small for the headers is an input error naming the minimum', async () => {
    await expect(probe(spec(srv.port, { sizeBytes: 100 }))).rejects.toThrow(/minimum .* is \d+ bytes/);
    await expect(probe(spec(srv.port, { sizeBytes: 100 }))).rejects.toBeInstanceOf(ProbeInputError);
  });

  test('aborting rejects with AbortError and releases the socket', async () => {
    const ac = new AbortController();
    const p = probe(spec(srv.port, { sizeBytes: 1024 }), { signal: ac.signal, onStage: (e) => { if (e.stage === 'greeting') ac.abort(); } });
    await expect(p).rejects.toBeInstanceOf(AbortError);
  });
});

describe('rejections keep code, enhanced code, text and stage', () => {
  test('5xx at RCPT', async () => {
    const srv = await startSmtpServer({
      onRcptTo(addr, _s, cb) {
        const e = new Error('5.1.1 no such user') as Error & { responseCode: number };
        e.responseCode = 550;
        cb(addr.address.startsWith('bad') ? e : undefined);
      },
    });
    try {
      const r = await probe(spec(srv.port, { envelope: { from: 'a@x.test', to: ['bad@x.test'] } }));
      expect(r.outcome).toBe('rejected');
      expect(r.stage).toBe('rcpt');
      expect(r.reply?.code).toBe(550);
      expect(r.reply?.enhanced).toBe('5.1.1');
      expect(r.reply?.text).toMatch(/no such user/);
      expect(r.stages.data).toBeUndefined();
      expect(r.stages.quit).toBeGreaterThan(0); // we still said goodbye
      // one good, one bad: delivered, the bad one recorded
      const r2 = await probe(spec(srv.port, { envelope: { from: 'a@x.test', to: ['bad@x.test', 'good@x.test'] } }));
      expect(r2.outcome).toBe('delivered');
      expect(r2.recipients?.map((x) => x.code)).toEqual([550, 250]);
    } finally {
      await srv.close();
    }
  });

  test('552 after the body', async () => {
    const srv = await startSmtpServer({ size: 10_000 });
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 20_000 }));
      expect(r.outcome).toBe('rejected');
      expect(['dataAck', 'mail']).toContain(r.stage);
      expect(r.reply?.code).toBe(552);
    } finally {
      await srv.close();
    }
  });
});

describe('hostile servers end within their deadlines with a classified outcome', () => {
  test('no greeting → stalled@greeting after the stall window', async () => {
    const srv = await startRawServer(() => undefined);
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 500 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('greeting');
      expect(r.error?.code).toBe('ESTALL');
      expect(r.stages.greeting).toBeGreaterThanOrEqual(450);
      within(r, 500);
    } finally {
      await srv.close();
    }
  });

  test('greeting then silence → stalled@ehlo', async () => {
    const srv = await startRawServer((s) => s.write('220 hi\r\n'));
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 400 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('ehlo');
      expect(r.error?.lastCommand).toMatch(/^EHLO /);
      within(r, 400);
    } finally {
      await srv.close();
    }
  });

  test('greeting one byte at a time past the deadline → timeout@greeting (trickling is not a stall)', async () => {
    const srv = await startRawServer((s) => {
      const t = setInterval(() => { if (!s.destroyed) s.write('2'); }, 50);
      s.on('close', () => clearInterval(t));
    });
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 300, commandMs: 800 } }));
      expect(r.outcome).toBe('timeout');
      expect(r.stage).toBe('greeting');
      within(r, 800);
    } finally {
      await srv.close();
    }
  });

  test('354 then the server stops reading → stalled@body with bytes the kernel took', async () => {
    const srv = await startRawServer(scriptedSmtp({
      onDataStart: (s) => { s.write('354 go\r\n'); s.pause(); },
    }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 64 * 1024 * 1024, timeouts: { stallMs: 600 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('body');
      expect(r.bodyBytesWritten).toBeGreaterThan(0);
      expect(r.bodyBytesWritten).toBeLessThan(64 * 1024 * 1024);
      expect(r.stages.body).toBeGreaterThan(0);
      expect(r.stages.dataAck).toBeUndefined();
      if (r.tcp) {
        expect(r.tcp.at).toBe('stall');
        expect(r.tcp.bytesAcked).toBeGreaterThan(0);
      } else {
        expect(r.tcpUnavailable).toBeTruthy();
      }
      within(r, 600 + 5000);
    } finally {
      await srv.close();
    }
  }, 30_000);

  test('reset mid-body → reset@body', async () => {
    const srv = await startRawServer(scriptedSmtp({
      onBody: (s, n) => { if (n > 100_000) s.resetAndDestroy(); },
    }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 4 * 1024 * 1024 }));
      expect(r.outcome).toBe('reset');
      expect(['body', 'dataAck']).toContain(r.stage);
      expect(r.bodyBytesWritten).toBeGreaterThan(0);
    } finally {
      await srv.close();
    }
  });

  test('connection refused → refused@connect', async () => {
    const srv = await startRawServer(() => undefined);
    const port = srv.port;
    await srv.close();
    const r = await probe(spec(port));
    expect(r.outcome).toBe('refused');
    expect(r.stage).toBe('connect');
  });

  test('garbage instead of SMTP → protocol-error', async () => {
    const srv = await startRawServer((s) => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    try {
      const r = await probe(spec(srv.port));
      expect(r.outcome).toBe('protocol-error');
      expect(r.stage).toBe('greeting');
      expect(r.error?.code).toBe('EPROTOCOL');
    } finally {
      await srv.close();
    }
  });

  test('a 1 MiB line without CRLF → protocol-error, not unbounded memory', async () => {
    const srv = await startRawServer((s) => s.write(Buffer.alloc(1024 * 1024, 0x41)));
    try {
      const r = await probe(spec(srv.port));
      expect(r.outcome).toBe('protocol-error');
      expect(r.error?.message).toMatch(/longer than/);
    } finally {
      await srv.close();
    }
  });

  test('354 then close → reset@body or dataAck', async () => {
    const srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => s.end('354 go\r\n') }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 256 * 1024 }));
      expect(r.outcome).toBe('reset');
      expect(['body', 'dataAck']).toContain(r.stage);
    } finally {
      await srv.close();
    }
  });

  test('reply to DATA before the body → rejected@body when it is an error', async () => {
    const srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => s.write('354 go\r\n554 5.7.1 no thanks\r\n') }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 8 * 1024 * 1024 }));
      expect(r.outcome).toBe('rejected');
      expect(r.stage).toBe('body');
      expect(r.reply?.code).toBe(554);
    } finally {
      await srv.close();
    }
  });
});

describe('TLS', () => {
  const { key, cert } = selfSigned();

  test('STARTTLS with a self-signed certificate: verification on → tls-error', async () => {
    const srv = await startSmtpServer({ key, cert });
    try {
      const r = await probe(spec(srv.port, { target: { host: '127.0.0.1', port: srv.port, tls: 'require-starttls' } }));
      expect(r.outcome).toBe('tls-error');
      expect(r.stage).toBe('starttls');
      expect(r.error?.code).toBe('ETLS');
    } finally {
      await srv.close();
    }
  });

  test('STARTTLS with --insecure: delivered, version and cipher recorded, EHLO repeated', async () => {
    const srv = await startSmtpServer({ key, cert });
    try {
      const r = await probe(spec(srv.port, { insecure: true, target: { host: '127.0.0.1', port: srv.port, tls: 'starttls' } }));
      expect(r.outcome).toBe('delivered');
      expect(r.tls?.version).toMatch(/^TLSv1\.[23]$/);
      expect(r.tls?.cipher).toBeTruthy();
      expect(r.tls?.authorized).toBe(false);
      expect(r.stages.starttls).toBeGreaterThan(0);
      expect(r.capabilities?.some((c) => c === 'STARTTLS')).toBe(false); // capabilities are from the post-TLS EHLO
    } finally {
      await srv.close();
    }
  });

  test('implicit TLS (465 style)', async () => {
    const srv = await startSmtpServer({ key, cert, secure: true });
    try {
      const r = await probe(spec(srv.port, { insecure: true, target: { host: '127.0.0.1', port: srv.port, tls: 'implicit' } }));
      expect(r.outcome).toBe('delivered');
      expect(r.stages.tls).toBeGreaterThan(0);
      expect(r.tls).toBeDefined();
    } finally {
      await srv.close();
    }
  });

  test('require-starttls against a server without it → tls-error@ehlo; opportunistic carries on in plain text', async () => {
    const srv = await startSmtpServer();
    try {
      const r = await probe(spec(srv.port, { target: { host: '127.0.0.1', port: srv.port, tls: 'require-starttls' } }));
      expect(r.outcome).toBe('tls-error');
      expect(r.stage).toBe('ehlo');
      const r2 = await probe(spec(srv.port, { target: { host: '127.0.0.1', port: srv.port, tls: 'starttls' } }));
      expect(r2.outcome).toBe('delivered');
      expect(r2.tls).toBeUndefined();
    } finally {
      await srv.close();
    }
  });

  test('TLS handshake that stalls → stalled@tls', async () => {
    const srv = await startRawServer(() => undefined); // accepts TCP, never answers the ClientHello
    try {
      const r = await probe(spec(srv.port, { target: { host: '127.0.0.1', port: srv.port, tls: 'implicit' }, timeouts: { stallMs: 400 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('tls');
    } finally {
      await srv.close();
    }
  });
});

describe('AUTH', () => {
  const { key, cert } = selfSigned();
  const users: Record<string, string> = { alice: 's3cret-pass' };
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => {
    srv = await startSmtpServer({
      key, cert, authOptional: false, authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _s, cb) {
        if (users[auth.username!] === auth.password) cb(null, { user: auth.username });
        else cb(new Error('5.7.8 bad credentials'));
      },
    });
    process.env.MXPROBE_TEST_SECRET = 's3cret-pass';
    process.env.MXPROBE_TEST_WRONG = 'nope';
  });
  afterAll(async () => { await srv.close(); });

  for (const method of ['PLAIN', 'LOGIN'] as const) {
    test(`AUTH ${method} success; the secret appears nowhere in the result`, async () => {
      const r = await probe(spec(srv.port, { insecure: true, target: { host: '127.0.0.1', port: srv.port, tls: 'require-starttls' }, auth: { user: 'alice', passEnv: 'MXPROBE_TEST_SECRET', method } }));
      expect(r.outcome).toBe('delivered');
      expect(r.stages.auth).toBeGreaterThan(0);
      const json = JSON.stringify(r);
      expect(json).not.toContain('s3cret-pass');
      expect(json).not.toContain(Buffer.from('s3cret-pass').toString('base64'));
    });
  }

  test('AUTH failure → rejected@auth with 535, secret masked in lastCommand', async () => {
    const r = await probe(spec(srv.port, { insecure: true, target: { host: '127.0.0.1', port: srv.port, tls: 'require-starttls' }, auth: { user: 'alice', passEnv: 'MXPROBE_TEST_WRONG' } }));
    expect(r.outcome).toBe('rejected');
    expect(r.stage).toBe('auth');
    expect(r.reply?.code).toBe(535);
    expect(JSON.stringify(r)).not.toContain('nope');
    expect(JSON.stringify(r)).not.toContain(Buffer.from('\0alice\0nope').toString('base64'));
  });

  test('missing secret variable is an input error before anything is sent', async () => {
    await expect(probe(spec(srv.port, { auth: { user: 'alice', passEnv: 'MXPROBE_NOT_SET_ANYWHERE' } }))).rejects.toThrow(/MXPROBE_NOT_SET_ANYWHERE/);
  });
});

describe('proxies', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  beforeAll(async () => { srv = await startSmtpServer(); });
  afterAll(async () => { await srv.close(); });

  test('SOCKS5 (with credentials, never recorded)', async () => {
    const px = await startSocks5({ user: 'u', pass: 'proxy-secret' });
    try {
      const r = await probe(spec(srv.port, { path: { name: 'socks', proxy: `socks5://u:proxy-secret@127.0.0.1:${px.port}` } }));
      expect(r.outcome).toBe('delivered');
      expect(px.seen).toEqual([{ host: '127.0.0.1', port: srv.port }]);
      expect(r.proxy).toBe(`socks5://127.0.0.1:${px.port}`);
      expect(r.remotePort).toBe(px.port);
      expect(JSON.stringify(r)).not.toContain('proxy-secret');
      // wrong password → unreachable@connect with the proxy's reason
      const bad = await probe(spec(srv.port, { path: { name: 'socks', proxy: `socks5://u:wrong@127.0.0.1:${px.port}` } }));
      expect(bad.outcome).toBe('unreachable');
      expect(bad.stage).toBe('connect');
      expect(bad.error?.message).toMatch(/rejected the username/);
    } finally {
      await px.close();
    }
  });

  test('HTTP CONNECT, and a target the proxy cannot reach', async () => {
    const px = await startHttpConnect();
    try {
      const r = await probe(spec(srv.port, { path: { name: 'http', proxy: `http://127.0.0.1:${px.port}` } }));
      expect(r.outcome).toBe('delivered');
      expect(px.seen).toEqual([`127.0.0.1:${srv.port}`]);
      const dead = await startRawServer(() => undefined);
      const deadPort = dead.port;
      await dead.close();
      const bad = await probe(spec(deadPort, { path: { name: 'http', proxy: `http://127.0.0.1:${px.port}` } }));
      expect(bad.outcome).toBe('unreachable');
      expect(bad.stage).toBe('connect');
    } finally {
      await px.close();
    }
  });
});

test('what the server receives is the generator\'s message: headers, then bodyChunks(seed, bodyBytes)', async () => {
  const srv = await startSmtpServer({ keep: true });
  try {
    const r = await probe(spec(srv.port, { sizeBytes: 300_000, seed: 9, probeId: 'fixed-id' }));
    expect(r.outcome).toBe('delivered');
    const data = srv.received.at(-1)!.data!;
    expect(data.length).toBe(300_000);
    const sep = data.indexOf('\r\n\r\n') + 4;
    const headers = data.subarray(0, sep).toString('latin1');
    expect(headers).toMatch(/^Message-ID: <fixed-id\.9@mxprobe\.test>\r\n/);
    expect(headers).toContain('Auto-Submitted: auto-generated\r\n');
    expect(headers).toContain('X-Mxprobe: probe=fixed-id; size=300000; seed=9\r\n');
    expect(headers).toMatch(/Content-Type: multipart\/mixed; boundary=/);
    const expected = Buffer.concat([...bodyChunks(9, 300_000 - sep)]);
    expect(createHash('sha256').update(data.subarray(sep)).digest('hex')).toBe(createHash('sha256').update(expected).digest('hex'));
    // base64 attachment in 76-character lines
    const lines = data.subarray(sep).toString('latin1').split('\r\n');
    expect(lines.filter((l) => l.length === 76).length).toBeGreaterThan(3000);
  } finally {
    await srv.close();
  }
});

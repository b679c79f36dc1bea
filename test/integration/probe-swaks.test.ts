/** The swaks habits in the engine (issue 16): stage-end events, transcript, --quit-after, the partial result on abort, errors in words. */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probe, AbortError } from '../../src/probe/index.js';
import type { Stage, TranscriptLine } from '../../src/model.js';
import { spec, startSmtpServer } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

let srv: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  srv = await startSmtpServer({
    authOptional: true,
    authMethods: ['PLAIN', 'LOGIN'],
    onAuth(_a, _s, cb) { cb(null, { user: 'u' }); },
    allowInsecureAuth: true,
  });
});
afterAll(async () => { await srv.close(); });

describe('stage ends', () => {
  test('every stage that ran ends once, in order, with its duration, before probe() resolves', async () => {
    const ends: Array<{ stage: Stage; ms: number }> = [];
    const r = await probe(spec(srv.port), { onStageEnd: (e) => ends.push({ stage: e.stage, ms: e.ms }) });
    expect(r.outcome).toBe('delivered');
    expect(ends.map((e) => e.stage)).toEqual(['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit']);
    for (const e of ends) expect(e.ms).toBeCloseTo(r.stages[e.stage]!, 6);
  });
});

describe('transcript', () => {
  test('direction markers, rising timestamps, AUTH masked, the message elided to first/last lines and its size', async () => {
    process.env.MXPROBE_TEST_SECRET = 's3cret-pass';
    const live: TranscriptLine[] = [];
    const r = await probe(
      spec(srv.port, { sizeBytes: 64 * 1024, transcript: true, auth: { user: 'alice', passEnv: 'MXPROBE_TEST_SECRET', method: 'PLAIN' } }),
      { onTranscript: (l) => live.push(l) },
    );
    expect(r.outcome).toBe('delivered');
    const t = r.transcript!;
    expect(t).toEqual(live);
    expect(t[0]!.dir).toBe('*');
    expect(t[1]).toMatchObject({ dir: '<' });
    expect(t[1]!.text).toMatch(/^220 /);
    expect(t.find((l) => l.dir === '>' && l.text.startsWith('EHLO'))).toBeDefined();
    expect(t.some((l) => /^250-/.test(l.text))).toBe(true);
    for (let i = 1; i < t.length; i++) expect(t[i]!.tMs).toBeGreaterThanOrEqual(t[i - 1]!.tMs);
    const all = JSON.stringify(t);
    expect(all).toContain('AUTH PLAIN ****');
    expect(all).not.toContain(Buffer.from('\0alice\0s3cret-pass').toString('base64'));
    expect(all).not.toContain('s3cret-pass');
    expect(all).toContain('65,536 bytes on the wire');
    expect(t.find((l) => l.text.startsWith('Message-ID:'))).toBeDefined();
    expect(t.filter((l) => l.dir === '>').length).toBeLessThan(20); // no 64 KiB of base64 lines
    expect(t.at(-1)!.text).toMatch(/^221/);
  });

  test('absent unless asked for', async () => {
    const r = await probe(spec(srv.port));
    expect(r.transcript).toBeUndefined();
  });
});

describe('--quit-after', () => {
  test.each([
    ['connect', undefined, 'connect'],
    ['greeting', 'QUIT', 'greeting'],
    ['ehlo', 'QUIT', 'ehlo'],
    ['tls', 'QUIT', 'ehlo'],
    ['auth', 'QUIT', 'ehlo'],
    ['mail', 'QUIT', 'mail'],
    ['rcpt', 'QUIT', 'rcpt'],
  ] as const)('%s: outcome quit-after, nothing sent after it, QUIT said (%s)', async (point, quit, lastStage) => {
    const before = srv.received.length;
    const r = await probe(spec(srv.port, { quitAfter: point, transcript: true }));
    expect(r.outcome).toBe('quit-after');
    expect(r.quitAfter).toBe(point);
    expect(r.error).toBeUndefined();
    expect(r.stages.data).toBeUndefined();
    expect(r.stages[lastStage]).toBeGreaterThan(0);
    expect(srv.received.length).toBe(before);
    const sent = r.transcript!.filter((l) => l.dir === '>').map((l) => l.text);
    if (quit) expect(sent.at(-1)).toBe(quit);
    else expect(sent).toEqual([]);
  });
});

describe('abort', () => {
  test('the AbortError carries what was measured: outcome aborted, the stages so far', async () => {
    const silent = net.createServer((s) => s.write('220 hello\r\n'));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as net.AddressInfo).port;
    const ac = new AbortController();
    try {
      const p = probe(spec(port, { timeouts: { stallMs: 60_000 } }), { signal: ac.signal, onStage: (e) => { if (e.stage === 'ehlo') setTimeout(() => ac.abort(), 100); } });
      const err = (await p.catch((e) => e)) as AbortError;
      expect(err).toBeInstanceOf(AbortError);
      expect(err.result?.outcome).toBe('aborted');
      expect(err.result?.stage).toBe('ehlo');
      expect(err.result?.error?.code).toBe('EABORTED');
      expect(err.result?.stages.greeting).toBeGreaterThan(0);
      expect(err.result?.stages.ehlo).toBeGreaterThanOrEqual(90);
      expect(err.result?.durationMs).toBeLessThan(1000);
    } finally {
      silent.close();
    }
  });
});

describe('errors in words, stable codes kept', () => {
  const { key, cert } = selfSigned();

  test('--tls implicit against a plain server: "speaks plain SMTP on this port: use --tls starttls"', async () => {
    const r = await probe(spec(srv.port, { target: { host: '127.0.0.1', port: srv.port, tls: 'implicit' } }));
    expect(r.outcome).toBe('tls-error');
    expect(r.stage).toBe('tls');
    expect(r.error?.code).toBe('ETLS');
    expect(r.error?.message).toMatch(/the server speaks plain SMTP on this port.*use --tls starttls/);
    expect(r.error?.message).not.toMatch(/deps\/openssl|ssl3_get_record/);
  });

  test('a self-signed certificate names --insecure and NODE_EXTRA_CA_CERTS', async () => {
    const tlsSrv = await startSmtpServer({ key, cert });
    try {
      const r = await probe(spec(tlsSrv.port, { target: { host: '127.0.0.1', port: tlsSrv.port, tls: 'require-starttls' } }));
      expect(r.error?.code).toBe('ETLS');
      expect(r.error?.message).toMatch(/self-signed.*NODE_EXTRA_CA_CERTS.*--insecure/);
    } finally {
      await tlsSrv.close();
    }
  });

  test('a proxy that refuses the connection is named as the proxy', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await probe(spec(srv.port, { path: { name: 'p', proxy: `socks5://user:pw@127.0.0.1:${port}` } }));
    expect(r.outcome).toBe('refused');
    expect(r.error?.code).toBe('ECONNREFUSED');
    expect(r.error?.message).toMatch(new RegExp(`the proxy socks5://127\\.0\\.0\\.1:${port} refused the connection`));
    expect(r.error?.message).not.toContain('pw');
  });
});

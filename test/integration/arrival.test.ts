/**
 * The arrival check against a real IMAP server: Dovecot started by the test (passwd-file, Maildir, INBOX and Junk),
 * mail delivered into it by Dovecot's LDA behind an SMTP front on loopback (test/helpers/dovecot.ts says why not
 * Postfix). Every probe goes over SMTP on 127.0.0.1 through the real engine and is looked up over IMAP by the real
 * watcher: found in INBOX, found in Junk, never arrives (timeout with the reason), truncated on the way (the lab
 * relay's cut-after fault), and a wrong IMAP password (a clear error naming the variable, no secret in it).
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ArrivalEnvError, ArrivalWatcher, acceptedAtOf } from '../../src/arrival/index.js';
import type { Arrival, ArrivalSpec, ProbeResult } from '../../src/model.js';
import { probe } from '../../src/probe/index.js';
import { startRelay, type Relay } from '../../src/lab/relay.js';
import { secretForms } from '../../src/text.js';
import { dovecotAvailable, startDeliveringSmtp, startDovecot, type Dovecot } from '../helpers/dovecot.js';
import { spec } from '../helpers/servers.js';

const USER = 'probe';
const PASS = 'Imap-s3cret+Wq7/x';
const why = dovecotAvailable();
if (why) console.log(`arrival.test.ts skipped: ${why}`);

describe.skipIf(!!why)('arrival check against Dovecot', () => {
  let dc: Dovecot;
  let smtp: Awaited<ReturnType<typeof startDeliveringSmtp>>;
  let relay: Relay;
  let watcher: ArrivalWatcher;
  const env = { MXPROBE_T_IMAP: PASS, MXPROBE_T_IMAP_WRONG: 'not-the-password' };
  const arrivalSpec = (over: Partial<ArrivalSpec> = {}): ArrivalSpec => ({
    imap: `imap://${USER}@127.0.0.1:${dc.port}`,
    passEnv: 'MXPROBE_T_IMAP',
    folders: ['INBOX', 'Junk'],
    withinMs: 4000,
    delete: true,
    pollMs: 200,
    ...over,
  });

  beforeAll(async () => {
    dc = await startDovecot(USER, PASS);
    // junk@ lands in Junk (a spam filter's verdict), lost@ is accepted and dropped, everything else goes to INBOX
    smtp = await startDeliveringSmtp(dc, (rcpt) => (rcpt.startsWith('junk@') ? 'Junk' : rcpt.startsWith('lost@') ? undefined : 'INBOX'));
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: { kind: 'cut-after', bytes: 16 * 1024 } });
    watcher = await ArrivalWatcher.open(arrivalSpec(), env);
  }, 60_000);

  afterAll(async () => {
    await watcher?.close();
    await relay?.close();
    await smtp?.close();
    await dc?.stop();
  });

  async function send(to: string, over: Parameters<typeof spec>[1] = {}): Promise<{ r: ProbeResult; arrival: Arrival }> {
    const r = await probe(spec(smtp.port, { envelope: { from: 'probe@mxprobe.test', to: [to] }, sizeBytes: 64 * 1024, ...over }));
    expect(r.outcome).toBe('delivered');
    const arrival = await watcher.expect({ probeId: r.probeId, sizeBytes: r.sizeBytes, acceptedAt: acceptedAtOf(r) });
    return { r, arrival };
  }

  test('found in INBOX, whole and seed verified, then deleted', async () => {
    const { arrival } = await send('rcpt@mxprobe.test');
    expect(arrival).toMatchObject({ found: true, folder: 'INBOX', intact: true, deleted: true });
    expect(arrival.sizeBytes).toBeGreaterThanOrEqual(64 * 1024); // the LDA adds its headers
    expect(arrival.latencyMs).toBeGreaterThanOrEqual(0);
    expect(dc.count('INBOX')).toBe(0);
  });

  test('found in Junk', async () => {
    const { arrival } = await send('junk@mxprobe.test');
    expect(arrival).toMatchObject({ found: true, folder: 'Junk', intact: true });
  });

  test('accepted but never arrives: not found, with the folders and the wait in the reason', async () => {
    const { arrival } = await send('lost@mxprobe.test');
    expect(arrival.found).toBe(false);
    expect(arrival.reason).toBe('not found in INBOX, Junk within 4s');
  });

  test('truncated on the way (relay cut-after=16KiB): found, not intact, the reason says truncated', async () => {
    const { r, arrival } = await send('rcpt@mxprobe.test', { target: { host: '127.0.0.1', port: relay.port, tls: 'none' }, transcript: true });
    expect(r.transcript!.some((l) => l.dir === '<' && l.text.startsWith('221'))).toBe(true); // the relay passes what follows the cut message
    expect(arrival).toMatchObject({ found: true, folder: 'INBOX', intact: false });
    expect(arrival.sizeBytes).toBeLessThan(64 * 1024);
    expect(arrival.reason).toMatch(/^truncated: [\d,]+ bytes stored of 65,536 sent$/);
  });

  test('several probes in flight over the one connection are each found', async () => {
    const got = await Promise.all(['a@mxprobe.test', 'junk@mxprobe.test', 'b@mxprobe.test'].map((to) => send(to, { sizeBytes: 4096 })));
    expect(got.map((g) => g.arrival.folder)).toEqual(['INBOX', 'Junk', 'INBOX']);
    expect(got.every((g) => g.arrival.intact)).toBe(true);
  });

  test('a message the poll saw before its probe was looked for is still found (the run asks after QUIT)', async () => {
    // a lost probe keeps the poll loop running; the next probe's message lands while nobody looks for it yet
    const lost = await probe(spec(smtp.port, { envelope: { from: 'probe@mxprobe.test', to: ['lost@mxprobe.test'] } }));
    const waiting = watcher.expect({ probeId: lost.probeId, sizeBytes: lost.sizeBytes, acceptedAt: acceptedAtOf(lost) });
    const r = await probe(spec(smtp.port, { sizeBytes: 4096 }));
    expect(r.outcome).toBe('delivered');
    await new Promise((res) => setTimeout(res, 1000)); // several polls (200 ms) go past the message first
    const a = await watcher.expect({ probeId: r.probeId, sizeBytes: r.sizeBytes, acceptedAt: acceptedAtOf(r) });
    expect(a).toMatchObject({ found: true, folder: 'INBOX', intact: true });
    expect((await waiting).found).toBe(false);
  });

  test('wrong IMAP password: ArrivalEnvError naming the variable, the password in no form in the message', async () => {
    const err = await ArrivalWatcher.open(arrivalSpec({ passEnv: 'MXPROBE_T_IMAP_WRONG' }), env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArrivalEnvError);
    expect((err as Error).message).toMatch(/IMAP login to imap:\/\/probe@127\.0\.0\.1:\d+ refused .*check the password in \$MXPROBE_T_IMAP_WRONG/);
    for (const f of [...secretForms('not-the-password', USER), ...secretForms(PASS, USER)]) expect((err as Error).message).not.toContain(f);
  });

  test('a password variable that is not set is bad input, before connecting', async () => {
    await expect(ArrivalWatcher.open(arrivalSpec({ passEnv: 'MXPROBE_T_UNSET' }), env)).rejects.toMatchObject({ code: 'EINPUT', message: 'IMAP password: environment variable MXPROBE_T_UNSET is not set' });
  });
});

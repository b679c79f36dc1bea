/**
 * `mxprobe sink` as a user runs it: a child process on 127.0.0.1, probes sent with a raw SMTP client, SIGINT /
 * SIGTERM to stop; plus the usage and environment errors and their exit codes.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { loadSinkRecords, type SinkRecord } from '../../src/sink/index.js';
import { ensureBuilt, FROM, messageBytes, openTransaction, probeMessage, RawSmtp, runSinkCli, runSinkCliToExit, sendWhole, TO, type RunningSink } from './sink-helpers.js';

const KiB = 1024;
const MiB = 1024 * 1024;

let dir: string;
beforeAll(async () => {
  ensureBuilt();
  dir = await mkdtemp(path.join(os.tmpdir(), 'mxprobe-sink-cli-'));
}, 180_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const running: RunningSink[] = [];
afterEach(() => {
  while (running.length) running.pop()!.kill();
});
function start(args: string[]): RunningSink {
  const r = runSinkCli(args);
  running.push(r);
  return r;
}

describe('mxprobe sink', () => {
  test('one human line per probe, records to file and HTTP, SIGINT stops it cleanly with exit 0', async () => {
    const file = path.join(dir, 'records.jsonl');
    const s = start(['--listen', '127.0.0.1:0', '--record', file, '--http', '127.0.0.1:0']);
    const { port, httpPort } = await s.ready;
    expect(s.stderr()).toContain("greeting: immediate (smtp-server's 100 ms early-talker wait removed)");

    expect((await sendWhole(port, probeMessage('p-cli-1', 64 * KiB, 1).chunks() as Iterable<Buffer>)).code).toBe(250);
    const whole = await s.waitLine(/probe p-cli-1 /);
    expect(whole).toMatch(/^\d\d:\d\d:\d\d probe p-cli-1 {2}65536\/65536 bytes {2}verified {2}body \S+ {2}from 127\.0\.0\.1:\d+$/);

    const c = await openTransaction(port);
    await c.streamMessage(probeMessage('p-cli-2', 1 * MiB, 2).chunks() as Iterable<Buffer>, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    c.destroy();
    const partial = await s.waitLine(/probe p-cli-2 /);
    expect(partial).toMatch(/probe p-cli-2 {2}10000\/1048576 bytes {2}PARTIAL \(closed\) {2}last byte \S+ after DATA/);

    const http = await loadSinkRecords(`http://127.0.0.1:${httpPort}`);
    expect(http.filter((r) => r.kind === 'probe').map((r) => r.probeId)).toEqual(['p-cli-1', 'p-cli-2']);

    s.child.kill('SIGINT');
    expect(await s.exit).toBe(0);
    expect(s.stderr()).toContain('mxprobe sink stopped: 2 probes (1 verified, 1 partial), 0 other messages, 2 sessions');
    const fromFile = await loadSinkRecords(file);
    expect(fromFile).toHaveLength(4);
    expect(fromFile.find((r) => r.probeId === 'p-cli-2')).toMatchObject({ bodyBytes: 10_000, whole: false, ended: 'closed' });
  });

  test('header values from any client reach the terminal without control characters; --json keeps them exact', async () => {
    // an id of anything but ";" and white space is taken from X-Mxprobe: here a screen clear and an OSC title
    const hostileId = 'p-esc\x1b]0,pwned\x07\x1b[2Jx';
    const s = start(['--listen', '127.0.0.1:0']);
    const { port } = await s.ready;
    expect((await sendWhole(port, [messageBytes(hostileId, 4 * KiB, 3)])).code).toBe(250);
    const line = await s.waitLine(/probe p-esc/);
    expect(line).toContain('probe p-esc]0,pwned[2Jx  4096/4096 bytes');
    expect(line).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f]/);
    s.child.kill('SIGINT');
    expect(await s.exit).toBe(0);

    const j = start(['--listen', '127.0.0.1:0', '--json']);
    const jp = (await j.ready).port;
    expect((await sendWhole(jp, [messageBytes(hostileId, 4 * KiB, 3)])).code).toBe(250);
    const rec = JSON.parse(await j.waitLine(/"kind":"probe"/)) as SinkRecord;
    expect(rec.probeId).toBe(hostileId);
    j.child.kill('SIGINT');
    await j.exit;
  });

  test('--json: every record as one JSON line; SIGTERM exits 0', async () => {
    const s = start(['--listen', '127.0.0.1:0', '--json']);
    const { port } = await s.ready;
    await sendWhole(port, probeMessage('p-cli-json', 4 * KiB, 3).chunks() as Iterable<Buffer>);
    await s.waitLine(/"kind":"session"/);
    const recs = s.lines.map((l) => JSON.parse(l) as SinkRecord);
    expect(recs.map((r) => r.kind)).toEqual(['probe', 'session']);
    expect(recs[0]).toMatchObject({ probeId: 'p-cli-json', bodyBytes: 4 * KiB, whole: true, verified: true });
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
  });

  test('--reply rcpt=451 and --delay mail=300ms: the client sees them; a session without a message gets a line', async () => {
    const s = start(['--listen', '127.0.0.1:0', '--reply', 'rcpt=451 greylisted, try later', '--delay', 'mail=300ms']);
    const { port } = await s.ready;
    expect(s.stderr()).toContain('forced replies: rcpt=451');
    expect(s.stderr()).toContain('delays: mail=300ms');
    const c = await RawSmtp.connect(port);
    await c.reply();
    await c.cmd('EHLO client.mxprobe.test');
    const t = performance.now() - c.t0;
    const mail = await c.cmd(`MAIL FROM:<${FROM}>`);
    expect(mail.atMs - t).toBeGreaterThanOrEqual(280);
    const rcpt = await c.cmd(`RCPT TO:<${TO}>`);
    expect(rcpt.code).toBe(451);
    expect(rcpt.lines[0]).toContain('greylisted, try later');
    await c.cmd('QUIT');
    c.destroy();
    expect(await s.waitLine(/session /)).toMatch(/session {2}from 127\.0\.0\.1:\d+ {2}EHLO MAIL RCPT QUIT {2}ended completed {2}last reply 451 {2}\(no message\)/);
    s.child.kill('SIGINT');
    expect(await s.exit).toBe(0);
  });

  test('address in use → exit 3 naming the address', async () => {
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = await runSinkCliToExit(['--listen', `127.0.0.1:${port}`]);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`mxprobe: cannot listen on 127.0.0.1:${port}: address already in use`);
    } finally {
      busy.close();
    }
  });

  test('record file not writable → exit 3', async () => {
    const r = await runSinkCliToExit(['--listen', '127.0.0.1:0', '--record', path.join(dir, 'no/such/dir/x.jsonl')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot open the record file .* ENOENT/);
  });

  test.each([
    [['--reply', 'rcpt=250'], /reply code for rcpt must be 4xx or 5xx/],
    [['--reply', 'bogus=451'], /unknown stage "bogus" for --reply/],
    [['--reply', 'rcpt'], /expected STAGE=CODE/],
    [['--delay', 'mail=soon'], /not a duration/],
    [['--delay', 'quit=1s'], /unknown stage "quit" for --delay/],
    [['--implicit-tls'], /--implicit-tls needs --tls-cert and --tls-key/],
    [['--tls-cert', '/nonexistent.pem', '--tls-key', '/nonexistent.key'], /--tls-cert: cannot read \/nonexistent\.pem: ENOENT/],
    [['--listen', 'localhost:notaport'], /expected HOST:PORT/],
    [['--auth-user', 'u'], /AUTH needs both --auth-user and --auth-pass-env/],
    [['--size-limit', '12XB'], /not a byte size/],
    [['--frobnicate'], /unknown option/],
  ])('bad usage %j → exit 2 with a message naming it', async (args, re) => {
    const r = await runSinkCliToExit(['--listen', '127.0.0.1:0', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(re);
  });

  test('--help teaches: stages, output, exit codes', async () => {
    const r = await runSinkCliToExit(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--reply <stage=code[ text]>');
    expect(r.stdout).toContain('stages: connect, ehlo, mail, rcpt, data, dataAck');
    expect(r.stdout).toContain('stages: greeting, mail, rcpt, data, dataAck');
    expect(r.stdout).toContain('Exit codes: 0 stopped cleanly');
  });

  test('the record file is appended to, never truncated, across runs', async () => {
    const file = path.join(dir, 'append.jsonl');
    for (const id of ['p-app-1', 'p-app-2']) {
      const s = start(['--listen', '127.0.0.1:0', '--record', file]);
      const { port } = await s.ready;
      await sendWhole(port, probeMessage(id, 2 * KiB, 4).chunks() as Iterable<Buffer>);
      await s.waitLine(new RegExp(`probe ${id} `));
      s.child.kill('SIGINT');
      expect(await s.exit).toBe(0);
    }
    const text = await readFile(file, 'utf8');
    expect(text.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as SinkRecord).probeId).filter(Boolean)).toEqual(['p-app-1', 'p-app-2']);
  });
});

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import getTLSOptions from 'smtp-server/lib/tls-options.js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { minMessageSize } from '../../src/probe/message.js';
import { loadSinkRecords, SinkStartError, startSink, type Sink, type SinkRecord } from '../../src/sink/index.js';
import { FROM, messageBytes, openTransaction, probeMessage, RawSmtp, sendWhole, TO } from './sink-helpers.js';

const KiB = 1024;
const MiB = 1024 * 1024;

function sha256Of(chunks: Iterable<Buffer>): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

const verbs = (r: SinkRecord) => r.commands.map((c) => c.cmd);

/** Wait until the session record of the most recent connection is written. */
async function sessionRecord(sink: Sink, sessionId: string, timeoutMs = 10_000): Promise<SinkRecord> {
  const t0 = Date.now();
  for (;;) {
    const r = sink.records().find((x) => x.kind === 'session' && x.sessionId === sessionId);
    if (r) return r;
    if (Date.now() - t0 > timeoutMs) throw new Error(`no session record for ${sessionId}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

async function lastSessionRecord(sink: Sink, timeoutMs = 10_000): Promise<SinkRecord> {
  const t0 = Date.now();
  const before = sink.records().filter((x) => x.kind === 'session').length;
  for (;;) {
    const ss = sink.records().filter((x) => x.kind === 'session');
    if (ss.length > before) return ss[ss.length - 1]!;
    if (Date.now() - t0 > timeoutMs) throw new Error('no new session record');
    await new Promise((res) => setTimeout(res, 10));
  }
}

/** Write and wait until the bytes left this process, then give the sink time to read them. */
async function flushed(c: RawSmtp): Promise<void> {
  await new Promise<void>((resolve) => c.sock.write(Buffer.alloc(0), () => resolve()));
  await new Promise((r) => setTimeout(r, 150));
}

describe('integrity: every size arrives whole and verified', () => {
  let sink: Sink;
  beforeAll(async () => {
    sink = await startSink();
  });
  afterAll(async () => {
    await sink.close();
  });

  const minSize = minMessageSize({ probeId: 'p-int-0', seed: 11, from: FROM, to: [TO] });
  const sizes = [minSize, 1 * KiB, 4099, 64 * KiB, 1 * MiB + 7, 16 * MiB, 64 * MiB];
  for (const [i, size] of sizes.entries()) {
    test(`${size} bytes${i === 0 ? ' (the smallest probe: text/plain body)' : ''}`, async () => {
      const id = `p-int-${i}`;
      const seed = i === 0 ? 11 : 1000 + (size % 9973);
      const msg = probeMessage(id, size, seed);
      const reply = await sendWhole(sink.port, msg.chunks() as Iterable<Buffer>);
      expect(reply.code).toBe(250);
      const rec = await sink.waitFor(id, 60_000);
      expect(rec).toBeDefined();
      expect(rec).toMatchObject({ kind: 'probe', probeId: id, expectedBytes: size, bodyBytes: size, whole: true, verified: true, ended: 'completed' });
      expect(rec!.reply?.code).toBe(250);
      expect(rec!.sha256).toBe(sha256Of(msg.chunks() as Iterable<Buffer>));
      expect(verbs(rec!)).toEqual(['EHLO', 'MAIL', 'RCPT', 'DATA', '.']);
      expect(rec!.dataStartMs).toBeLessThanOrEqual(rec!.firstByteMs!);
      expect(rec!.firstByteMs).toBeLessThanOrEqual(rec!.lastByteMs!);
      expect(rec!.lastByteMs).toBeLessThanOrEqual(rec!.reply!.tMs!);
      expect(rec!.headerBytes).toBeGreaterThan(100);
    }, 120_000);
  }

  test('a flipped byte in the body: whole but not verified', async () => {
    const id = 'p-tampered';
    const b = messageBytes(id, 64 * KiB, 5);
    const i = b.length - 2000;
    expect([13, 10, 46]).not.toContain(b[i]);
    b[i] = b[i] === 0x41 ? 0x42 : 0x41;
    await sendWhole(sink.port, [b]);
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ kind: 'probe', bodyBytes: 64 * KiB, whole: true, verified: false });
  });

  test('headers added on the way (a relay): the body still verifies', async () => {
    const id = 'p-relayed';
    const received = Buffer.from('Received: from relay.mxprobe.test by sink.mxprobe.test; Thu, 02 Jan 2025 03:04:05 +0000\r\n');
    const b = Buffer.concat([received, messageBytes(id, 64 * KiB, 6)]);
    await sendWhole(sink.port, [b]);
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ expectedBytes: 64 * KiB, bodyBytes: 64 * KiB + received.length, whole: true, verified: true });
  });

  test('the header block split into 1-byte writes still parses', async () => {
    const id = 'p-dribble';
    const b = messageBytes(id, 8 * KiB, 8);
    const c = await openTransaction(sink.port);
    for (let i = 0; i < 400; i++) {
      await c.write(b.subarray(i, i + 1));
      if (i % 50 === 0) await new Promise((r) => setImmediate(r));
    }
    await c.write(b.subarray(400));
    await c.write(Buffer.from('.\r\n'));
    expect((await c.reply()).code).toBe(250);
    c.destroy();
    expect(await sink.waitFor(id, 10_000)).toMatchObject({ bodyBytes: 8 * KiB, whole: true, verified: true });
  });

  test('other mail: counted exactly as message bytes (dots un-stuffed), hashed, no probe id', async () => {
    const message = Buffer.from('Subject: not a probe\r\n\r\n.leading dot\r\n..two dots\r\nlast line\r\n', 'latin1');
    const onWire = Buffer.from(message.toString('latin1').replace(/^\./gm, '..'), 'latin1');
    expect(onWire.length).toBe(message.length + 2);
    const seen = new Promise<SinkRecord>((resolve) => {
      const off = sink.onRecord((r) => {
        if (r.kind === 'message') {
          off();
          resolve(r);
        }
      });
    });
    await sendWhole(sink.port, [onWire]);
    const rec = await seen;
    expect(rec.probeId).toBeUndefined();
    expect(rec).toMatchObject({ bodyBytes: message.length, whole: true, ended: 'completed' });
    expect(rec.verified).toBeUndefined();
    expect(rec.sha256).toBe(createHash('sha256').update(message).digest('hex'));
  });

  test('pipelined MAIL, RCPT and DATA', async () => {
    const id = 'p-pipelined';
    const c = await RawSmtp.connect(sink.port);
    expect((await c.reply()).code).toBe(220);
    expect((await c.cmd('EHLO client.mxprobe.test')).lines.join('\n')).toContain('PIPELINING');
    await c.write(Buffer.from(`MAIL FROM:<${FROM}>\r\nRCPT TO:<${TO}>\r\nDATA\r\n`));
    expect([(await c.reply()).code, (await c.reply()).code, (await c.reply()).code]).toEqual([250, 250, 354]);
    await c.streamMessage(probeMessage(id, 256 * KiB, 9).chunks() as Iterable<Buffer>);
    await c.write(Buffer.from('.\r\nQUIT\r\n'));
    expect((await c.reply()).code).toBe(250);
    expect((await c.reply()).code).toBe(221);
    expect(await sink.waitFor(id, 10_000)).toMatchObject({ bodyBytes: 256 * KiB, whole: true, verified: true });
  });
});

describe('cut, reset and silent connections are recorded as partial with exact byte counts', () => {
  let sink: Sink;
  beforeAll(async () => {
    sink = await startSink({ silentTimeoutMs: 700 });
  });
  afterAll(async () => {
    await sink.close();
  });

  test('client closes (FIN) mid-body: partial, exactly the bytes sent, ended closed', async () => {
    const id = 'p-cut-fin';
    const c = await openTransaction(sink.port);
    const sent = await c.streamMessage(probeMessage(id, 1 * MiB, 21).chunks() as Iterable<Buffer>, 100_003);
    expect(sent).toBe(100_003);
    await flushed(c);
    c.destroy();
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ kind: 'probe', expectedBytes: 1 * MiB, bodyBytes: 100_003, whole: false, ended: 'closed' });
    expect(rec!.verified).toBeUndefined();
    expect(rec!.sha256).toBeUndefined();
    expect(verbs(rec!)).toEqual(['EHLO', 'MAIL', 'RCPT', 'DATA']);
    expect(rec!.lastByteMs).toBeGreaterThanOrEqual(rec!.dataStartMs!);
    expect(rec!.reply).toBeUndefined();
    const session = await sessionRecord(sink, rec!.sessionId);
    expect(session).toMatchObject({ ended: 'closed', messages: 1, bodyBytes: 100_003, whole: false });
  });

  test('client resets (RST) mid-body: partial, exact bytes, ended reset', async () => {
    const id = 'p-cut-rst';
    const c = await openTransaction(sink.port);
    await c.streamMessage(probeMessage(id, 1 * MiB, 22).chunks() as Iterable<Buffer>, 61_440);
    await flushed(c);
    c.reset();
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ bodyBytes: 61_440, expectedBytes: 1 * MiB, whole: false, ended: 'reset' });
  });

  test('cut inside the header block, after X-Mxprobe: the probe is still identified', async () => {
    const id = 'p-cut-head';
    const b = messageBytes(id, 64 * KiB, 23);
    const cut = b.indexOf('MIME-Version:');
    expect(cut).toBeGreaterThan(0);
    const c = await openTransaction(sink.port);
    await c.write(b.subarray(0, cut));
    await flushed(c);
    c.destroy();
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ probeId: id, bodyBytes: cut, expectedBytes: 64 * KiB, whole: false, ended: 'closed' });
    expect(rec!.headerBytes).toBeUndefined();
  });

  test('client goes silent mid-body: the sink times out (421), ended client-silent', async () => {
    const id = 'p-silent';
    const c = await openTransaction(sink.port);
    await c.streamMessage(probeMessage(id, 1 * MiB, 24).chunks() as Iterable<Buffer>, 50_000);
    const r = await c.reply(10_000);
    expect(r.code).toBe(421);
    const rec = await sink.waitFor(id, 10_000);
    expect(rec).toMatchObject({ bodyBytes: 50_000, whole: false, ended: 'client-silent' });
    const session = await sessionRecord(sink, rec!.sessionId);
    expect(session.ended).toBe('client-silent');
    expect(session.reply?.code).toBe(421);
    c.destroy();
  });

  test('client goes silent before DATA: session record says client-silent after MAIL', async () => {
    const c = await RawSmtp.connect(sink.port);
    await c.reply();
    await c.cmd('EHLO client.mxprobe.test');
    await c.cmd(`MAIL FROM:<${FROM}>`);
    const next = lastSessionRecord(sink);
    expect((await c.reply(10_000)).code).toBe(421);
    const s = await next;
    expect(s).toMatchObject({ kind: 'session', ended: 'client-silent', messages: 0, bodyBytes: 0 });
    expect(verbs(s)).toEqual(['EHLO', 'MAIL']);
    c.destroy();
  });

  test('sink shut down mid-body: partial recorded as shutdown', async () => {
    const own = await startSink();
    const id = 'p-shutdown';
    const c = await openTransaction(own.port);
    await c.streamMessage(probeMessage(id, 1 * MiB, 25).chunks() as Iterable<Buffer>, 30_000);
    await flushed(c);
    await own.close();
    const rec = own.byProbe(id);
    expect(rec).toMatchObject({ bodyBytes: 30_000, whole: false, ended: 'shutdown' });
    expect(own.records().find((r) => r.kind === 'session')?.ended).toBe('shutdown');
    c.destroy();
  });
});

describe("the receiver's kernel view: the sink reads its own socket (ss) at 354, at the end, when the client goes silent", () => {
  let sink: Sink;
  beforeAll(async () => {
    sink = await startSink({ silentTimeoutMs: 700 });
  });
  afterAll(async () => {
    await sink.close();
  });
  const linux = process.platform === 'linux';

  test.runIf(linux)('a whole message: a snapshot at 354 and one at the end, with the handshake and every byte received', async () => {
    const id = 'p-tcp-whole';
    // the client stays connected after the reply (the sink does not hold its reply for the end reading)
    const c = await openTransaction(sink.port);
    await c.streamMessage(probeMessage(id, 256 * KiB, 31).chunks() as Iterable<Buffer>);
    await c.write(Buffer.from('.\r\n'));
    expect((await c.reply(10_000)).code).toBe(250);
    const rec = (await sink.waitFor(id, 10_000))!;
    c.destroy();
    expect(rec.tcp?.map((t) => t.at)).toEqual(['data', 'end']);
    const [atData, atEnd] = rec.tcp!;
    for (const t of rec.tcp!) {
      expect(t.state).toBe('ESTAB');
      expect(t.mss).toBeGreaterThan(0);
      expect(t.advMss).toBeGreaterThan(0);
      expect(Array.isArray(t.options)).toBe(true);
      expect(t.raw).toBeUndefined(); // the record keeps the fields, not ss's line
    }
    // the kernel counts the whole connection: the dialogue before DATA, then the message and its terminator
    expect(atEnd!.bytesReceived!).toBeGreaterThan(256 * KiB);
    expect(atEnd!.bytesReceived!).toBeGreaterThan(atData!.bytesReceived!);
    expect(atEnd!.wscale).toEqual(atData!.wscale);
  });

  test.runIf(linux)('a client that goes silent mid-body: the last snapshot is taken before the 421 closes the socket', async () => {
    const id = 'p-tcp-silent';
    const c = await openTransaction(sink.port);
    await c.streamMessage(probeMessage(id, 1 * MiB, 32).chunks() as Iterable<Buffer>, 50_000);
    expect((await c.reply(10_000)).code).toBe(421);
    const rec = (await sink.waitFor(id, 10_000))!;
    expect(rec.ended).toBe('client-silent');
    expect(rec.tcp?.map((t) => t.at)).toEqual(['data', 'silent']);
    expect(rec.tcp![1]!.bytesReceived!).toBeGreaterThanOrEqual(50_000);
    c.destroy();
  });

  test.runIf(linux)('a client that quits at once after the reply: the 354 reading still holds the handshake', async () => {
    const id = 'p-tcp-quit';
    expect((await sendWhole(sink.port, probeMessage(id, 4 * KiB, 34).chunks() as Iterable<Buffer>)).code).toBe(250);
    const rec = (await sink.waitFor(id, 10_000))!;
    expect(rec.tcp![0]).toMatchObject({ at: 'data', state: 'ESTAB' });
    expect(rec.tcp![0]!.advMss).toBeGreaterThan(0);
    for (const t of rec.tcp!) expect(t.mss).toBeGreaterThan(0); // a reading of a closed socket is not kept
  });

  test('tcpEvidence: false records no kernel view', async () => {
    const quiet = await startSink({ tcpEvidence: false });
    try {
      const id = 'p-tcp-off';
      await sendWhole(quiet.port, probeMessage(id, 4 * KiB, 33).chunks() as Iterable<Buffer>);
      expect((await quiet.waitFor(id, 10_000))!.tcp).toBeUndefined();
    } finally {
      await quiet.close();
    }
  });
});

describe('forced replies and delays for testing clients', () => {
  test('rcpt=451: the client sees 451 at RCPT; the session records it', async () => {
    const sink = await startSink({ replies: { rcpt: { code: 451 } } });
    try {
      const c = await RawSmtp.connect(sink.port);
      await c.reply();
      await c.cmd('EHLO client.mxprobe.test');
      await c.cmd(`MAIL FROM:<${FROM}>`);
      const r = await c.cmd(`RCPT TO:<${TO}>`);
      expect(r.code).toBe(451);
      expect(r.lines[0]).toContain('forced 451 at RCPT');
      expect((await c.cmd('DATA')).code).toBe(503);
      await c.cmd('QUIT');
      c.destroy();
      const s = await lastSessionRecord(sink);
      expect(s).toMatchObject({ ended: 'completed', messages: 0 });
      expect(s.reply?.code).toBe(503);
      expect(verbs(s)).toEqual(['EHLO', 'MAIL', 'RCPT', 'DATA', 'QUIT']);
    } finally {
      await sink.close();
    }
  });

  test('connect, ehlo, mail and data overrides', async () => {
    const refuse = await startSink({ replies: { connect: { code: 554, text: 'go away' } } });
    try {
      const c = await RawSmtp.connect(refuse.port);
      const next = lastSessionRecord(refuse);
      const g = await c.reply();
      expect(g.code).toBe(554);
      expect(g.lines[0]).toContain('go away');
      expect((await next).ended).toBe('rejected');
      c.destroy();
    } finally {
      await refuse.close();
    }
    const sink = await startSink({ replies: { ehlo: { code: 550 }, mail: { code: 553, text: 'sender refused' } } });
    try {
      const c = await RawSmtp.connect(sink.port);
      await c.reply();
      expect((await c.cmd('EHLO client.mxprobe.test')).code).toBe(550);
      expect((await c.cmd('HELO client.mxprobe.test')).code).toBe(550);
      c.destroy();
    } finally {
      await sink.close();
    }
    const sink2 = await startSink({ replies: { mail: { code: 553, text: 'sender refused' } } });
    try {
      const c = await RawSmtp.connect(sink2.port);
      await c.reply();
      await c.cmd('EHLO client.mxprobe.test');
      const r = await c.cmd(`MAIL FROM:<${FROM}>`);
      expect(r.code).toBe(553);
      expect(r.lines[0]).toContain('sender refused');
      c.destroy();
    } finally {
      await sink2.close();
    }
    const sink3 = await startSink({ replies: { data: { code: 554 } } });
    try {
      const c = await RawSmtp.connect(sink3.port);
      await c.reply();
      await c.cmd('EHLO client.mxprobe.test');
      await c.cmd(`MAIL FROM:<${FROM}>`);
      await c.cmd(`RCPT TO:<${TO}>`);
      expect((await c.cmd('DATA')).code).toBe(554);
      c.destroy();
    } finally {
      await sink3.close();
    }
  });

  test('dataAck=452: the whole message is read, verified, then refused', async () => {
    const sink = await startSink({ replies: { dataAck: { code: 452, text: 'try later' } } });
    try {
      const id = 'p-ack452';
      const r = await sendWhole(sink.port, probeMessage(id, 64 * KiB, 31).chunks() as Iterable<Buffer>);
      expect(r.code).toBe(452);
      const rec = await sink.waitFor(id, 10_000);
      expect(rec).toMatchObject({ whole: true, verified: true, ended: 'rejected', reply: { code: 452, text: 'try later' } });
    } finally {
      await sink.close();
    }
  });

  test('delays: mail=300ms and dataAck=300ms hold the replies; the idle timer does not blame the client', async () => {
    const sink = await startSink({ delaysMs: { mail: 300, dataAck: 300 }, silentTimeoutMs: 200 });
    try {
      const id = 'p-delayed';
      const c = await RawSmtp.connect(sink.port);
      await c.reply();
      await c.cmd('EHLO client.mxprobe.test');
      const t = performance.now() - c.t0;
      const mail = await c.cmd(`MAIL FROM:<${FROM}>`);
      expect(mail.code).toBe(250);
      expect(mail.atMs - t).toBeGreaterThanOrEqual(280);
      await c.cmd(`RCPT TO:<${TO}>`);
      await c.cmd('DATA');
      await c.streamMessage(probeMessage(id, 4 * KiB, 32).chunks() as Iterable<Buffer>);
      const t2 = performance.now() - c.t0;
      await c.write(Buffer.from('.\r\n'));
      const ack = await c.reply();
      expect(ack.code).toBe(250);
      expect(ack.atMs - t2).toBeGreaterThanOrEqual(280);
      const rec = await sink.waitFor(id, 10_000);
      expect(rec!.reply!.tMs! - rec!.lastByteMs!).toBeGreaterThanOrEqual(280);
      c.destroy();
    } finally {
      await sink.close();
    }
  });

  test('size limit: SIZE advertised; a bigger message is read to its end and refused with 552', async () => {
    const sink = await startSink({ sizeLimitBytes: 100_000 });
    try {
      const c = await RawSmtp.connect(sink.port);
      await c.reply();
      expect((await c.cmd('EHLO client.mxprobe.test')).lines.join('\n')).toMatch(/^250[- ]SIZE 100000$/m);
      c.destroy();
      const id = 'p-too-big';
      const r = await sendWhole(sink.port, probeMessage(id, 200 * KiB, 33).chunks() as Iterable<Buffer>);
      expect(r.code).toBe(552);
      const rec = await sink.waitFor(id, 10_000);
      expect(rec).toMatchObject({ bodyBytes: 200 * KiB, ended: 'rejected', reply: { code: 552 } });
      expect(rec!.verified).toBeUndefined();
    } finally {
      await sink.close();
    }
  });
});

describe('greeting', () => {
  test('no 100 ms early-talker wait: a client that talks before the greeting is served, not refused', async () => {
    const sink = await startSink();
    try {
      expect(sink.greetingDelayMs).toBe(0);
      const s = net.connect(sink.port, '127.0.0.1');
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.write('EHLO early.mxprobe.test\r\n'); // before any greeting could have arrived
      const t0 = Date.now();
      while (!/^250 /m.test(text) && !/^421 /m.test(text) && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
      expect(text).toMatch(/^220 /);
      expect(text).not.toMatch(/421/);
      expect(text).toMatch(/^250 /m);
      s.destroy();
    } finally {
      await sink.close();
    }
  });

  test('figures: greeting latency and sequential sessions/s, sink vs. a stock smtp-server', async () => {
    const sessions = 40;
    const measure = async (port: number) => {
      const greet: number[] = [];
      const t0 = performance.now();
      for (let i = 0; i < sessions; i++) {
        const c = await RawSmtp.connect(port);
        const g = await c.reply();
        greet.push(g.atMs);
        await c.cmd('QUIT');
        c.destroy();
      }
      greet.sort((a, b) => a - b);
      return { medianGreetingMs: greet[greet.length >> 1]!, sessionsPerSec: sessions / ((performance.now() - t0) / 1000) };
    };
    const sink = await startSink();
    const stock = new SMTPServer({ logger: false, disableReverseLookup: true, authOptional: true, disabledCommands: ['AUTH', 'STARTTLS'], hideSTARTTLS: true });
    stock.listen(0, '127.0.0.1');
    await once(stock.server, 'listening');
    try {
      const a = await measure(sink.port);
      const b = await measure((stock.server.address() as net.AddressInfo).port);
      console.log(
        `greeting: sink median ${a.medianGreetingMs.toFixed(2)} ms, ${a.sessionsPerSec.toFixed(0)} sessions/s sequential; ` +
          `stock smtp-server median ${b.medianGreetingMs.toFixed(2)} ms, ${b.sessionsPerSec.toFixed(1)} sessions/s`,
      );
      // the stock server waits 100 ms before every greeting; the sink does not wait at all
      expect(b.medianGreetingMs).toBeGreaterThanOrEqual(95);
      expect(a.medianGreetingMs).toBeLessThan(b.medianGreetingMs);
    } finally {
      await sink.close();
      await new Promise<void>((r) => stock.close(() => r()));
    }
  });

  test('greeting=300ms delays the banner', async () => {
    const sink = await startSink({ delaysMs: { greeting: 300 } });
    try {
      const c = await RawSmtp.connect(sink.port);
      const g = await c.reply();
      expect(g.code).toBe(220);
      expect(g.atMs).toBeGreaterThanOrEqual(280);
      c.destroy();
    } finally {
      await sink.close();
    }
  });
});

describe('TLS and AUTH', () => {
  const { key, cert } = getTLSOptions();

  test('STARTTLS: advertised, upgraded, probe verified, byte counts are plaintext bytes', async () => {
    const sink = await startSink({ tls: { key: key as string, cert: cert as string } });
    try {
      const c0 = await RawSmtp.connect(sink.port);
      await c0.reply();
      expect((await c0.cmd('EHLO client.mxprobe.test')).lines.join('\n')).toContain('STARTTLS');
      c0.destroy();
      const id = 'p-starttls';
      const r = await sendWhole(sink.port, probeMessage(id, 1 * MiB, 41).chunks() as Iterable<Buffer>, { starttls: true });
      expect(r.code).toBe(250);
      expect(await sink.waitFor(id, 10_000)).toMatchObject({ bodyBytes: 1 * MiB, whole: true, verified: true });
      const s = await lastSessionRecord(sink);
      expect(s.tls).toMatch(/^TLSv1\.[23]$/);
      expect(verbs(s)).toEqual(['EHLO', 'STARTTLS', 'EHLO', 'MAIL', 'RCPT', 'DATA', '.', 'QUIT']);

      const cut = 'p-starttls-cut';
      const c = await openTransaction(sink.port, { starttls: true });
      await c.streamMessage(probeMessage(cut, 1 * MiB, 42).chunks() as Iterable<Buffer>, 77_777);
      await flushed(c);
      c.destroy();
      expect(await sink.waitFor(cut, 10_000)).toMatchObject({ bodyBytes: 77_777, whole: false });
    } finally {
      await sink.close();
    }
  });

  test('implicit TLS: probe verified; STARTTLS not offered', async () => {
    const sink = await startSink({ tls: { key: key as string, cert: cert as string, implicit: true } });
    try {
      const id = 'p-implicit';
      const r = await sendWhole(sink.port, probeMessage(id, 256 * KiB, 43).chunks() as Iterable<Buffer>, { implicitTls: true });
      expect(r.code).toBe(250);
      expect(await sink.waitFor(id, 10_000)).toMatchObject({ bodyBytes: 256 * KiB, whole: true, verified: true });
      expect((await lastSessionRecord(sink)).tls).toMatch(/^TLSv1\.[23]$/);
      const c = await RawSmtp.connect(sink.port, { implicitTls: true });
      expect((await c.reply()).code).toBe(220);
      expect((await c.cmd('EHLO client.mxprobe.test')).lines.join('\n')).not.toContain('STARTTLS');
      c.destroy();
    } finally {
      await sink.close();
    }
  });

  test('AUTH: required when users are configured, wrong password refused, credentials never recorded', async () => {
    const sink = await startSink({ authUsers: { alice: 's3cret' } });
    try {
      const c = await RawSmtp.connect(sink.port);
      await c.reply();
      expect((await c.cmd('EHLO client.mxprobe.test')).lines.join('\n')).toMatch(/AUTH PLAIN LOGIN/);
      expect((await c.cmd(`MAIL FROM:<${FROM}>`)).code).toBe(530);
      expect((await c.cmd(`AUTH PLAIN ${Buffer.from('\0alice\0wrong').toString('base64')}`)).code).toBe(535);
      expect((await c.cmd('AUTH LOGIN')).code).toBe(334);
      expect((await c.cmd(Buffer.from('alice').toString('base64'))).code).toBe(334);
      expect((await c.cmd(Buffer.from('s3cret').toString('base64'))).code).toBe(235);
      expect((await c.cmd(`MAIL FROM:<${FROM}>`)).code).toBe(250);
      await c.cmd('QUIT');
      c.destroy();
      const s = await lastSessionRecord(sink);
      expect(s.user).toBe('alice');
      expect(verbs(s)).toEqual(['EHLO', 'MAIL', 'AUTH', 'AUTH', 'MAIL', 'QUIT']);
      expect(JSON.stringify(s)).not.toContain(Buffer.from('s3cret').toString('base64'));

      const id = 'p-auth';
      expect((await sendWhole(sink.port, probeMessage(id, 2 * KiB, 44).chunks() as Iterable<Buffer>, { auth: ['alice', 's3cret'] })).code).toBe(250);
      expect(await sink.waitFor(id, 10_000)).toMatchObject({ whole: true, verified: true });
    } finally {
      await sink.close();
    }
  });
});

describe('records: memory, file, HTTP', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxprobe-sink-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('records are appended to the file and served over HTTP; both load back identically', async () => {
    const file = path.join(dir, 'sink.jsonl');
    const sink = await startSink({ record: file, http: { port: 0 } });
    expect(sink.httpPort).toBeGreaterThan(0);
    const ids = ['p-rec-1', 'p-rec-2'];
    for (const [i, id] of ids.entries()) await sendWhole(sink.port, probeMessage(id, 16 * KiB, 50 + i).chunks() as Iterable<Buffer>);
    for (const id of ids) await sink.waitFor(id, 10_000);
    await lastSessionRecord(sink).catch(() => undefined);
    while (sink.records().filter((r) => r.kind === 'session').length < 2) await new Promise((r) => setTimeout(r, 10));

    const base = `http://127.0.0.1:${sink.httpPort}`;
    const list = await fetch(`${base}/records`);
    expect(list.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await list.text()).trim().split('\n').map((l) => JSON.parse(l) as SinkRecord);
    expect(lines).toEqual(sink.records());
    const one = await fetch(`${base}/records/p-rec-2`);
    expect(one.status).toBe(200);
    expect(await one.json()).toEqual(sink.byProbe('p-rec-2'));
    expect((await fetch(`${base}/records/p-nope`)).status).toBe(404);
    const probes = (await (await fetch(`${base}/records?kind=probe`)).text()).trim().split('\n');
    expect(probes).toHaveLength(2);
    expect(await loadSinkRecords(base)).toEqual(sink.records());

    const inMemory = sink.records();
    await sink.close();
    expect(await loadSinkRecords(file)).toEqual(inMemory);
  });

  test('loading from a URL where no sink listens, or a wrong endpoint: source errors naming the URL', async () => {
    const free = net.createServer();
    await new Promise<void>((r) => free.listen(0, '127.0.0.1', () => r()));
    const port = (free.address() as net.AddressInfo).port;
    await new Promise<void>((r) => free.close(() => r()));
    const down = await loadSinkRecords(`http://127.0.0.1:${port}`).catch((e: unknown) => e);
    expect(down).toMatchObject({ code: 'ESOURCE' });
    expect((down as Error).message).toBe(`cannot fetch sink records from http://127.0.0.1:${port}/records: ECONNREFUSED`);
    const sink = await startSink({ http: {} });
    try {
      const wrong = await loadSinkRecords(`http://127.0.0.1:${sink.httpPort}/nope`).catch((e: unknown) => e);
      expect((wrong as Error).message).toBe(`cannot fetch sink records from http://127.0.0.1:${sink.httpPort}/nope: HTTP 404 Not Found`);
    } finally {
      await sink.close();
    }
  });

  test('loading from a URL that never ends or trickles: cut off in bytes and in time (ESOURCE), no password shown', async () => {
    const http = await import('node:http');
    const timers = new Set<NodeJS.Timeout>();
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      if (req.url?.startsWith('/endless')) {
        const chunk = Buffer.alloc(64 * 1024, 0x7b);
        const pump = () => { while (res.write(chunk)); };
        res.on('drain', pump);
        pump();
      } else {
        const t = setInterval(() => res.write('{'), 50);
        timers.add(t);
        res.on('close', () => clearInterval(t));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const big = await loadSinkRecords(`http://u:Sh0wN0t@127.0.0.1:${port}/endless`, { maxBytes: 1024 * 1024 }).catch((e: unknown) => e);
      expect(big).toMatchObject({ code: 'ESOURCE' });
      expect((big as Error).message).toBe(`sink records from http://127.0.0.1:${port}/endless: more than 1 MiB, not read further (is this a sink?)`);
      const slow = await loadSinkRecords(`http://127.0.0.1:${port}/slow`, { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(slow).toMatchObject({ code: 'ESOURCE' });
      expect((slow as Error).message).toContain('not complete within 0.3 s');
    } finally {
      for (const t of timers) clearInterval(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test('waitFor resolves undefined after its timeout', async () => {
    const sink = await startSink();
    try {
      const t0 = performance.now();
      expect(await sink.waitFor('p-never', 100)).toBeUndefined();
      expect(performance.now() - t0).toBeGreaterThanOrEqual(90);
    } finally {
      await sink.close();
    }
  });

  test('the in-memory store keeps the latest maxRecords', async () => {
    const sink = await startSink({ maxRecords: 3 });
    try {
      for (let i = 0; i < 3; i++) await sendWhole(sink.port, probeMessage(`p-cap-${i}`, 2 * KiB, 60 + i).chunks() as Iterable<Buffer>);
      await sink.waitFor('p-cap-2', 10_000);
      while (sink.records().filter((r) => r.kind === 'session').length < 1 || sink.records().at(-1)?.kind !== 'session') await new Promise((r) => setTimeout(r, 10));
      expect(sink.records()).toHaveLength(3);
      expect(sink.byProbe('p-cap-0')).toBeUndefined();
      expect(sink.byProbe('p-cap-2')).toBeDefined();
    } finally {
      await sink.close();
    }
  });
});

describe('start errors', () => {
  test('address in use → SinkStartError EADDRINUSE naming the address', async () => {
    const a = await startSink();
    try {
      const err = await startSink({ port: a.port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SinkStartError);
      expect((err as SinkStartError).code).toBe('EADDRINUSE');
      expect((err as Error).message).toContain(`127.0.0.1:${a.port}`);
      expect((err as Error).message).toContain('already in use');
    } finally {
      await a.close();
    }
  });

  test('record file in a missing folder → SinkStartError ENOENT', async () => {
    const err = await startSink({ record: '/nonexistent-mxprobe-dir/x.jsonl' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SinkStartError);
    expect((err as SinkStartError).code).toBe('ENOENT');
    expect((err as SinkStartError).what).toBe('record');
  });

  test('bad options are refused with the stage named', async () => {
    await expect(startSink({ replies: { rcpt: { code: 250 } } })).rejects.toThrow(/rcpt must be 4xx or 5xx/);
    await expect(startSink({ delaysMs: { mail: -1 } })).rejects.toThrow(/delay for mail/);
  });
});

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

let srv: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  ensureBuilt();
  srv = await startSmtpServer();
});
afterAll(async () => { await srv.close(); });

const base = () => ['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test'];

describe('mxprobe probe', () => {
  test('human output: a line per stage, then the outcome; exit 0', async () => {
    const r = await runCli([...base(), '--size', '64KiB']);
    expect(r.code).toBe(0);
    for (const s of ['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${s}\\s+\\d`, 'm'));
    }
    expect(r.stdout).toContain('65,536 bytes');
    expect(r.stdout).toMatch(/✓ delivered in/);
    expect(srv.received.at(-1)!.bytes).toBe(65536);
  });

  test('--json prints the ProbeResult with the documented fields', async () => {
    const r = await runCli([...base(), '--size', '1MiB', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const k of ['probeId', 'target', 'path', 'sizeBytes', 'outcome', 'stages', 'bytesWritten', 'reply', 'startedAt', 'localAddress', 'remoteAddress']) {
      expect(j).toHaveProperty(k);
    }
    expect(j.sizeBytes).toBe(1048576);
    expect(j.outcome).toBe('delivered');
    expect(j.reply.code).toBe(250);
    expect(new Date(j.startedAt).toISOString()).toBe(j.startedAt);
  });

  test('a stalled probe exits 1 and names the stage', async () => {
    const net = await import('node:net');
    const silent = net.createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      const r = await runCli(['probe', '--host', '127.0.0.1', '--port', String(port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--stall', '500ms', '--json']);
      expect(r.code).toBe(1);
      const j = JSON.parse(r.stdout);
      expect(j.outcome).toBe('stalled');
      expect(j.stage).toBe('greeting');
    } finally {
      silent.close();
    }
  });

  test.each([
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test'], /--to/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--size', '12XB'], /not a byte size/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--stall', 'soon'], /not a duration/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--bogus'], /unknown option/],
    [['probe', '--host', 'no-such-host.invalid', '--from', 'a@x.test', '--to', 'b@x.test'], /cannot resolve host "no-such-host.invalid"/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--size', '100'], /minimum/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--auth-user', 'u'], /--auth-pass-env/],
    [['probe', '--host', '127.0.0.1', '--from', 'a@x.test', '--to', 'b@x.test', '--tls', 'sometimes'], /none, starttls, require-starttls, implicit/],
  ])('bad usage %j → exit 2 with a one-line error, nothing sent', async (args, msg) => {
    const before = srv.received.length;
    const r = await runCli(args as string[]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(msg as RegExp);
    expect(r.stdout).toBe('');
    expect(srv.received.length).toBe(before);
  });

  test('a source address that cannot be bound → exit 3', async () => {
    const r = await runCli([...base(), '--local-address', '192.0.2.123']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/cannot bind source address 192\.0\.2\.123/);
  });

  test('CR/LF/NUL in --ehlo, an address or --auth-user: exit 2 naming the field, nothing sent', async () => {
    const before = srv.received.length;
    const ehlo = await runCli([...base(), '--ehlo', 'x\r\nRSET\r\nMAIL FROM:<evil@x>']);
    expect(ehlo.code).toBe(2);
    expect(ehlo.stderr).toContain('ehloName holds a CR character: refused');
    const to = await runCli(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test\nRSET']);
    expect(to.code).toBe(2);
    expect(srv.received.length).toBe(before);
  });

  test('a reply with terminal escapes (CSI, OSC 52) is printed without them; --json keeps it exact', async () => {
    const { startRawServer, scriptedSmtp } = await import('../helpers/servers.js');
    const evil = await startRawServer(scriptedSmtp({ greeting: (s) => s.write('554 5.7.1 go away\x1b[2J\x1b]52;c;ZXZpbA==\x07 now\r\n') }));
    try {
      const args = ['probe', '--host', '127.0.0.1', '--port', String(evil.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test'];
      const h = await runCli(args);
      expect(h.code).toBe(1);
      expect(h.stdout).toContain('go away');
      expect(h.stdout + h.stderr).not.toContain('\x1b]52');
      expect(h.stdout).not.toContain('\x07');
      const j = await runCli([...args, '--json']);
      expect(JSON.parse(j.stdout).reply.text).toBe('5.7.1 go away\x1b[2J\x1b]52;c;ZXZpbA==\x07 now');
    } finally {
      await evil.close();
    }
  });

  test('--help teaches: examples and exit codes', async () => {
    const r = await runCli(['probe', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Examples:/);
    expect(r.stdout).toMatch(/Exit codes: 0 delivered/);
  });
});

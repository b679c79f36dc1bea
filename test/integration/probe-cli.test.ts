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

  test('a stalled probe exits 1 and names the stage and the kind', async () => {
    const { startRawServer, scriptedSmtp } = await import('../helpers/servers.js');
    // a receiver that stops reading after 354: the window closes, nothing moves
    const srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => { s.write('354 go\r\n'); s.pause(); } }));
    try {
      const r = await runCli(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--size', '64MiB', '--stall', '1s', '--no-reply', '1s', '--json']);
      expect(r.code).toBe(1);
      const j = JSON.parse(r.stdout);
      expect(j.outcome).toBe('stalled');
      expect(j.stage).toBe('body');
      expect(j.stallKind).toBe('window-closed');
    } finally {
      await srv.close();
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
    expect(ehlo.stderr).toContain('the EHLO name (ehloName; --ehlo) holds a CR character: refused');
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

  test('--help shows every default in human units, and says what a bare number means', async () => {
    const r = await runCli(['probe', '--help']);
    const flat = r.stdout.replace(/\s+/g, ' ');
    for (const [flag, def] of [['--stall', '10s'], ['--no-reply', '100s'], ['--timeout-connect', '30s'], ['--timeout-command', '5m'], ['--timeout-data', '2m'], ['--timeout-body', '3m'], ['--timeout-data-ack', '10m'], ['--size', '1KiB']]) {
      expect(flat).toMatch(new RegExp(`${flag} <\\w+> .*?\\(default: ${def}\\)`));
    }
    expect(r.stdout).not.toMatch(/default: \d{4,}/); // no milliseconds or bytes as bare numbers
    expect(flat).toContain('a bare number is seconds');
  });
});

describe('issue 16 flags', () => {
  test.each([
    [['--size', '2KiB', '--message', 'package.json'], /--size and --message cannot be combined/],
    [['--message', 'package.json', '--attach', 'package.json'], /--message sends a file as it is/],
    [['--stall', '5m'], /--stall 5m must be shorter than every stage deadline, but --timeout-command is 5m \(the default\), --timeout-data is 2m \(the default\), --timeout-body is 3m \(the default\)/],
    [['--stall', '10s', '--timeout-body', '10s'], /--stall 10s must be shorter .* --timeout-body is 10s:/],
    [['--header', 'no colon'], /not a header/],
    [['--header', 'X-Mxprobe: x'], /set by mxprobe/],
    [['--attach', 'no/such/file.pdf'], /cannot read attachment no\/such\/file\.pdf: ENOENT/],
    [['--quit-after', 'body'], /Allowed choices are connect, greeting, ehlo, tls, auth, mail, rcpt/],
    [['--attach', 'package.json', '--size', '600'], /composed message is \d+ bytes, more than --size 600/],
  ])('%j → exit 2, nothing sent', async (extra, msg) => {
    const before = srv.received.length;
    const r = await runCli([...base(), ...(extra as string[])]);
    expect(r.stderr).toMatch(msg as RegExp);
    expect(r.code).toBe(2);
    expect(srv.received.length).toBe(before);
  });

  test('--no-reply DURATION and the other duration flags become the Timeouts the engine gets', async () => {
    const { buildProgram } = await import('../../src/cli/main.js');
    const { timeoutsFrom } = await import('../../src/cli/probe.js');
    const parse = async (...args: string[]) => {
      const program = await buildProgram(['probe']);
      let flags: unknown;
      program.commands[0]!.action((f: unknown) => { flags = f; });
      await program.parseAsync(['node', 'mxprobe', ...base(), ...args]);
      return timeoutsFrom(flags as Parameters<typeof timeoutsFrom>[0]);
    };
    expect(await parse('--no-reply', '45s', '--stall', '2s', '--timeout-data-ack', '3m')).toMatchObject({ noReplyMs: 45_000, stallMs: 2000, dataAckMs: 180_000 });
    expect((await parse()).noReplyMs).toBe(100_000);
    expect((await parse('--no-reply', '90')).noReplyMs).toBe(90_000); // a bare number is seconds, as everywhere
  });

  test('--attach, --header, --body: the server receives exactly --size bytes; the result records the message', async () => {
    const keep = await startSmtpServer({ keep: true });
    try {
      const r = await runCli(['probe', '--host', '127.0.0.1', '--port', String(keep.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test',
        '--attach', 'package.json:application/x-test', '--header', 'Subject: quarterly', '--header', 'X-Foo: bar', '--body', 'see attached', '--size', '64KiB', '--json']);
      expect(r.code).toBe(0);
      const j = JSON.parse(r.stdout);
      expect(j.sizeBytes).toBe(65536);
      expect(j.message).toMatchObject({ source: 'composed', wireBytes: 65536, attachments: [{ filename: 'package.json', contentType: 'application/x-test' }] });
      const got = keep.received.at(-1)!;
      expect(got.bytes).toBe(65536);
      const text = got.data!.toString('latin1');
      expect(text).toMatch(/^Subject: quarterly\r$/m);
      expect(text).toMatch(/^X-Foo: bar\r$/m);
      expect(text).toContain('see attached');
      expect(text).toMatch(/Content-Type: application\/x-test; name=package\.json/);
    } finally {
      await keep.close();
    }
  });

  test('--message FILE: its size is recorded, and the wire bytes', async () => {
    const r = await runCli([...base(), '--message', 'test/integration/probe-cli.test.ts', '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.message.source).toBe('file');
    expect(j.message.wireBytes).toBeGreaterThanOrEqual(j.sizeBytes);
  });

  test('--quit-after rcpt: exit 0, nothing delivered, the outcome line says so', async () => {
    const before = srv.received.length;
    const r = await runCli([...base(), '--quit-after', 'rcpt']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ quit after rcpt/);
    expect(r.stdout).not.toMatch(/^  data /m);
    expect(srv.received.length).toBe(before);
  });

  test('-v: the conversation with -> / <- markers and times, the message elided, AUTH masked', async () => {
    // this server refuses AUTH (535): the conversation is shown all the same, and the secret is not in it
    const r = await runCli([...base(), '-v', '--size', '32KiB', '--auth-user', 'alice', '--auth-pass-env', 'MXP_SECRET'], { env: { MXP_SECRET: 'hunter2-secret' } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\s+[\d.]+m?s -> EHLO /m);
    expect(r.stdout).toMatch(/^\s+[\d.]+m?s <- 250[- ]/m);
    expect(r.stdout).toMatch(/-> AUTH PLAIN \*\*\*\*/);
    expect(r.stdout).not.toContain('hunter2');
    expect(r.stdout).not.toContain(Buffer.from('\0alice\0hunter2-secret').toString('base64'));
    const ok = await runCli([...base(), '-v', '--size', '32KiB']);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('32,768 bytes on the wire');
    expect(ok.stdout.split('\n').filter((l) => / -> /.test(l)).length).toBeLessThan(20);
    // the outcome line is last
    expect(ok.stdout.trim().split('\n').at(-1)).toMatch(/^✓ delivered in/);
  });

  test('live: each stage line is on stdout when its stage ends (pipe), before the final reply comes', async () => {
    // a server that thinks 1.5 s before its final reply (a content filter)
    const { SMTPServer } = await import('smtp-server');
    const server = new SMTPServer({ authOptional: true, disableReverseLookup: true, hideSTARTTLS: true, logger: false,
      onData(stream, _s, cb) { stream.resume(); stream.on('end', () => setTimeout(() => cb(null), 1500)); } });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const slow = { port: (server.server.address() as import('node:net').AddressInfo).port, close: () => new Promise<void>((r) => server.close(() => r())) };
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/cli.js');
    try {
      const child = spawn(process.execPath, [BIN, 'probe', '--host', '127.0.0.1', '--port', String(slow.port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--size', '4KiB'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const t0 = Date.now();
      let bodyAt = 0;
      child.stdout.on('data', (d) => {
        out += d;
        if (!bodyAt && /^  body /m.test(out)) bodyAt = Date.now() - t0;
      });
      const code = await new Promise<number | null>((r) => child.on('close', r));
      const total = Date.now() - t0;
      expect(code).toBe(0);
      expect(bodyAt).toBeGreaterThan(0);
      expect(total - bodyAt).toBeGreaterThan(1000); // the body line came while the final reply was still awaited
      expect(out.trim().split('\n').at(-1)).toMatch(/^✓ delivered/);
    } finally {
      await slow.close();
    }
  });

  test('SIGINT: ends within 1 s, prints what was measured (human and --json), exits 130', async () => {
    const net = await import('node:net');
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/cli.js');
    // the probe is in ehlo (its SIGINT handler long installed) once its EHLO reaches the server
    let ehloSeen = 0;
    const mute = net.createServer((s) => {
      s.write('220 hello\r\n');
      s.on('data', () => ehloSeen++);
    });
    await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
    const port = (mute.address() as import('node:net').AddressInfo).port;
    try {
      for (const json of [false, true]) {
        const child = spawn(process.execPath, [BIN, 'probe', '--host', '127.0.0.1', '--port', String(port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--stall', '20s', ...(json ? ['--json'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        const seenBefore = ehloSeen;
        await new Promise<void>((resolve) => {
          const poll = setInterval(() => { if (ehloSeen > seenBefore && (json || /^  greeting /m.test(out))) { clearInterval(poll); resolve(); } }, 20);
        });
        const sent = Date.now();
        child.kill('SIGINT');
        const code = await new Promise<number | null>((r) => child.on('close', r));
        // promptly, not at the 20 s stall window (1 s on a quiet machine; the bound leaves room for a loaded one)
        expect(Date.now() - sent).toBeLessThan(5000);
        expect(code).toBe(130);
        if (json) {
          const j = JSON.parse(out);
          expect(j.outcome).toBe('aborted');
          expect(j.stages.greeting).toBeGreaterThan(0);
        } else {
          expect(out).toMatch(/^  greeting /m);
          expect(out.trim().split('\n').at(-1)).toMatch(/^✗ aborted in ehlo/);
        }
      }
    } finally {
      mute.close();
    }
  });
});

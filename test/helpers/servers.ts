/** Real and hostile SMTP servers for tests, on 127.0.0.1 port 0 unless a test says where. */
import net from 'node:net';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { DEFAULT_TIMEOUTS, type ProbeSpec, type Timeouts } from '../../src/model.js';

export interface Received { from: string; to: string[]; bytes: number; sha: string; remoteAddress: string; data: Buffer | undefined }

/** A real smtp-server that counts (and, when small, keeps) what it receives. */
export async function startSmtpServer(opts: Partial<SMTPServerOptions> & { keep?: boolean; listen?: { host?: string; port?: number } } = {}) {
  const received: Received[] = [];
  const { createHash } = await import('node:crypto');
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    hideSTARTTLS: !opts.secure && !opts.key,
    logger: false,
    ...opts,
    onData(stream, session, cb) {
      const h = createHash('sha256');
      let bytes = 0;
      const keep: Buffer[] = [];
      stream.on('data', (d: Buffer) => {
        bytes += d.length;
        h.update(d);
        if (opts.keep) keep.push(d);
      });
      stream.on('end', () => {
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          bytes,
          sha: h.digest('hex'),
          remoteAddress: session.remoteAddress,
          data: opts.keep ? Buffer.concat(keep) : undefined,
        });
        if ((stream as unknown as { sizeExceeded?: boolean }).sizeExceeded) {
          const err = new Error('552 message exceeds fixed maximum message size') as Error & { responseCode: number };
          err.responseCode = 552;
          return cb(err);
        }
        cb(null, 'queued');
      });
    },
  } as SMTPServerOptions);
  // a client that resets its connection (a stalled probe aborts with RST) is an 'error' of the server's
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject); // EADDRINUSE on a chosen port: the caller may try another
    server.listen(opts.listen?.port ?? 0, opts.listen?.host ?? '127.0.0.1', () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as net.AddressInfo).port;
  return {
    port,
    received,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A raw TCP server whose behaviour per connection is a script; tracks sockets to close them all. */
export async function startRawServer(handler: (sock: net.Socket) => void) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    handler(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Minimal scripted SMTP: greet, answer EHLO/MAIL/RCPT/DATA/QUIT; hooks override steps. */
export function scriptedSmtp(hooks: {
  greeting?: (s: net.Socket) => void;
  onDataStart?: (s: net.Socket) => void;
  onBody?: (s: net.Socket, bytes: number) => void;
  ehlo?: string;
} = {}) {
  return (s: net.Socket) => {
    if (hooks.greeting) hooks.greeting(s);
    else s.write('220 test ESMTP\r\n');
    let inData = false;
    let bodyBytes = 0;
    let buf = '';
    s.on('data', (d: Buffer) => {
      if (inData) {
        bodyBytes += d.length;
        hooks.onBody?.(s, bodyBytes);
        const str = d.toString('latin1');
        if (str.endsWith('\r\n.\r\n')) {
          inData = false;
          s.write('250 ok\r\n');
        }
        return;
      }
      buf += d.toString('latin1');
      let i: number;
      while ((i = buf.indexOf('\r\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === 'EHLO') s.write(hooks.ehlo ?? '250-test\r\n250 SIZE 100000000\r\n');
        else if (cmd === 'HELO') s.write('250 test\r\n');
        else if (cmd === 'MAIL' || cmd === 'RCPT') s.write('250 ok\r\n');
        else if (cmd === 'DATA') {
          if (hooks.onDataStart) hooks.onDataStart(s);
          else {
            s.write('354 go\r\n');
            inData = true;
          }
        } else if (cmd === 'QUIT') s.end('221 bye\r\n');
        else s.write('500 what\r\n');
      }
    });
  };
}

export function spec(port: number, over: Partial<Omit<ProbeSpec, "timeouts">> & { timeouts?: Partial<Timeouts> } = {}): ProbeSpec {
  const { timeouts, ...rest } = over;
  return {
    probeId: `t-${Math.random().toString(36).slice(2, 8)}`,
    target: { host: '127.0.0.1', port, tls: 'none' },
    path: { name: 'direct' },
    sizeBytes: 4096,
    seed: 42,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    ...rest,
    // a test that shortens the stall window means a silent server too: the no-reply window follows it unless given
    timeouts: { ...DEFAULT_TIMEOUTS, stallMs: 1000, noReplyMs: timeouts?.stallMs ?? 1000, ...timeouts },
  };
}

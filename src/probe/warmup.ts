/**
 * Warm-up before the first mark (issue 19): the first probe of a process used to measure Node's and our own first
 * run of the code (lazy compilation, first allocations) inside its stages — `connect` read 4–5 ms where the
 * SYN → SYN-ACK took 0.02 ms, and every later stage of the first probe a little too. Once per process, before the
 * first probe starts its clock, one throwaway probe runs against a minimal SMTP listener of our own on 127.0.0.1
 * (connect, greeting, EHLO, MAIL, RCPT, DATA, body, final dot, QUIT): the first real probe is then as exact as the
 * hundredth (bench/fidelity.mjs).
 *
 * Bounded (WARM_UP_MAX_MS) and silent: where no loopback listener can be made (no `lo` in a network namespace, no
 * descriptor left) it gives up and the first probe is measured as before.
 */
import net from 'node:net';

export const WARM_UP_MAX_MS = 500;

let warm: Promise<void> | undefined;

/** Run `probeOnce(port)` once per process against the warm-up listener (later calls share the first); never rejects. */
export function warmUp(probeOnce: (port: number) => Promise<unknown>): Promise<void> {
  warm ??= withListener(probeOnce).catch(() => undefined);
  return warm;
}

/** The reply a minimal SMTP server gives to one command line (outside DATA). */
export function warmReply(line: string): string {
  const verb = line.slice(0, 4).toUpperCase();
  if (verb === 'EHLO' || verb === 'HELO') return '250-warm-up\r\n250 PIPELINING\r\n';
  if (verb === 'DATA') return '354 go ahead\r\n';
  if (verb === 'QUIT') return '221 bye\r\n';
  return '250 ok\r\n';
}

/**
 * One SMTP session of a minimal server (the warm-up's listener; bench/inflight.mjs's receiver): a reply per
 * command line, the message up to its final dot, 221 to QUIT and close.
 */
export function minimalSmtpSession(s: net.Socket): void {
  let buf = '';
  let inData = false;
  s.on('error', () => undefined);
  s.write('220 warm-up\r\n');
  s.on('data', (d: Buffer) => {
    buf += d.toString('latin1');
    for (;;) {
      const end = inData ? buf.indexOf('\r\n.\r\n') : buf.indexOf('\r\n');
      if (end < 0) return;
      const line = buf.slice(0, end);
      buf = buf.slice(end + (inData ? 5 : 2));
      const reply = inData ? '250 queued\r\n' : warmReply(line);
      inData = !inData && reply.startsWith('354');
      if (reply.startsWith('221')) s.end(reply);
      else s.write(reply);
    }
  });
}

function withListener(probeOnce: (port: number) => Promise<unknown>): Promise<void> {
  return new Promise<void>((resolve) => {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((s) => {
      sockets.add(s);
      minimalSmtpSession(s);
    });
    let over = false;
    const done = (): void => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    };
    const timer = setTimeout(done, WARM_UP_MAX_MS);
    timer.unref();
    server.on('error', done);
    server.listen(0, '127.0.0.1', () => {
      probeOnce((server.address() as net.AddressInfo).port).then(done, done);
    });
  });
}

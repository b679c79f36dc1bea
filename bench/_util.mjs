// Shared bench helpers: start Postfix's smtp-sink (or say it is missing), time things, print tables.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export function which(cmd) {
  for (const d of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin']) {
    const p = `${d}/${cmd}`;
    if (spawnSync('test', ['-x', p]).status === 0) return p;
  }
  return undefined;
}

export async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitPort(port, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((r) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
      c.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} did not open`);
}

/** Postfix smtp-sink on 127.0.0.1 (apt-get install postfix). Returns undefined when not installed. */
export async function startSmtpSink({ backlog = 256 } = {}) {
  const bin = which('smtp-sink');
  if (!bin) return undefined;
  const port = await freePort();
  const args = [...(process.getuid?.() === 0 ? ['-u', 'root'] : []), `127.0.0.1:${port}`, String(backlog)];
  const child = spawn(bin, args, { stdio: 'ignore' });
  await waitPort(port);
  return { port, stop: () => child.kill('SIGKILL') };
}

export function fmt(n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

/**
 * A minimal hand-written Node SMTP client (no stage marks, deadlines, watchdog, message generator or result): the
 * ceiling Node itself allows here, to tell the engine's own cost from the runtime's.
 */
export async function minimalNode(port, { count, concurrency }) {
  const body = Buffer.alloc(1024, 'a');
  body.write('Subject: x\r\n\r\n');
  const session = () =>
    new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      sock.setNoDelay(true);
      const steps = ['EHLO bench\r\n', 'MAIL FROM:<probe@mxprobe.test>\r\n', 'RCPT TO:<sink@mxprobe.test>\r\n', 'DATA\r\n', null, 'QUIT\r\n'];
      let i = 0;
      let buf = '';
      sock.on('data', (d) => {
        buf += d;
        let idx;
        while ((idx = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, idx);
          buf = buf.slice(idx + 2);
          if (line[3] === '-') continue;
          if (i < steps.length) {
            const st = steps[i++];
            if (st === null) sock.write(Buffer.concat([body, Buffer.from('\r\n.\r\n')]));
            else sock.write(st);
          } else {
            sock.destroy();
            resolve();
          }
        }
      });
      sock.on('error', reject);
      sock.on('end', () => {
        sock.destroy();
        resolve();
      });
    });
  let started = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => { while (started++ < count) await session(); }));
  return { perSec: count / ((performance.now() - t0) / 1000) };
}

/**
 * The engine of a build (`dist` folder) as `(port, i) => probe(…)`: one 1 KiB plain probe to 127.0.0.1:port with
 * the default timeouts and no end-of-probe snapshot (the benches measure SMTP, not ss). Shared by the benches that
 * compare builds.
 */
export async function loadEngine(dist, prefix = 'b') {
  const { pathToFileURL } = await import('node:url');
  const { join } = await import('node:path');
  const { probe } = await import(pathToFileURL(join(dist, 'probe/index.js')).href);
  const { DEFAULT_TIMEOUTS } = await import(pathToFileURL(join(dist, 'model.js')).href);
  return (port, i) => probe(benchSpec(port, `${prefix}-${i}`, 'direct', DEFAULT_TIMEOUTS));
}

/** The benches' probe: 1 KiB, plain, to 127.0.0.1:port, the given (default) timeouts, no end-of-probe snapshot. */
export function benchSpec(port, probeId, pathName, timeouts) {
  return {
    probeId,
    target: { host: '127.0.0.1', port, tls: 'none' },
    path: { name: pathName },
    sizeBytes: 1024,
    seed: 1,
    envelope: { from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] },
    timeouts: { ...timeouts },
    tcpSnapshotMinBytes: Number.MAX_SAFE_INTEGER,
  };
}

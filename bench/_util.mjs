// Shared bench helpers: start Postfix's smtp-sink (or say it is missing), time things, print tables.
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';

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
export async function startSmtpSink() {
  const bin = which('smtp-sink');
  if (!bin) return undefined;
  const port = await freePort();
  const args = process.getuid?.() === 0 ? ['-u', 'root', `127.0.0.1:${port}`, '256'] : [`127.0.0.1:${port}`, '256'];
  const child = spawn(bin, args, { stdio: 'ignore' });
  await waitPort(port);
  return { port, stop: () => child.kill('SIGKILL') };
}

export function fmt(n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

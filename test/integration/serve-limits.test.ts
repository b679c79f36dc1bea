/**
 * `serve`'s HTTP bounds (issue 14): idle clients cannot hold connections past the header timeout, the
 * connection cap holds, and /healthz answers again once they are cut off. The pure half (the cap below
 * `ulimit -n`, EMFILE in words) is checked directly.
 */
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { startServe } from '../../src/serve/index.js';
import { BASE_RESERVE_FDS, connectionCap, describeServerError, FDS_PER_PROBE, openFileLimit } from '../../src/serve/limits.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 1048576              files
`;

describe('limits (pure)', () => {
  it('reads the soft open-file limit; unlimited or unreadable is undefined', () => {
    expect(openFileLimit(() => LIMITS)).toBe(1024);
    expect(openFileLimit(() => LIMITS.replace('1024 ', 'unlimited '))).toBeUndefined();
    expect(openFileLimit(() => { throw new Error('ENOENT'); })).toBeUndefined();
  });
  it('keeps a reserve of descriptors for the probes under the limit', () => {
    expect(connectionCap({ requested: 64, fdLimit: undefined, probes: 8 })).toBe(64);
    expect(connectionCap({ requested: 5000, fdLimit: 1024, probes: 12 })).toBe(1024 - BASE_RESERVE_FDS - 12 * FDS_PER_PROBE);
    expect(connectionCap({ requested: 64, fdLimit: 80, probes: 8 })).toBe(1);
  });
  it('EMFILE in words, with the limit', () => {
    const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
    expect(describeServerError(err, 1024)).toBe(
      'out of file descriptors (EMFILE): this process has reached the limit of 1024 open files (ulimit -n); new HTTP connections are refused until some close. Raise the limit (ulimit -n) or lower --max-connections',
    );
  });
});

const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
const closed = (s: net.Socket) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('serve under idle connections', () => {
  it('caps connections, cuts idle ones at the header timeout, and /healthz answers again', async () => {
    const serve = await startServe({ port: 0, maxConnections: 3, headersTimeoutMs: 2000, defaultMetrics: false });
    const socks: net.Socket[] = [];
    try {
      for (let i = 0; i < 6; i++) {
        const s = await connect(serve.port);
        s.on('error', () => undefined);
        socks.push(s);
      }
      // the server drops what is above the cap at once; the rest once the header timeout passes
      const t0 = Date.now();
      let dropped = 0;
      for (const s of socks) void closed(s).then(() => Date.now() - t0 < 1500 && dropped++);
      await new Promise((r) => setTimeout(r, 1500));
      expect(dropped).toBeGreaterThanOrEqual(3);
      expect(dropped).toBeLessThan(6);
      await Promise.all(socks.map(closed));
      expect(Date.now() - t0).toBeLessThan(8000);
      const res = await fetch(`${serve.url}/healthz`);
      expect(res.status).toBe(200);
    } finally {
      for (const s of socks) s.destroy();
      await serve.close();
    }
  }, 15_000);
});

/**
 * `mxprobe probe --capture DIR` end to end: a probe that stalls leaves a pcap of exactly its connection, and the
 * result names it. Needs tcpdump and root (or CAP_NET_RAW); skipped with a printed reason otherwise.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parsePcap } from '../../src/report/pcap.js';
import { timeSequence } from '../../src/report/tsg.js';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { scriptedSmtp, startRawServer } from '../helpers/servers.js';

const tcpdump = ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'].find((p) => existsSync(p));
const why = !tcpdump ? 'tcpdump not installed' : process.getuid?.() !== 0 ? 'not root' : undefined;
if (why) console.warn(`capture-probe test skipped: ${why}`);

describe.skipIf(!!why)('probe --capture', () => {
  let srv: Awaited<ReturnType<typeof startRawServer>>;
  beforeAll(async () => {
    ensureBuilt();
    // 354, then the server stops reading: the body stalls once the buffers are full
    srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => { s.write('354 go\r\n'); s.pause(); } }));
  });
  afterAll(async () => { await srv.close(); });

  test('a stalled probe leaves a pcap of its own connection, named in the result', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-cap-'));
    const r = await runCli(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--size', '32MiB', '--stall', '1s', '--capture', dir, '--json']);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout);
    expect(j.outcome).toBe('stalled');
    expect(j.capture).toMatch(new RegExp(`^${dir}/.+\\.pcap$`));
    expect(existsSync(j.capture)).toBe(true);
    const text = execFileSync(tcpdump!, ['-nn', '-r', j.capture], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = text.trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    // only this connection: every packet is between the probe's port and the server's
    for (const l of lines) expect(l).toMatch(new RegExp(`127\\.0\\.0\\.1\\.(${j.localPort}|${srv.port}) > 127\\.0\\.0\\.1\\.(${j.localPort}|${srv.port})`));
    // the report's own reader sees the same packets, and the graph of the stalled body: data, ACKs, the handshake
    const ps = parsePcap(readFileSync(j.capture));
    expect(ps).toHaveLength(lines.length);
    const ts = timeSequence(ps)!;
    expect(ts.sender).toBe(`127.0.0.1:${j.localPort}`);
    expect(ts.handshake.seen).toBe(true);
    expect(ts.segments.length).toBeGreaterThan(5);
    expect(ts.acks.length).toBeGreaterThan(0);
    // the receiver stopped reading: the last window edge is at (or below) the highest byte sent, never beyond
    const last = ts.acks[ts.acks.length - 1]!;
    expect(last.edge).toBeLessThanOrEqual(ts.maxSeq + 1);
    expect(spawnSync('pgrep', ['-x', 'tcpdump']).status).not.toBe(0); // no tcpdump left behind
  }, 60_000);

  test('an unwritable capture folder is an environment error before anything is sent (exit 3)', async () => {
    const r = await runCli(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--capture', '/proc/mxprobe-no-such-dir']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/--capture/);
  });
});

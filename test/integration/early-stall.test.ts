/**
 * Incident 1 on loopback: an iptables rule drops the client's segments after 200 kB (connbytes), so the kernel
 * retransmits into the void. The watchdog reads that evidence and calls the stall before the plain window.
 * Needs root and iptables; skipped with a printed reason otherwise. The rule is removed whatever happens.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { probe } from '../../src/probe/index.js';
import { spec, startSmtpServer } from '../helpers/servers.js';

function iptablesUsable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root';
  const r = spawnSync('iptables', ['-S', 'OUTPUT'], { encoding: 'utf8' });
  if (r.status !== 0) return `iptables unusable: ${r.stderr || r.error}`;
  return undefined;
}
const why = iptablesUsable();
if (why) console.warn(`early-stall test skipped: ${why}`);

describe.skipIf(!!why)('kernel evidence ends a lossy stall early', () => {
  let srv: Awaited<ReturnType<typeof startSmtpServer>>;
  let rule: string[] = [];
  beforeAll(async () => {
    srv = await startSmtpServer();
    rule = ['OUTPUT', '-o', 'lo', '-p', 'tcp', '--dport', String(srv.port), '-m', 'connbytes', '--connbytes', '200000:', '--connbytes-dir', 'original', '--connbytes-mode', 'bytes', '-j', 'DROP'];
    execFileSync('iptables', ['-I', ...rule]);
  });
  afterAll(async () => {
    spawnSync('iptables', ['-D', ...rule]);
    await srv.close();
  });

  test('dropped segments → stalled no-ack in the body, bytesAcked frozen near 200 kB; called early when the kernel shows the loss', async () => {
    const r = await probe(spec(srv.port, { sizeBytes: 4 * 1024 * 1024, timeouts: { stallMs: 9000 } }));
    expect(r.outcome).toBe('stalled');
    expect(['body', 'dataAck']).toContain(r.stage);
    const why = JSON.stringify({ kind: r.stallKind, message: r.error?.message, tcp: { ...r.tcp, raw: undefined } });
    // On loopback an OUTPUT drop is a failed transmit, not a segment lost on a wire: most runs show the backoff the
    // early call needs within ~2 s, but with the suite loading both cores a run can reach the window first. The
    // kernel lab (test/netlab/e2e.test.ts, "default windows": a router dropping real segments) holds the early
    // call to its figure; here the kind and the evidence are what must hold.
    expect(['kernel', 'window'], why).toContain(r.stallBy);
    expect(r.stallKind, why).toBe('no-ack');
    expect(r.progressFrom).toBe('kernel');
    // whichever way it was called: the data is outstanding, nothing past the drop point acknowledged
    expect(r.tcp?.bytesAcked).toBeLessThan(260_000);
    expect(r.tcp?.bytesSent ?? 0).toBeGreaterThan(r.tcp?.bytesAcked ?? 0);
    if (r.stallBy === 'kernel') {
      // the early call rests on the kernel's loss evidence: retransmitting, backing off, the ACKs stopped 1 s+
      expect(r.durationMs).toBeLessThan(9000);
      expect(r.tcp?.retransTotal).toBeGreaterThan(0);
      expect(r.tcp?.backoff).toBeGreaterThanOrEqual(2);
      expect(r.tcp?.lastAckMs).toBeGreaterThanOrEqual(1000);
      expect(r.error?.message).toMatch(/retransmitting/);
    }
  }, 30_000);

  test('with earlyStall off the plain window decides', async () => {
    const r = await probe(spec(srv.port, { sizeBytes: 4 * 1024 * 1024, earlyStall: false, timeouts: { stallMs: 2500 } }));
    expect(r.outcome).toBe('stalled');
    expect(r.stallBy).toBe('window');
    expect(r.stallKind).toBe('no-ack');
    expect(r.durationMs).toBeGreaterThanOrEqual(2400);
  }, 30_000);
});

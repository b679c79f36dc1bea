/**
 * Where the kernel cannot be read (not Linux, no ss; here MXPROBE_SS=none), the watchdog says so and falls back to
 * counting our own writes and reply bytes against the stall window. Its own file: the ss tool is chosen once per
 * process.
 */
import { describe, expect, test } from 'vitest';
process.env['MXPROBE_SS'] = 'none';
const { probe } = await import('../../src/probe/index.js');
const { scriptedSmtp, spec, startRawServer } = await import('../helpers/servers.js');

describe('no kernel readings: the socket-only fallback', () => {
  test('a receiver that stops reading is still stalled, and the result says how progress was counted', async () => {
    const srv = await startRawServer(scriptedSmtp({ onDataStart: (s) => { s.write('354 go\r\n'); s.pause(); } }));
    try {
      const r = await probe(spec(srv.port, { sizeBytes: 64 * 1024 * 1024, timeouts: { stallMs: 800, noReplyMs: 60_000 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.progressFrom).toBe('socket');
      expect(r.stallKind).toBeUndefined(); // no kernel, no kind: nothing is guessed
      expect(r.tcpUnavailable).toMatch(/MXPROBE_SS=none/);
      expect(r.error?.message).toMatch(/the kernel could not be read/);
    } finally {
      await srv.close();
    }
  });

  test('a silent server is called at the stall window (the no-reply window needs the kernel to know all was acknowledged)', async () => {
    const srv = await startRawServer(() => undefined);
    try {
      const r = await probe(spec(srv.port, { timeouts: { stallMs: 600, noReplyMs: 60_000 } }));
      expect(r.outcome).toBe('stalled');
      expect(r.stage).toBe('greeting');
      expect(r.durationMs).toBeLessThan(30_000);
      expect(r.progressFrom).toBe('socket');
    } finally {
      await srv.close();
    }
  });
});

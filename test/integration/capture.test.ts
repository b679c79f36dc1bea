import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CaptureError, classifyStartFailure, pcapFileName, startCapture, tupleFilter } from '../../src/probe/capture.js';
import { resolveTool } from '../../src/probe/tcpinfo.js';

const tcpdump = resolveTool('tcpdump');
const root = process.getuid?.() === 0;
const reason = !tcpdump ? 'tcpdump not installed' : !root ? 'not root (tcpdump needs root or CAP_NET_RAW)' : undefined;
if (reason) console.warn(`capture integration tests skipped: ${reason}`);

const work = mkdtempSync(join(tmpdir(), 'mxprobe-capture-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `tcpdump -r file -nn` lines (one per packet). */
function readPcap(file: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    execFile(tcpdump!, ['-r', file, '-nn'], (err, stdout) => (err ? reject(err) : resolve(stdout.split('\n').filter(Boolean)))),
  );
}

/** Live tcpdump processes (read from /proc: no procps needed). */
function tcpdumpPids(): string[] {
  return readdirSync('/proc').filter((pid) => {
    if (!/^\d+$/.test(pid)) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.includes('(tcpdump)') && !/\) Z /.test(stat); // zombies are dead, just not yet reaped
    } catch {
      return false;
    }
  });
}

describe('capture helpers', () => {
  it('builds an exact, two-way 4-tuple filter and maps IPv4-mapped IPv6 to IPv4', () => {
    expect(tupleFilter({ localAddress: '::ffff:127.0.0.1', localPort: 40000, remoteAddress: '127.0.0.2', remotePort: 25 })).toBe(
      'tcp and ((src host 127.0.0.1 and src port 40000 and dst host 127.0.0.2 and dst port 25)' +
        ' or (src host 127.0.0.2 and src port 25 and dst host 127.0.0.1 and dst port 40000))',
    );
    expect(tupleFilter({ localAddress: '2001:DB8::1', localPort: 1, remoteAddress: '::1', remotePort: 2 })).toContain('src host 2001:db8::1');
    expect(() => tupleFilter({ localAddress: 'x; rm', localPort: 1, remoteAddress: '::1', remotePort: 2 })).toThrow(CaptureError);
  });

  it('makes one safe file name per probe id', () => {
    expect(pcapFileName('r1-p0007')).toBe('r1-p0007.pcap');
    expect(pcapFileName('../../etc/passwd')).toBe('__.._etc_passwd.pcap');
    expect(pcapFileName('a b/c.pcap')).toBe('a_b_c.pcap');
  });
});

describe.skipIf(!!reason)('startCapture with real tcpdump', () => {
  it('captures loopback connections and extracts exactly one 4-tuple', async () => {
    const server = net.createServer((s) => s.on('data', () => s.write('250 ok\r\n')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const before = tcpdumpPids();
    const dir = join(work, 'out');
    const cap = await startCapture({ dir, filter: `tcp port ${port}`, iface: 'lo' });
    expect(tcpdumpPids().length).toBe(before.length + 1);

    // two connections to the same server: only the first must end up in its pcap
    const conns: net.Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const c = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => c.once('connect', r));
      conns.push(c);
    }
    for (const c of conns) c.write(`EHLO probe-${c.localPort}\r\n`);
    await sleep(200);
    const [a, b] = conns as [net.Socket, net.Socket];
    const out = await cap.extract(
      { localAddress: a.localAddress!, localPort: a.localPort!, remoteAddress: a.remoteAddress!, remotePort: a.remotePort! },
      'r1/p1',
    );
    expect(out).toBe(join(dir, 'r1_p1.pcap'));
    expect(existsSync(out)).toBe(true);
    const lines = await readPcap(out);
    console.log(`extracted ${lines.length} packets:\n  ${lines.join('\n  ')}`);
    expect(lines.length).toBeGreaterThanOrEqual(5); // SYN, SYN-ACK, ACK, EHLO, reply (+ ACKs)
    const aEnds = [`127.0.0.1.${a.localPort} > 127.0.0.1.${port}`, `127.0.0.1.${port} > 127.0.0.1.${a.localPort}`];
    for (const l of lines) expect(aEnds.some((e) => l.includes(e))).toBe(true);
    expect(lines.some((l) => l.includes('Flags [S]'))).toBe(true); // from the very start of the connection
    expect(lines.some((l) => l.includes(`127.0.0.1.${b.localPort}`))).toBe(false);

    for (const c of conns) c.destroy();
    server.close();
    await cap.stop();
    await cap.stop(); // idempotent
    expect(tcpdumpPids().sort()).toEqual(before.sort());
    // the temporary run-wide pcap is gone; only the extracted file is left
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('mxprobe-capture-') && !f.includes('test'))).toEqual([]);
    expect(readdirSync(dir)).toEqual(['r1_p1.pcap']);
    await expect(cap.extract({ localAddress: '127.0.0.1', localPort: 1, remoteAddress: '127.0.0.1', remotePort: 2 }, 'x')).rejects.toMatchObject({
      code: 'EEXTRACT',
    });
  });

  it('sees the latest packets of a live connection (flushed per packet)', async () => {
    const server = net.createServer((s) => s.resume());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const cap = await startCapture({ dir: join(work, 'live'), filter: `tcp port ${port}` }); // iface any
    try {
      const c = net.connect(port, '127.0.0.1');
      await new Promise<void>((r) => c.once('connect', r));
      const t = { localAddress: c.localAddress!, localPort: c.localPort!, remoteAddress: c.remoteAddress!, remotePort: c.remotePort! };
      c.write('MAIL FROM:<a@b>\r\n');
      await sleep(50);
      const first = await readPcap(await cap.extract(t, 'live-1'));
      c.write('RCPT TO:<c@d>\r\n');
      await sleep(50);
      const second = await readPcap(await cap.extract(t, 'live-2'));
      console.log(`live extraction: ${first.length} then ${second.length} packets`);
      expect(second.length).toBeGreaterThan(first.length);
      c.destroy();
    } finally {
      await cap.stop();
      server.close();
    }
  });

  it('names the problem: bad filter, bad interface, folder that is a file', async () => {
    await expect(startCapture({ dir: join(work, 'f'), filter: 'tcp port' })).rejects.toMatchObject({
      code: 'ESTART',
      message: expect.stringMatching(/rejected the capture filter "tcp port"/),
    });
    await expect(startCapture({ dir: join(work, 'f'), filter: 'tcp', iface: 'nosuch0' })).rejects.toMatchObject({
      code: 'ESTART',
      message: expect.stringMatching(/interface "nosuch0"/),
    });
    const file = join(work, 'plainfile');
    writeFileSync(file, 'x');
    await expect(startCapture({ dir: file, filter: 'tcp' })).rejects.toMatchObject({ code: 'EDIR' });
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('mxprobe-capture-') && !f.includes('test'))).toEqual([]);
  });

  it('says "needs root or CAP_NET_RAW" for the real message of an unprivileged tcpdump', async (ctx) => {
    const setpriv = resolveTool('setpriv');
    if (!setpriv) return ctx.skip(); // util-linux setpriv runs tcpdump as nobody
    const stderr = await new Promise<string>((r) =>
      execFile(setpriv, ['--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps=-all', tcpdump!, '-i', 'lo', '-w', '/dev/null', 'tcp'], (_e, _o, se) => r(se)),
    );
    const err = classifyStartFailure(stderr, tcpdump!, 'tcp', 'lo');
    expect(err.code).toBe('EPERM');
    expect(err.message).toMatch(/needs root or CAP_NET_RAW/);
    expect(err.message).toMatch(/Operation not permitted/);
  });
});

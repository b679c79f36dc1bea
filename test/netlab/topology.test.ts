/**
 * The kernel lab itself: policy routing really selects the router, each fault does what it says to real
 * kernel TCP, and `tcpSnapshot` reads the kernel's evidence of a socket inside the client namespace.
 * Runs only as root with `ip netns` and iptables; otherwise skipped with the reason printed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseSsLine, tcpSnapshot } from '../../src/probe/tcpinfo.js';
import { createTopology, netlabAvailable, sweepStaleNamespaces, type Topology } from './topology.js';
import { sendBytes, startByteCounter, type ByteCounter } from './traffic.js';

const avail = await netlabAvailable();
if (!avail.ok) console.warn(`netlab tests skipped: ${avail.reason}`);

const MiB = 1024 * 1024;
const KiB = 1024;

describe.skipIf(!avail.ok)('netlab topology', () => {
  let topo: Topology;
  let server: ByteCounter;

  beforeAll(async () => {
    topo = await createTopology();
    server = await startByteCounter(topo);
  }, 60_000);

  afterAll(async () => {
    server?.stop();
    await topo?.destroy();
  });

  it('builds four uniquely named namespaces with forwarding routers and MTU 1500', async () => {
    expect(Object.values(topo.ns)).toHaveLength(4);
    for (const name of Object.values(topo.ns)) expect(name).toMatch(new RegExp(`^mxprobe-${process.pid}-[0-9a-f]+-(cli|rta|rtb|srv)$`));
    expect((await topo.exec('rta', 'cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');
    expect((await topo.exec('rtb', 'cat', ['/proc/sys/net/ipv4/ip_forward'])).stdout.trim()).toBe('1');
    const link = JSON.parse((await topo.exec('cli', 'ip', ['-j', 'link', 'show', 'dev', topo.ifaces.cli.viaLb])).stdout) as Array<{ mtu: number }>;
    expect(link[0]!.mtu).toBe(1500);
    // the kernel's own route choice per source address
    const viaLb = (await topo.exec('cli', 'ip', ['route', 'get', topo.addrs.server, 'from', topo.addrs.viaLb])).stdout;
    const direct = (await topo.exec('cli', 'ip', ['route', 'get', topo.addrs.server, 'from', topo.addrs.direct])).stdout;
    expect(viaLb).toContain(`via ${topo.addrs.rta.cli} dev ${topo.ifaces.cli.viaLb}`);
    expect(direct).toContain(`via ${topo.addrs.rtb.cli} dev ${topo.ifaces.cli.direct}`);
  });

  it('policy routing by source address: viaLb traffic crosses rta only, direct crosses rtb only', async () => {
    for (const [source, through, other] of [
      [topo.addrs.viaLb, 'rta', 'rtb'],
      [topo.addrs.direct, 'rtb', 'rta'],
    ] as const) {
      const before = { [through]: await topo.forwarded(through), [other]: await topo.forwarded(other) };
      const s = sendBytes(topo, server, source, 256 * KiB);
      const t = await s.connected;
      expect(t.localAddress).toBe(source);
      const out = await s.outcome;
      expect(out).toMatchObject({ event: 'done', reply: { received: 256 * KiB } });
      const after = { [through]: await topo.forwarded(through), [other]: await topo.forwarded(other) };
      const crossed = after[through]!.rxBytes - before[through]!.rxBytes;
      const elsewhere = after[other]!.rxBytes - before[other]!.rxBytes;
      console.log(`${source}: ${crossed} B entered ${through} from the client, ${elsewhere} B entered ${other}`);
      expect(crossed).toBeGreaterThan(256 * KiB);
      expect(elsewhere).toBeLessThan(4 * KiB);
      // no NAT anywhere: the server sees the client's source address
      expect(server.connections().find((c) => c.remotePort === t.localPort)?.remote).toBe(source);
    }
  });

  it('connbytes on rta stops a 1 MiB transfer near N at the server; direct passes whole; ss shows the evidence', async () => {
    const N = 200_000;
    const rule = await topo.applyFault('rta', 'connbytes', { bytes: N });
    expect(rule.join(' ')).toContain(`--connbytes ${N}:`);
    try {
      const stalled = sendBytes(topo, server, topo.addrs.viaLb, MiB, 3000);
      const direct = sendBytes(topo, server, topo.addrs.direct, MiB, 3000);
      const [tStalled, tDirect] = await Promise.all([stalled.connected, direct.connected]);

      const d = await direct.outcome;
      expect(d).toMatchObject({ event: 'done', reply: { received: MiB } });

      const s = await stalled.outcome;
      expect(s.event).toBe('stalled');
      // The kernel's view of the stalled socket, read inside the client namespace while it is still open.
      const a = await tcpSnapshot(tStalled, 'stall', 3000, { netns: topo.ns.cli });
      await new Promise((r) => setTimeout(r, 1500));
      const b = await tcpSnapshot(tStalled, 'stall', 4500, { netns: topo.ns.cli });
      const atServer = server.received(tStalled.localPort)!;
      const directSnap = await tcpSnapshot(tDirect, 'end', 0, { netns: topo.ns.cli });
      stalled.release();

      expect(a.unavailable).toBeUndefined();
      const sa = a.snapshot!;
      const sb = b.snapshot!;
      const pick = (x: typeof sa) => ({
        state: x.state, bytesSent: x.bytesSent, bytesAcked: x.bytesAcked, bytesRetrans: x.bytesRetrans, retrans: x.retrans,
        retransTotal: x.retransTotal, unacked: x.unacked, backoff: x.backoff, sndWnd: x.sndWnd, rtoMs: x.rtoMs,
        lastAckMs: x.lastAckMs, notSent: x.notSent, wscale: x.wscale, pmtu: x.pmtu, mss: x.mss, cwnd: x.cwnd,
      });
      console.log(
        `connbytes ${N} on rta, 1 MiB from viaLb: client outcome ${JSON.stringify(s)}; server received ${atServer} B\n` +
          `  snapshot at stall:      ${JSON.stringify(pick(sa))}\n` +
          `  snapshot 1.5 s later:   ${JSON.stringify(pick(sb))}\n` +
          `  direct path (finished): ${directSnap.snapshot ? JSON.stringify(pick(directSnap.snapshot)) : directSnap.unavailable}\n` +
          `  raw: ${sb.raw}`,
      );
      // the server got roughly N bytes (N counts headers and the handshake), far from 1 MiB
      expect(atServer).toBeGreaterThan(N * 0.8);
      expect(atServer).toBeLessThanOrEqual(N);
      // incident 1's signature: acked frozen at what the server got, retransmissions rising, data in flight
      expect(sa.bytesAcked).toBe(atServer + 1); // +1: the SYN
      expect(sb.bytesAcked).toBe(sa.bytesAcked);
      expect(sa.retransTotal!).toBeGreaterThan(0);
      expect(sb.retransTotal!).toBeGreaterThanOrEqual(sa.retransTotal!);
      expect(sb.backoff!).toBeGreaterThan(0);
      expect(sa.unacked!).toBeGreaterThan(0);
      expect(sa.sndWnd === undefined || sa.sndWnd > 0).toBe(true); // the window is open: this is loss, not flow control
      // and the raw ss line parses the same way again
      expect(parseSsLine(sb.raw!).bytesAcked).toBe(sb.bytesAcked);
    } finally {
      await topo.clearFaults('rta');
    }
  });

  it('length on rta is a PMTU blackhole: small transfers pass, full-size segments vanish', async () => {
    await topo.applyFault('rta', 'length', { maxBytes: 1000 });
    try {
      const small = sendBytes(topo, server, topo.addrs.viaLb, 500, 3000);
      expect(await small.outcome).toMatchObject({ event: 'done', reply: { received: 500 } });
      const big = sendBytes(topo, server, topo.addrs.viaLb, 64 * KiB, 3000);
      const t = await big.connected;
      const out = await big.outcome;
      const snap = await tcpSnapshot(t, 'stall', 3000, { netns: topo.ns.cli });
      big.release();
      console.log(`length>1000 dropped on rta, 64 KiB: ${JSON.stringify(out)}; server got ${server.received(t.localPort)} B; ss: ` +
        `acked=${snap.snapshot?.bytesAcked} retrans=${snap.snapshot?.retrans}/${snap.snapshot?.retransTotal} mss=${snap.snapshot?.mss} pmtu=${snap.snapshot?.pmtu}`);
      expect(out.event).toBe('stalled');
      expect(server.received(t.localPort) ?? 0).toBe(0);
      expect(snap.snapshot!.bytesAcked).toBe(1);
      expect(snap.snapshot!.retransTotal!).toBeGreaterThan(0);
    } finally {
      await topo.clearFaults('rta');
    }
  });

  it('statistic on rtb drops at random: the transfer completes, with retransmissions', async () => {
    await topo.applyFault('rtb', 'statistic', { probability: 0.15 });
    try {
      const s = sendBytes(topo, server, topo.addrs.direct, 128 * KiB, 20_000);
      const t = await s.connected;
      const outcome = await s.outcome;
      expect(outcome).toMatchObject({ event: 'done', reply: { received: 128 * KiB } });
      // the server's count is in; the client's socket may linger in FIN-WAIT/TIME-WAIT, so read the server side
      const st = await topo.exec('rtb', 'iptables', ['-w', '-L', 'FORWARD', '-v', '-n', '-x']);
      const dropped = Number(/^\s*(\d+)\s+\d+\s+DROP/m.exec(st.stdout)?.[1] ?? 0);
      console.log(`random loss 15% on rtb, 128 KiB direct: ${JSON.stringify(outcome)}; rtb dropped ${dropped} packets`);
      expect(dropped).toBeGreaterThan(0);
      expect(t.localAddress).toBe(topo.addrs.direct);
    } finally {
      await topo.clearFaults('rtb');
    }
  });

  it('tcpoptstrip on rta removes window scaling from the handshake', async () => {
    await topo.applyFault('rta', 'tcpoptstrip', { options: ['wscale'] });
    try {
      // hold both connections idle for a second after the handshake so their sockets can be inspected
      const stripped = sendBytes(topo, server, topo.addrs.viaLb, 64 * KiB, 30_000, 1000);
      const normal = sendBytes(topo, server, topo.addrs.direct, 64 * KiB, 30_000, 1000);
      const [ts, tn] = await Promise.all([stripped.connected, normal.connected]);
      const [ss, sn] = await Promise.all([
        tcpSnapshot(ts, 'end', 0, { netns: topo.ns.cli }),
        tcpSnapshot(tn, 'end', 0, { netns: topo.ns.cli }),
      ]);
      console.log(`wscale via rta (stripped): ${JSON.stringify(ss.snapshot?.wscale)}; via rtb: ${JSON.stringify(sn.snapshot?.wscale)}`);
      expect(ss.snapshot!.wscale).toBeUndefined();
      expect(sn.snapshot!.wscale).toBeDefined();
      expect(await stripped.outcome).toMatchObject({ event: 'done', reply: { received: 64 * KiB } });
      expect(await normal.outcome).toMatchObject({ event: 'done' });
    } finally {
      await topo.clearFaults('rta');
    }
  });

  it('clearFaults leaves both FORWARD chains empty', async () => {
    await topo.applyFault('rtb', 'connbytes', { bytes: 1 });
    await topo.applyFault('rtb', 'tcpoptstrip', {});
    await topo.clearFaults('rtb');
    const filter = (await topo.exec('rtb', 'iptables', ['-w', '-S', 'FORWARD'])).stdout.trim();
    const mangle = (await topo.exec('rtb', 'iptables', ['-w', '-t', 'mangle', '-S', 'FORWARD'])).stdout.trim();
    expect(filter).toBe('-P FORWARD ACCEPT');
    expect(mangle).toBe('-P FORWARD ACCEPT');
  });
});

describe.skipIf(!avail.ok)('netlab cleanup', () => {
  it('destroy() removes every namespace, is idempotent, and kills what spawn started', async () => {
    const topo = await createTopology();
    const child = topo.spawn('srv', 'sleep', ['600']);
    await new Promise((r) => setTimeout(r, 100));
    await topo.destroy();
    await topo.destroy();
    expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
    const { execFileSync } = await import('node:child_process');
    const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
    for (const name of Object.values(topo.ns)) expect(list).not.toContain(name);
  });

  it('sweeps namespaces left behind by a process that no longer exists (a SIGKILLed run)', async () => {
    const { execFileSync, spawn } = await import('node:child_process');
    const gone = spawn('true');
    await new Promise((r) => gone.once('exit', r));
    const stale = `mxprobe-${gone.pid}-abc123-cli`;
    const mine = `mxprobe-${process.pid}-abc123-srv`;
    execFileSync('ip', ['netns', 'add', stale]);
    execFileSync('ip', ['netns', 'add', mine]);
    try {
      const removed = await sweepStaleNamespaces();
      expect(removed).toContain(stale);
      expect(removed).not.toContain(mine); // this process is alive: its namespaces are not stale
      const list = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
      expect(list).not.toContain(stale);
      expect(list).toContain(mine);
    } finally {
      for (const n of [stale, mine]) {
        try {
          execFileSync('ip', ['netns', 'del', n], { stdio: 'ignore' });
        } catch {
          /* already gone */
        }
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import {
  findSsEntry,
  normalizeAddress,
  parseSsEndpoint,
  parseSsLine,
  parseSsVersion,
  splitSsOutput,
  ssZeroFill,
} from '../../src/probe/tcpinfo.js';

// Real `ss -tinH state all …` output captured on Debian 12 (iproute2 6.1.0, kernel 6.x), tabs and all.

/** Client whose server stopped reading: 8 MiB written, the peer's window closed (no snd_wnd printed = 0). */
const ZERO_WINDOW =
  'ESTAB 0      3723910 127.0.0.1:51326 127.0.0.1:44835\n' +
  '\t bbr wscale:10,10 rto:208 backoff:2 rtt:7.329/13.396 mss:47616 pmtu:65535 rcvmss:536 advmss:65483 cwnd:18 bytes_sent:230400 bytes_retrans:34843 bytes_acked:195558 segs_out:12 segs_in:5 data_segs_out:8 bbr:(bw:213881832bps,mrtt:0.05,pacing_gain:2.88672,cwnd_gain:2.88672) send 935557921bps lastsnd:1500 lastrcv:1532 lastack:1256 pacing_rate 149710259888bps delivery_rate 26692448bps delivered:9 busy:1528ms rwnd_limited:1528ms(100.0%) retrans:0/2 dsack_dups:2 rcv_space:65495 rcv_ssthresh:65495 notsent:3723910 minrtt:0.05\n';

/** The server side of it: 130021 bytes unread in its receive queue. */
const PAUSED_SERVER =
  'ESTAB 130021 0      127.0.0.1:44835 127.0.0.1:51326\n' +
  '\t bbr wscale:10,10 rto:200 rtt:0.023/0.011 ato:80 mss:32768 pmtu:65535 rcvmss:47616 advmss:65483 cwnd:10 bytes_received:195557 segs_out:4 segs_in:12 data_segs_in:8 bbr:(bw:0bps,mrtt:0.023) send 113975652174bps lastsnd:1552 lastrcv:1532 lastack:1520 pacing_rate 325725462640bps delivered:1 app_limited rcv_rtt:1 rcv_space:65483 rcv_ssthresh:95232 minrtt:0.023 snd_wnd:65536\n';

/** Dual-stack listener's accepted socket: IPv4-mapped IPv6 endpoints. */
const MAPPED =
  'ESTAB 0      0      [::ffff:127.0.0.1]:44187 [::ffff:127.0.0.1]:33014\n' +
  '\t bbr wscale:10,10 rto:204 rtt:0.029/0.014 ato:40 mss:32768 pmtu:65535 rcvmss:1000 advmss:65483 cwnd:11 bytes_sent:5 bytes_acked:5 bytes_received:1000 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:12483046872bps,mrtt:0.021,pacing_gain:2.88672,cwnd_gain:2.88672) send 99433931034bps lastsnd:344 lastrcv:344 lastack:344 pacing_rate 241667296016bps delivery_rate 12483047616bps delivered:2 app_limited rcv_space:65483 rcv_ssthresh:70173 minrtt:0.021 snd_wnd:65536\n';

const IPV6 =
  'ESTAB 0      0      [::1]:39768 [::1]:44187\n' +
  '\t bbr wscale:10,10 rto:204 rtt:0.03/0.016 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:1 bytes_acked:2 bytes_received:5 segs_out:4 segs_in:3 data_segs_out:1 data_segs_in:1 bbr:(bw:23831265624bps,mrtt:0.011,pacing_gain:2.88672,cwnd_gain:2.88672) send 96119466667bps lastsnd:380 lastrcv:380 lastack:380 pacing_rate 226771349648bps delivery_rate 23831272720bps delivered:2 app_limited rcv_space:65476 rcv_ssthresh:65476 minrtt:0.011 snd_wnd:65536\n';

const TIME_WAIT = 'TIME-WAIT 0      0      127.0.0.1:33014 127.0.0.1:44187\n\t\n';

/** `ss -tinH state all sport = :44187`: the listener and the server side of the IPv6 connection. */
const LISTEN_AND_ESTAB =
  'LISTEN 0      511        *:44187     *:*    \n\t bbr cwnd:10\n' +
  'ESTAB  0      0      [::1]:44187 [::1]:39768\n' +
  '\t bbr wscale:10,10 rto:204 rtt:0.023/0.012 ato:40 mss:32768 pmtu:65536 rcvmss:536 advmss:65464 cwnd:11 bytes_sent:5 bytes_acked:5 bytes_received:1 segs_out:2 segs_in:4 data_segs_out:1 data_segs_in:1 bbr:(bw:23831265624bps,mrtt:0.011,pacing_gain:2.88672,cwnd_gain:2.88672) send 125373217391bps lastsnd:728 lastrcv:728 lastack:728 pacing_rate 299667438136bps delivery_rate 23831272720bps delivered:2 app_limited rcv_space:65464 rcv_ssthresh:65464 minrtt:0.011 snd_wnd:65536\n';

const SS61 = 'ss utility, iproute2-6.1.0\n';
const FILL = ssZeroFill(SS61, '6.1.0-18-amd64');

describe('parseSsLine', () => {
  it('reads the sender side of a closed window: acked, retrans a/b, wscale, rtt, rto, mss, pmtu, cwnd', () => {
    const s = parseSsLine(ZERO_WINDOW);
    expect(s).toMatchObject({
      state: 'ESTAB',
      bytesSent: 230400,
      bytesAcked: 195558,
      bytesRetrans: 34843,
      retrans: 0,
      retransTotal: 2,
      wscale: { snd: 10, rcv: 10 },
      rttMs: 7.329,
      rttVarMs: 13.396,
      rtoMs: 208,
      mss: 47616,
      pmtu: 65535,
      cwnd: 18,
      backoff: 2,
      lastAckMs: 1256,
      notSent: 3723910,
      rwndLimitedMs: 1528,
      rcvWnd: 65495, // iproute2 6.1 has no rcv_wnd: rcv_space stands in
    });
    expect(s.raw).toContain('bytes_acked:195558');
    expect(s.raw).not.toContain('\n');
  });

  it('leaves fields ss did not print absent, not 0, without zeroFill', () => {
    const s = parseSsLine(ZERO_WINDOW);
    expect('sndWnd' in s).toBe(false);
    expect('unacked' in s).toBe(false);
    expect('bytesReceived' in s).toBe(false);
  });

  it('with the zero-fill list of ss 6.1 on a 6.x kernel, a missing snd_wnd is a closed window (0)', () => {
    const s = parseSsLine(ZERO_WINDOW, { zeroFill: FILL });
    expect(s.sndWnd).toBe(0);
    expect(s.unacked).toBe(0);
    expect(s.bytesReceived).toBe(0);
    expect(s.bytesAcked).toBe(195558); // printed values are untouched
    expect(s.retransTotal).toBe(2);
  });

  it('reads the receiver side: bytes_received and an open snd_wnd', () => {
    const s = parseSsLine(PAUSED_SERVER, { zeroFill: FILL });
    expect(s).toMatchObject({ bytesReceived: 195557, sndWnd: 65536, bytesSent: 0, bytesAcked: 0, retrans: 0, retransTotal: 0 });
  });

  it('parses IPv4-mapped and IPv6 entries the same way', () => {
    expect(parseSsLine(MAPPED)).toMatchObject({ bytesReceived: 1000, bytesAcked: 5, sndWnd: 65536, mss: 32768 });
    expect(parseSsLine(IPV6)).toMatchObject({ bytesSent: 1, bytesAcked: 2, pmtu: 65536, rttMs: 0.03, rttVarMs: 0.016 });
  });

  it('gives a TIME-WAIT socket only its state, even with zeroFill (it has no TCP info)', () => {
    expect(parseSsLine(TIME_WAIT, { zeroFill: FILL })).toEqual({
      state: 'TIME-WAIT',
      raw: 'TIME-WAIT 0 0 127.0.0.1:33014 127.0.0.1:44187',
    });
  });

  it('takes rcv_wnd over rcv_space when a newer ss prints both', () => {
    const s = parseSsLine('ESTAB 0 0 10.0.0.1:1 10.0.0.2:25\n\t cubic rto:204 mss:1448 rcv_space:14480 snd_wnd:0 rcv_wnd:64256');
    expect(s).toMatchObject({ rcvWnd: 64256, sndWnd: 0, rtoMs: 204, mss: 1448 });
  });

  it('reads the handshake: advmss, rcvmss and the option flags (ts, sack, ecn) when negotiated', () => {
    const s = parseSsLine('ESTAB 0 0 198.18.3.2:2525 198.18.1.2:40000\n\t ts sack ecn cubic wscale:7,7 rto:204 mss:1368 pmtu:1500 rcvmss:1368 advmss:1448 cwnd:10');
    expect(s).toMatchObject({ advMss: 1448, rcvMss: 1368, mss: 1368, options: ['ts', 'sack', 'ecn'], wscale: { snd: 7, rcv: 7 } });
    // no flag printed: none negotiated (an empty list, not unknown), but only for a socket with TCP info
    expect(parseSsLine('ESTAB 0 0 10.0.0.1:1 10.0.0.2:25 cubic rto:204 mss:536 advmss:1460').options).toEqual([]);
    expect(parseSsLine('TIME-WAIT 0 0 127.0.0.1:33014 127.0.0.1:44187').options).toBeUndefined();
  });

  it('accepts a Netid column and a bare info line', () => {
    expect(parseSsLine('tcp ESTAB 0 0 10.0.0.1:1 10.0.0.2:25 cubic cwnd:10 unacked:7')).toMatchObject({
      state: 'ESTAB',
      cwnd: 10,
      unacked: 7,
    });
    expect(parseSsLine('cubic rto:1000 retrans:3/9 unacked:12')).toMatchObject({ rtoMs: 1000, retrans: 3, retransTotal: 9, unacked: 12 });
  });
});

describe('ss output helpers', () => {
  it('splits multi-socket output into one text per socket', () => {
    const parts = splitSsOutput(LISTEN_AND_ESTAB);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toBe('LISTEN 0 511 *:44187 *:* bbr cwnd:10');
    expect(parts[1]!.startsWith('ESTAB 0 0 [::1]:44187 [::1]:39768 bbr wscale:10,10')).toBe(true);
  });

  it('matches the exact 4-tuple, IPv4-mapped addresses included', () => {
    const out = LISTEN_AND_ESTAB + MAPPED;
    expect(findSsEntry(out, { localAddress: '::1', localPort: 44187, remoteAddress: '::1', remotePort: 39768 })).toContain('bytes_received:1 ');
    expect(findSsEntry(out, { localAddress: '127.0.0.1', localPort: 44187, remoteAddress: '127.0.0.1', remotePort: 33014 })).toContain('bytes_received:1000');
    expect(findSsEntry(out, { localAddress: '::ffff:127.0.0.1', localPort: 44187, remoteAddress: '::FFFF:127.0.0.1', remotePort: 33014 })).toContain('bytes_received:1000');
    // same ports, other address: no match
    expect(findSsEntry(out, { localAddress: '127.0.0.2', localPort: 44187, remoteAddress: '127.0.0.1', remotePort: 33014 })).toBeUndefined();
  });

  it('prefers a live socket over a TIME-WAIT ghost of the same tuple', () => {
    const live = ZERO_WINDOW;
    const ghost = 'TIME-WAIT 0 0 127.0.0.1:51326 127.0.0.1:44835\n\t\n';
    expect(findSsEntry(ghost + live, { localAddress: '127.0.0.1', localPort: 51326, remoteAddress: '127.0.0.1', remotePort: 44835 })).toMatch(/^ESTAB/);
  });

  it('normalises addresses and endpoints', () => {
    expect(normalizeAddress('[::FFFF:10.1.2.3]')).toBe('10.1.2.3');
    expect(normalizeAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(parseSsEndpoint('[2001:db8::1]:25')).toEqual({ address: '2001:db8::1', port: 25 });
    expect(parseSsEndpoint('10.0.0.1%eth0:587')).toEqual({ address: '10.0.0.1', port: 587 });
    expect(parseSsEndpoint('*:*')).toEqual({ address: '*', port: undefined });
  });
});

describe('ssZeroFill', () => {
  it('knows which absences mean zero per ss and kernel version', () => {
    expect(parseSsVersion(SS61)).toEqual({ major: 6, minor: 1 });
    expect(parseSsVersion('ss utility, iproute2-ss190107')).toEqual({ snapshotDate: 190107 });
    expect(FILL).toEqual(expect.arrayContaining(['bytesAcked', 'bytesSent', 'sndWnd', 'unacked', 'retrans']));
    // ss 5.10 never prints snd_wnd: its absence means "unknown", not 0
    expect(ssZeroFill('ss utility, iproute2-5.10.0', '5.10.0')).not.toContain('sndWnd');
    // kernel 4.19 with ss 6.1: no tcpi_snd_wnd in the kernel
    expect(ssZeroFill(SS61, '4.19.0-20-amd64')).not.toContain('sndWnd');
    expect(ssZeroFill(SS61, '4.19.0-20-amd64')).toContain('bytesSent');
    expect(ssZeroFill('garbage', 'x')).toEqual(['bytesAcked', 'bytesReceived', 'unacked', 'retrans', 'backoff']);
  });
});

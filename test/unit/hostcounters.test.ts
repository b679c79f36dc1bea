/** Host-level context of a stall: the host's TCP counters (nstat's names) parsed from /proc and their rises. */
import { describe, expect, it } from 'vitest';
import { HOST_COUNTERS, hostCounterDeltas, parseProcNetstat, readHostCounters } from '../../src/probe/hostcounters.js';

const NETSTAT = `TcpExt: SyncookiesSent PAWSActive PAWSEstab BeyondWindow TCPTimeouts TCPACKSkippedSeq
TcpExt: 0 1 7 0 12 3
IpExt: InNoRoutes InOctets
IpExt: 0 123456
`;
const SNMP = `Tcp: RtoAlgorithm RtoMin RetransSegs InErrs InCsumErrors
Tcp: 1 200 40 2 0
`;

describe('host TCP counters', () => {
  it('parses the names/values line pairs of /proc/net/netstat and /proc/net/snmp into Prefix.Name', () => {
    expect(parseProcNetstat(NETSTAT)).toEqual({
      'TcpExt.SyncookiesSent': 0, 'TcpExt.PAWSActive': 1, 'TcpExt.PAWSEstab': 7, 'TcpExt.BeyondWindow': 0, 'TcpExt.TCPTimeouts': 12, 'TcpExt.TCPACKSkippedSeq': 3,
      'IpExt.InNoRoutes': 0, 'IpExt.InOctets': 123456,
    });
    expect(parseProcNetstat(SNMP)).toMatchObject({ 'Tcp.RetransSegs': 40, 'Tcp.InErrs': 2, 'Tcp.InCsumErrors': 0 });
  });

  it('keeps only the chosen counters that rose, with the rise', () => {
    const before = { ...parseProcNetstat(NETSTAT), ...parseProcNetstat(SNMP) };
    const after = { ...before, 'TcpExt.PAWSEstab': 10, 'TcpExt.TCPTimeouts': 15, 'Tcp.RetransSegs': 40, 'IpExt.InOctets': 999_999 };
    expect(hostCounterDeltas(before, after)).toEqual({ 'TcpExt.PAWSEstab': 3, 'TcpExt.TCPTimeouts': 3 });
    expect(hostCounterDeltas(before, before)).toEqual({});
  });

  it.runIf(process.platform === 'linux')('reads this host: every chosen Tcp counter the kernel has is a number', async () => {
    const now = await readHostCounters();
    expect(now).toBeDefined();
    expect(typeof now!['Tcp.RetransSegs']).toBe('number');
    expect(typeof now!['TcpExt.PAWSEstab']).toBe('number');
    expect(Object.keys(HOST_COUNTERS).filter((k) => now![k] === undefined).length).toBeLessThan(Object.keys(HOST_COUNTERS).length);
  });
});

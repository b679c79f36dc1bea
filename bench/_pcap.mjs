// A small pcap reader for the benches: classic pcap (µs or ns timestamps, either byte order), Ethernet / Linux
// cooked v1 / v2 link layers, IPv4 + TCP only. Enough to time SMTP on loopback; not a general dissector.
import { readFileSync } from 'node:fs';

const LINK_HEADER = { 1: 14, 113: 16, 276: 20 };

/** Every IPv4 TCP packet of a capture file: { tMs (capture clock, ms), src, dst, sport, dport, flags, len }. */
export function readPcap(file) {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  if (!le && b.readUInt32BE(0) !== 0xa1b2c3d4 && b.readUInt32BE(0) !== 0xa1b23c4d) throw new Error(`${file}: not a pcap file`);
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const nano = (le ? magic : b.readUInt32BE(0)) === 0xa1b23c4d;
  const link = LINK_HEADER[u32(20)];
  if (link === undefined) throw new Error(`${file}: link type ${u32(20)} not handled`);
  const out = [];
  for (let o = 24; o + 16 <= b.length; ) {
    const sec = u32(o);
    const frac = u32(o + 4);
    const caplen = u32(o + 8);
    const p = packet(b.subarray(o + 16, o + 16 + caplen), link);
    if (p) out.push({ tMs: sec * 1000 + frac / (nano ? 1e6 : 1e3), ...p });
    o += 16 + caplen;
  }
  return out;
}

function packet(f, link) {
  const ip = link;
  if (f.length < ip + 20 || f[ip] >> 4 !== 4 || f[ip + 9] !== 6) return undefined;
  const ihl = (f[ip] & 15) * 4;
  const total = f.readUInt16BE(ip + 2);
  const tcp = ip + ihl;
  if (f.length < tcp + 20) return undefined;
  const thl = (f[tcp + 12] >> 4) * 4;
  return {
    src: `${f[ip + 12]}.${f[ip + 13]}.${f[ip + 14]}.${f[ip + 15]}`,
    dst: `${f[ip + 16]}.${f[ip + 17]}.${f[ip + 18]}.${f[ip + 19]}`,
    sport: f.readUInt16BE(tcp),
    dport: f.readUInt16BE(tcp + 2),
    flags: f[tcp + 13],
    len: total - ihl - thl,
  };
}

export const SYN = 0x02;
export const ACK = 0x10;

/**
 * Connections to `serverPort` by the client's port, each port's connections in capture order (a port the kernel
 * hands out again starts a new connection at its SYN); every packet marked `fromClient`.
 */
export function byClientPort(packets, serverPort) {
  const m = new Map();
  for (const p of packets) {
    const fromClient = p.dport === serverPort;
    if (!fromClient && p.sport !== serverPort) continue;
    const port = fromClient ? p.sport : p.dport;
    if (!m.has(port)) m.set(port, []);
    const conns = m.get(port);
    if ((fromClient && p.flags & SYN && !(p.flags & ACK)) || conns.length === 0) conns.push([]);
    conns.at(-1).push({ ...p, fromClient });
  }
  return m;
}

/**
 * One SMTP connection's packet intervals (ms) per stage, for a plain (no TLS) session with one recipient:
 * connect = SYN → SYN-ACK; greeting = SYN-ACK → the greeting's last segment; each command = its first segment →
 * the reply's last segment; body = first → last segment of the message; dataAck = the message's last segment (the
 * one with the final dot) → the reply's last segment.
 */
export function packetStages(pkts) {
  const syn = pkts.find((p) => p.fromClient && p.flags & SYN && !(p.flags & ACK));
  const synAck = pkts.find((p) => !p.fromClient && p.flags & SYN && p.flags & ACK);
  if (!syn || !synAck) return undefined;
  const flights = [];
  for (const p of pkts) {
    if (p.len <= 0) continue;
    const f = flights.at(-1);
    if (f && f.fromClient === p.fromClient) f.last = p.tMs;
    else flights.push({ fromClient: p.fromClient, first: p.tMs, last: p.tMs });
  }
  const s = { connect: synAck.tMs - syn.tMs };
  if (flights[0] && !flights[0].fromClient) s.greeting = flights[0].last - synAck.tMs;
  const names = ['ehlo', 'mail', 'rcpt', 'data', 'message', 'quit'];
  for (let i = 0; i < names.length; i++) {
    const c = flights[1 + 2 * i];
    const r = flights[2 + 2 * i];
    if (!c || !r || !c.fromClient) break;
    if (names[i] === 'message') {
      s.body = c.last - c.first;
      s.dataAck = r.last - c.last;
    } else s[names[i]] = r.last - c.first;
  }
  return s;
}

/**
 * A minimal pcap reader: the classic libpcap file format (not pcapng: tcpdump `-w` writes classic pcap, and that is
 * what `probe --capture` stores), microsecond or nanosecond timestamps, either byte order; link types Ethernet
 * (with 802.1Q tags), Linux cooked (SLL, what `tcpdump -i any` writes, and SLL2), raw IP and BSD loopback; IPv4
 * and IPv6 (no extension headers); TCP headers with the handshake options. Parsed in-process, no dependency: the
 * format is a 24-byte header and 16-byte record headers, the part of each packet needed is its headers, and a
 * library (pcap-parser, pcap-ng-parser: small, little kept up, streaming APIs around the same few reads) would add
 * code to read, not remove it. Pure: bytes in, packets out; every read is bounds-checked (a truncated or hostile
 * file yields the packets before the damage, never an exception).
 */

export interface TcpPacket {
  /** Seconds since the epoch (fractional). */
  t: number;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq: number;
  ack: number;
  /** TCP flags byte: FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10. */
  flags: number;
  /** The window field as sent (unscaled). */
  win: number;
  /** Payload bytes, from the IP lengths (a snaplen-cut capture keeps the count, not the bytes). */
  len: number;
  /** Handshake options (SYN segments): MSS and window scale when present. */
  mss?: number;
  wscale?: number;
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

/** Packets read at most (a 16 MiB probe is about 12,000 segments each way). */
export const MAX_PACKETS = 200_000;

type Reader = { u32: (o: number) => number };

function headerOf(buf: Buffer): { r: Reader; nano: boolean; link: number } | undefined {
  if (buf.length < 24) return undefined;
  const le = buf.readUInt32LE(0);
  const be = buf.readUInt32BE(0);
  const magic = le === 0xa1b2c3d4 || le === 0xa1b23c4d ? le : be === 0xa1b2c3d4 || be === 0xa1b23c4d ? be : undefined;
  if (magic === undefined) return undefined;
  const little = magic === le;
  const r: Reader = { u32: (o) => (little ? buf.readUInt32LE(o) : buf.readUInt32BE(o)) };
  return { r, nano: magic === 0xa1b23c4d, link: r.u32(20) & 0xffff };
}

/** Offset of the IP header in a frame of this link type, and the EtherType (0 when the IP version decides). */
function ipStart(frame: Buffer, link: number): number | undefined {
  if (link === 101 || link === 12 || link === 14) return 0; // raw IP
  if (link === 0 || link === 108) return frame.length >= 4 ? 4 : undefined; // BSD loopback: 4-byte family
  if (link === 113) return frame.length >= 16 && isIp(frame.readUInt16BE(14)) ? 16 : undefined; // Linux SLL
  if (link === 276) return frame.length >= 20 && isIp(frame.readUInt16BE(0)) ? 20 : undefined; // Linux SLL2
  if (link === 1) {
    let o = 12;
    while (frame.length >= o + 2 && (frame.readUInt16BE(o) === 0x8100 || frame.readUInt16BE(o) === 0x88a8)) o += 4;
    return frame.length >= o + 2 && isIp(frame.readUInt16BE(o)) ? o + 2 : undefined;
  }
  return undefined;
}

const isIp = (etherType: number) => etherType === 0x0800 || etherType === 0x86dd;

function ipv4(b: Buffer, o: number): string {
  return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`;
}

function ipv6(b: Buffer, o: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(o + i).toString(16));
  return parts.join(':'); // uncompressed: only compared with itself, to tell the two ends apart
}

/** The IP packet at `o`: addresses, where TCP starts, and the TCP segment's length (headers + payload). */
function ipLayer(f: Buffer, o: number): { src: string; dst: string; tcp: number; tcpBytes: number } | undefined {
  if (f.length < o + 1) return undefined;
  const v = f[o]! >> 4;
  if (v === 4 && f.length >= o + 20) {
    const ihl = (f[o]! & 0x0f) * 4;
    if (f[o + 9] !== 6 || ihl < 20 || (f.readUInt16BE(o + 6) & 0x1fff) !== 0) return undefined; // TCP, first fragment
    return { src: ipv4(f, o + 12), dst: ipv4(f, o + 16), tcp: o + ihl, tcpBytes: f.readUInt16BE(o + 2) - ihl };
  }
  if (v === 6 && f.length >= o + 40) {
    if (f[o + 6] !== 6) return undefined;
    return { src: ipv6(f, o + 8), dst: ipv6(f, o + 24), tcp: o + 40, tcpBytes: f.readUInt16BE(o + 4) };
  }
  return undefined;
}

/** MSS (kind 2) and window scale (kind 3) from the options of a SYN. */
function synOptions(f: Buffer, from: number, to: number): { mss?: number; wscale?: number } {
  const out: { mss?: number; wscale?: number } = {};
  let i = from;
  while (i < to && i < f.length) {
    const kind = f[i]!;
    if (kind === 0) break;
    if (kind === 1) {
      i++;
      continue;
    }
    const len = f[i + 1] ?? 0;
    if (len < 2 || i + len > to || i + len > f.length) break;
    if (kind === 2 && len === 4) out.mss = f.readUInt16BE(i + 2);
    if (kind === 3 && len === 3) out.wscale = f[i + 2]!;
    i += len;
  }
  return out;
}

function tcpLayer(f: Buffer, ip: NonNullable<ReturnType<typeof ipLayer>>, t: number): TcpPacket | undefined {
  const o = ip.tcp;
  if (f.length < o + 20) return undefined;
  const hdr = (f[o + 12]! >> 4) * 4;
  if (hdr < 20) return undefined;
  const p: TcpPacket = {
    t,
    src: ip.src,
    dst: ip.dst,
    sport: f.readUInt16BE(o),
    dport: f.readUInt16BE(o + 2),
    seq: f.readUInt32BE(o + 4),
    ack: f.readUInt32BE(o + 8),
    flags: f[o + 13]!,
    win: f.readUInt16BE(o + 14),
    len: Math.max(0, ip.tcpBytes - hdr),
  };
  if (p.flags & TCP_SYN) Object.assign(p, synOptions(f, o + 20, o + hdr));
  return p;
}

/** Every TCP packet of a classic pcap file, in file order. Not a pcap (or pcapng): an empty list. */
export function parsePcap(buf: Buffer): TcpPacket[] {
  const h = headerOf(buf);
  if (!h) return [];
  const out: TcpPacket[] = [];
  let o = 24;
  while (o + 16 <= buf.length && out.length < MAX_PACKETS) {
    const sec = h.r.u32(o);
    const frac = h.r.u32(o + 4);
    const incl = h.r.u32(o + 8);
    if (o + 16 + incl > buf.length) break; // truncated record: stop at the damage
    const frame = buf.subarray(o + 16, o + 16 + incl);
    o += 16 + incl;
    const start = ipStart(frame, h.link);
    const ip = start === undefined ? undefined : ipLayer(frame, start);
    const p = ip && tcpLayer(frame, ip, sec + frac / (h.nano ? 1e9 : 1e6));
    if (p) out.push(p);
  }
  return out;
}

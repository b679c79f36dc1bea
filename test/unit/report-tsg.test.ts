/**
 * The time-sequence graph of a captured connection: the in-process pcap reader (Ethernet and Linux-cooked frames,
 * IPv4/IPv6, TCP with handshake options, either byte order), the series (segments, retransmissions, ACKs, window
 * edge scaled as the sender scales it) and their SVG (classes only: the report's CSP allows no inline style).
 */
import { describe, expect, it } from 'vitest';
import { parsePcap, TCP_ACK, TCP_SYN } from '../../src/report/pcap.js';
import { renderReport } from '../../src/report/html.js';
import { describeTimeSequence, renderTimeSequence, timeSequence } from '../../src/report/tsg.js';

interface Seg { t: number; from: 'c' | 's'; seq: number; ack: number; flags: number; win: number; len: number; wscale?: number; mss?: number }

function tcpBytes(s: Seg): Buffer {
  const opts: number[] = [];
  if (s.mss !== undefined) opts.push(2, 4, s.mss >> 8, s.mss & 0xff);
  if (s.wscale !== undefined) opts.push(1, 3, 3, s.wscale);
  while (opts.length % 4) opts.push(0);
  const h = Buffer.alloc(20 + opts.length);
  h.writeUInt16BE(s.from === 'c' ? 40000 : 25, 0);
  h.writeUInt16BE(s.from === 'c' ? 25 : 40000, 2);
  h.writeUInt32BE(s.seq >>> 0, 4);
  h.writeUInt32BE(s.ack >>> 0, 8);
  h[12] = ((20 + opts.length) / 4) << 4;
  h[13] = s.flags;
  h.writeUInt16BE(s.win, 14);
  Buffer.from(opts).copy(h, 20);
  return h;
}

function ipv4(s: Seg, tcp: Buffer): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + tcp.length + s.len, 2);
  ip[9] = 6;
  Buffer.from(s.from === 'c' ? [198, 18, 1, 1] : [198, 18, 5, 1]).copy(ip, 12);
  Buffer.from(s.from === 'c' ? [198, 18, 5, 1] : [198, 18, 1, 1]).copy(ip, 16);
  return ip;
}

/** A pcap of these segments: `link` 1 (Ethernet) or 113 (Linux cooked), little- or big-endian; payload cut (snaplen). */
function pcap(segs: Seg[], link: 1 | 113, big = false): Buffer {
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    if (big) b.writeUInt32BE(v >>> 0);
    else b.writeUInt32LE(v >>> 0);
    return b;
  };
  const u16 = (v: number) => {
    const b = Buffer.alloc(2);
    if (big) b.writeUInt16BE(v);
    else b.writeUInt16LE(v);
    return b;
  };
  const parts = [u32(0xa1b2c3d4), u16(2), u16(4), u32(0), u32(0), u32(96), u32(link)];
  for (const s of segs) {
    const tcp = tcpBytes(s);
    const l2 = link === 1 ? Buffer.concat([Buffer.alloc(12), Buffer.from([0x08, 0x00])]) : Buffer.concat([Buffer.alloc(14), Buffer.from([0x08, 0x00])]);
    const frame = Buffer.concat([l2, ipv4(s, tcp), tcp, Buffer.alloc(Math.min(s.len, 8))]); // a cut payload
    parts.push(u32(Math.floor(s.t)), u32(Math.round((s.t % 1) * 1e6)), u32(frame.length), u32(frame.length + s.len), frame);
  }
  return Buffer.concat(parts);
}

const ISN = 1000;
/** The SYN-ACK lost its window-scale option (incident 2): data crawls in 64-byte windows; one segment is sent twice. */
const STRIPPED: Seg[] = [
  { t: 100, from: 'c', seq: ISN, ack: 0, flags: TCP_SYN, win: 64240, len: 0, mss: 1460, wscale: 7 },
  { t: 100.001, from: 's', seq: 5000, ack: ISN + 1, flags: TCP_SYN | TCP_ACK, win: 65160, len: 0, mss: 1460 },
  { t: 100.002, from: 'c', seq: ISN + 1, ack: 5001, flags: TCP_ACK, win: 502, len: 0 },
  { t: 100.01, from: 'c', seq: ISN + 1, ack: 5001, flags: TCP_ACK, win: 502, len: 64 },
  { t: 100.02, from: 's', seq: 5001, ack: ISN + 65, flags: TCP_ACK, win: 1, len: 0 },
  { t: 100.3, from: 'c', seq: ISN + 65, ack: 5001, flags: TCP_ACK, win: 502, len: 64 },
  { t: 100.9, from: 'c', seq: ISN + 65, ack: 5001, flags: TCP_ACK, win: 502, len: 64 },
  { t: 101.0, from: 's', seq: 5001, ack: ISN + 129, flags: TCP_ACK, win: 1, len: 0 },
];

describe('pcap reader', () => {
  it('reads Ethernet and Linux-cooked frames, little- and big-endian, with payload lengths from the IP header', () => {
    for (const file of [pcap(STRIPPED, 1), pcap(STRIPPED, 113), pcap(STRIPPED, 113, true)]) {
      const ps = parsePcap(file);
      expect(ps).toHaveLength(STRIPPED.length);
      expect(ps[0]).toMatchObject({ src: '198.18.1.1', sport: 40000, dst: '198.18.5.1', dport: 25, seq: ISN, flags: TCP_SYN, mss: 1460, wscale: 7 });
      expect(ps[1]!.wscale).toBeUndefined();
      expect(ps[3]!.len).toBe(64); // 8 bytes captured, 64 sent
      expect(ps[7]!.t).toBeCloseTo(101.0, 5);
    }
  });

  it('a file that is not a pcap, or is cut in the middle of a record, yields what came before the damage', () => {
    expect(parsePcap(Buffer.from('not a capture at all, no magic here'))).toEqual([]);
    const whole = pcap(STRIPPED, 1);
    expect(parsePcap(whole.subarray(0, whole.length - 5))).toHaveLength(STRIPPED.length - 1);
  });
});

describe('time-sequence graph', () => {
  const ts = timeSequence(parsePcap(pcap(STRIPPED, 113)))!;

  it('segments relative to the first byte, the retransmission marked, the window edge unscaled when the SYN-ACK had no option', () => {
    expect(ts.sender).toBe('198.18.1.1:40000');
    expect(ts.handshake).toEqual({ syn: 7, seen: true });
    expect(ts.wscale).toBe(0);
    expect(ts.segments.map((s) => [s.seq, s.end, s.retrans])).toEqual([[0, 64], [64, 128], [64, 128]].map(([a, b], i) => [a, b, i === 2]));
    expect(ts.retransmissions).toBe(1);
    expect(ts.acks.map((a) => [a.ack, a.edge])).toEqual([[64, 65], [128, 129]]);
    expect(describeTimeSequence(ts)).toBe('198.18.1.1:40000 → 198.18.5.1:25: 3 data segments, 1 retransmitted, 2 ACKs over 1 s; window scale in the SYN 7, in the SYN-ACK none → the sender scales the window by 2^0');
  });

  it('with the option in both SYNs the window is scaled by the SYN-ACK\'s shift', () => {
    const both = STRIPPED.map((s, i) => (i === 1 ? { ...s, wscale: 7 } : s));
    const t2 = timeSequence(parsePcap(pcap(both, 1)))!;
    expect(t2.wscale).toBe(7);
    expect(t2.acks[0]!.edge).toBe(64 + 128);
  });

  it('draws inline SVG with classes only (no style attribute), one line per segment, the retransmission in its own class', () => {
    const svg = renderTimeSequence(ts, 'p1 <b>');
    expect(svg.startsWith('<svg class="tsg"')).toBe(true);
    expect(svg).not.toMatch(/style=/);
    expect(svg).toContain('aria-label="time-sequence graph of p1 &lt;b&gt;"');
    expect(svg.match(/<line class="seg"/g)).toHaveLength(2);
    expect(svg.match(/<line class="rtx"/g)).toHaveLength(1);
    expect(svg).toContain('<polyline class="ack"');
    expect(svg).toContain('<polyline class="wnd"');
  });
});

describe('report section', () => {
  it('a probe with a capture gets its graph in the report, under the same CSP (no inline style), its file named', () => {
    const ts = timeSequence(parsePcap(pcap(STRIPPED, 1)))!;
    const html = renderReport({
      results: [], cells: [], findings: [], verdict: 'v',
      captures: [
        { probeId: 'p-1', path: 'via-lb', sizeBytes: 65536, outcome: 'stalled', file: '/tmp/cap/p-1.pcap', ts },
        { probeId: 'p-2', path: 'via-lb', sizeBytes: 65536, outcome: 'stalled', file: '/tmp/cap/p-2.pcap', error: 'the file is gone' },
      ],
    });
    expect(html).toContain('<section id="captures">');
    expect(html).toContain('Captured connections: sequence and ACKs against time (2)');
    expect(html).toContain('<svg class="tsg"');
    expect(html).toContain('capture /tmp/cap/p-2.pcap: the file is gone');
    expect(html).not.toMatch(/\sstyle="/);
    expect(html).toContain("content=\"default-src 'none'; style-src 'sha256-");
    expect(renderReport({ results: [], cells: [], findings: [], verdict: 'v' })).not.toContain('id="captures"');
  });
});

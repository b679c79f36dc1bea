/**
 * The time-sequence graph of a captured connection (what the incidents' authors read from tcpdump by hand): the
 * sender's data segments as sequence ranges against time (retransmissions marked), the receiver's ACK line, and the
 * window edge (ACK + advertised window, scaled as the sender's kernel scales it: when the window-scale option did not
 * arrive in both SYNs, the window is read unscaled, exactly the misreading of incident 2). Pure: packets → series →
 * inline SVG (classes only; the report's CSP allows no inline style).
 */
import { formatSize } from '../units.js';
import { esc, r1 } from './util.js';
import { type TcpPacket, TCP_ACK, TCP_SYN } from './pcap.js';

export interface TimeSequence {
  /** The data sender (`addr:port`) and its peer. */
  sender: string;
  receiver: string;
  /** Window scale the sender applies to the receiver's window (0 when scaling was not negotiated both ways). */
  wscale: number;
  /** Both SYNs seen, with and without the option: `{ syn: 7, synAck: undefined }` is a stripped SYN-ACK. */
  handshake: { syn?: number; synAck?: number; seen: boolean };
  /** Seconds since the first packet; sequence numbers relative to the sender's initial one. */
  segments: Array<{ t: number; seq: number; end: number; retrans: boolean }>;
  acks: Array<{ t: number; ack: number; edge: number }>;
  durationS: number;
  maxSeq: number;
  retransmissions: number;
}

/** Points drawn at most per series; a longer connection is thinned evenly (every segment still counts). */
export const MAX_POINTS = 4000;

const endpoint = (a: string, port: number) => (a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`);
const rel = (seq: number, isn: number) => (seq - isn + 0x1_0000_0000) % 0x1_0000_0000;

/** Who sent the data: the SYN's source, else the side that sent more payload bytes. */
function senderOf(ps: readonly TcpPacket[]): string | undefined {
  const syn = ps.find((p) => p.flags & TCP_SYN && !(p.flags & TCP_ACK));
  if (syn) return endpoint(syn.src, syn.sport);
  const bytes = new Map<string, number>();
  for (const p of ps) bytes.set(endpoint(p.src, p.sport), (bytes.get(endpoint(p.src, p.sport)) ?? 0) + p.len);
  return [...bytes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function thin<T>(xs: T[]): T[] {
  if (xs.length <= MAX_POINTS) return xs;
  const step = xs.length / MAX_POINTS;
  return Array.from({ length: MAX_POINTS }, (_, i) => xs[Math.floor(i * step)]!);
}

/** The series of one connection's packets (the first connection's, when a file holds several). */
export function timeSequence(all: readonly TcpPacket[]): TimeSequence | undefined {
  const sender = senderOf(all);
  if (!sender || !all.length) return undefined;
  const first = all.find((p) => endpoint(p.src, p.sport) === sender)!;
  const receiver = endpoint(first.dst, first.dport);
  const ps = all.filter((p) => (endpoint(p.src, p.sport) === sender && endpoint(p.dst, p.dport) === receiver) || (endpoint(p.src, p.sport) === receiver && endpoint(p.dst, p.dport) === sender));
  const out = ps.filter((p) => endpoint(p.src, p.sport) === sender);
  const back = ps.filter((p) => endpoint(p.src, p.sport) === receiver);
  const syn = out.find((p) => p.flags & TCP_SYN);
  const synAck = back.find((p) => p.flags & TCP_SYN);
  const isn = syn ? syn.seq + 1 : Math.min(...out.map((p) => p.seq));
  const wscale = syn?.wscale !== undefined && synAck?.wscale !== undefined ? synAck.wscale : 0;
  const t0 = ps[0]!.t;
  let high = 0;
  let retransmissions = 0;
  const segments: TimeSequence['segments'] = [];
  for (const p of out) {
    if (p.len === 0) continue;
    const seq = rel(p.seq, isn);
    const end = seq + p.len;
    const retrans = end <= high;
    if (retrans) retransmissions++;
    high = Math.max(high, end);
    segments.push({ t: p.t - t0, seq, end, retrans });
  }
  const acks: TimeSequence['acks'] = back
    .filter((p) => p.flags & TCP_ACK && !(p.flags & TCP_SYN))
    .map((p) => {
      const ack = rel(p.ack, isn);
      return { t: p.t - t0, ack, edge: ack + p.win * 2 ** wscale };
    });
  return {
    sender,
    receiver,
    wscale,
    handshake: { ...(syn?.wscale !== undefined ? { syn: syn.wscale } : {}), ...(synAck?.wscale !== undefined ? { synAck: synAck.wscale } : {}), seen: !!syn && !!synAck },
    segments: thin(segments),
    acks: thin(acks),
    durationS: ps[ps.length - 1]!.t - t0,
    maxSeq: Math.max(high, ...acks.map((a) => a.ack)),
    retransmissions,
  };
}

/** "0", "1.5 s", "20 ms". */
function secs(s: number): string {
  if (s === 0) return '0';
  return s < 1 ? `${Math.round(s * 1000)} ms` : `${Number(s.toFixed(s < 10 ? 1 : 0))} s`;
}

/** Inline SVG of a time-sequence graph; `label` names the probe for screen readers. */
export function renderTimeSequence(ts: TimeSequence, label: string): string {
  const W = 900;
  const H = 300;
  const m = { l: 64, r: 12, t: 10, b: 34 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const tMax = Math.max(ts.durationS, 1e-3);
  // the window edge can be far above the data (a 6 MiB window): the y axis follows the data, the edge is clipped
  const yMax = Math.max(ts.maxSeq * 1.08, 1);
  const X = (t: number) => m.l + (t / tMax) * pw;
  const Y = (s: number) => m.t + ph - (Math.min(s, yMax) / yMax) * ph;
  const parts = [`<svg class="tsg" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(`time-sequence graph of ${label}`)}">`];
  for (let i = 0; i <= 4; i++) {
    const t = (tMax * i) / 4;
    const s = (yMax * i) / 4;
    parts.push(`<line class="grid" x1="${r1(X(t))}" x2="${r1(X(t))}" y1="${m.t}" y2="${m.t + ph}"/><text class="tick" x="${r1(X(t))}" y="${H - 18}" text-anchor="middle">${esc(secs(t))}</text>`);
    parts.push(`<line class="grid" x1="${m.l}" x2="${m.l + pw}" y1="${r1(Y(s))}" y2="${r1(Y(s))}"/><text class="tick" x="${m.l - 6}" y="${r1(Y(s) + 4)}" text-anchor="end">${esc(formatSize(Math.round(s)))}</text>`);
  }
  const step = (pts: Array<{ t: number; v: number }>) =>
    pts.map((p, i) => `${i === 0 ? '' : `${r1(X(p.t))},${r1(Y(pts[i - 1]!.v))} `}${r1(X(p.t))},${r1(Y(p.v))}`).join(' ');
  if (ts.acks.length) {
    parts.push(`<polyline class="wnd" points="${step(ts.acks.map((a) => ({ t: a.t, v: a.edge })))}"/>`);
    parts.push(`<polyline class="ack" points="${step(ts.acks.map((a) => ({ t: a.t, v: a.ack })))}"/>`);
  }
  for (const s of ts.segments) {
    parts.push(`<line class="${s.retrans ? 'rtx' : 'seg'}" x1="${r1(X(s.t))}" x2="${r1(X(s.t))}" y1="${r1(Y(s.seq))}" y2="${r1(Math.min(Y(s.seq) - 1, Y(s.end)))}"/>`);
  }
  parts.push(`<text class="axis-label" x="${m.l + pw / 2}" y="${H - 2}" text-anchor="middle">time since the first packet · sequence relative to the sender's first byte</text>`);
  parts.push('</svg>');
  return parts.join('');
}

/** One line under the graph: the handshake as the capture saw it, and the counts. */
export function describeTimeSequence(ts: TimeSequence): string {
  const ws = (v: number | undefined) => (v === undefined ? 'none' : String(v));
  const hs = ts.handshake.seen ? `window scale in the SYN ${ws(ts.handshake.syn)}, in the SYN-ACK ${ws(ts.handshake.synAck)} → the sender scales the window by 2^${ts.wscale}` : 'the handshake is not in the capture';
  return `${ts.sender} → ${ts.receiver}: ${ts.segments.length} data segments, ${ts.retransmissions} retransmitted, ${ts.acks.length} ACKs over ${secs(ts.durationS)}; ${hs}`;
}

export const TSG_CSS = `svg.tsg { width:100%; max-width:900px; height:auto; font-family:inherit; }
svg.tsg .grid { stroke:#eceff3; stroke-width:1; }
svg.tsg .tick { font-size:11px; fill:var(--muted); }
svg.tsg .axis-label { font-size:11px; fill:var(--muted); }
svg.tsg .seg { stroke:#1f78b4; stroke-width:1.5; }
svg.tsg .rtx { stroke:#d62728; stroke-width:2.5; }
svg.tsg .ack { fill:none; stroke:#2ca02c; stroke-width:1.2; }
svg.tsg .wnd { fill:none; stroke:#9aa3b2; stroke-width:1; stroke-dasharray:4 3; }
.tsg-legend i { display:inline-block; width:14px; height:3px; margin:0 4px 2px 10px; vertical-align:middle; }
.tsg-legend .l-seg { background:#1f78b4; } .tsg-legend .l-rtx { background:#d62728; } .tsg-legend .l-ack { background:#2ca02c; } .tsg-legend .l-wnd { background:#9aa3b2; }`;

/**
 * A tiny authoritative DNS server for tests, on UDP 127.0.0.1 port 0 (node:dgram), hand-written: enough of
 * RFC 1035 for c-ares (Node's `dns.resolve*`, `dns.promises.resolveMx`) to accept its answers.
 *
 * It answers from a zone the test gives (MX and A records), says NXDOMAIN for names it does not know, NODATA
 * (NOERROR, no answers) for known names without records of the asked type, SERVFAIL/REFUSED for names the test
 * marks so, and drops every query while `drop` is set (a resolver that never answers). Answers carry TTL 0 so
 * c-ares's query cache keeps nothing between tests.
 *
 * Point Node at it with `dns.setServers([srv.server])` (it affects `dns.resolve*` and `dns.promises.resolve*`,
 * not `dns.lookup`, which is getaddrinfo and /etc/hosts). UDP only: an answer that does not fit 512 bytes is
 * sent truncated (TC) and c-ares's retry over TCP is refused, so keep zones small.
 */
import dgram from 'node:dgram';
import net from 'node:net';

export interface MxRecordSpec {
  priority: number;
  /** Exchange host name; `''` or `'.'` is the root, a null MX (RFC 7505: the domain accepts no mail). */
  exchange: string;
}

export interface DnsZone {
  /** domain → MX records, in the order they are put in the answer section. */
  mx?: Record<string, MxRecordSpec[]>;
  /** name → IPv4 addresses. */
  a?: Record<string, string[]>;
  /** name → IPv6 addresses. */
  aaaa?: Record<string, string[]>;
  /** name → an error rcode answered for every question about it, or DROP: no answer at all (a hung query). */
  fail?: Record<string, 'SERVFAIL' | 'REFUSED' | 'DROP'>;
}

export interface DnsQuery {
  id: number;
  /** Lower case, no trailing dot. */
  name: string;
  /** `MX`, `A`, `AAAA`, … or the number for types this server does not name. */
  type: string;
  /** True when it was dropped (not answered). */
  dropped: boolean;
  /** The rcode answered (`NOERROR`, `NXDOMAIN`, …), absent when dropped. */
  rcode?: string;
  answers?: number;
}

export interface DnsServerOptions {
  zone?: DnsZone;
  /** Drop every query (never answer). Can be changed later on the handle. */
  drop?: boolean;
  /**
   * Compress names in answers (RFC 1035 4.1.4): owner names point at the question, MX exchanges under the
   * queried domain end in a pointer to it. Default true; false writes every name in full.
   */
  compress?: boolean;
}

export interface DnsServer {
  /** `127.0.0.1:PORT`, for `dns.setServers`. */
  readonly server: string;
  readonly port: number;
  /** The zone answered from; edit it between tests. */
  zone: DnsZone;
  drop: boolean;
  compress: boolean;
  /** Every query received, in order. */
  readonly queries: DnsQuery[];
  close(): Promise<void>;
}

const TYPES: Record<number, string> = { 1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV', 41: 'OPT', 255: 'ANY' };
const RCODES = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
type Rcode = keyof typeof RCODES;
const CLASS_IN = 1;
const UDP_MAX = 512;

/** Lower case, no trailing dot: how names are compared. */
function canon(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** Read a (possibly compressed) name at `off`; returns the name and the offset after it in the message. */
function readName(msg: Buffer, off: number): { name: string; next: number } {
  const labels: string[] = [];
  let next = -1;
  for (let hops = 0; ; hops++) {
    if (off >= msg.length || hops > 128) throw new Error('bad name');
    const len = msg[off]!;
    if (len === 0) {
      if (next < 0) next = off + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= msg.length) throw new Error('bad pointer');
      if (next < 0) next = off + 2;
      off = ((len & 0x3f) << 8) | msg[off + 1]!;
      continue;
    }
    if (len > 63 || off + 1 + len > msg.length) throw new Error('bad label');
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += 1 + len;
  }
  return { name: labels.join('.'), next };
}

/** Encode a name as labels; `suffixPointer` replaces the labels of `suffix` (a name ending this one) by a pointer. */
function encodeName(name: string, pointer?: { suffix: string; offset: number }): Buffer {
  const n = name.replace(/\.$/, '');
  let labels = n === '' ? [] : n.split('.');
  let tail = Buffer.from([0]);
  if (pointer) {
    const full = canon(n);
    const suffix = canon(pointer.suffix);
    if (full === suffix) {
      labels = [];
      tail = Buffer.from([0xc0 | (pointer.offset >> 8), pointer.offset & 0xff]);
    } else if (suffix !== '' && full.endsWith(`.${suffix}`)) {
      labels = labels.slice(0, labels.length - suffix.split('.').length);
      tail = Buffer.from([0xc0 | (pointer.offset >> 8), pointer.offset & 0xff]);
    }
  }
  const parts: Buffer[] = [];
  for (const l of labels) {
    const b = Buffer.from(l, 'latin1');
    if (b.length === 0 || b.length > 63) throw new Error(`dns helper: bad label "${l}" in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(tail);
  return Buffer.concat(parts);
}

/** `::1`, `2001:db8::5` → the 16 bytes of the address. */
function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

function rr(owner: Buffer, type: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(type, 0);
  fixed.writeUInt16BE(CLASS_IN, 2);
  fixed.writeUInt32BE(0, 4); // TTL 0: nothing is cached
  fixed.writeUInt16BE(rdata.length, 8);
  return Buffer.concat([owner, fixed, rdata]);
}

function lookupKey<T>(map: Record<string, T> | undefined, name: string): T | undefined {
  if (!map) return undefined;
  for (const [k, v] of Object.entries(map)) if (canon(k) === name) return v;
  return undefined;
}

/**
 * Build the answer to one query (or undefined to send nothing: not a query, or unparseable header).
 * Exported for unit use; the server calls it for every datagram.
 */
export function answer(query: Buffer, zone: DnsZone, compress = true): { reply: Buffer; q?: Omit<DnsQuery, 'dropped'> } | undefined {
  if (query.length < 12) return undefined;
  const id = query.readUInt16BE(0);
  const flags = query.readUInt16BE(2);
  if (flags & 0x8000) return undefined; // a response, not a query
  const opcode = (flags >> 11) & 0xf;
  const rd = flags & 0x0100;
  const qdcount = query.readUInt16BE(4);
  const header = (rcode: Rcode, qd: number, an: number, tc = false) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(id, 0);
    // QR=1, opcode echoed, AA=1, TC, RD echoed, RA=0, rcode
    h.writeUInt16BE(0x8000 | (opcode << 11) | 0x0400 | (tc ? 0x0200 : 0) | rd | RCODES[rcode], 2);
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    return h;
  };
  if (opcode !== 0) return { reply: header('NOTIMP', 0, 0) };
  if (qdcount !== 1) return { reply: header('FORMERR', 0, 0) };
  let qname: string;
  let qend: number;
  try {
    const r = readName(query, 12);
    qname = r.name;
    qend = r.next + 4;
    if (qend > query.length) throw new Error('short question');
  } catch {
    return { reply: header('FORMERR', 0, 0) };
  }
  const qtype = query.readUInt16BE(qend - 4);
  const qclass = query.readUInt16BE(qend - 2);
  const question = query.subarray(12, qend); // echoed byte for byte (keeps any 0x20 case randomisation)
  const name = canon(qname);
  const q = { id, name, type: TYPES[qtype] ?? String(qtype) };

  const failed = lookupKey(zone.fail, name);
  if (failed === 'DROP') return undefined;
  if (failed) return { reply: Buffer.concat([header(failed, 1, 0), question]), q: { ...q, rcode: failed, answers: 0 } };
  const mx = lookupKey(zone.mx, name);
  const a = lookupKey(zone.a, name);
  const aaaa = lookupKey(zone.aaaa, name);
  if (mx === undefined && a === undefined && aaaa === undefined) return { reply: Buffer.concat([header('NXDOMAIN', 1, 0), question]), q: { ...q, rcode: 'NXDOMAIN', answers: 0 } };

  const owner = compress ? Buffer.from([0xc0, 0x0c]) : encodeName(qname);
  const answers: Buffer[] = [];
  if (qclass === CLASS_IN && (qtype === 15 || qtype === 255)) {
    for (const m of mx ?? []) {
      const pref = Buffer.alloc(2);
      pref.writeUInt16BE(m.priority, 0);
      const exchange = encodeName(m.exchange, compress ? { suffix: qname, offset: 12 } : undefined);
      answers.push(rr(owner, 15, Buffer.concat([pref, exchange])));
    }
  }
  if (qclass === CLASS_IN && (qtype === 1 || qtype === 255)) {
    for (const ip of a ?? []) {
      if (!net.isIPv4(ip)) throw new Error(`dns helper: not an IPv4 address: ${ip}`);
      answers.push(rr(owner, 1, Buffer.from(ip.split('.').map(Number))));
    }
  }
  if (qclass === CLASS_IN && (qtype === 28 || qtype === 255)) {
    for (const ip of aaaa ?? []) {
      if (!net.isIPv6(ip)) throw new Error(`dns helper: not an IPv6 address: ${ip}`);
      answers.push(rr(owner, 28, ipv6Bytes(ip)));
    }
  }
  let reply = Buffer.concat([header('NOERROR', 1, answers.length), question, ...answers]);
  if (reply.length > UDP_MAX) reply = Buffer.concat([header('NOERROR', 1, 0, true), question]);
  return { reply, q: { ...q, rcode: 'NOERROR', answers: answers.length } };
}

/** Start the server on 127.0.0.1, port 0. */
export async function startDnsServer(opts: DnsServerOptions = {}): Promise<DnsServer> {
  const sock = dgram.createSocket('udp4');
  const queries: DnsQuery[] = [];
  const handle = {
    server: '',
    port: 0,
    zone: opts.zone ?? {},
    drop: opts.drop ?? false,
    compress: opts.compress ?? true,
    queries,
    close: () => new Promise<void>((r) => sock.close(() => r())),
  };
  sock.on('message', (msg, rinfo) => {
    if (handle.drop) {
      if (msg.length >= 12) {
        let name = '?';
        let type = '?';
        try {
          const r = readName(msg, 12);
          name = canon(r.name);
          const t = msg.readUInt16BE(r.next);
          type = TYPES[t] ?? String(t);
        } catch {
          // recorded with what could be read
        }
        queries.push({ id: msg.readUInt16BE(0), name, type, dropped: true });
      }
      return;
    }
    let out: ReturnType<typeof answer>;
    try {
      out = answer(msg, handle.zone, handle.compress);
    } catch {
      return; // a zone the helper cannot encode: stay silent rather than crash the test process
    }
    if (!out) return;
    if (out.q) queries.push({ ...out.q, dropped: false });
    sock.send(out.reply, rinfo.port, rinfo.address);
  });
  sock.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });
  handle.port = sock.address().port;
  handle.server = `127.0.0.1:${handle.port}`;
  return handle;
}

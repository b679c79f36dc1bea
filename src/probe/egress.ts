/**
 * The egress half of a probe: open a TCP connection to host:port over a path — bound to a source address,
 * through a SOCKS5 proxy, or through an HTTP CONNECT proxy. Hand-written (no `socks` dependency): a proxy
 * handshake is a few bytes each way, and owning it lets the `connect` stage include it exactly and lets the
 * caller destroy the socket at its deadline.
 */
import net from 'node:net';
import { ProbeError } from './errors.js';
import { scrubSecrets, secretForms } from '../text.js';

export interface ProxyUrl {
  kind: 'socks5' | 'socks5h' | 'http';
  host: string;
  port: number;
  user?: string;
  pass?: string;
}

const PROXY_EXPECTED = 'expected socks5://[user:pass@]host:port, socks5h://host:port or http://[user:pass@]host:port';

/**
 * Parse `socks5://[user:pass@]host:port`, `socks5h://…`, `http://…` with WHATWG `URL` (percent-encoding rules:
 * a `@`, `/` or `:` in a password is written `%40`, `%2F`, `%3A`). Throws Error with a clear message that never
 * holds the raw text: a URL that does not parse may have its password anywhere in it.
 */
export function parseProxyUrl(text: string): ProxyUrl {
  let u: URL;
  try {
    u = new URL(text.trim());
  } catch {
    const badPort = /:(\d+)\/?$/.exec(text.trim());
    const why = badPort && Number(badPort[1]) > 65535 ? 'its port is out of range (1-65535)' : PROXY_EXPECTED;
    throw new Error(`not a proxy URL (${schemeOf(text)}…, not shown: it may hold a password); ${why}`);
  }
  const scheme = u.protocol.replace(/:$/, '').toLowerCase();
  if (scheme !== 'socks5' && scheme !== 'socks5h' && scheme !== 'http') {
    const why = scheme === 'https' ? 'TLS to the proxy is not supported; use http:// (CONNECT)' : scheme.startsWith('socks') ? 'only SOCKS5 is supported' : PROXY_EXPECTED;
    throw new Error(`unsupported proxy scheme "${scheme}://": ${why}`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new Error(`proxy URL has no host (${redactParsed(u)}); ${PROXY_EXPECTED}`);
  if ((u.pathname !== '' && u.pathname !== '/') || u.search || u.hash) {
    throw new Error(
      `proxy URL has something after host:port (${scheme}://…, not shown: it may hold a password); ` +
        'a "/", "?" or "#" in a user name or password must be percent-encoded (%2F, %3F, %23)',
    );
  }
  // URL drops a port equal to the scheme's default (http: 80): an explicit `:80` is still port 80
  const port = u.port ? Number(u.port) : /:80\/?$/.test(text.trim()) ? 80 : scheme === 'http' ? 8080 : 1080;
  const out: ProxyUrl = { kind: scheme, host, port };
  try {
    if (u.username) out.user = decodeURIComponent(u.username);
    if (u.password) out.pass = decodeURIComponent(u.password);
  } catch {
    throw new Error(`proxy URL has a malformed %-escape in its user name or password (${redactParsed(u)})`);
  }
  return out;
}

/** `scheme://` of a text that may not parse, or nothing when it has none (never more of the text). */
function schemeOf(text: string): string {
  const m = /^\s*([A-Za-z][A-Za-z0-9+.-]{0,15}):\/\//.exec(text);
  return m ? `${m[1]!.toLowerCase()}://` : '';
}

/** A parsed URL as `scheme://host:port`, from its parts: credentials are never part of it. */
function redactParsed(u: URL): string {
  return `${u.protocol}//${u.host}`;
}

/**
 * The proxy URL without credentials, for results and messages, built from the parsed parts. A text that does
 * not parse as a proxy URL is not shown at all.
 */
export function redactProxy(text: string): string {
  try {
    parseProxyUrl(text);
  } catch {
    return `${schemeOf(text) || 'proxy://'}(invalid URL, not shown)`;
  }
  return redactParsed(new URL(text.trim()));
}

/** Buffered reads from a socket during a proxy handshake; leftovers are unshifted back when done. */
class HandshakeReader {
  private buf: Buffer = Buffer.alloc(0);
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly onData = (d: Buffer) => {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    this.waiter?.();
  };
  private readonly onEnd = () => {
    this.ended = new ProbeError('EPROXY', 'proxy closed the connection during the handshake', 'connect');
    this.waiter?.();
  };
  constructor(private readonly sock: net.Socket) {
    sock.on('data', this.onData);
    sock.on('end', this.onEnd);
  }
  private async until(pred: () => number): Promise<Buffer> {
    for (;;) {
      const n = pred();
      if (n >= 0) {
        const out = this.buf.subarray(0, n);
        this.buf = this.buf.subarray(n);
        return out;
      }
      if (this.ended) throw this.ended;
      await new Promise<void>((r) => (this.waiter = r));
      this.waiter = undefined;
    }
  }
  read(n: number): Promise<Buffer> {
    return this.until(() => (this.buf.length >= n ? n : -1));
  }
  readUntil(delim: string, max: number): Promise<Buffer> {
    return this.until(() => {
      const i = this.buf.indexOf(delim);
      if (i >= 0) return i + delim.length;
      if (this.buf.length > max) throw new ProbeError('EPROXY', 'proxy reply too long', 'connect');
      return -1;
    });
  }
  done(): void {
    this.sock.pause();
    this.sock.off('data', this.onData);
    this.sock.off('end', this.onEnd);
    if (this.buf.length) this.sock.unshift(this.buf);
  }
}

const SOCKS_REPLIES: Record<number, string> = {
  1: 'general SOCKS server failure',
  2: 'connection not allowed by ruleset',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

async function socks5(sock: net.Socket, p: ProxyUrl, host: string, port: number): Promise<void> {
  const r = new HandshakeReader(sock);
  try {
    const methods = p.user !== undefined ? [0x00, 0x02] : [0x00];
    sock.write(Buffer.from([0x05, methods.length, ...methods]));
    const [ver, method] = await r.read(2);
    if (ver !== 0x05) throw new ProbeError('EPROXY', `not a SOCKS5 proxy (version byte ${ver})`, 'connect');
    if (method === 0x02) {
      const u = Buffer.from(p.user ?? '');
      const pw = Buffer.from(p.pass ?? '');
      sock.write(Buffer.concat([Buffer.from([0x01, u.length]), u, Buffer.from([pw.length]), pw]));
      const [, status] = await r.read(2);
      if (status !== 0x00) throw new ProbeError('EPROXY', 'SOCKS5 proxy rejected the username/password', 'connect');
    } else if (method !== 0x00) {
      throw new ProbeError('EPROXY', 'SOCKS5 proxy accepts none of our authentication methods', 'connect');
    }
    let addr: Buffer;
    if (net.isIPv4(host)) addr = Buffer.from([0x01, ...host.split('.').map(Number)]);
    else if (net.isIPv6(host)) addr = Buffer.concat([Buffer.from([0x04]), ipv6Bytes(host)]);
    else {
      const name = Buffer.from(host);
      addr = Buffer.concat([Buffer.from([0x03, name.length]), name]);
    }
    const portBuf = Buffer.from([port >> 8, port & 0xff]);
    sock.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), addr, portBuf]));
    const head = await r.read(4);
    if (head[1] !== 0x00) {
      const why = SOCKS_REPLIES[head[1]!] ?? `reply ${head[1]}`;
      const code = head[1] === 5 ? 'ECONNREFUSED' : head[1] === 3 || head[1] === 4 ? 'EUNREACHABLE' : 'EPROXY';
      throw new ProbeError(code, `SOCKS5 proxy could not connect to ${host}:${port}: ${why}`, 'connect');
    }
    const atyp = head[3];
    const rest = atyp === 0x01 ? 4 + 2 : atyp === 0x04 ? 16 + 2 : (await r.read(1))[0]! + 2;
    await r.read(rest);
  } finally {
    r.done();
  }
}

function ipv6Bytes(ip: string): Buffer {
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g || '0', 16), i * 2));
  return b;
}

async function httpConnect(sock: net.Socket, p: ProxyUrl, host: string, port: number): Promise<void> {
  const r = new HandshakeReader(sock);
  try {
    const hp = net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    let req = `CONNECT ${hp} HTTP/1.1\r\nHost: ${hp}\r\n`;
    if (p.user !== undefined) {
      req += `Proxy-Authorization: Basic ${Buffer.from(`${p.user}:${p.pass ?? ''}`).toString('base64')}\r\n`;
    }
    sock.write(`${req}\r\n`);
    // a proxy may echo the request, Proxy-Authorization included: scrub the password's forms from what is kept
    const head = scrubSecrets((await r.readUntil('\r\n\r\n', 16 * 1024)).toString('latin1'), secretForms(p.pass ?? '', p.user));
    const m = /^HTTP\/1\.[01] (\d{3})([^\r\n]*)/.exec(head);
    if (!m) throw new ProbeError('EPROXY', `not an HTTP proxy reply: ${JSON.stringify(head.slice(0, 60))}`, 'connect');
    const status = Number(m[1]);
    if (status !== 200) {
      const code = status === 502 || status === 503 || status === 504 ? 'EUNREACHABLE' : 'EPROXY';
      throw new ProbeError(code, `HTTP proxy refused CONNECT ${hp}: ${status}${m[2]}`, 'connect');
    }
  } finally {
    r.done();
  }
}

export interface OpenOptions {
  host: string;
  port: number;
  localAddress?: string;
  proxy?: string;
  /** Called as soon as the TCP socket exists, so the caller can destroy it at a deadline. */
  onSocket: (sock: net.Socket) => void;
}

/** Open a connected socket to host:port over the path; resolves once a byte stream to the target exists. */
export async function openEgress(o: OpenOptions): Promise<net.Socket> {
  const proxy = o.proxy ? parseProxyUrl(o.proxy) : undefined;
  const connectHost = proxy ? proxy.host : o.host;
  const connectPort = proxy ? proxy.port : o.port;
  // noDelay must be set on the socket itself: as a connect() option it is ignored for a pre-made Socket, and
  // Nagle + delayed ACK would then add ~40 ms to every small command reply cycle.
  const sock = new net.Socket();
  sock.setNoDelay(true);
  o.onSocket(sock);
  await new Promise<void>((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    sock.once('error', onErr);
    sock.connect({ host: connectHost, port: connectPort, localAddress: o.localAddress }, () => {
      sock.off('error', onErr);
      resolve();
    });
  });
  if (proxy) {
    // a socket error during the handshake surfaces through the reader's pending promise via the caller's handler
    if (proxy.kind === 'http') await httpConnect(sock, proxy, o.host, o.port);
    else await socks5(sock, proxy, o.host, o.port);
  }
  return sock;
}

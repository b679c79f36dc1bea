/**
 * Which targets `/probe` may send to. An open probe endpoint would let anyone who reaches it make this host open
 * SMTP connections and send messages anywhere (an open relay of sorts), so `/probe` only probes targets that
 * match an allow rule. Names are matched as names and addresses as addresses: nothing is resolved to decide.
 *
 * Pattern forms (an optional `:PORT` or `:*` after each; no port = any port):
 *   mx1.example.net        that host name (case-insensitive)
 *   *.example.net          any name below example.net (not example.net itself)
 *   192.0.2.10, ::1        that address ([::1]:25 with a port)
 *   10.0.0.0/8             any address in that network ([2001:db8::/32]:25 with a port)
 *   mx:example.net         the MX target `mx:example.net` (the probe resolves its MX hosts)
 *   *                      anything (an open endpoint: only behind your own access control)
 */
import net from 'node:net';

export class AllowPatternError extends Error {
  override name = 'AllowPatternError';
}

export type AllowRule =
  | { kind: 'any'; source: string; port?: number }
  | { kind: 'host'; source: string; host: string; port?: number }
  | { kind: 'suffix'; source: string; suffix: string; port?: number }
  | { kind: 'address'; source: string; list: net.BlockList; port?: number }
  | { kind: 'mx'; source: string; domain: string; port?: number };

/** A target as `/probe` names it: `host:port` or `mx:domain[:port]`. */
export interface ProbeTarget {
  host?: string;
  mx?: string;
  port: number;
}

const HOST_RE = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}[a-z0-9_])?)*$/i;

function normName(h: string): string {
  return h.toLowerCase().replace(/\.$/, '');
}

function parsePort(p: string, source: string): number | undefined {
  if (p === '*') return undefined;
  const n = Number(p);
  if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new AllowPatternError(`allow pattern "${source}": "${p}" is not a port (1–65535 or *)`);
  return n;
}

function addressList(spec: string, source: string): net.BlockList {
  const list = new net.BlockList();
  const slash = spec.indexOf('/');
  const addr = slash >= 0 ? spec.slice(0, slash) : spec;
  const family = net.isIP(addr);
  if (!family) throw new AllowPatternError(`allow pattern "${source}": "${addr}" is not an IP address`);
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (slash >= 0) {
    const bits = Number(spec.slice(slash + 1));
    const max = family === 6 ? 128 : 32;
    if (!/^\d+$/.test(spec.slice(slash + 1)) || bits > max) {
      throw new AllowPatternError(`allow pattern "${source}": "/${spec.slice(slash + 1)}" is not a prefix length (0–${max})`);
    }
    list.addSubnet(addr, bits, type);
  } else list.addAddress(addr, type);
  return list;
}

/** Parse one `--allow-target` pattern (see the file comment). */
export function parseAllowPattern(input: string): AllowRule {
  const source = input.trim();
  if (!source) throw new AllowPatternError('empty allow pattern');
  // port split: [v6 or v6/len]:port | name-or-v4:port | bare v6 (two or more colons, no brackets)
  let hostPart = source;
  let port: number | undefined;
  let mx = false;
  if (/^mx:/i.test(hostPart)) {
    mx = true;
    hostPart = hostPart.slice(3);
  }
  const br = /^\[([^\]]+)\](?::([^:]+))?$/.exec(hostPart);
  if (br) {
    hostPart = br[1]!;
    if (br[2] !== undefined) port = parsePort(br[2], source);
  } else if ((hostPart.match(/:/g) ?? []).length === 1) {
    const i = hostPart.lastIndexOf(':');
    port = parsePort(hostPart.slice(i + 1), source);
    hostPart = hostPart.slice(0, i);
  }
  const withPort = <T extends object>(r: T): T & { port?: number } => (port === undefined ? r : { ...r, port });
  if (mx) {
    const domain = normName(hostPart);
    if (!HOST_RE.test(domain)) throw new AllowPatternError(`allow pattern "${source}": "${hostPart}" is not a domain name`);
    return withPort({ kind: 'mx' as const, source, domain });
  }
  if (hostPart === '*') return withPort({ kind: 'any' as const, source });
  if (hostPart.includes('/') || net.isIP(hostPart)) return withPort({ kind: 'address' as const, source, list: addressList(hostPart, source) });
  if (hostPart.startsWith('*.')) {
    const suffix = normName(hostPart.slice(2));
    if (!HOST_RE.test(suffix)) throw new AllowPatternError(`allow pattern "${source}": "${hostPart}" is not *.domain`);
    return withPort({ kind: 'suffix' as const, source, suffix });
  }
  const host = normName(hostPart);
  if (!HOST_RE.test(host)) {
    throw new AllowPatternError(
      `allow pattern "${source}" is not understood (expected a host name, *.domain, an address, a network like 10.0.0.0/8, mx:domain or *, each with an optional :PORT)`,
    );
  }
  return withPort({ kind: 'host' as const, source, host });
}

/** The loopback targets `/probe` allows when there is no profile and no `--allow-target`. */
export const LOOPBACK_PATTERNS: readonly string[] = Object.freeze(['127.0.0.0/8', '::1', 'localhost']);

function ruleAllows(rule: AllowRule, t: ProbeTarget): boolean {
  if (rule.port !== undefined && rule.port !== t.port) return false;
  switch (rule.kind) {
    case 'any':
      return true;
    case 'mx':
      return t.mx !== undefined && normName(t.mx) === rule.domain;
    case 'host':
      return t.host !== undefined && !net.isIP(t.host) && normName(t.host) === rule.host;
    case 'suffix':
      return t.host !== undefined && !net.isIP(t.host) && normName(t.host).endsWith(`.${rule.suffix}`);
    case 'address': {
      if (t.host === undefined) return false;
      const fam = net.isIP(t.host);
      if (!fam) return false;
      return rule.list.check(t.host, fam === 6 ? 'ipv6' : 'ipv4');
    }
  }
}

export class TargetAllowList {
  constructor(readonly rules: readonly AllowRule[]) {}

  static parse(patterns: readonly string[]): TargetAllowList {
    return new TargetAllowList(patterns.map(parseAllowPattern));
  }

  /** The first rule that allows the target, or undefined. */
  match(t: ProbeTarget): AllowRule | undefined {
    return this.rules.find((r) => ruleAllows(r, t));
  }

  allows(t: ProbeTarget): boolean {
    return this.match(t) !== undefined;
  }

  /** True when a rule allows anything (`*`). */
  get open(): boolean {
    return this.rules.some((r) => r.kind === 'any' && r.port === undefined);
  }

  /** The patterns, for messages. */
  describe(): string {
    return this.rules.length ? this.rules.map((r) => r.source).join(', ') : '(nothing)';
  }
}

/** `host:port`, `[v6]:port`, `mx:domain`, `mx:domain:port` for messages and patterns. */
export function formatProbeTarget(t: ProbeTarget): string {
  if (t.mx !== undefined) return `mx:${t.mx}${t.port !== 25 ? `:${t.port}` : ''}`;
  const h = t.host ?? '';
  return `${net.isIP(h) === 6 ? `[${h}]` : h}:${t.port}`;
}

/**
 * Parse a `/probe` target: `host:port`, `[v6]:port`, `host` (port 25), `mx:domain` or `mx:domain:port`.
 * Throws an Error with a message for people.
 */
export function parseProbeTarget(v: string): ProbeTarget {
  const s = v.trim();
  if (!s) throw new Error('target is empty (expected HOST:PORT, e.g. mx1.example.net:25, or mx:example.net)');
  const mx = /^mx:([^:]+)(?::(\d+))?$/i.exec(s);
  if (mx) {
    const domain = mx[1]!;
    if (!HOST_RE.test(normName(domain))) throw new Error(`target "${s}": "${domain}" is not a domain name`);
    const port = mx[2] === undefined ? 25 : Number(mx[2]);
    if (port < 1 || port > 65535) throw new Error(`target "${s}": not a TCP port`);
    return { mx: domain, port };
  }
  const br = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  let host: string;
  let portText: string | undefined;
  if (br) {
    host = br[1]!;
    portText = br[2];
  } else if ((s.match(/:/g) ?? []).length <= 1) {
    const i = s.indexOf(':');
    host = i >= 0 ? s.slice(0, i) : s;
    portText = i >= 0 ? s.slice(i + 1) : undefined;
  } else if (net.isIP(s) === 6) {
    host = s;
  } else throw new Error(`target "${s}" is not HOST:PORT (write IPv6 addresses as [2001:db8::1]:25)`);
  if (!net.isIP(host) && !HOST_RE.test(normName(host))) throw new Error(`target "${s}": "${host}" is not a host name or address`);
  const port = portText === undefined ? 25 : Number(portText);
  if (!/^\d*$/.test(portText ?? '') || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`target "${s}": "${portText}" is not a TCP port (1–65535)`);
  return { host, port };
}

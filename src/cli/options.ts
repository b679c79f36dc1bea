/** Flag value parsers for commander: each names the flag in its error, so `--size 1XB` says what is wrong. */
import net from 'node:net';
import { InvalidArgumentError } from 'commander';
import { parseDuration, parseRate, parseSize } from '../units.js';
import { TLS_MODES, type TlsMode } from '../model.js';
import { dnsServerAddress } from '../probe/endpoints.js';

function wrap<T>(fn: (v: string) => T): (v: string) => T {
  return (v: string) => {
    try {
      return fn(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}

export const sizeArg = wrap(parseSize);
export const durationArg = wrap(parseDuration);
export const rateArg = wrap(parseRate);

export const intArg = (min: number) =>
  wrap((v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`expected a whole number ≥ ${min}, got "${v}"`);
    return n;
  });

export const portArg = wrap((v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`not a TCP port: "${v}" (1–65535)`);
  return n;
});

export const tlsArg = wrap((v: string): TlsMode => {
  if (!(TLS_MODES as readonly string[]).includes(v)) throw new Error(`expected one of ${TLS_MODES.join(', ')}`);
  return v as TlsMode;
});

export const ipArg = wrap((v: string) => {
  if (!net.isIP(v)) throw new Error(`not an IP address: "${v}"`);
  return v;
});

/** `host:port`, `[v6]:port`; the port may default. */
export function parseHostPort(v: string, defaultPort?: number): { host: string; port: number } {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(v) ?? /^([^:]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new Error(`expected HOST:PORT, got "${v}"`);
  const port = m[2] !== undefined ? Number(m[2]) : defaultPort;
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`expected HOST:PORT with a valid port, got "${v}"`);
  return { host: m[1]!, port };
}
export const hostPortArg = (defaultPort?: number) => wrap((v: string) => parseHostPort(v, defaultPort));

/** `--host`: a name or an IP, optionally with the port: `mx.example.net:587`, `::1`, `[::1]`, `[2001:db8::1]:25`. */
export const hostArg = wrap((v: string): { host: string; port?: number } => {
  const t = v.trim();
  if (net.isIP(t)) return { host: t };
  const hp = parseHostPort(t, 0);
  if (hp.host.includes(':') && !net.isIPv6(hp.host)) throw new Error(`not an IPv6 address in brackets: "${v}"`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) throw new Error(`expected a host name or an IP address, not a URL: "${v}"`);
  return hp.port === 0 ? { host: hp.host } : { host: hp.host, port: hp.port };
});

/** `--dns-server IP[:port]`. */
export const dnsServerArg = wrap(dnsServerAddress);

/** Collect a repeatable flag. */
export function collect<T>(parse: (v: string) => T) {
  return (v: string, prev: T[] | undefined): T[] => [...(prev ?? []), parse(v)];
}

export const addressArg = wrap((v: string) => {
  if (v !== '' && !/^[^\s<>@]+@[^\s<>@]+$/.test(v)) throw new Error(`not a mail address: "${v}" (expected local@domain)`);
  return v;
});

/**
 * Field parsers of the profile: one value in, a normalised value out, or a thrown `FieldError` whose message
 * says what was expected. Shared by the YAML loader (through the schema) and by `applyOverrides`.
 */
import { dnsServerAddress } from '../probe/endpoints.js';
import { isIP } from 'node:net';
import { STAGES, TLS_MODES } from '../model.js';
import type { TlsMode } from '../model.js';
import type { Threshold } from './plan.js';
import { formatSize, parseDuration, parseRate, parseSize, UnitError } from '../units.js';
import { closest, show } from './errors.js';
import { parseProxyUrl, redactProxy } from '../probe/egress.js';

export class FieldError extends Error {
  override name = 'FieldError';
}

const fail = (message: string): never => {
  throw new FieldError(message);
};

export const MAX_SIZE_BYTES = 1024 ** 3;
export const MAX_SEED = 0xffff_ffff;

/** A whole number from a number or a numeric string (interpolated values arrive as strings). */
export function toInt(v: number | string, what: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (/^\s*[+-]?\d+\s*$/.test(v)) n = Number(v);
  else return fail(`expected ${what}, got ${show(v)}`);
  if (!Number.isSafeInteger(n)) return fail(`expected ${what}, got ${show(v)}`);
  if (n < min || n > max) {
    return fail(max === Number.MAX_SAFE_INTEGER ? `expected ${what} of at least ${min}, got ${n}` : `expected ${what} from ${min} to ${max}, got ${n}`);
  }
  return n;
}

export const toPort = (v: number | string): number => toInt(v, 'a TCP port number', 1, 65535);

/** `true`/`false`, also as strings (after interpolation). */
export function toBool(v: boolean | string): boolean {
  if (typeof v === 'boolean') return v;
  const s = v.trim().toLowerCase();
  if (s === 'true') return true;
  if (s === 'false') return false;
  return fail(`expected true or false, got ${show(v)}`);
}

function unit<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof UnitError) return fail(err.message);
    throw err;
  }
}

/** A message size: `64KiB`, `1MiB`, `1.5MB`, or bytes; 1 byte .. 1 GiB. */
export function toSize(v: number | string, min = 1, max = MAX_SIZE_BYTES): number {
  const n = unit(() => parseSize(v));
  if (n < min) return fail(`a size of at least ${min} byte${min === 1 ? '' : 's'} is needed, got ${show(v)}`);
  if (n > max) return fail(`a size of at most ${formatSize(max)} is allowed, got ${show(v)} (${n} bytes)`);
  return n;
}

/** A duration in ms: `500ms`, `30s`, `2m`; a bare number is seconds. Must be > 0. */
export function toDurationMs(v: number | string): number {
  const ms = unit(() => parseDuration(v));
  if (!(ms > 0)) return fail(`expected a duration above zero (e.g. 500ms, 30s, 2m), got ${show(v)}`);
  return ms;
}

/** `2/s`, `30/m`, `100/h` → per second. */
export function toRate(v: number | string): number {
  return unit(() => parseRate(v));
}

export function toTls(v: string): TlsMode {
  const s = v.trim().toLowerCase();
  if ((TLS_MODES as readonly string[]).includes(s)) return s as TlsMode;
  const hint = s === 'tls' || s === 'ssl' || s === 'smtps' ? ' (SMTPS on port 465 is "implicit")' : '';
  return fail(`expected one of ${TLS_MODES.join(', ')}, got ${show(v)}${hint}`);
}

const LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const HOSTNAME = new RegExp(`^(?=.{1,253}$)${LABEL}(?:\\.${LABEL})*\\.?$`);

/** A host name or an IP address, as used for `targets[].host` and relays. */
export function toHost(v: string): string {
  const s = v.trim();
  if (!s) return fail('empty (expected a host name or an IP address)');
  if (isIP(s)) return s;
  if (/^\[.*\]$/.test(s) && isIP(s.slice(1, -1)) === 6) return fail(`write the IPv6 address without brackets: ${s.slice(1, -1)}`);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return fail(`expected a host name or an IP address, not a URL (${show(v)})`);
  const hp = /^(.+):(\d+)$/.exec(s);
  if (hp) return fail(`expected a host name without a port, got ${show(v)} (put the port in port: ${hp[2]})`);
  if (/^[\d.]+$/.test(s)) return fail(`not an IP address (${show(v)})`);
  if (!HOSTNAME.test(s)) return fail(`not a host name or an IP address (${show(v)})`);
  return s;
}

/**
 * A host as people type it: `mx.example.net`, `192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`, with an optional port:
 * `mx.example.net:587`, `[::1]:2525`.
 */
export function toHostPort(v: string): { host: string; port?: number } {
  const s = v.trim();
  if (isIP(s)) return { host: s };
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (v6) {
    if (isIP(v6[1]!) !== 6) return fail(`not an IPv6 address in brackets (${show(v)})`);
    return v6[2] === undefined ? { host: v6[1]! } : { host: v6[1]!, port: toInt(v6[2], 'a TCP port number', 1, 65535) };
  }
  const hp = /^([^:]+):(\d+)$/.exec(s);
  if (hp) return { host: toHost(hp[1]!), port: toInt(hp[2]!, 'a TCP port number', 1, 65535) };
  return { host: toHost(s) };
}

/** An IP family: 4 or 6 (also "4", "ipv4", "IPv6"). */
export function toFamily(v: number | string): 4 | 6 {
  const t = String(v).trim().toLowerCase().replace(/^ipv/, '');
  if (t === '4' || t === '6') return Number(t) as 4 | 6;
  return fail(`expected 4 (IPv4) or 6 (IPv6), got ${show(v)}`);
}

/** A DNS server: `192.0.2.53`, `192.0.2.53:5353`, `2001:db8::53`, `[2001:db8::53]:5353`. */
export function toDnsServer(v: string): string {
  try {
    return dnsServerAddress(v);
  } catch (err) {
    return fail((err as Error).message);
  }
}

/** A domain whose MX records are looked up. */
export function toDomain(v: string): string {
  const s = v.trim().replace(/^@/, '');
  if (isIP(s)) return fail(`expected a domain name (its MX records are looked up), got the address ${show(v)}; for a server address use host:`);
  if (!s.includes('.') || !HOSTNAME.test(s)) return fail(`expected a domain name such as example.com, got ${show(v)}`);
  return s;
}

/** `localAddress`: an IPv4 or IPv6 address of this machine. */
export function toIp(v: string): string {
  const s = v.trim();
  if (isIP(s)) return s;
  return fail(`not an IP address (${show(v)}); expected a source address of this machine such as 192.0.2.10 or 2001:db8::10`);
}

export const PATH_NAME = /^[A-Za-z0-9_.-]+$/;

export function toPathName(v: string): string {
  const s = v.trim();
  if (!PATH_NAME.test(s)) return fail(`expected a name of letters, digits, ".", "_" and "-" (e.g. via-lb), got ${show(v)}`);
  return s;
}

/** A non-empty string, trimmed. */
export function toText(v: string, what: string): string {
  const s = v.trim();
  if (!s) return fail(`empty (expected ${what})`);
  return s;
}

/**
 * `socks5://[user:pass@]host:port`, `socks5h://…` (names resolved by the proxy) or `http://[user:pass@]host:port`
 * (CONNECT). Parsed by the engine's own `parseProxyUrl` (WHATWG URL rules); messages show only the parsed
 * `scheme://host:port`, never the text (it may hold a password).
 */
export function toProxy(v: string): string {
  const s = v.trim();
  let p: ReturnType<typeof parseProxyUrl>;
  try {
    p = parseProxyUrl(s);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (!isIP(p.host) && !HOSTNAME.test(p.host)) return fail(`proxy host ${show(p.host)} is not a host name or an IP address`);
  if (!/:\d+\/?$/.test(s)) {
    const shown = redactProxy(s);
    return fail(`give the proxy port explicitly (${shown}), e.g. ${shown}:${p.kind === 'http' ? 3128 : 1080}`);
  }
  return s;
}

/** A relay as `host:port`, `[v6]:port`, or `host` (port 25). */
export function parseHostPort(v: string): { host: string; port: number } {
  const s = v.trim();
  if (isIP(s)) return { host: s, port: 25 };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return fail(`expected host:port, not a URL (${show(v)})`);
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(s) ?? /^([^:]+)(?::(\S+))?$/.exec(s);
  if (!m) return fail(`expected host:port (e.g. relay.example.net:25 or [2001:db8::1]:25), got ${show(v)}`);
  const host = m[1]!.trim();
  if (!isIP(host) && !HOSTNAME.test(host)) return fail(`not a host name or an IP address in ${show(v)} (expected host:port)`);
  const port = m[2] === undefined ? 25 : toInt(m[2], 'a TCP port number', 1, 65535);
  return { host, port };
}

/** An envelope address, loosely: `local@domain`, optionally in `<>`; `""`/`<>` (the null sender) when allowed. */
export function toAddress(v: string, allowNull: boolean): string {
  let s = v.trim();
  if (s.startsWith('<') && s.endsWith('>')) s = s.slice(1, -1).trim();
  if (s === '') {
    if (allowNull) return '';
    return fail('empty (expected an address such as postmaster@example.com)');
  }
  if (/[\s<>,]/.test(s)) return fail(`expected one bare address such as probe@example.com, got ${show(v)}`);
  const at = s.lastIndexOf('@');
  if (at <= 0 || at === s.length - 1) return fail(`not an address: expected local@domain, got ${show(v)}`);
  return s;
}

export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `auth.passEnv`: the NAME of an environment variable. Never echoes the value (it may be a secret). */
export function toEnvName(v: string): string {
  const s = v.trim();
  if (s.includes('${')) {
    return fail('write the NAME of the environment variable that holds the password (passEnv: SMTP_PASS), not ${SMTP_PASS}: the secret must never be in the profile');
  }
  if (!ENV_NAME.test(s)) return fail('expected the NAME of an environment variable (letters, digits and _, e.g. SMTP_PASS), not the password itself');
  return s;
}

export function toAuthMethod(v: string): 'PLAIN' | 'LOGIN' {
  const s = v.trim().toUpperCase();
  if (s === 'PLAIN' || s === 'LOGIN') return s;
  return fail(`expected PLAIN or LOGIN, got ${show(v)}`);
}

/** An EHLO name: a host name or an address literal such as [192.0.2.1]. */
export function toEhlo(v: string): string {
  const s = v.trim();
  if (/^\[(?:IPv6:)?([^\]]+)\]$/i.test(s) && isIP(s.replace(/^\[(?:IPv6:)?|\]$/gi, ''))) return s;
  if (!HOSTNAME.test(s)) return fail(`expected a host name (e.g. probe.example.com) or an address literal such as [192.0.2.1], got ${show(v)}`);
  return s;
}

// ---------------------------------------------------------------------------------------------- thresholds

export const TIME_METRICS = [...STAGES, 'total', 'arrival'] as const;
export const RATE_METRICS = ['stall_rate', 'success_rate', 'arrival_rate'] as const;
export const TIME_STATS = ['p50', 'p95', 'p99', 'avg', 'max'] as const;
const OPS = ['<=', '>=', '<', '>'] as const;

const THRESHOLD = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?::\s*([A-Za-z0-9]*))?\s*(<=|>=|<|>|==|=|!=)\s*(.*?)\s*$/;

const EXAMPLES = '"body: p95 < 2s", "dataAck: p99 <= 500ms", "total: p50 < 1s", "stall_rate < 1%", "success_rate >= 99%"';

/** k6-style threshold text → Threshold. Time values need a unit; rates take `1%` or a fraction `0.01`. */
export function parseThreshold(text: string): Threshold {
  const source = text.trim().replace(/\s+/g, ' ');
  const m = THRESHOLD.exec(text);
  if (!m) return fail(`not a threshold: ${show(text)} (expected e.g. ${EXAMPLES})`);
  const [, metric, statRaw, op, valueText] = m as unknown as [string, string, string | undefined, string, string];
  if (!(OPS as readonly string[]).includes(op)) return fail(`unsupported comparison "${op}" in ${show(text)} (use <, <=, > or >=)`);
  const isRate = (RATE_METRICS as readonly string[]).includes(metric);
  const isTime = (TIME_METRICS as readonly string[]).includes(metric);
  if (!isRate && !isTime) {
    const guess = closest(metric, [...TIME_METRICS, ...RATE_METRICS]);
    return fail(
      `unknown metric "${metric}" in ${show(text)}` +
        (guess ? ` (did you mean "${guess}"?)` : ` (expected a stage — ${STAGES.join(', ')} — or total, arrival, stall_rate, success_rate, arrival_rate)`),
    );
  }
  if (isRate) {
    if (statRaw && statRaw !== 'rate') return fail(`${metric} takes no statistic: write e.g. "${metric} < 1%" (got ${show(text)})`);
    const pct = /^(\d+(?:\.\d+)?)\s*%$/.exec(valueText);
    const frac = /^(\d+(?:\.\d+)?)$/.exec(valueText);
    const value = pct ? Number(pct[1]) / 100 : frac ? Number(frac[1]) : NaN;
    if (!(value >= 0 && value <= 1)) return fail(`expected a rate such as 1% or 0.01 (0%..100%) in ${show(text)}`);
    return { source, metric, stat: 'rate', op: op as Threshold['op'], value };
  }
  if (!statRaw) return fail(`give a statistic for ${metric}: e.g. "${metric}: p95 < 2s" (one of ${TIME_STATS.join(', ')}), got ${show(text)}`);
  const stat = statRaw.toLowerCase();
  if (!(TIME_STATS as readonly string[]).includes(stat)) {
    return fail(`unknown statistic "${statRaw}" in ${show(text)} (expected one of ${TIME_STATS.join(', ')})`);
  }
  if (!/[a-z]\s*$/i.test(valueText)) return fail(`give the time with a unit, e.g. 2s or 500ms (got ${show(valueText)} in ${show(text)})`);
  let value: number;
  try {
    value = parseDuration(valueText);
  } catch (err) {
    if (err instanceof UnitError) return fail(`${err.message} in ${show(text)}`);
    throw err;
  }
  return { source, metric, stat, op: op as Threshold['op'], value };
}

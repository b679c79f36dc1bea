/**
 * Where a probe connects, as an MTA decides it (RFC 5321 §5.1): the MX hosts of a domain in preference order
 * (random among equal preferences: seeded, so a run can be repeated), every address of each host (AAAA and A),
 * a domain without MX records at its own address (implicit MX), a null MX refused.
 *
 * Lookups go through a resolver of the probe's own (`dns.promises.Resolver`), pointed at `--dns-server` when given
 * and cancelled when the `dns` deadline passes — the process-wide resolver cannot be cancelled, and a hung query
 * outlived a short deadline by seconds. Host addresses without `--dns-server` come from the system
 * (getaddrinfo: /etc/hosts, nsswitch), as for any other program on the machine.
 */
import type dnsModule from 'node:dns';
import { createRequire } from 'node:module';
import net from 'node:net';
import { mulberry32 } from '../prng.js';
import { ProbeError } from './errors.js';

type Dns = typeof dnsModule;
let loadedDns: Dns | undefined;
/**
 * node:dns, loaded when the first name is to be resolved: a probe to an address never pays for it (its c-ares
 * binding and modules were ~1 ms of a one-off probe's start-up, issue 16). `net` itself does not load it.
 */
export function dns(): Dns {
  return (loadedDns ??= createRequire(import.meta.url)('node:dns') as Dns);
}

export interface MxHost {
  exchange: string;
  priority: number;
}

/** Preference order; equal preferences in a random order drawn from `seed` (the same seed, the same order). */
export function orderMx(records: readonly MxHost[], seed: number): MxHost[] {
  const rnd = mulberry32((seed ^ 0x5bd1e995) >>> 0);
  return records
    .map((r) => ({ r, k: rnd() }))
    .sort((a, b) => a.r.priority - b.r.priority || a.k - b.k)
    .map((x) => x.r);
}

/** IPv6 addresses first, then IPv4, each in the order DNS gave them; `family` keeps only its own. */
export function orderAddresses(addrs: ReadonlyArray<{ address: string; family: number }>, family?: 4 | 6): string[] {
  const keep = family ? addrs.filter((a) => a.family === family) : addrs;
  return [...keep.filter((a) => a.family === 6), ...keep.filter((a) => a.family === 4)].map((a) => a.address);
}

/** `IP` or `IP:port` or `[v6]:port` → what `Resolver.setServers` takes; throws on anything else. */
export function dnsServerAddress(text: string): string {
  const t = text.trim();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6 && net.isIPv6(v6[1]!)) return v6[2] ? `[${v6[1]}]:${v6[2]}` : v6[1]!;
  if (net.isIP(t)) return t;
  const m = /^([^:]+):(\d+)$/.exec(t);
  if (m && net.isIPv4(m[1]!) && Number(m[2]) > 0 && Number(m[2]) < 65536) return t;
  throw new Error(`not a DNS server address: "${text}" (expected an IP address, IP:port or [IPv6]:port)`);
}

/** A resolver of one probe's own, so its queries can be cancelled at the `dns` deadline. */
export function probeResolver(servers: readonly string[] | undefined, dnsMs: number): dnsModule.promises.Resolver {
  const r = new (dns().promises.Resolver)({ timeout: Math.max(100, Math.min(dnsMs, 5000)), tries: 2 });
  r.setServers(servers?.length ? servers.map(dnsServerAddress) : dns().getServers());
  return r;
}

function why(e: NodeJS.ErrnoException): string {
  return e.code === 'ENOTFOUND' ? 'the domain does not exist (NXDOMAIN)'
    : e.code === 'ETIMEOUT' ? 'no answer from the resolver'
    : e.code === 'ESERVFAIL' ? 'the resolver answered SERVFAIL'
    : e.code === 'ECANCELLED' ? 'cancelled at the dns deadline'
    : (e.code ?? String(e));
}

/**
 * The MX hosts of a domain in the order to try them. A domain with no MX records gets mail at its own address
 * (implicit MX); a null MX (RFC 7505: exchange ".") or no usable host is an `EDNS` error.
 */
export async function resolveMxHosts(domain: string, resolver: dnsModule.promises.Resolver, seed: number): Promise<MxHost[]> {
  let records: MxHost[];
  try {
    records = await resolver.resolveMx(domain);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENODATA') return [{ exchange: domain, priority: 0 }];
    throw new ProbeError('EDNS', `MX lookup for ${domain} failed: ${why(e)} (${e.code ?? 'error'})`, 'dns', { cause: e });
  }
  // RFC 7505 null MX (exchange "." → ''): left in, lookup('') gave a null address and the probe connected to
  // localhost (test/integration/mx.test.ts)
  const hosts = records.filter((m) => m.exchange !== '' && m.exchange !== '.');
  if (!hosts.length) {
    throw new ProbeError('EDNS', records.length ? `${domain} publishes a null MX (RFC 7505): it accepts no mail` : `${domain} has no MX records`, 'dns');
  }
  return orderMx(hosts, seed);
}

/**
 * Every address of a host, in the order to try them. With `resolver` (a `--dns-server`), AAAA and A records from
 * it; else the system's getaddrinfo. An `EDNS` error when there is none (of the wanted family).
 */
export async function resolveAddresses(host: string, o: { resolver?: dnsModule.promises.Resolver; family?: 4 | 6 }): Promise<string[]> {
  let found: Array<{ address: string; family: number }>;
  if (o.resolver) {
    const r = o.resolver;
    const [v6, v4] = await Promise.allSettled([o.family === 4 ? Promise.resolve([]) : r.resolve6(host), o.family === 6 ? Promise.resolve([]) : r.resolve4(host)]);
    found = [
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ];
    if (!found.length) {
      const e = (v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : { code: 'ENODATA' }) as NodeJS.ErrnoException;
      throw new ProbeError('EDNS', `cannot resolve ${host}: ${why(e)} (${e.code ?? 'error'})`, 'dns', { cause: e });
    }
  } else {
    try {
      found = await dns().promises.lookup(host, { all: true, family: o.family ?? 0 });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ProbeError('EDNS', `cannot resolve ${host}: ${e.code ?? e}`, 'dns', { cause: e });
    }
  }
  const out = orderAddresses(found, o.family);
  if (!out.length) throw new ProbeError('EDNS', `${host} has no IPv${o.family} address`, 'dns');
  return out;
}

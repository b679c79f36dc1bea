/**
 * Safety rules for real targets: mxprobe sends real mail, so pointed at somebody's MX it must behave like a
 * careful sender, not a load generator.
 *
 * A target is a *lab* target when every host a probe of it connects to (the target host, the MX hosts of its
 * domain, the relay of its path) is a loopback address (127.0.0.0/8, ::1) or a benchmark address
 * (198.18.0.0/15, RFC 2544), or the name `localhost`. Anything else — including a name that cannot be resolved —
 * is a *real* target, and gets these rules:
 *
 * - recipients are explicit: `probe` requires `--to`, a profile requires `envelope.to` (neither has a default);
 * - a plan run by `runPlan` (so `run`, `verify --profile`, `bisect`, `serve`'s schedule and library callers)
 *   starts at most 1 probe per second per real target when the profile sets no `rate`; a profile `rate` above
 *   that needs `--force` / `RunOptions.force` (`realTargetPolicy`, `guardPlan`);
 * - a probe larger than the SIZE the server advertised in EHLO is not sent: the engine says QUIT instead of MAIL
 *   and the probe ends `rejected` at `mail` with error code `ESIZE` (`sizeRefusal`), unless the spec has `force`;
 * - a replayed message file (`probe --message`) must identify itself as a test with an `Auto-Submitted:` or
 *   `X-Mxprobe:` header (`messageFileIdentifies`); generated probe messages always carry both.
 *
 * TLS certificate verification is on for every target unless `--insecure` / `insecure: true`.
 * Pure functions, except `classifyTargets` (DNS lookups) and `messageFileIdentifies` (reads a file head).
 */
import net from 'node:net';
import { dns } from './endpoints.js';
import type { PathSpec, ProbeSpec, TargetSpec } from '../model.js';

/** Probe starts per second per real target when a profile sets no `rate`. */
export const REAL_TARGET_DEFAULT_RATE = 1;
/** The highest `rate` a profile may set for a real target without `--force`. */
export const REAL_TARGET_MAX_RATE = 1;

/** 127.0.0.0/8, ::1 (also IPv4-mapped, `::ffff:127.0.0.1`), or the benchmark range 198.18.0.0/15. Not an IP: false. */
export function isLabAddress(ip: string): boolean {
  let a = ip.trim().replace(/^\[|\]$/g, '');
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  const v = net.isIP(a);
  if (v === 4) {
    const [o1, o2] = a.split('.').map(Number) as [number, number];
    return o1 === 127 || (o1 === 198 && (o2 === 18 || o2 === 19));
  }
  if (v === 6) {
    // ::1 in any spelling (0:0:0:0:0:0:0:1, ::0001)
    const blocks = new net.SocketAddress({ address: a, family: 'ipv6' }).address;
    return blocks === '::1';
  }
  return false;
}

/** A host (name or address) that is lab without looking anything up: a lab address, or `localhost`. */
export function isLabHost(host: string): boolean {
  if (net.isIP(host.replace(/^\[|\]$/g, '').replace(/%.*$/, ''))) return isLabAddress(host);
  const h = host.toLowerCase().replace(/\.$/, '');
  return h === 'localhost' || h.endsWith('.localhost');
}

/**
 * Whether one probe goes to a real target, decided by the engine once connected. `connectedTo` is the address it
 * connected to (or the name handed to a proxy that resolves names itself). A probe through a relay also counts
 * as real when its target host is not a lab host: the relay passes the message on.
 */
export function isRealProbe(spec: Pick<ProbeSpec, 'target' | 'path'>, connectedTo: string | undefined): boolean {
  if (connectedTo === undefined || !isLabHost(connectedTo)) return true;
  if (spec.path.relay) {
    if (spec.target.mx) return true;
    if (spec.target.host && !isLabHost(spec.target.host)) return true;
  }
  return false;
}

/** The SIZE a server advertised in EHLO (`SIZE 10240000`); undefined when none or `SIZE 0` / no value (no limit). */
export function advertisedSize(capabilities: readonly string[] | undefined): number | undefined {
  for (const c of capabilities ?? []) {
    const m = /^SIZE(?:[ =](\d+))?\s*$/i.exec(c.trim());
    if (!m) continue;
    const n = m[1] === undefined ? 0 : Number(m[1]);
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  }
  return undefined;
}

/**
 * The refusal message when a probe of `sizeBytes` exceeds the SIZE a real target advertised and `force` is not
 * set; undefined when the probe may be sent.
 */
export function sizeRefusal(o: { capabilities: readonly string[] | undefined; sizeBytes: number; real: boolean; force?: boolean }): string | undefined {
  if (!o.real || o.force) return undefined;
  const max = advertisedSize(o.capabilities);
  if (max === undefined || o.sizeBytes <= max) return undefined;
  return `server advertises SIZE ${max}; probe of ${o.sizeBytes} bytes refused (use --force to send anyway)`;
}

// ------------------------------------------------------------------------------------------------ run: targets

/** How `classifyTargets` resolves names (injectable for tests). */
export interface GuardResolver {
  /** Every address of a host name. */
  lookup(host: string): Promise<string[]>;
  /** MX host names of a domain. */
  resolveMx(domain: string): Promise<string[]>;
}

const systemResolver: GuardResolver = {
  lookup: async (host) => (await dns().promises.lookup(host, { all: true })).map((a) => a.address),
  resolveMx: async (domain) => (await dns().promises.resolveMx(domain)).map((m) => m.exchange),
};

export interface TargetClass {
  /** The target's label (as in results). */
  label: string;
  real: boolean;
  /** Why, for messages: `mx.example.net resolves to 192.0.2.7`, `127.0.0.1 is a loopback address`. */
  reason: string;
}

function describeLab(host: string, addrs: string[]): string {
  if (addrs.length === 0 || (addrs.length === 1 && addrs[0] === host)) {
    return `${host} is a ${host.startsWith('198.1') ? 'benchmark' : 'loopback'} address`;
  }
  return `${host} resolves to ${addrs.join(', ')}`;
}

/** One host: `{ real, reason }` after resolving it when it is a name. Unresolvable names are real. */
async function classifyHost(host: string, r: GuardResolver, what: string): Promise<{ real: boolean; reason: string }> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (net.isIP(bare.replace(/%.*$/, ''))) {
    return isLabAddress(bare) ? { real: false, reason: describeLab(bare, []) } : { real: true, reason: `${what} ${bare} is not a loopback or benchmark address` };
  }
  let addrs: string[];
  try {
    addrs = await r.lookup(bare);
  } catch (err) {
    return { real: true, reason: `${what} ${bare} could not be resolved (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); treated as real` };
  }
  const outside = addrs.filter((a) => !isLabAddress(a));
  if (addrs.length === 0 || outside.length > 0) return { real: true, reason: `${what} ${bare} resolves to ${(outside.length ? outside : addrs).join(', ') || 'nothing'}` };
  return { real: false, reason: describeLab(bare, addrs) };
}

/** An MX domain: lab only when it lists MX hosts and every one of them is a lab host. */
async function classifyMx(domain: string, r: GuardResolver): Promise<{ real: boolean; reason: string }> {
  let hosts: string[];
  try {
    hosts = (await r.resolveMx(domain)).map((h) => h.replace(/\.$/, '')).filter((h) => h !== '');
  } catch (err) {
    return { real: true, reason: `the MX hosts of ${domain} could not be listed (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); treated as real` };
  }
  if (hosts.length === 0) return { real: true, reason: `${domain} lists no MX host; treated as real` };
  const cs = await Promise.all(hosts.map((h) => classifyHost(h, r, `MX host of ${domain}`)));
  return cs.find((c) => c.real) ?? { real: false, reason: `every MX host of ${domain} is a lab host` };
}

/**
 * Classify every target of a plan as real or lab. A target is lab only when its host (or every MX host of its
 * domain) and the relay of every path are lab hosts; the first non-lab host found is the reason.
 */
export async function classifyTargets(targets: readonly TargetSpec[], paths: readonly PathSpec[], resolver: Partial<GuardResolver> = {}): Promise<TargetClass[]> {
  const r: GuardResolver = { ...systemResolver, ...resolver };
  const relays = [...new Set(paths.flatMap((p) => (p.relay ? [p.relay.host] : [])))];
  const relayClasses = await Promise.all(relays.map((h) => classifyHost(h, r, 'relay')));
  const realRelay = relayClasses.find((c) => c.real);
  const out: TargetClass[] = [];
  for (const t of targets) {
    const label = t.name ?? (t.mx ? `mx:${t.mx}` : `${t.host}:${t.port}`);
    const own = t.mx ? await classifyMx(t.mx, r) : await classifyHost(t.host ?? '', r, 'target');
    const c = own.real ? own : realRelay ?? own;
    out.push({ label, real: c.real, reason: c.reason });
  }
  return out;
}

export interface RealTargetPolicy {
  /** Targets that are real (empty: the run is lab-only and no rule applies). */
  real: TargetClass[];
  /** The rate per target the run should use (undefined: unlimited, lab-only runs). */
  ratePerTarget?: number;
  /** True when `ratePerTarget` is the real-target default, not the profile's. */
  defaulted: boolean;
  /** Set when the run must not start: why, and what to do. */
  refused?: string;
}

/**
 * The rate rule for `run`: with any real target, no profile rate → 1 probe/s per target; a profile rate above
 * 1/s → refused unless `force`. Lab-only runs keep the profile's rate (or none).
 */
export function realTargetPolicy(o: { targets: readonly TargetClass[]; ratePerTarget?: number; force?: boolean }): RealTargetPolicy {
  const real = o.targets.filter((t) => t.real);
  if (real.length === 0) return o.ratePerTarget === undefined ? { real, defaulted: false } : { real, ratePerTarget: o.ratePerTarget, defaulted: false };
  if (o.ratePerTarget === undefined) return { real, ratePerTarget: REAL_TARGET_DEFAULT_RATE, defaulted: true };
  if (o.ratePerTarget > REAL_TARGET_MAX_RATE && !o.force) {
    const first = real[0]!;
    return {
      real,
      ratePerTarget: o.ratePerTarget,
      defaulted: false,
      refused:
        `rate ${+o.ratePerTarget.toFixed(3)}/s per target is above ${REAL_TARGET_MAX_RATE}/s, and target ${first.label} is a real server ` +
        `(${first.reason})${real.length > 1 ? ` (and ${real.length - 1} more)` : ''}: lower rate: in the profile, or add --force if you ` +
        'are allowed to load this server',
    };
  }
  return { real, ratePerTarget: o.ratePerTarget, defaulted: false };
}

// ------------------------------------------------------------------------------------------------ probe: message file

/**
 * True when the header block of a message file has an `Auto-Submitted:` or `X-Mxprobe:` header, so the
 * receiver can tell the replayed message is a test (read: the first 64 KiB, up to the first blank line).
 */
export async function messageFileIdentifies(file: string): Promise<boolean> {
  const { open } = await import('node:fs/promises'); // when needed: only a --message file is read (issue 16)
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    const text = buf.subarray(0, bytesRead).toString('latin1');
    const end = text.search(/\r?\n\r?\n/);
    const head = end >= 0 ? text.slice(0, end) : text;
    return /^(auto-submitted|x-mxprobe)[ \t]*:/im.test(head);
  } finally {
    await fh.close();
  }
}

// ------------------------------------------------------------------------------------------------ run: the plan

/**
 * Apply the rate rule to a plan (`run`): classify its targets, and return the plan with the rate the run must
 * use (the real-target default when the profile set none) and the policy (`refused` set: do not start).
 * The profile hash is kept: the effective rate follows from the profile and the targets.
 */
export async function guardPlan<P extends { targets: TargetSpec[]; paths: PathSpec[]; ratePerTarget?: number }>(
  plan: P,
  o: { force?: boolean; resolver?: Partial<GuardResolver> } = {},
): Promise<{ plan: P; policy: RealTargetPolicy }> {
  const targets = await classifyTargets(plan.targets, plan.paths, o.resolver);
  const policy = realTargetPolicy({ targets, ...(plan.ratePerTarget === undefined ? {} : { ratePerTarget: plan.ratePerTarget }), force: o.force });
  if (!policy.defaulted) return { plan, policy };
  return { plan: { ...plan, ratePerTarget: policy.ratePerTarget }, policy };
}

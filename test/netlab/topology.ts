/**
 * Kernel lab: a real routed topology in network namespaces, with the incidents' faults injected by iptables
 * in a router — so tests see genuine kernel TCP behaviour (retransmissions, RTO backoff, closed windows),
 * not a simulation in user space.
 *
 * ```
 *                    198.18.1.0/24                 198.18.3.0/24
 *            lb0 .1 ─────────────── .2 rta .1 ─────────────── .2 ┐
 *   cli                            (via-lb)                      srv   198.18.5.1/32 on lo (the server)
 *            dir0 .1 ────────────── .2 rtb .1 ─────────────── .2 ┘
 *                    198.18.2.0/24                 198.18.4.0/24
 * ```
 *
 * The client namespace has ONE route to the server per path, chosen by SOURCE address, exactly like a
 * production host whose "via the load balancer" and "direct" egress is selected by policy routing:
 * `ip rule from 198.18.1.1 lookup 101` (table 101: default via rta) and `ip rule from 198.18.2.1 lookup 102`
 * (table 102: default via rtb). The main table's default route goes direct (an unbound socket goes direct).
 * The server has one address, reached through either router; its return routes go back the same way.
 *
 * All veths have MTU 1500 and `gso_max_segs 1`: TCP hands the NIC one MSS-sized segment at a time, so the
 * routers forward real 1500-byte packets (not 64 KB GSO super-packets) and a `length` rule sees what a wire would.
 *
 * Faults go in a router's FORWARD chain (filter table; `tcpoptstrip` in mangle):
 * - `connbytes`  drop once the connection has carried N bytes client→server (incident 1: the load balancer
 *                that drops DATA segments). N counts IP packets incl. headers and retransmissions, so the
 *                server receives somewhat less than N payload bytes (≈ N·1448/1500 minus the SMTP dialogue).
 * - `length`     silently drop IP packets longer than L bytes, no ICMP (a PMTU blackhole).
 * - `statistic`  drop packets at random with probability P (lossy path).
 * - `tcpoptstrip` remove TCP options (default `wscale`) from SYN/SYN-ACK (the window-scaling family, incident 2).
 * - `tcpmss`     rewrite the MSS option of SYN/SYN-ACK to M (`TCPMSS --set-mss`, mangle): an MSS-clamping device.
 *
 * Needs root, `ip` (iproute2) and `iptables`. Names are unique per process (`mxprobe-<pid>-<rand>-cli` …);
 * `destroy()` is idempotent, a process `exit` hook destroys whatever is left, and `createTopology` first
 * removes namespaces left by processes that no longer exist (a SIGKILLed test run).
 */
import { execFile, execFileSync, spawn as spawnChild, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolveTool } from '../../src/probe/tcpinfo.js';

export type NsRole = 'cli' | 'rta' | 'rtb' | 'srv';
export type Router = 'rta' | 'rtb';
/** Which packets a fault applies to: entering the router from the client side, from the server side, or both. */
export type Direction = 'to-server' | 'to-client' | 'both';

export interface FaultParams {
  /** Drop every packet of a connection once it carried `bytes` in the original (client→server) direction. */
  connbytes: { bytes: number; direction?: Direction };
  /** Silently drop IP packets longer than `maxBytes` (no ICMP "fragmentation needed"). */
  length: { maxBytes: number; direction?: Direction };
  /** Drop packets at random with this probability (0 < p < 1). */
  statistic: { probability: number; direction?: Direction };
  /** Strip these TCP options (default `['wscale']`) from SYN and SYN-ACK segments. */
  tcpoptstrip: { options?: string[]; direction?: Direction };
  /** Rewrite the MSS option of SYN and SYN-ACK segments to `mss` (it is only ever lowered). */
  tcpmss: { mss: number; direction?: Direction };
  /** A slow link: a token bucket (`tc qdisc … tbf`) on the router's egress, `kbit` per second (default to-server). */
  tbf: { kbit: number; direction?: Exclude<Direction, 'both'> };
}
export type FaultKind = keyof FaultParams;

export interface Topology {
  /** Real namespace names (use with `ip netns exec`). */
  ns: Record<NsRole, string>;
  addrs: {
    /** Client source address routed through rta (path `via-lb`). */
    viaLb: string;
    /** Client source address routed through rtb (path `direct`). */
    direct: string;
    /** The server's address (on srv's loopback), reached via either router. */
    server: string;
    /** Router addresses, for the curious: client side and server side. */
    rta: { cli: string; srv: string };
    rtb: { cli: string; srv: string };
  };
  /** Interface names inside each namespace. */
  ifaces: {
    cli: { viaLb: string; direct: string };
    rta: { cli: string; srv: string };
    rtb: { cli: string; srv: string };
    srv: { rta: string; rtb: string };
  };
  /** Run a command inside a namespace and wait for it (rejects with its stderr on failure). */
  exec(ns: NsRole, cmd: string, args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** Start a long-running command inside a namespace; killed by `destroy()` if still running. */
  spawn(ns: NsRole, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** Add a fault to a router; returns the iptables arguments used. */
  applyFault<K extends FaultKind>(router: Router, kind: K, params: FaultParams[K]): Promise<string[]>;
  /** Remove every fault from a router (flush its filter and mangle FORWARD chains). */
  clearFaults(router: Router): Promise<void>;
  /** Bytes and packets a router forwarded from the client side (its client-facing interface's rx counters). */
  forwarded(router: Router): Promise<{ rxBytes: number; rxPackets: number }>;
  /** Remove namespaces (and with them veths, routes, rules, iptables); kill what `spawn` started. Idempotent. */
  destroy(): Promise<void>;
}

export interface TopologyOptions {
  /** Namespace name prefix; default `mxprobe`. Names become `<prefix>-<pid>-<rand>-<role>`. */
  prefix?: string;
  /** MTU of every link; default 1500. */
  mtu?: number;
}

const ADDR = {
  viaLb: '198.18.1.1',
  rtaCli: '198.18.1.2',
  direct: '198.18.2.1',
  rtbCli: '198.18.2.2',
  rtaSrv: '198.18.3.1',
  srvA: '198.18.3.2',
  rtbSrv: '198.18.4.1',
  srvB: '198.18.4.2',
  server: '198.18.5.1',
} as const;

const IFACES = {
  cli: { viaLb: 'lb0', direct: 'dir0' },
  rta: { cli: 'cli0', srv: 'srv0' },
  rtb: { cli: 'cli0', srv: 'srv0' },
  srv: { rta: 'rta0', rtb: 'rtb0' },
} as const;

const NS_NAME = /^(.+)-(\d+)-([0-9a-f]+)-(cli|rta|rtb|srv)$/;

function run(file: string, args: string[], timeoutMs = 15_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        const msg = `${[file, ...args].join(' ')} failed: ${stderr.trim() || err.message}`;
        reject(Object.assign(new Error(msg, { cause: err }), { stdout, stderr }));
      } else resolve({ stdout, stderr });
    });
  });
}

/** Like `run`, with `input` written to the command's stdin. */
function runInput(file: string, args: string[], input: string, timeoutMs = 15_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${[file, ...args].join(' ')} failed: ${stderr.trim() || err.message}\n${input}`, { cause: err }));
      else resolve({ stdout, stderr });
    });
    child.stdin?.end(input);
  });
}

function tools(): { ip?: string; iptables?: string } {
  return { ip: resolveTool('ip'), iptables: resolveTool('iptables') };
}

let availability: Promise<{ ok: boolean; reason?: string }> | undefined;

/**
 * Can this process build the lab? Linux, root, `ip netns` works (a throwaway namespace is created and removed),
 * `iptables` present and able to load the connbytes match inside it. Cached.
 */
export function netlabAvailable(): Promise<{ ok: boolean; reason?: string }> {
  availability ??= (async () => {
    if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (this is ${process.platform})` };
    if (process.getuid?.() !== 0) return { ok: false, reason: 'needs root (network namespaces, veths, iptables)' };
    const { ip, iptables } = tools();
    if (!ip) return { ok: false, reason: 'ip (iproute2) not found: apt-get install iproute2' };
    if (!iptables) return { ok: false, reason: 'iptables not found: apt-get install iptables' };
    const probe = `mxprobe-check-${process.pid}-${randomBytes(3).toString('hex')}`;
    try {
      await run(ip, ['netns', 'add', probe]);
    } catch (err) {
      return { ok: false, reason: `ip netns does not work here: ${(err as Error).message}` };
    }
    try {
      await run(ip, ['netns', 'exec', probe, iptables, '-A', 'FORWARD', '-p', 'tcp', '-m', 'connbytes', '--connbytes', '1:', '--connbytes-dir', 'original', '--connbytes-mode', 'bytes', '-j', 'DROP']);
      await run(ip, ['netns', 'exec', probe, iptables, '-t', 'mangle', '-A', 'FORWARD', '-p', 'tcp', '--tcp-flags', 'SYN', 'SYN', '-j', 'TCPOPTSTRIP', '--strip-options', 'wscale']);
    } catch (err) {
      return { ok: false, reason: `iptables cannot load connbytes/TCPOPTSTRIP in a namespace: ${(err as Error).message}` };
    } finally {
      await run(ip, ['netns', 'del', probe]).catch(() => undefined);
    }
    return { ok: true };
  })();
  return availability;
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup registry: every live topology, destroyed synchronously if the process exits without destroy().
// ---------------------------------------------------------------------------------------------------------

interface Live {
  names: string[];
  children: Set<ChildProcess>;
}
const live = new Set<Live>();
let exitHookInstalled = false;

function destroySync(l: Live, ip: string): void {
  for (const c of l.children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const name of l.names) killNsPidsSync(ip, name);
  for (const name of l.names) {
    try {
      execFileSync(ip, ['netns', 'del', name], { stdio: 'ignore', timeout: 5000 });
    } catch {
      /* already gone */
    }
  }
}

/** Processes still inside one of OUR namespaces keep it (and its veths) alive after `ip netns del`: kill them. */
function killNsPidsSync(ip: string, name: string): void {
  let pids: string[] = [];
  try {
    pids = execFileSync(ip, ['netns', 'pids', name], { encoding: 'utf8', timeout: 5000 }).split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids) {
    const n = Number(pid);
    if (Number.isInteger(n) && n > 1 && n !== process.pid) {
      try {
        process.kill(n, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
}

function installExitHook(ip: string): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const l of live) destroySync(l, ip);
    live.clear();
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Remove `<prefix>-<pid>-…` namespaces whose creating process is gone (left by a SIGKILLed run). */
export async function sweepStaleNamespaces(prefix = 'mxprobe'): Promise<string[]> {
  const { ip } = tools();
  if (!ip) return [];
  const { stdout } = await run(ip, ['netns', 'list']).catch(() => ({ stdout: '' }));
  const removed: string[] = [];
  for (const line of stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = NS_NAME.exec(name);
    if (!m || m[1] !== prefix) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || pidAlive(pid)) continue;
    killNsPidsSync(ip, name);
    await run(ip, ['netns', 'del', name]).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------------------
// Build
// ---------------------------------------------------------------------------------------------------------

/** Build the lab. Throws (after cleaning up what it made) if any step fails; check `netlabAvailable()` first. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  const { ip, iptables } = tools();
  if (!ip || !iptables) throw new Error('netlab needs ip (iproute2) and iptables');
  const prefix = opts.prefix ?? 'mxprobe';
  if (!/^[a-z][a-z0-9]*$/.test(prefix)) throw new Error(`netlab prefix must be lower-case letters/digits: ${prefix}`);
  const mtu = opts.mtu ?? 1500;
  await sweepStaleNamespaces(prefix);

  const id = `${prefix}-${process.pid}-${randomBytes(3).toString('hex')}`;
  const ns: Record<NsRole, string> = { cli: `${id}-cli`, rta: `${id}-rta`, rtb: `${id}-rtb`, srv: `${id}-srv` };
  const state: Live = { names: Object.values(ns), children: new Set() };
  live.add(state);
  installExitHook(ip);

  const ipn = (role: NsRole, ...args: string[]) => run(ip, ['-n', ns[role], ...args]);
  const nsexec = (role: NsRole, cmd: string, args: string[], timeoutMs?: number) =>
    run(ip, ['netns', 'exec', ns[role], cmd, ...args], timeoutMs);
  /** Several `ip` commands in one namespace, one process (`ip -n NS -batch -`); stops at the first failure. */
  const batch = (role: NsRole, lines: string[]) => runInput(ip, ['-n', ns[role], '-batch', '-'], lines.join('\n') + '\n');
  const sysctlBin = resolveTool('sysctl');
  /** Set sysctls inside a namespace: procps `sysctl` when present, else a tiny node process writing /proc/sys. */
  const sysctl = (role: NsRole, settings: Record<string, string>) =>
    sysctlBin
      ? nsexec(role, sysctlBin, ['-q', '-w', ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)])
      : nsexec(role, process.execPath, [
          '-e',
          `const fs=require('fs');for(const [k,v] of Object.entries(${JSON.stringify(settings)}))fs.writeFileSync('/proc/sys/'+k.replace(/\\./g,'/'),v)`,
        ]);

  let destroyed = false;
  const destroy = async (): Promise<void> => {
    if (destroyed) return;
    destroyed = true;
    const waits: Promise<unknown>[] = [];
    for (const c of state.children) {
      if (c.exitCode === null && c.signalCode === null) {
        waits.push(new Promise((r) => c.once('exit', r)));
        c.kill('SIGKILL');
      }
    }
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 3000))]);
    for (const name of state.names) killNsPidsSync(ip, name);
    await Promise.all(state.names.map((name) => run(ip, ['netns', 'del', name]).catch(() => undefined)));
    live.delete(state);
  };

  try {
    const roles = Object.keys(ns) as NsRole[];
    await Promise.all(roles.map((role) => run(ip, ['netns', 'add', ns[role]])));
    // Veths are created from one end, the peer placed straight into the other namespace.
    const veth = (aIf: string, b: NsRole, bIf: string) => `link add name ${aIf} type veth peer name ${bIf} netns ${ns[b]}`;
    await Promise.all([
      batch('cli', [veth(IFACES.cli.viaLb, 'rta', IFACES.rta.cli), veth(IFACES.cli.direct, 'rtb', IFACES.rtb.cli)]),
      batch('rta', [veth(IFACES.rta.srv, 'srv', IFACES.srv.rta)]),
      batch('rtb', [veth(IFACES.rtb.srv, 'srv', IFACES.srv.rtb)]),
    ]);
    // One MSS per skb (gso_max_segs 1): routers forward wire-sized packets, not GSO super-packets.
    const up = (dev: string) => `link set dev ${dev} mtu ${mtu} gso_max_segs 1 up`;
    const config: Record<NsRole, string[]> = {
      cli: [
        'link set dev lo up',
        up(IFACES.cli.viaLb),
        up(IFACES.cli.direct),
        `addr add ${ADDR.viaLb}/24 dev ${IFACES.cli.viaLb}`,
        `addr add ${ADDR.direct}/24 dev ${IFACES.cli.direct}`,
        // policy routing by source address selects the router
        `route add default via ${ADDR.rtaCli} dev ${IFACES.cli.viaLb} table 101`,
        `route add default via ${ADDR.rtbCli} dev ${IFACES.cli.direct} table 102`,
        `rule add from ${ADDR.viaLb} lookup 101 pref 1001`,
        `rule add from ${ADDR.direct} lookup 102 pref 1002`,
        // an unbound socket goes direct
        `route add default via ${ADDR.rtbCli} dev ${IFACES.cli.direct}`,
      ],
      rta: [
        'link set dev lo up',
        up(IFACES.rta.cli),
        up(IFACES.rta.srv),
        `addr add ${ADDR.rtaCli}/24 dev ${IFACES.rta.cli}`,
        `addr add ${ADDR.rtaSrv}/24 dev ${IFACES.rta.srv}`,
        `route add ${ADDR.server}/32 via ${ADDR.srvA}`,
      ],
      rtb: [
        'link set dev lo up',
        up(IFACES.rtb.cli),
        up(IFACES.rtb.srv),
        `addr add ${ADDR.rtbCli}/24 dev ${IFACES.rtb.cli}`,
        `addr add ${ADDR.rtbSrv}/24 dev ${IFACES.rtb.srv}`,
        `route add ${ADDR.server}/32 via ${ADDR.srvB}`,
      ],
      srv: [
        'link set dev lo up',
        up(IFACES.srv.rta),
        up(IFACES.srv.rtb),
        `addr add ${ADDR.srvA}/24 dev ${IFACES.srv.rta}`,
        `addr add ${ADDR.srvB}/24 dev ${IFACES.srv.rtb}`,
        `addr add ${ADDR.server}/32 dev lo`,
        // replies go back through the router they came from
        `route add 198.18.1.0/24 via ${ADDR.rtaSrv}`,
        `route add 198.18.2.0/24 via ${ADDR.rtbSrv}`,
      ],
    };
    await Promise.all(
      roles.map(async (role) => {
        // IPv4 only: no router solicitations or DAD in captures and counters.
        await sysctl(role, {
          'net.ipv6.conf.all.disable_ipv6': '1',
          'net.ipv6.conf.default.disable_ipv6': '1',
          ...(role === 'rta' || role === 'rtb' ? { 'net.ipv4.ip_forward': '1' } : {}),
        });
        await batch(role, config[role]);
      }),
    );
  } catch (err) {
    await destroy();
    throw err;
  }

  const routerIface = (router: Router, dir: Direction): string[] =>
    dir === 'both' ? [] : ['-i', dir === 'to-server' ? IFACES[router].cli : IFACES[router].srv];

  const applyFault = async <K extends FaultKind>(router: Router, kind: K, params: FaultParams[K]): Promise<string[]> => {
    let rule: string[];
    switch (kind) {
      case 'connbytes': {
        const p = params as FaultParams['connbytes'];
        if (!Number.isInteger(p.bytes) || p.bytes < 0) throw new Error(`connbytes: bytes must be a whole number, got ${p.bytes}`);
        rule = ['-A', 'FORWARD', ...routerIface(router, p.direction ?? 'to-server'), '-p', 'tcp', '-m', 'connbytes', '--connbytes', `${p.bytes}:`, '--connbytes-dir', 'original', '--connbytes-mode', 'bytes', '-j', 'DROP'];
        break;
      }
      case 'length': {
        const p = params as FaultParams['length'];
        if (!Number.isInteger(p.maxBytes) || p.maxBytes < 20 || p.maxBytes >= 65535) throw new Error(`length: maxBytes must be 20..65534, got ${p.maxBytes}`);
        rule = ['-A', 'FORWARD', ...routerIface(router, p.direction ?? 'to-server'), '-m', 'length', '--length', `${p.maxBytes + 1}:65535`, '-j', 'DROP'];
        break;
      }
      case 'statistic': {
        const p = params as FaultParams['statistic'];
        if (!(p.probability > 0 && p.probability < 1)) throw new Error(`statistic: probability must be between 0 and 1, got ${p.probability}`);
        rule = ['-A', 'FORWARD', ...routerIface(router, p.direction ?? 'to-server'), '-m', 'statistic', '--mode', 'random', '--probability', String(p.probability), '-j', 'DROP'];
        break;
      }
      case 'tcpoptstrip': {
        const p = params as FaultParams['tcpoptstrip'];
        const options = (p.options ?? ['wscale']).join(',');
        rule = ['-t', 'mangle', '-A', 'FORWARD', ...routerIface(router, p.direction ?? 'both'), '-p', 'tcp', '--tcp-flags', 'SYN', 'SYN', '-j', 'TCPOPTSTRIP', '--strip-options', options];
        break;
      }
      case 'tcpmss': {
        const p = params as FaultParams['tcpmss'];
        if (!Number.isInteger(p.mss) || p.mss < 536 || p.mss > 65_495) throw new Error(`tcpmss: mss must be 536..65495, got ${p.mss}`);
        rule = ['-t', 'mangle', '-A', 'FORWARD', ...routerIface(router, p.direction ?? 'both'), '-p', 'tcp', '--tcp-flags', 'SYN,RST', 'SYN', '-j', 'TCPMSS', '--set-mss', String(p.mss)];
        break;
      }
      case 'tbf': {
        const p = params as FaultParams['tbf'];
        if (!(p.kbit > 0)) throw new Error(`tbf: kbit must be more than 0, got ${p.kbit}`);
        // egress towards the server leaves by the server-side interface (and the other way round)
        const dev = (p.direction ?? 'to-server') === 'to-server' ? IFACES[router].srv : IFACES[router].cli;
        rule = ['qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${p.kbit}kbit`, 'burst', '32kbit', 'latency', '400ms'];
        await nsexec(router, 'tc', rule);
        return rule;
      }
      default:
        throw new Error(`unknown fault kind: ${String(kind)}`);
    }
    await nsexec(router, iptables, ['-w', ...rule]);
    return rule;
  };

  const clearFaults = async (router: Router): Promise<void> => {
    await nsexec(router, iptables, ['-w', '-F', 'FORWARD']);
    await nsexec(router, iptables, ['-w', '-t', 'mangle', '-F', 'FORWARD']);
    for (const dev of [IFACES[router].cli, IFACES[router].srv]) {
      await nsexec(router, 'tc', ['qdisc', 'del', 'dev', dev, 'root']).catch(() => undefined); // none: nothing to remove
    }
  };

  const forwarded = async (router: Router): Promise<{ rxBytes: number; rxPackets: number }> => {
    const { stdout } = await ipn(router, '-s', '-j', 'link', 'show', 'dev', IFACES[router].cli);
    const info = (JSON.parse(stdout) as Array<{ stats64?: { rx: { bytes: number; packets: number } } }>)[0];
    return { rxBytes: info?.stats64?.rx.bytes ?? 0, rxPackets: info?.stats64?.rx.packets ?? 0 };
  };

  return {
    ns,
    addrs: {
      viaLb: ADDR.viaLb,
      direct: ADDR.direct,
      server: ADDR.server,
      rta: { cli: ADDR.rtaCli, srv: ADDR.rtaSrv },
      rtb: { cli: ADDR.rtbCli, srv: ADDR.rtbSrv },
    },
    ifaces: IFACES,
    exec: (role, cmd, args, o) => nsexec(role, cmd, args, o?.timeoutMs),
    spawn: (role, cmd, args, o) => {
      if (destroyed) throw new Error('topology already destroyed');
      const child = spawnChild(ip, ['netns', 'exec', ns[role], cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], ...o });
      state.children.add(child);
      child.once('exit', () => state.children.delete(child));
      return child;
    },
    applyFault,
    clearFaults,
    forwarded,
    destroy,
  };
}

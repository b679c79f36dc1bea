/**
 * The kernel's own view of a probe's TCP connection, read with `ss -tin` (iproute2) on Linux.
 *
 * "Written is not delivered": a socket accepts megabytes into the send buffer before the network moves
 * them. At a stall the numbers that tell the story are the kernel's: `bytes_acked` (what the peer really
 * acknowledged), `retrans` / `bytes_retrans` (segments lost on the way — incident 1), `unacked`,
 * `snd_wnd` 0 with no retransmits (the receiver or a middlebox closed the window — incident 2's family),
 * `lastack` (how long since any ACK), `wscale`, `rtt`, `pmtu`.
 *
 * Cost: one snapshot is one `ss` process with an in-kernel (inet_diag bytecode) filter on the two ports;
 * measured on the 2-core Debian 12 build VM (iproute2 6.1, kernel 6.x): 13–21 ms wall time per call, almost all
 * of it process start-up. That is why the engine takes one only at a stall and at the end of large probes.
 *
 * `ss` prints most counters only when they are non-zero (`if (s->unacked) out(" unacked:%u")`), so absence
 * does not always mean "unknown". `parseSsLine` is a pure parser and leaves absent fields absent unless told
 * which absences mean zero (`zeroFill`); `tcpSnapshot` works that list out from the `ss` and kernel versions
 * (`ssZeroFill`) so that, for example, a closed send window is reported as `sndWnd: 0` and not silently dropped.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import type { TcpSnapshot } from '../model.js';

/** The 4-tuple of a connection as Node reports it (`socket.localAddress` etc.); IPv4-mapped IPv6 is fine. */
export interface SocketTuple {
  localAddress: string;
  localPort: number;
  remoteAddress: string;
  remotePort: number;
}

/** Fields `ss` omits when they are zero; with `zeroFill`, their absence (in a socket with TCP info) means 0. */
export const ZERO_FILL_FIELDS = [
  'bytesSent',
  'bytesAcked',
  'bytesReceived',
  'bytesRetrans',
  'retrans',
  'unacked',
  'sndWnd',
  'backoff',
] as const;
export type ZeroFillField = (typeof ZERO_FILL_FIELDS)[number];

export interface ParseSsOptions {
  /** Fields whose absence means 0 for this `ss`/kernel pair (see `ssZeroFill`). Default: none. */
  zeroFill?: readonly ZeroFillField[];
}

const SS_TIMEOUT_MS = 2000;

// ---------------------------------------------------------------------------------------------------------
// Parsing (pure)
// ---------------------------------------------------------------------------------------------------------

/** `127.0.0.1:25`, `[::1]:25`, `[::ffff:127.0.0.1]:25`, `10.0.0.1%eth0:25`, `*:25` → address + port. */
export function parseSsEndpoint(text: string): { address: string; port: number | undefined } {
  const i = text.lastIndexOf(':');
  if (i < 0) return { address: normalizeAddress(text), port: undefined };
  const portText = text.slice(i + 1);
  const port = /^\d+$/.test(portText) ? Number(portText) : undefined;
  return { address: normalizeAddress(text.slice(0, i)), port };
}

/** Lower-case, no brackets, no `%iface` zone, IPv4-mapped IPv6 (`::ffff:1.2.3.4`) → `1.2.3.4`. */
export function normalizeAddress(address: string): string {
  let a = address.trim();
  if (a.startsWith('[') && a.endsWith(']')) a = a.slice(1, -1);
  const zone = a.indexOf('%');
  if (zone >= 0) a = a.slice(0, zone);
  a = a.toLowerCase();
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(a);
  return mapped ? mapped[1]! : a;
}

function num(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/** Leading number of `1528ms(100.0%)`, `1256`, `935557921bps`. */
function leadingNumber(v: string | undefined): number | undefined {
  const m = v === undefined ? null : /^(\d+(?:\.\d+)?)/.exec(v);
  return m ? Number(m[1]) : undefined;
}

/** One socket of `ss -tinH` output: the state line and its tab-indented info line(s), joined. */
export interface SsEntry {
  state: string;
  recvQ?: number;
  sendQ?: number;
  local: { address: string; port: number | undefined };
  peer: { address: string; port: number | undefined };
  /** The whole entry on one line (whitespace collapsed). */
  raw: string;
}

/** Split `ss -tinH` output into one text per socket (an entry starts on a line that does not start with whitespace). */
export function splitSsOutput(output: string): string[] {
  const entries: string[] = [];
  for (const line of output.split('\n')) {
    if (line.trim() === '') continue;
    if (/^\s/.test(line) && entries.length > 0) entries[entries.length - 1] += ` ${line.trim()}`;
    else entries.push(line.trim());
  }
  return entries.map((e) => e.replace(/\s+/g, ' ').trim());
}

function parseHead(tokens: string[]): { entry: Omit<SsEntry, 'raw'>; rest: string[] } | undefined {
  let i = 0;
  // `ss -t` alone has no Netid column; `ss -a` mixes families and prints one — accept both.
  if (tokens[0] === 'tcp' || tokens[0] === 'mptcp') i = 1;
  const [state, recvQ, sendQ, local, peer] = tokens.slice(i, i + 5);
  if (!state || !local || !peer || !/^[A-Z][A-Z0-9-]*$/.test(state)) return undefined;
  return {
    entry: {
      state,
      recvQ: num(recvQ),
      sendQ: num(sendQ),
      local: parseSsEndpoint(local),
      peer: parseSsEndpoint(peer),
    },
    rest: tokens.slice(i + 5),
  };
}

/** Parse the head of one socket's `ss` text (state, queues, endpoints). */
export function parseSsEntry(text: string): SsEntry | undefined {
  const raw = text.replace(/\s+/g, ' ').trim();
  const head = parseHead(raw.split(' '));
  return head ? { ...head.entry, raw } : undefined;
}

/**
 * Parse one socket of `ss -tin` output — the state line and its info line, joined (or given with the newline)
 * — into the fields of a `TcpSnapshot`. Pure. Fields `ss` did not print stay absent unless `opts.zeroFill`
 * says their absence means zero; then they are 0, but only when the socket had a TCP info block at all
 * (a TIME-WAIT entry has none, and gets only `state`).
 *
 * Notes for readers of the numbers: `bytes_acked` counts the SYN (and a FIN) too, so a connection that
 * sent 1000 payload bytes reports `bytes_acked:1001`; `rtt`/`rto` are milliseconds.
 */
export function parseSsLine(line: string, opts: ParseSsOptions = {}): Omit<TcpSnapshot, 'at' | 'tMs'> {
  const raw = line.replace(/\s+/g, ' ').trim();
  const tokens = raw.split(' ').filter(Boolean);
  const head = parseHead(tokens);
  const out: Omit<TcpSnapshot, 'at' | 'tMs'> = {};
  if (head) out.state = head.entry.state;
  const info = head ? head.rest : tokens;

  const kv = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < info.length; i++) {
    const tok = info[i]!;
    // `send 935557921bps`, `pacing_rate 1.2Gbps`, `delivery_rate 26692448bps`: key and value are two tokens.
    if ((tok === 'send' || tok === 'pacing_rate' || tok === 'delivery_rate' || tok === 'pacing_rate_max') && i + 1 < info.length) {
      kv.set(tok, info[++i]!);
      continue;
    }
    const c = tok.indexOf(':');
    if (c > 0) kv.set(tok.slice(0, c), tok.slice(c + 1));
    else flags.add(tok);
  }

  const setNum = <K extends keyof typeof out>(key: K, value: number | undefined) => {
    if (value !== undefined) (out as Record<string, unknown>)[key] = value;
  };

  setNum('bytesSent', num(kv.get('bytes_sent')));
  setNum('bytesAcked', num(kv.get('bytes_acked')));
  setNum('bytesReceived', num(kv.get('bytes_received')));
  setNum('bytesRetrans', num(kv.get('bytes_retrans')));
  const retrans = kv.get('retrans');
  if (retrans !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(retrans);
    if (m) {
      out.retrans = Number(m[1]);
      out.retransTotal = Number(m[2]);
    } else setNum('retrans', num(retrans));
  }
  setNum('unacked', num(kv.get('unacked')));
  setNum('sndWnd', num(kv.get('snd_wnd')));
  // Newer kernels+ss (6.7+) print the advertised receive window `rcv_wnd`; older ones only `rcv_space`
  // (the receive-buffer autotuning estimate). Take the real window when present, else rcv_space.
  setNum('rcvWnd', num(kv.get('rcv_wnd')) ?? num(kv.get('rcv_space')));
  const ws = kv.get('wscale');
  if (ws !== undefined) {
    const m = /^(\d+),(\d+)$/.exec(ws);
    if (m) out.wscale = { snd: Number(m[1]), rcv: Number(m[2]) };
  }
  const rtt = kv.get('rtt');
  if (rtt !== undefined) {
    const [r, v] = rtt.split('/');
    setNum('rttMs', num(r));
    setNum('rttVarMs', num(v));
  }
  setNum('rtoMs', num(kv.get('rto')));
  setNum('mss', num(kv.get('mss')));
  setNum('pmtu', num(kv.get('pmtu')));
  setNum('cwnd', num(kv.get('cwnd')));
  setNum('backoff', num(kv.get('backoff')));
  setNum('lastAckMs', num(kv.get('lastack')));
  setNum('lastRecvMs', num(kv.get('lastrcv')));
  setNum('lastSendMs', num(kv.get('lastsnd')));
  setNum('notSent', num(kv.get('notsent')));
  setNum('rwndLimitedMs', leadingNumber(kv.get('rwnd_limited')));
  setNum('advMss', num(kv.get('advmss')));
  setNum('rcvMss', num(kv.get('rcvmss')));

  // A socket with TCP info prints at least some of these; TIME-WAIT and friends print none.
  const hasInfo = ['rto', 'mss', 'cwnd', 'rtt', 'wscale', 'rcv_space', 'bytes_acked', 'pmtu'].some((k) => kv.has(k));
  if (hasInfo) {
    const options = TCP_OPTION_FLAGS.filter((f) => flags.has(f));
    out.options = options;
  }
  if (hasInfo && opts.zeroFill) {
    for (const f of opts.zeroFill) {
      if (f === 'retrans') {
        if (out.retrans === undefined) {
          out.retrans = 0;
          out.retransTotal = 0;
        }
      } else if (out[f] === undefined) out[f] = 0;
    }
  }
  if (raw) out.raw = raw;
  return out;
}

/**
 * Option flags `ss` prints before the congestion control name when the handshake negotiated them (tcpi_options):
 * timestamps, SACK, ECN (and `ecnseen`: a CE/ECT mark was received). Window scaling shows as `wscale:a,b` instead.
 */
export const TCP_OPTION_FLAGS = ['ts', 'sack', 'ecn', 'ecnseen'] as const;
export type TcpOptionFlag = (typeof TCP_OPTION_FLAGS)[number];

/** `ss -V` text → [major, minor], or undefined. Handles `iproute2-6.1.0` and old snapshot names `iproute2-ss190107`. */
export function parseSsVersion(text: string): { major: number; minor: number } | { snapshotDate: number } | undefined {
  const m = /iproute2-(\d+)\.(\d+)/.exec(text);
  if (m) return { major: Number(m[1]), minor: Number(m[2]) };
  const s = /iproute2-ss(\d{6})/.exec(text);
  if (s) return { snapshotDate: Number(s[1]) };
  return undefined;
}

function atLeast(v: { major: number; minor: number }, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/**
 * Which absent fields mean 0, for a given `ss -V` text and kernel release (`os.release()`).
 * - bytes_acked / bytes_received, unacked, retrans, backoff: kernel ≥ 4.1 and every ss that has `-H`.
 * - bytes_sent / bytes_retrans: kernel ≥ 4.19 (tcpi_bytes_sent) and ss ≥ 4.20.
 * - snd_wnd: kernel ≥ 5.4 (tcpi_snd_wnd) and ss ≥ 5.18 (printed since iproute2 commit "ss: display advertised
 *   TCP receive window and out-of-order counter", 2022).
 * Unknown versions get the conservative first set only.
 */
export function ssZeroFill(ssVersionText: string, kernelRelease: string): ZeroFillField[] {
  const fields: ZeroFillField[] = ['bytesAcked', 'bytesReceived', 'unacked', 'retrans', 'backoff'];
  const km = /^(\d+)\.(\d+)/.exec(kernelRelease);
  const kernel = km ? { major: Number(km[1]), minor: Number(km[2]) } : undefined;
  const ss = parseSsVersion(ssVersionText);
  if (!kernel || !ss) return fields;
  const ssAtLeast = (major: number, minor: number): boolean =>
    'major' in ss ? atLeast(ss, major, minor) : false; // dated snapshots predate 5.x
  const ssDatedAfter = (yymmdd: number): boolean => ('snapshotDate' in ss ? ss.snapshotDate >= yymmdd : true);
  if (atLeast(kernel, 4, 19) && (ssAtLeast(4, 20) || ('snapshotDate' in ss && ssDatedAfter(181219)))) {
    fields.push('bytesSent', 'bytesRetrans');
  }
  if (atLeast(kernel, 5, 4) && ssAtLeast(5, 18)) fields.push('sndWnd');
  return fields;
}

const tupleKey = (la: string, lp: number | undefined, ra: string, rp: number | undefined): string => `${la}|${lp}|${ra}|${rp}`;

/** Every socket of `ss` output by its 4-tuple (addresses normalised): one pass, whatever the number of sockets asked. */
export function indexSsOutput(output: string): Map<string, string[]> {
  const index = new Map<string, string[]>();
  for (const text of splitSsOutput(output)) {
    const e = parseSsEntry(text);
    if (!e) continue;
    const k = tupleKey(e.local.address, e.local.port, e.peer.address, e.peer.port);
    const list = index.get(k);
    if (list) list.push(text);
    else index.set(k, [text]);
  }
  return index;
}

/** The entry of an indexed `ss` output that is exactly this 4-tuple. */
export function entryFor(index: Map<string, string[]>, t: SocketTuple): string | undefined {
  const matches = index.get(tupleKey(normalizeAddress(t.localAddress), t.localPort, normalizeAddress(t.remoteAddress), t.remotePort)) ?? [];
  // A TIME-WAIT ghost and a live socket can share a tuple for a moment: prefer the one with TCP info.
  return matches.find((m) => !/^(TIME-WAIT|tcp TIME-WAIT)\b/.test(m)) ?? matches[0];
}

/** Pick the entry of `ss` output that is exactly this 4-tuple (addresses compared after normalisation). */
export function findSsEntry(output: string, t: SocketTuple): string | undefined {
  return entryFor(indexSsOutput(output), t);
}

// ---------------------------------------------------------------------------------------------------------
// Running ss
// ---------------------------------------------------------------------------------------------------------

/** Find an executable on PATH, then in the sbin folders that non-root PATHs often lack. */
export function resolveTool(name: string): string | undefined {
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

async function run(file: string, args: string[], timeoutMs = SS_TIMEOUT_MS): Promise<{ stdout: string; stderr: string }> {
  // imported on first use: a probe too small for a snapshot never pays for child_process (bench/startup.mjs)
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) reject(Object.assign(err, { stderr }));
        else resolve({ stdout, stderr });
      },
    );
  });
}

interface SsTool {
  path: string;
  zeroFill: ZeroFillField[];
}

let toolPromise: Promise<{ ok: true; tool: SsTool } | { ok: false; reason: string }> | undefined;

function probeTool(): Promise<{ ok: true; tool: SsTool } | { ok: false; reason: string }> {
  toolPromise ??= (async () => {
    if (process.platform !== 'linux') {
      return { ok: false as const, reason: `TCP snapshots need Linux (ss from iproute2); this is ${process.platform}` };
    }
    // MXPROBE_SS: the ss to run (a path), or "none" to take no kernel readings at all
    const chosen = process.env['MXPROBE_SS'];
    if (chosen === 'none') return { ok: false as const, reason: 'kernel readings turned off (MXPROBE_SS=none)' };
    const path = chosen || resolveTool('ss');
    if (!path) return { ok: false as const, reason: 'ss not found: install iproute2 (apt-get install iproute2)' };
    try {
      const { stdout, stderr } = await run(path, ['-V']);
      return { ok: true as const, tool: { path, zeroFill: ssZeroFill(`${stdout}${stderr}`, release()) } };
    } catch (err) {
      return { ok: false as const, reason: `ss at ${path} does not run: ${(err as Error).message.split('\n')[0]}` };
    }
  })();
  return toolPromise;
}

/** Can this machine take TCP snapshots? Linux with `ss` present and runnable. Cached for the process. */
export async function tcpInfoAvailable(): Promise<{ ok: boolean; reason?: string }> {
  const t = await probeTool();
  return t.ok ? { ok: true } : { ok: false, reason: t.reason };
}

export interface TcpSnapshotOptions {
  /** Run `ss` inside this network namespace (`ip netns exec NAME ss …`; needs root). For the kernel lab. */
  netns?: string;
}

/**
 * The kernel's view of one connection, exact on the 4-tuple (IPv4, IPv6 and IPv4-mapped IPv6).
 * Never throws: returns `{ snapshot }` or `{ unavailable: reason }` (not Linux, ss missing, socket not found,
 * ss failed or took longer than 2 s). Take it before destroying the socket — a destroyed socket is gone.
 *
 * Requests made in the same turn of the event loop, or while an earlier run is in progress, share one `ss` process
 * (up to BATCH_TUPLES sockets per process, one in-kernel filter `( sport and dport ) or …`): the watchdog of many
 * slow probes in flight reads the kernel for all of them at the cost of one process start, not one each.
 */
export function tcpSnapshot(
  t: SocketTuple,
  at: TcpSnapshot['at'],
  tMs: number,
  opts: TcpSnapshotOptions = {},
): Promise<{ snapshot?: TcpSnapshot; unavailable?: string }> {
  if (!Number.isInteger(t.localPort) || !Number.isInteger(t.remotePort) || !t.localAddress || !t.remoteAddress) {
    return Promise.resolve({ unavailable: 'socket has no local/remote address (not connected?)' });
  }
  return new Promise((resolve) => {
    const key = opts.netns ?? '';
    let q = pending.get(key);
    if (!q) {
      q = [];
      pending.set(key, q);
      if (!inFlight.has(key)) setImmediate(() => startBatch(key, opts.netns));
    }
    q.push({ t, at, tMs, resolve });
  });
}

/**
 * One `ss` run at a time per namespace: requests that arrive while one runs wait for it to end and then share the
 * next, so a burst of requests in consecutive turns (200 sink sessions reaching DATA within a second) costs a few
 * processes, not 200. (Measured in the sink-load test: spawning was not what costs there — `MXPROBE_SS=/bin/true`
 * spawns as often and leaves greetings at 3–9 ms — the `ss` dumps themselves, competing for the 2 cores, are.)
 */
function startBatch(key: string, netns: string | undefined): void {
  const q = pending.get(key);
  if (!q || inFlight.has(key)) return;
  pending.delete(key);
  inFlight.add(key);
  flushBatch(q, netns)
    // never leave a waiter hanging: whatever goes wrong in a batch answers every request in it
    .catch((e: unknown) => {
      for (const r of q) r.resolve({ unavailable: `ss reading failed: ${(e as Error).message}` });
    })
    .finally(() => {
      inFlight.delete(key);
      if (pending.has(key)) setImmediate(() => startBatch(key, netns));
    });
}

type SnapshotAnswer = { snapshot?: TcpSnapshot; unavailable?: string };
interface SnapshotRequest {
  t: SocketTuple;
  at: TcpSnapshot['at'];
  tMs: number;
  resolve: (a: SnapshotAnswer) => void;
}

/** Sockets asked for in one `ss` run; the filter grows with each (about 12 arguments a socket). */
const BATCH_TUPLES = 64;
const pending = new Map<string, SnapshotRequest[]>();
/** Namespaces (key '' for our own) with an `ss` run in progress. */
const inFlight = new Set<string>();

/**
 * `ss` arguments for these sockets: filtered in the kernel on both ports of each (addresses are checked after).
 * `-o` is what makes ss print the negotiated options (`ts sack ecn`; without it only `wscale` shows) and the timer.
 */
export function ssArgsFor(tuples: readonly SocketTuple[]): string[] {
  const args = ['-t', '-i', '-o', '-n', '-H', 'state', 'all'];
  tuples.forEach((t, i) => {
    if (i > 0) args.push('or');
    args.push('(', 'sport', '=', `:${t.localPort}`, 'and', 'dport', '=', `:${t.remotePort}`, ')');
  });
  return args;
}

let ssRuns = 0;
/** How many `ss` processes this process has started for snapshots (for benchmarks and diagnostics). */
export function ssRunCount(): number {
  return ssRuns;
}

async function flushBatch(reqs: SnapshotRequest[], netns: string | undefined): Promise<void> {
  const avail = await probeTool();
  if (!avail.ok) {
    for (const r of reqs) r.resolve({ unavailable: avail.reason });
    return;
  }
  for (let i = 0; i < reqs.length; i += BATCH_TUPLES) {
    const group = reqs.slice(i, i + BATCH_TUPLES);
    ssRuns++;
    const out = await runSs(avail.tool.path, ssArgsFor(group.map((r) => r.t)), netns);
    // parsed once for the whole group: a batch of 64 sockets is one pass, not 64
    const index = 'unavailable' in out ? undefined : indexSsOutput(out.stdout);
    for (const r of group) {
      if (!index) {
        r.resolve({ unavailable: (out as { unavailable: string }).unavailable });
        continue;
      }
      const entry = entryFor(index, r.t);
      if (!entry) {
        const t = r.t;
        r.resolve({ unavailable: `no TCP socket ${t.localAddress}:${t.localPort} → ${t.remoteAddress}:${t.remotePort} in ss (already closed?)` });
      } else {
        r.resolve({ snapshot: { at: r.at, tMs: r.tMs, ...parseSsLine(entry, { zeroFill: avail.tool.zeroFill }) } });
      }
    }
  }
}

async function runSs(ssPath: string, ssArgs: string[], netns: string | undefined): Promise<{ stdout: string } | { unavailable: string }> {
  let file = ssPath;
  let args = ssArgs;
  if (netns) {
    const ip = resolveTool('ip');
    if (!ip) return { unavailable: 'ip not found: install iproute2 (apt-get install iproute2)' };
    file = ip;
    args = ['netns', 'exec', netns, ssPath, ...ssArgs];
  }
  try {
    const { stdout } = await run(file, args);
    return { stdout };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { killed?: boolean; stderr?: string };
    if (e.killed) return { unavailable: `ss did not answer within ${SS_TIMEOUT_MS} ms` };
    const detail = (e.stderr ?? '').trim().split('\n')[0] || e.message.split('\n')[0];
    return { unavailable: `ss failed: ${detail}` };
  }
}

export { dataOutstanding } from './evidence.js';

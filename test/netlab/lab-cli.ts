/**
 * The built CLI inside the kernel lab: `mxprobe sink` in the server namespace, `mxprobe run` in the client
 * namespace (so its sockets take the policy routes and its `ss` reads that namespace's kernel), test profiles
 * written as YAML, and summaries of a results file for the test output. Every child is bounded by a deadline.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { ProbeResult, TcpSnapshot } from '../../src/model.js';
import { BIN } from '../helpers/cli.js';
import type { NsRole, Topology } from './topology.js';

export interface NsRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** True when the deadline passed and the process was killed. */
  killed: boolean;
  ms: number;
}

/** Run the built CLI inside a namespace and wait for it; SIGKILLed after `timeoutMs`. */
export function runMxprobeIn(topo: Topology, role: NsRole, args: string[], timeoutMs: number): Promise<NsRun> {
  const t0 = performance.now();
  const child = topo.spawn(role, process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let killed = false;
  child.stdout?.on('data', (d) => (stdout += String(d)));
  child.stderr?.on('data', (d) => (stderr += String(d)));
  const timer = setTimeout(() => {
    killed = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killed, ms: performance.now() - t0 });
    });
  });
}

export interface LabSink {
  host: string;
  port: number;
  child: ChildProcess;
  /** What the sink printed on stderr so far (its banner, warnings). */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 3 s; resolves when it is gone. */
  stop(): Promise<void>;
}

/** Start a long-running CLI command in a namespace; resolves once `ready.on` (stdout or stderr) contains `ready.text`. */
async function startDaemon(topo: Topology, role: NsRole, args: string[], ready: { text: string; on: 'stdout' | 'stderr' }, what: string): Promise<{ child: ChildProcess; output: () => string; stop: () => Promise<void> }> {
  const child = topo.spawn(role, process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start within 20 s; output: ${output}`));
    }, 20_000);
    const onData = (d: unknown) => {
      output += String(d);
      if (output.includes(ready.text)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child[ready.on]?.on('data', onData);
    child[ready.on === 'stdout' ? 'stderr' : 'stdout']?.resume(); // not needed here (a sink's --record file keeps its records)
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready; output: ${output}`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('close', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await gone;
    clearTimeout(t);
  };
  return { child, output: () => output, stop };
}

/** Start `mxprobe sink` in `srv` on the server address; resolves once it says it is listening. */
export async function startLabSink(topo: Topology, opts: { port?: number; record?: string; silentTimeout?: string } = {}): Promise<LabSink> {
  const host = topo.addrs.server;
  const port = opts.port ?? 2525;
  const args = ['sink', '--listen', `${host}:${port}`, '--silent-timeout', opts.silentTimeout ?? '20s', '--json'];
  if (opts.record) args.push('--record', opts.record);
  const d = await startDaemon(topo, 'srv', args, { text: 'listening on', on: 'stderr' }, `mxprobe sink on ${host}:${port}`);
  return { host, port, child: d.child, stderr: d.output, stop: d.stop };
}

/**
 * Start `mxprobe lab relay` in a router namespace: a TCP-terminating device on that path (it acknowledges what the
 * client sends and opens its own connection to `to`), with a fault on the client's bytes.
 */
export async function startLabRelay(topo: Topology, router: 'rta' | 'rtb', opts: { listen: string; to: string; clientToServer: string }): Promise<{ stop: () => Promise<void>; output: () => string }> {
  const args = ['lab', 'relay', '--listen', opts.listen, '--to', opts.to, '--client-to-server', opts.clientToServer];
  const d = await startDaemon(topo, router, args, { text: `relay ${opts.listen}`, on: 'stdout' }, `mxprobe lab relay on ${opts.listen}`);
  return { stop: d.stop, output: d.output };
}

export interface LabProfile {
  name: string;
  target: { host: string; port: number };
  /** `relay`: hand the message to this host:port instead of the target (a relay path). */
  paths: Array<{ name: string; localAddress: string; relay?: string }>;
  sizes: string[];
  repeat: number;
  concurrency: number;
  /** The stall window; absent: the default windows. */
  stall?: string;
  seed?: number;
  /** TCP snapshot at the end of probes of at least this size; default 0 (every probe). */
  tcpSnapshotMin?: string;
  /** Deadlines over the lab's defaults, e.g. `{ dataAck: '8s' }`. */
  timeouts?: Record<string, string>;
}

/** Write a profile as YAML into `dir`; returns its path. */
export function writeProfile(dir: string, p: LabProfile): string {
  const doc = {
    name: p.name,
    tls: 'none',
    targets: [{ host: p.target.host, port: p.target.port, tls: 'none', name: 'srv' }],
    paths: p.paths,
    sizes: p.sizes,
    repeat: p.repeat,
    concurrency: p.concurrency,
    seed: p.seed ?? 7,
    envelope: { from: 'probe@mxprobe.test', to: 'sink@mxprobe.test' },
    ehlo: 'netlab.mxprobe.test',
    // the lab's RTT is well under a millisecond: short deadlines keep every run bounded; the stall window (the
    // default 10 s when absent) stays shorter than every deadline
    timeouts: { connect: '15s', command: '15s', data: '15s', body: '30s', dataAck: '30s', ...(p.stall ? { stall: p.stall } : {}), ...p.timeouts },
    tcpSnapshotMin: p.tcpSnapshotMin ?? '0',
  };
  const file = join(dir, `${p.name}.yaml`);
  writeFileSync(file, `# written by test/netlab/e2e.test.ts\n${stringify(doc)}`);
  return file;
}

/**
 * Wait (polling, bounded) until the sink's record file holds a probe record for each of these probe ids: the sink
 * writes a record when the session ends, which can trail the sender's result by the time the connection takes to
 * close. Resolves with the ids still missing at the deadline (none: all there).
 */
export async function waitForSinkRecords(file: string, probeIds: readonly string[], timeoutMs = 15_000): Promise<string[]> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      // not written yet
    }
    const missing = probeIds.filter((id) => !text.includes(`"probeId":"${id}"`));
    if (!missing.length || performance.now() > deadline) return missing;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Read a results file (JSON Lines). */
export function readResultsFile(file: string): ProbeResult[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as ProbeResult);
}

const med = (xs: Array<number | undefined>): number | undefined => {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return undefined;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1]! + v[m]!) / 2;
};
const range = (xs: Array<number | undefined>): string => {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return '-';
  const lo = Math.min(...v);
  const hi = Math.max(...v);
  return lo === hi ? String(lo) : `${lo}..${hi}`;
};

export interface PathTcpSummary {
  path: string;
  probes: number;
  outcomes: Record<string, number>;
  stallBy: Record<string, number>;
  /** Sizes (bytes) → "delivered/total". */
  perSize: Record<number, string>;
  stalled?: {
    stages: Record<string, number>;
    /** Body offset acknowledged (bytes_acked minus the bytes before the body), min..max. */
    bodyAcked: string;
    bytesAcked: string;
    retransTotal: string;
    backoff: string;
    unacked: string;
    sndWnd: string;
    lastAckMs: string;
    mss: string;
  };
  delivered?: {
    wscale: string;
    retransTotal: string;
    medianRetransTotal?: number;
    sndWnd: string;
    rcvWnd: string;
    mss: string;
    medianBodyMs?: number;
  };
}

/** The numbers a reader of the test output wants per path: outcomes, and the kernel's view of stalled and delivered probes. */
export function summarisePaths(results: ProbeResult[]): PathTcpSummary[] {
  const paths = [...new Set(results.map((r) => r.path))].sort();
  return paths.map((path) => {
    const rs = results.filter((r) => r.path === path);
    const count = <T>(xs: T[], key: (x: T) => string | undefined) => {
      const o: Record<string, number> = {};
      for (const x of xs) {
        const k = key(x);
        if (k !== undefined) o[k] = (o[k] ?? 0) + 1;
      }
      return o;
    };
    const perSize: Record<number, string> = {};
    for (const s of [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b)) {
      const c = rs.filter((r) => r.sizeBytes === s);
      perSize[s] = `${c.filter((r) => r.outcome === 'delivered').length}/${c.length}`;
    }
    const stalled = rs.filter((r) => r.outcome === 'stalled');
    const delivered = rs.filter((r) => r.outcome === 'delivered');
    const st = (f: (t: TcpSnapshot) => number | undefined, from: ProbeResult[]) => from.map((r) => (r.tcp ? f(r.tcp) : undefined));
    const bodyAcked = (r: ProbeResult): number | undefined => {
      if (typeof r.tcp?.bytesAcked !== 'number' || typeof r.bodyBytesWritten !== 'number') return undefined;
      let before = r.bytesWritten - r.bodyBytesWritten;
      if (r.stage === 'dataAck') before -= 3;
      return Math.max(0, r.tcp.bytesAcked - before);
    };
    const out: PathTcpSummary = {
      path,
      probes: rs.length,
      outcomes: count(rs, (r) => r.outcome),
      stallBy: count(stalled, (r) => r.stallBy),
      perSize,
    };
    if (stalled.length) {
      out.stalled = {
        stages: count(stalled, (r) => r.stage),
        bodyAcked: range(stalled.map(bodyAcked)),
        bytesAcked: range(st((t) => t.bytesAcked, stalled)),
        retransTotal: range(st((t) => t.retransTotal, stalled)),
        backoff: range(st((t) => t.backoff, stalled)),
        unacked: range(st((t) => t.unacked, stalled)),
        sndWnd: range(st((t) => t.sndWnd, stalled)),
        lastAckMs: range(st((t) => t.lastAckMs, stalled)),
        mss: range(st((t) => t.mss, stalled)),
      };
    }
    if (delivered.length) {
      const ws = [...new Set(delivered.filter((r) => r.tcp).map((r) => (r.tcp!.wscale ? `${r.tcp!.wscale.snd},${r.tcp!.wscale.rcv}` : 'none')))];
      out.delivered = {
        wscale: ws.join(' ') || '-',
        retransTotal: range(st((t) => t.retransTotal ?? 0, delivered)),
        medianRetransTotal: med(st((t) => t.retransTotal ?? 0, delivered)),
        sndWnd: range(st((t) => t.sndWnd, delivered)),
        rcvWnd: range(st((t) => t.rcvWnd, delivered)),
        mss: range(st((t) => t.mss, delivered)),
        medianBodyMs: med(delivered.map((r) => r.stages.body)),
      };
    }
    return out;
  });
}

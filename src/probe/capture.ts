/**
 * Opt-in packet capture of stalled probes (`--capture DIR`).
 *
 * We only learn that a probe stalled at its end, but the pcap must hold the connection from its SYN. So one
 * run-wide tcpdump writes every packet matching the SMTP ports in use into a temporary pcap, started before
 * the first probe; when a probe stalls, the engine asks for that connection's packets, and `extract()` copies
 * them — exactly its 4-tuple, both directions — into `DIR/<probeId>.pcap` with `tcpdump -r all -w one 'filter'`.
 *
 * tcpdump runs with `-U --immediate-mode`, so each packet reaches the temporary file as soon as the kernel
 * hands it over and an extraction sees the latest retransmissions. By default only the first 256 bytes of each
 * packet are kept: every header, the SMTP commands and replies, but not megabytes of message body
 * (`snaplen: 0` keeps whole packets). `stop()` ends tcpdump and deletes the temporary file; if the process
 * exits without `stop()`, an exit hook does the same, and when `setpriv` is available tcpdump is started with
 * a parent-death signal, so even a SIGKILLed prober leaves no tcpdump behind.
 */
import { mkdirpSync } from '../fsutil.js';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve as resolvePath } from 'node:path';
import { normalizeAddress, resolveTool, type SocketTuple } from './tcpinfo.js';

export type CaptureErrorCode = 'ENOTCPDUMP' | 'EPERM' | 'EDIR' | 'ESTART' | 'EEXTRACT';

export class CaptureError extends Error {
  override name = 'CaptureError';
  constructor(
    readonly code: CaptureErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CaptureSession {
  /** Where extracted pcaps go (absolute). */
  dir: string;
  /** The interface tcpdump listens on. */
  iface: string;
  /** Write the packets of this connection (both directions) to `dir/<name>.pcap`; returns that path. */
  extract(t: SocketTuple, name: string): Promise<string>;
  /** Stop tcpdump and delete the temporary run-wide capture. Idempotent. */
  stop(): Promise<void>;
}

export interface CaptureOptions {
  /** Folder for the per-probe pcaps; created when missing. */
  dir: string;
  /** BPF filter of the run-wide capture, e.g. `tcp port 25 or tcp port 2525`. */
  filter: string;
  /** Interface; default `any` (all interfaces of this network namespace). */
  iface?: string;
  /** Bytes kept per packet; default 256 (headers + SMTP dialogue); 0 = whole packets. */
  snaplen?: number;
  /** Where the temporary run-wide pcap lives; default the OS temp folder. */
  tempDir?: string;
  /** How long to wait for tcpdump to say it is listening; default 10 s. */
  startTimeoutMs?: number;
}

const INSTALL_HINT = 'install tcpdump: apt-get install tcpdump (or dnf/yum/apk install tcpdump)';
const EXTRACT_TIMEOUT_MS = 30_000;
/** Packets travel kernel → tcpdump → file in well under this with --immediate-mode -U. */
const SETTLE_MS = 150;

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** BPF for exactly one connection, both directions. IPv4-mapped IPv6 becomes IPv4 (that is what is on the wire). */
export function tupleFilter(t: SocketTuple): string {
  const a = normalizeAddress(t.localAddress);
  const b = normalizeAddress(t.remoteAddress);
  for (const [addr, port] of [
    [a, t.localPort],
    [b, t.remotePort],
  ] as const) {
    if (!/^[0-9a-f:.]+$/.test(addr)) throw new CaptureError('EEXTRACT', `not an IP address: ${JSON.stringify(addr)}`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new CaptureError('EEXTRACT', `not a port: ${port}`);
  }
  return (
    `tcp and ((src host ${a} and src port ${t.localPort} and dst host ${b} and dst port ${t.remotePort})` +
    ` or (src host ${b} and src port ${t.remotePort} and dst host ${a} and dst port ${t.localPort}))`
  );
}

/** `probe 7/a:b` → `probe_7_a_b`: one safe file name, never a path. */
export function pcapFileName(name: string): string {
  const base = name.replace(/\.pcap$/i, '').replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^\.+/, '_');
  return `${base || 'capture'}.pcap`;
}

/** Turn tcpdump's stderr after a failed start into a CaptureError with a code and a message that says what to do. */
export function classifyStartFailure(stderr: string, tcpdump: string, filter: string, iface: string): CaptureError {
  const text = stderr.trim();
  const last = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !/^tcpdump: data link type/.test(l))
    .join(' ');
  if (/permission|not permitted|EPERM|Operation not permitted/i.test(text)) {
    return new CaptureError(
      'EPERM',
      `tcpdump cannot capture on ${iface}: it needs root or CAP_NET_RAW (run as root, or: setcap cap_net_raw,cap_net_admin=eip ${tcpdump}) — ${last}`,
    );
  }
  if (/syntax error|can't parse filter|illegal|unknown (host|port)/i.test(text)) {
    return new CaptureError('ESTART', `tcpdump rejected the capture filter "${filter}": ${last}`);
  }
  if (/no such device|doesn't exist|SIOCGIFHWADDR|No such device exists/i.test(text)) {
    return new CaptureError('ESTART', `tcpdump cannot open interface "${iface}": ${last}`);
  }
  return new CaptureError('ESTART', `tcpdump did not start: ${last || 'no message'}`);
}

/**
 * Start the run-wide capture and resolve once tcpdump is really capturing (it printed "listening on").
 * Throws `CaptureError`: ENOTCPDUMP (not installed), EPERM (no root / CAP_NET_RAW), EDIR (folder not
 * writable), ESTART (bad filter or interface, or tcpdump died).
 */
export async function startCapture(opts: CaptureOptions): Promise<CaptureSession> {
  const iface = opts.iface ?? 'any';
  const snaplen = opts.snaplen ?? 256;
  const tcpdump = resolveTool('tcpdump');
  if (!tcpdump) throw new CaptureError('ENOTCPDUMP', `tcpdump not found on PATH or in /usr/sbin: ${INSTALL_HINT}`);

  const dir = resolvePath(opts.dir);
  try {
    mkdirpSync(dir);
    if (!statSync(dir).isDirectory()) throw new Error('not a directory');
    accessSync(dir, fsConstants.W_OK);
  } catch (err) {
    throw new CaptureError('EDIR', `capture folder ${dir} is not a writable directory: ${(err as Error).message}`, { cause: err });
  }

  let tmp: string;
  try {
    tmp = mkdtempSync(join(opts.tempDir ?? tmpdir(), 'mxprobe-capture-'));
  } catch (err) {
    throw new CaptureError('EDIR', `cannot create a temporary folder for the capture: ${(err as Error).message}`, { cause: err });
  }
  const allPcap = join(tmp, 'all.pcap');
  // As root, tcpdump would switch to its own user before writing; keep root so files stay ours.
  const dropArgs = isRoot() ? ['-Z', 'root'] : [];
  const tcpdumpArgs = ['-i', iface, '-n', '-U', '--immediate-mode', '-s', String(snaplen), '-w', allPcap, ...dropArgs, opts.filter];
  const setpriv = resolveTool('setpriv');
  const [file, args] = setpriv
    ? [setpriv, ['--pdeathsig', 'KILL', '--', tcpdump, ...tcpdumpArgs]]
    : [tcpdump, tcpdumpArgs];

  const child: ChildProcess = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exitPromise = new Promise<void>((r) =>
    child.once('close', (code, signal) => {
      exited = { code, signal };
      r();
    }),
  );
  child.stderr!.setEncoding('utf8');

  const onProcessExit = () => {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  process.once('exit', onProcessExit);
  const cleanupNow = () => {
    process.removeListener('exit', onProcessExit);
    onProcessExit();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new CaptureError('ESTART', `tcpdump did not start listening within ${opts.startTimeoutMs ?? 10_000} ms: ${stderr.trim() || 'no message'}`));
      }, opts.startTimeoutMs ?? 10_000);
      child.stderr!.on('data', (d: string) => {
        stderr += d;
        if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
        if (/listening on /.test(stderr)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          err.code === 'ENOENT'
            ? new CaptureError('ENOTCPDUMP', `cannot run ${file}: ${INSTALL_HINT}`, { cause: err })
            : new CaptureError('ESTART', `cannot run tcpdump: ${err.message}`, { cause: err }),
        );
      });
      void exitPromise.then(() => {
        clearTimeout(timer);
        reject(classifyStartFailure(stderr, tcpdump, opts.filter, iface));
      });
    });
  } catch (err) {
    cleanupNow();
    throw err;
  }

  let stopped = false;

  const extract = async (t: SocketTuple, name: string): Promise<string> => {
    if (stopped) throw new CaptureError('EEXTRACT', 'the capture was already stopped');
    const filter = tupleFilter(t);
    const out = join(dir, pcapFileName(name));
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    if (exited) {
      throw new CaptureError('EEXTRACT', `tcpdump stopped during the run (${exited.signal ?? `exit ${exited.code}`}): ${stderr.trim().split('\n').pop() ?? ''}`);
    }
    await new Promise<void>((resolve, reject) => {
      execFile(
        tcpdump,
        ['-n', '-r', allPcap, '-w', out, ...dropArgs, filter],
        { timeout: EXTRACT_TIMEOUT_MS, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 1024 * 1024 },
        (err, _stdout, errText) => {
          if (!err) return resolve();
          // The run-wide file is being written while we read it: a half-written last packet is normal.
          let written = false;
          try {
            written = statSync(out).size > 0;
          } catch {
            /* not written */
          }
          if (written && /truncated dump file|premature end/i.test(errText)) return resolve();
          reject(new CaptureError('EEXTRACT', `tcpdump could not extract ${basename(out)}: ${errText.trim().split('\n').pop() || err.message}`, { cause: err }));
        },
      );
    });
    return out;
  };

  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitPromise;
      clearTimeout(killTimer);
    }
    process.removeListener('exit', onProcessExit);
    rmSync(tmp, { recursive: true, force: true });
  };

  return { dir, iface, extract, stop };
}

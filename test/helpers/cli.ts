/** Run the built CLI (`node bin/mxprobe.js`) as a child process; builds dist/ once if it is stale. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = join(ROOT, 'bin', 'mxprobe.js');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Build once per test process when src/ is newer than dist/ (npm test builds first anyway): tsc's dist/ and the
 * bundled CLI that bin/mxprobe.js runs (scripts/bundle.mjs).
 */
export function ensureBuilt(): void {
  const built = [join(ROOT, 'dist', 'cli', 'main.js'), join(ROOT, 'dist', 'bundle', 'mxprobe.cjs'), join(ROOT, 'dist', 'bundle', 'probe.cjs')];
  const src = Math.max(newest(join(ROOT, 'src')), statSync(join(ROOT, 'scripts', 'bundle.mjs')).mtimeMs, statSync(BIN).mtimeMs);
  if (built.every((f) => existsSync(f) && statSync(f).mtimeMs >= src)) return;
  for (const [cmd, args] of [['npx', ['tsc', '-p', 'tsconfig.build.json']], [process.execPath, ['scripts/bundle.mjs']]] as const) {
    const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`build failed:\n${r.stdout}${r.stderr}`);
  }
}

export interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Run `main()` in this process with stdout/stderr captured (no build needed; for fast CLI tests). */
export async function runMain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { vi } = await import('vitest');
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const capture = (append: (s: string) => void) => (chunk: string | Uint8Array) => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString());
    return true;
  };
  const o = vi.spyOn(process.stdout, 'write').mockImplementation(capture((s) => (stdout += s)) as typeof process.stdout.write);
  const e = vi.spyOn(process.stderr, 'write').mockImplementation(capture((s) => (stderr += s)) as typeof process.stderr.write);
  try {
    const code = await main(['node', 'mxprobe', ...args]);
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/** A long-running CLI child (relay, sink, serve): its stdout lines, stderr, exit, and a wait for a line. */
export interface SpawnedCli {
  child: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Called with the stderr text so far, on every stderr chunk. */
  onStderr: (fn: (text: string) => void) => void;
  /** Resolves with the first stdout line matching (also one already seen). */
  waitLine: (re: RegExp, timeoutMs?: number) => Promise<string>;
  exit: Promise<number | null>;
  kill: () => void;
}

export function spawnCli(args: string[]): SpawnedCli {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  });
  let err = '';
  const errListeners: Array<(text: string) => void> = [];
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const fn of errListeners) fn(err);
  });
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    stderr: () => err,
    onStderr: (fn) => errListeners.push(fn),
    exit,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
    waitLine: (re, timeoutMs = 20_000) =>
      new Promise<string>((resolve, reject) => {
        const hit = lines.find((l) => re.test(l));
        if (hit) return resolve(hit);
        const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs}ms; stdout:\n${lines.join('\n')}\nstderr:\n${err}`)), timeoutMs);
        waiters.push({
          re,
          resolve: (l) => {
            clearTimeout(timer);
            resolve(l);
          },
        });
      }),
  };
}

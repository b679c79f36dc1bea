/**
 * Start-up (issue 16): each command loads only what it uses; `probe` never loads zod, yaml, prom-client or smtp-server.
 *
 * Two views of one rule. The shipped CLI (bin/mxprobe.js) is a bundle (probe.cjs for `probe`, mxprobe.cjs for the
 * rest: scripts/bundle.mjs), so which of *our* modules a command
 * initializes is not visible from outside; which *packages* it requires is (the bundle requires them where the
 * code first needs them). The lazy boundaries between our own modules are checked on tsc's dist/, one file per
 * module, which the bundle is made from: esbuild keeps a lazily imported module lazy (scripts/bundle.mjs).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BIN, ensureBuilt, ROOT, runCli } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

const HOOK = join(ROOT, 'test', 'helpers', 'loaded-modules.mjs');
const DIST_CLI = join(ROOT, 'test', 'helpers', 'dist-cli.mjs');

/** A command line run under the hook: the files it loaded (`modules`), and the Node builtins (`builtins`). */
function loaded(entry: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; modules: string[]; builtins: string[]; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', HOOK, ...(entry === '-e' ? [] : [entry]), ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const lines = err.split('\n');
      const modules = [...new Set(lines.filter((l) => l.startsWith('loaded ')).map((l) => l.slice(7)))];
      const builtins = lines.filter((l) => l.startsWith('builtin ')).map((l) => l.slice(8));
      resolve({ code, modules, builtins, stderr: err });
    });
  });
}

const HEAVY_PACKAGES = [/node_modules\/zod\//, /node_modules\/yaml\//, /node_modules\/prom-client\//, /node_modules\/smtp-server\//, /node_modules\/nodemailer\//, /node_modules\/imapflow\//];
const HEAVY = [...HEAVY_PACKAGES, /dist\/(profile\/load|run|analyze|report|sink|serve|lab)\b/];

let srv: Awaited<ReturnType<typeof startSmtpServer>>;
let probeArgs: string[];
beforeAll(async () => {
  ensureBuilt();
  srv = await startSmtpServer();
  probeArgs = ['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test'];
});
afterAll(async () => { await srv.close(); });

describe('the shipped CLI (bin/mxprobe.js and its bundle)', () => {
  test('--version loads nothing but the executable and package.json', async () => {
    const r = await loaded(BIN, ['--version']);
    expect(r.code).toBe(0);
    expect(r.modules.map((m) => m.slice(`file://${ROOT}/`.length))).toEqual(['bin/mxprobe.js', 'package.json']);
  });

  test('a probe (and its --help) requires no package at all: commander is in the bundle, zod, yaml, prom-client, smtp-server, nodemailer, imapflow are not loaded', async () => {
    for (const args of [['probe', '--help'], probeArgs]) {
      const r = await loaded(BIN, args);
      expect(r.code).toBe(0);
      expect(r.modules.filter((m) => m.includes('/node_modules/'))).toEqual([]);
    }
  });

  test('the packages are required where they are first needed: nodemailer to compose a message, zod and yaml by run', async () => {
    // the positive side: the hook does see what the bundle requires
    const composed = await loaded(BIN, [...probeArgs, '--header', 'X-A: b']);
    expect(composed.code).toBe(0);
    expect(composed.modules.some((m) => m.includes('/node_modules/nodemailer/'))).toBe(true);
    for (const h of HEAVY_PACKAGES.filter((h) => !/nodemailer/.test(h.source))) expect(composed.modules.filter((m) => h.test(m))).toEqual([]);
    const run = await loaded(BIN, ['run', '--help']);
    expect(run.code).toBe(0);
    for (const pkg of ['zod', 'yaml']) expect(run.modules.some((m) => m.includes(`/node_modules/${pkg}/`)), pkg).toBe(true);
  });

  test('the probe runs from the code cache the build made (else start-up silently falls back to compiling)', async () => {
    const r = await loaded(BIN, probeArgs, { MXPROBE_CODE_CACHE: 'check' });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('code cache: accepted (probe.cjs)');
    // the whole CLI's bundle has its own cache, made by a probe too
    const full = await loaded(BIN, probeArgs, { MXPROBE_CODE_CACHE: 'check', MXPROBE_BUNDLE: 'full' });
    expect(full.code).toBe(0);
    expect(full.stderr).toContain('code cache: accepted (mxprobe.cjs)');
  });

  test('a command line whose first non-option argument is `probe` runs probe.cjs; every other one the whole CLI, mxprobe.cjs', async () => {
    const cases: Array<[string[], string]> = [
      [probeArgs, 'probe.cjs'],
      [['probe', '--help'], 'probe.cjs'],
      [['--help', 'probe'], 'probe.cjs'], // main.ts registers `probe` alone here too (commandsFor)
      [['probe'], 'probe.cjs'], // a usage error (no --to) is the probe command's own
      [['--help'], 'mxprobe.cjs'],
      [[], 'mxprobe.cjs'],
      [['run', '--help'], 'mxprobe.cjs'],
      [['help', 'probe'], 'mxprobe.cjs'],
      [['prob'], 'mxprobe.cjs'], // the typo gets the whole CLI's "Did you mean probe?"
      [['probes'], 'mxprobe.cjs'],
    ];
    for (const [args, bundle] of cases) {
      const r = await runCli(args, { env: { MXPROBE_CODE_CACHE: 'check' } });
      expect(r.stderr.trim().split('\n').at(-1), args.join(' ')).toBe(`code cache: accepted (${bundle})`);
    }
  });

  test('probe.cjs answers as the whole CLI does: the same stdout, stderr and exit code, byte for byte', async () => {
    const cases = [['probe', '--help'], ['--help', 'probe'], ['probe'], ['probe', '--from', 'a@x.test', '--bogus'], ['probe', '--host', '127.0.0.1', '--to', 'b@x.test', '--size', 'huge'], ['probe', '--json', '--help']];
    for (const args of cases) {
      const [probe, full] = await Promise.all([runCli(args), runCli(args, { env: { MXPROBE_BUNDLE: 'full' } })]);
      expect(probe, args.join(' ')).toEqual(full);
    }
    const help = await runCli(['probe', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: mxprobe probe \[options\]/);
  });

  test("commander's child_process is required lazily: `probe --help` loads no child_process (nor dgram, cluster) from either bundle", async () => {
    // the hook's positive side: a builtin that is required does show
    const control = await loaded('-e', ['-e', "require('node:child_process')"]);
    expect(control.builtins).toContain('child_process');
    for (const env of [{}, { MXPROBE_BUNDLE: 'full' }]) {
      const r = await loaded(BIN, ['probe', '--help'], env);
      expect(r.code).toBe(0);
      expect(r.builtins).toContain('net'); // the probe command's modules did load
      expect(r.builtins.filter((b) => /^(child_process|internal\/child_process|dgram|cluster)$/.test(b))).toEqual([]);
    }
  });

  test('a real one-off probe to an address loads no child_process, cluster, dgram, dns or perf_hooks (its warm-up has no listener)', async () => {
    for (const env of [{}, { MXPROBE_BUNDLE: 'full' }]) {
      const r = await loaded(BIN, probeArgs, env);
      expect(r.code).toBe(0);
      expect(r.builtins).toContain('net');
      expect(r.builtins.filter((b) => /^(child_process|internal\/child_process|dgram|cluster|dns|perf_hooks)$/.test(b))).toEqual([]);
    }
  });
});

describe('lazy command modules (tsc dist/, one file per module)', () => {
  test('--version loads no command at all', async () => {
    const r = await loaded(DIST_CLI, ['--version']);
    expect(r.code).toBe(0);
    expect(r.modules.filter((m) => m.includes('/dist/cli/')).map((m) => m.replace(/.*\/dist\//, ''))).toEqual(['cli/main.js', 'cli/program.js', 'cli/exit.js']);
    for (const h of HEAVY) expect(r.modules.filter((m) => h.test(m))).toEqual([]);
  });

  test('a probe (and its --help) loads the engine and commander, none of zod, yaml, prom-client, smtp-server, nodemailer', async () => {
    for (const args of [['probe', '--help'], probeArgs]) {
      const r = await loaded(DIST_CLI, args);
      expect(r.code).toBe(0);
      expect(r.modules.some((m) => m.endsWith('/dist/probe/session.js'))).toBe(true);
      for (const h of HEAVY) expect(r.modules.filter((m) => h.test(m))).toEqual([]);
    }
  });

  test('nodemailer is loaded only when a message is composed; run loads the profile loader', async () => {
    const r = await loaded(DIST_CLI, [...probeArgs, '--header', 'X-A: b']);
    expect(r.code).toBe(0);
    expect(r.modules.some((m) => m.includes('/node_modules/nodemailer/'))).toBe(true);
    const help = await loaded(DIST_CLI, ['run', '--help']);
    expect(help.modules.some((m) => m.endsWith('/dist/profile/load.js'))).toBe(true);
  });
});

/**
 * Packaging (issue 16): `npm pack`, then `npm install -g ./mxprobe-*.tgz` into a temporary prefix, and the
 * installed `mxprobe demo` works. No network: the dependencies come from a registry served on 127.0.0.1 from the
 * packages already installed in node_modules (the same versions the lockfile resolved).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ensureBuilt, ROOT } from '../helpers/cli.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'mxprobe-pack-'));
const prefix = join(dir, 'prefix');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; files: string[] };

/** Where Node would find `name` from the package at `dir`: its own node_modules, then each one above it. */
function resolveDir(name: string, dir: string): string {
  for (let d = dir; d.startsWith(ROOT); d = dirname(d)) {
    const c = join(d, 'node_modules', name);
    if (existsSync(join(c, 'package.json'))) return c;
    if (d === ROOT) break;
  }
  throw new Error(`dependency ${name} of ${dir} is not installed`);
}

/**
 * The runtime dependency closure, read from node_modules: package folders, nested ones included (thread-stream
 * needs real-require 1.x while pino's 0.2 is at the top), so one name may come in several versions.
 */
function closure(): string[] {
  const seen = new Set<string>();
  const queue = Object.keys(pkg.dependencies).map((n) => resolveDir(n, ROOT));
  while (queue.length) {
    const dir = queue.shift()!;
    if (seen.has(dir)) continue;
    seen.add(dir);
    const pj = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    queue.push(...Object.keys(pj.dependencies ?? {}).map((n) => resolveDir(n, dir)));
  }
  return [...seen];
}

/** A read-only npm registry on 127.0.0.1 serving the installed version(s) of each package (folders from `closure`). */
async function localRegistry(dirs: string[]): Promise<{ url: string; close: () => Promise<void> }> {
  const tarballs = new Map<string, Buffer>();
  const docs = new Map<string, unknown>();
  const server = http.createServer((req, res) => {
    const path = decodeURIComponent((req.url ?? '').split('?')[0]!.slice(1));
    const tgz = tarballs.get(path);
    const doc = docs.get(path);
    if (tgz) res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(tgz);
    else if (doc) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(doc));
    else res.writeHead(404).end('{}');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`;
  for (const from of dirs) {
    const pj = JSON.parse(readFileSync(join(from, 'package.json'), 'utf8')) as { name: string; version: string };
    const name = pj.name;
    const file = `${name.replace('/', '__')}-${pj.version}.tgz`;
    await run('tar', ['-czf', join(dir, file), '--exclude=./node_modules', '--transform', 's,^\\.,package,', '-C', from, '.']);
    const bytes = readFileSync(join(dir, file));
    tarballs.set(`-/${file}`, bytes);
    const dist = {
      tarball: `${url}-/${file}`,
      integrity: `sha512-${createHash('sha512').update(bytes).digest('base64')}`,
      shasum: createHash('sha1').update(bytes).digest('hex'),
    };
    const doc = (docs.get(name) as { versions: Record<string, unknown> } | undefined) ?? { versions: {} };
    doc.versions[pj.version] = { ...pj, dist };
    const latest = Object.keys(doc.versions).sort((a, b) => a.localeCompare(b, 'en', { numeric: true })).at(-1)!;
    docs.set(name, { name, 'dist-tags': { latest }, versions: doc.versions });
  }
  return { url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

let registry: Awaited<ReturnType<typeof localRegistry>>;
let tarball: string;
let files: string[];

beforeAll(async () => {
  ensureBuilt();
  registry = await localRegistry(closure());
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 16 << 20 });
  const info = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(dir, info[0]!.filename);
  files = info[0]!.files.map((f) => f.path);
  await run('npm', ['install', '-g', '--prefix', prefix, '--registry', registry.url, '--cache', join(dir, 'cache'), '--no-audit', '--no-fund', '--no-update-notifier', tarball], {
    cwd: dir,
    env: { ...process.env, npm_config_userconfig: join(dir, 'npmrc') },
  });
}, 240_000);

afterAll(async () => {
  await registry?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('npm pack + npm install -g', () => {
  test('the package holds the built CLI, the licence, profiles and examples, and no sources or tests', () => {
    expect(tarball).toMatch(new RegExp(`mxprobe-${pkg.version.replace(/\./g, '\\.')}\\.tgz$`));
    for (const f of ['LICENSE', 'README.md', 'package.json', 'bin/mxprobe.js', 'bin/package.json', 'dist/bundle/mxprobe.cjs', 'dist/bundle/probe.cjs', 'dist/cli/main.js', 'dist/model.d.ts', 'profiles/demo.yaml']) expect(files).toContain(f);
    expect(files.filter((f) => /^dist\/bundle\/code-cache-\w+\.bin$/.test(f))).toHaveLength(2); // one per bundle (bin/mxprobe.js: start-up)
    expect(files.filter((f) => /^(src|test|bench)\//.test(f))).toEqual([]);
  });

  test('every file the README points users at is in the package (sources and tests only in the developer sections)', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const dev = readme.indexOf('\n## Performance');
    const paths = [...readme.slice(0, dev).matchAll(/`((?:[a-z]+\/)+[\w.-]+)`/g)].map((m) => m[1]!).filter((p) => /^(profiles|examples|dist|bin|src|test|bench)\//.test(p));
    expect(paths.length).toBeGreaterThan(0);
    for (const p of paths) expect(files, `README mentions ${p}`).toContain(p);
  });

  test('the installed mxprobe runs: --version, and the demo reaches its verdict', async () => {
    const bin = join(prefix, 'bin', 'mxprobe');
    expect(existsSync(bin)).toBe(true);
    const v = await run(bin, ['--version']);
    expect(v.stdout.trim()).toBe(pkg.version);
    const demo = await run(bin, ['demo', '--json', '--repeat', '2', '--out', join(dir, 'demo.jsonl')], { cwd: dir, timeout: 120_000 }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    const doc = JSON.parse(demo.stdout) as { findings: Array<{ path?: string; stall: boolean }>; verdict: unknown };
    expect(doc.findings.some((f) => f.stall && f.path === 'via-lb')).toBe(true);
    expect(existsSync(join(dir, 'demo.jsonl'))).toBe(true);
  }, 150_000);
});

import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(ROOT, 'bin/mxprobe.js');

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: string[], timeout = 60_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd: ROOT, timeout, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function newestMtime(dir: string): Promise<number> {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? await newestMtime(p) : (await stat(p)).mtimeMs);
  }
  return newest;
}

/** Build once, unless dist/ is newer than every file in src/. */
async function ensureBuilt(): Promise<void> {
  const built = await stat(join(ROOT, 'dist/cli/main.js')).then((s) => s.mtimeMs, () => 0);
  if (built > (await newestMtime(join(ROOT, 'src')))) return;
  // tsc still writes dist/ when other in-progress files have type errors; the assertions below decide
  await run(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['run', 'build'], 300_000);
}

describe('mxprobe schema', () => {
  let dir: string;
  beforeAll(async () => {
    await ensureBuilt();
    dir = await mkdtemp(join(tmpdir(), 'mxprobe-schema-'));
  }, 320_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('prints the profile JSON Schema to stdout', async () => {
    const r = await run(process.execPath, [BIN, 'schema']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { title: string; properties: Record<string, { description?: string }> };
    expect(schema.title).toBe('mxprobe profile');
    expect(schema.properties.targets).toBeDefined();
    expect(schema.properties.paths!.description).toMatch(/direct/);
    expect(r.stdout.endsWith('}\n')).toBe(true);
  });

  it('writes it with --out and says how to use it', async () => {
    const out = join(dir, 'mxprobe.schema.json');
    const r = await run(process.execPath, [BIN, 'schema', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(out);
    expect(r.stderr).toContain('yaml-language-server: $schema=');
    const printed = await run(process.execPath, [BIN, 'schema']);
    expect(JSON.parse(await readFile(out, 'utf8'))).toEqual(JSON.parse(printed.stdout));
  });

  it('fails with exit code 3 when the file cannot be written', async () => {
    const r = await run(process.execPath, [BIN, 'schema', '--out', join(dir, 'no/such/dir/schema.json')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^mxprobe: cannot write .*schema\.json/);
  });

  it('explains editor setup in --help', async () => {
    const r = await run(process.execPath, [BIN, 'schema', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('# yaml-language-server: $schema=');
    expect(r.stdout).toContain('yaml.schemas');
  });
});

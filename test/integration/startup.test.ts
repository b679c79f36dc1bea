/** Start-up (issue 16): each command loads only what it uses; `probe` never loads zod, yaml, prom-client or smtp-server. */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { BIN, ensureBuilt, ROOT } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

const HOOK = join(ROOT, 'test', 'helpers', 'loaded-modules.mjs');

function loaded(args: string[]): Promise<{ code: number | null; modules: string[] }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', HOOK, BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code) => {
      const modules = [...new Set(err.split('\n').filter((l) => l.startsWith('loaded ')).map((l) => l.slice(7)))];
      resolve({ code, modules });
    });
  });
}

const HEAVY = [/node_modules\/zod\//, /node_modules\/yaml\//, /node_modules\/prom-client\//, /node_modules\/smtp-server\//, /node_modules\/nodemailer\//,
  /dist\/(profile\/load|run|analyze|report|sink|serve|lab)\b/];

let srv: Awaited<ReturnType<typeof startSmtpServer>>;
beforeAll(async () => {
  ensureBuilt();
  srv = await startSmtpServer();
});
afterAll(async () => { await srv.close(); });

describe('lazy command modules', () => {
  test('--version loads no command at all', async () => {
    const r = await loaded(['--version']);
    expect(r.code).toBe(0);
    expect(r.modules.filter((m) => m.includes('/dist/cli/')).map((m) => m.replace(/.*\/dist\//, ''))).toEqual(['cli/main.js', 'cli/exit.js']);
    for (const h of HEAVY) expect(r.modules.filter((m) => h.test(m))).toEqual([]);
  });

  test('a probe (and its --help) loads the engine and commander, none of zod, yaml, prom-client, smtp-server, nodemailer', async () => {
    for (const args of [['probe', '--help'], ['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test']]) {
      const r = await loaded(args);
      expect(r.code).toBe(0);
      expect(r.modules.some((m) => m.endsWith('/dist/probe/session.js'))).toBe(true);
      for (const h of HEAVY) expect(r.modules.filter((m) => h.test(m))).toEqual([]);
    }
  });

  test('nodemailer is loaded only when a message is composed; run loads the profile loader', async () => {
    const r = await loaded(['probe', '--host', '127.0.0.1', '--port', String(srv.port), '--tls', 'none', '--from', 'a@x.test', '--to', 'b@x.test', '--header', 'X-A: b']);
    expect(r.code).toBe(0);
    expect(r.modules.some((m) => m.includes('/node_modules/nodemailer/'))).toBe(true);
    const help = await loaded(['run', '--help']);
    expect(help.modules.some((m) => m.endsWith('/dist/profile/load.js'))).toBe(true);
  });
});

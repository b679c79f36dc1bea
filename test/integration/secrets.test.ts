/**
 * Secrets never leave: the AUTH secret and proxy credentials must not appear in any result, log line, report or
 * error message. Every command that can see them is run as the real CLI (child process) — successes and the
 * error paths (wrong password, refused proxy, unreachable proxy, malformed proxy URL, bad profile) — and every
 * byte of stdout, stderr and every file written is searched for each secret in every form it travels in:
 * as is, base64 (AUTH LOGIN), the AUTH PLAIN token, `user:pass` base64 (HTTP proxy Basic) and URL-encoded.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ProbeResult } from '../../src/model.js';
import { ensureBuilt, runCli, type CliRun } from '../helpers/cli.js';
import { startHttpConnect, startSocks5 } from '../helpers/proxies.js';
import { startRawServer, startSmtpServer } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

const USER = 'alice';
const AUTH_SECRET = 'Au7h-s3cret+Kq9/zZ';
const WRONG_SECRET = 'Wr0ng-s3cret+Jx4';
const PROXY_USER = 'pxuser';
const PROXY_SECRET = 'Pr0xy-s3cret-Vb7';
const WRONG_PROXY_SECRET = 'Pr0xy-wr0ng-Tt2';

/** Every form a secret can travel in. */
function forms(secret: string, user: string): string[] {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  return [
    secret,
    encodeURIComponent(secret),
    b64(secret),
    b64(`\0${user}\0${secret}`), // AUTH PLAIN token
    b64(`${user}:${secret}`), // HTTP Basic (proxy)
    // the secret's base64 without padding, as it sits inside a longer base64 string
    b64(secret).replace(/=+$/, ''),
  ];
}
const NEEDLES = [
  ...forms(AUTH_SECRET, USER),
  ...forms(WRONG_SECRET, USER),
  ...forms(PROXY_SECRET, PROXY_USER),
  ...forms(WRONG_PROXY_SECRET, PROXY_USER),
];

/** Everything a command left behind: its output and every file under `dir`. */
const seen: Array<{ what: string; text: string }> = [];
function record(what: string, r: CliRun): CliRun {
  seen.push({ what: `${what} (stdout)`, text: r.stdout }, { what: `${what} (stderr)`, text: r.stderr });
  return r;
}
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}
function leaks(text: string): string[] {
  return NEEDLES.filter((n) => text.includes(n));
}

describe('secrets appear in no output, file or error message', () => {
  const { key, cert } = selfSigned();
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let socks: Awaited<ReturnType<typeof startSocks5>>;
  let http: Awaited<ReturnType<typeof startHttpConnect>>;
  let deadPort: number;
  let dir: string;
  const authCount = { ok: 0, bad: 0 };
  const env = { MXPROBE_T_PASS: AUTH_SECRET, MXPROBE_T_WRONG: WRONG_SECRET, MXPROBE_T_PROXY: PROXY_SECRET, NO_COLOR: '1' };

  beforeAll(async () => {
    ensureBuilt();
    smtp = await startSmtpServer({
      key, cert, authOptional: false, authMethods: ['PLAIN', 'LOGIN'],
      onAuth(auth, _s, cb) {
        if (auth.username === USER && auth.password === AUTH_SECRET) {
          authCount.ok++;
          cb(null, { user: USER });
        } else {
          authCount.bad++;
          cb(new Error('5.7.8 authentication failed'));
        }
      },
    });
    socks = await startSocks5({ user: PROXY_USER, pass: PROXY_SECRET });
    http = await startHttpConnect();
    const dead = await startRawServer(() => undefined);
    deadPort = dead.port;
    await dead.close();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-secrets-'));
  }, 300_000);

  afterAll(async () => {
    await Promise.all([smtp?.close(), socks?.close(), http?.close()]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const probeArgs = (...more: string[]) => [
    'probe', '--host', '127.0.0.1', '--port', String(smtp.port), '--tls', 'require-starttls', '--insecure',
    '--from', 'probe@mxprobe.test', '--to', 'sink@mxprobe.test', '--auth-user', USER, ...more,
  ];
  const socksUrl = (pass = PROXY_SECRET, port = socks.port) => `socks5://${PROXY_USER}:${pass}@127.0.0.1:${port}`;

  test('probe: AUTH PLAIN and LOGIN through an authenticated SOCKS5 proxy, --json and human output', async () => {
    for (const method of ['PLAIN', 'LOGIN']) {
      const j = record(`probe --json ${method}`, await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--auth-method', method, '--proxy', socksUrl(), '--json'), { env }));
      expect(j.code, j.stderr).toBe(0);
      const r = JSON.parse(j.stdout) as ProbeResult;
      expect(r.outcome).toBe('delivered');
      expect(r.proxy).toBe(`socks5://127.0.0.1:${socks.port}`);
      const h = record(`probe ${method}`, await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--auth-method', method, '--proxy', socksUrl()), { env }));
      expect(h.code, h.stderr).toBe(0);
      expect(h.stdout).toContain('✓ delivered');
      expect(h.stdout).toContain(`via socks5://127.0.0.1:${socks.port}`);
    }
    expect(authCount.ok).toBe(4); // the secret really was sent, to the server only
  });

  test('probe: HTTP CONNECT proxy with credentials (sent as Proxy-Authorization), --json', async () => {
    const j = record('probe http proxy', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', `http://${PROXY_USER}:${PROXY_SECRET}@127.0.0.1:${http.port}`, '--json'), { env }));
    expect(j.code, j.stderr).toBe(0);
    expect((JSON.parse(j.stdout) as ProbeResult).proxy).toBe(`http://127.0.0.1:${http.port}`);
  });

  test('probe error paths: wrong password, refused proxy, unreachable proxy, malformed proxy URL, missing variable', async () => {
    for (const method of ['PLAIN', 'LOGIN']) {
      for (const json of [true, false]) {
        const r = record(`wrong password ${method}`, await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_WRONG', '--auth-method', method, ...(json ? ['--json'] : [])), { env }));
        expect(r.code).toBe(1);
        expect(r.stdout).toMatch(/rejected/);
        expect(r.stdout).toMatch(/535|authentication failed/);
      }
    }
    expect(authCount.bad).toBe(4);

    for (const json of [true, false]) {
      const refused = record('refused proxy', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', socksUrl(WRONG_PROXY_SECRET), ...(json ? ['--json'] : [])), { env }));
      expect(refused.code).toBe(1);
      expect(refused.stdout).toMatch(/unreachable/);
      expect(refused.stdout).toMatch(/rejected the username/);
      const down = record('unreachable proxy', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', socksUrl(PROXY_SECRET, deadPort), ...(json ? ['--json'] : [])), { env }));
      expect(down.code).toBe(1);
      expect(down.stdout).toMatch(/refused|unreachable/);
    }

    for (const bad of [
      `socks4://${PROXY_USER}:${PROXY_SECRET}@127.0.0.1:1080`,
      `socks5://${PROXY_USER}:${PROXY_SECRET}@`,
      `socks5://${PROXY_USER}:${PROXY_SECRET}@127.0.0.1:99999`,
      `${PROXY_USER}:${PROXY_SECRET}@127.0.0.1:1080`,
    ]) {
      const r = record(`malformed proxy ${bad.slice(0, 8)}`, await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', bad), { env }));
      expect(r.code, `${bad}: ${r.stdout}${r.stderr}`).toBeGreaterThanOrEqual(1);
      expect(r.stderr.length + r.stdout.length).toBeGreaterThan(0);
    }

    const missing = record('missing variable', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_UNSET_VAR'), { env }));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('MXPROBE_T_UNSET_VAR');
  });

  test('run + JSONL + --json summary + compare (+ HTML report): with AUTH and a proxy password from the environment', async () => {
    const profile = (passEnv: string, proxyVar = 'MXPROBE_T_PROXY') => `name: secrets
targets: [{host: 127.0.0.1, port: ${smtp.port}, tls: require-starttls}]
insecure: true
paths:
  - {name: socks, proxy: 'socks5://${PROXY_USER}:\${${proxyVar}}@127.0.0.1:${socks.port}'}
  - {name: direct}
sizes: [1KiB, 8KiB]
repeat: 2
concurrency: 2
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
auth: {user: ${USER}, passEnv: ${passEnv}}
`;
    writeFileSync(join(dir, 'good.yaml'), profile('MXPROBE_T_PASS'));
    const good = record('run good', await runCli(['run', 'good.yaml', '--out', 'out/good.jsonl'], { env, cwd: dir }));
    expect(good.code, good.stderr).toBe(0);
    const lines = readFileSync(join(dir, 'out/good.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ProbeResult);
    expect(lines).toHaveLength(8);
    expect(lines.filter((l) => l.proxy === `socks5://127.0.0.1:${socks.port}`)).toHaveLength(4);
    record('run good --json', await runCli(['run', 'good.yaml', '--out', 'out/good2.jsonl', '--json'], { env, cwd: dir }));

    // wrong AUTH secret: every probe rejected at auth, written to the file with its error message
    writeFileSync(join(dir, 'wrong.yaml'), profile('MXPROBE_T_WRONG'));
    const wrong = record('run wrong password', await runCli(['run', 'wrong.yaml', '--out', 'out/wrong.jsonl'], { env, cwd: dir }));
    expect(wrong.code).toBe(1);
    const wl = readFileSync(join(dir, 'out/wrong.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ProbeResult);
    expect(wl.every((l) => l.outcome === 'rejected' && l.stage === 'auth')).toBe(true);

    // refused proxy credentials: the socks path is unreachable, with the proxy's reason
    writeFileSync(join(dir, 'proxywrong.yaml'), profile('MXPROBE_T_PASS', 'MXPROBE_T_PROXY_WRONG'));
    const pw = record('run refused proxy', await runCli(['run', 'proxywrong.yaml', '--out', 'out/pw.jsonl'], { env: { ...env, MXPROBE_T_PROXY_WRONG: WRONG_PROXY_SECRET }, cwd: dir }));
    expect(pw.code).toBe(1);

    // a bad profile whose proxy value (with the secret interpolated) is malformed: the message masks it
    writeFileSync(join(dir, 'badproxy.yaml'), profile('MXPROBE_T_PASS').replace("proxy: 'socks5://", "proxy: 'socks9://"));
    const bp = record('run bad proxy profile', await runCli(['run', 'badproxy.yaml'], { env, cwd: dir }));
    expect(bp.code).toBe(2);
    expect(bp.stderr).toMatch(/badproxy\.yaml: paths\[0\]\.proxy: unsupported proxy scheme/);
    writeFileSync(join(dir, 'badproxy2.yaml'), profile('MXPROBE_T_PASS').replace(`:${socks.port}'}`, `'}`));
    const bp2 = record('run bad proxy profile 2', await runCli(['run', 'badproxy2.yaml'], { env, cwd: dir }));
    expect(bp2.code).toBe(2);

    for (const f of ['out/good.jsonl', 'out/wrong.jsonl', 'out/pw.jsonl']) {
      record(`compare ${f}`, await runCli(['compare', f], { env, cwd: dir }));
      record(`compare ${f} --json`, await runCli(['compare', f, '--json'], { env, cwd: dir }));
    }
    const rep = record('compare --report', await runCli(['compare', 'out/wrong.jsonl', '--report', 'out/wrong.html'], { env, cwd: dir }));
    expect(readFileSync(join(dir, 'out/wrong.html'), 'utf8').length, rep.stderr).toBeGreaterThan(1000);
  });

  test('no secret, in any form, in anything the commands printed or wrote', () => {
    expect(seen.length).toBeGreaterThan(40);
    const found: string[] = [];
    for (const s of seen) for (const n of leaks(s.text)) found.push(`${s.what}: contains ${JSON.stringify(n)}`);
    const files = filesUnder(dir);
    expect(files.some((f) => f.endsWith('.jsonl'))).toBe(true);
    for (const f of files) for (const n of leaks(readFileSync(f, 'latin1'))) found.push(`${f}: contains ${JSON.stringify(n)}`);
    expect(found).toEqual([]);
  });
});

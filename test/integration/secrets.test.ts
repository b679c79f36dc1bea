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
import { ensureBuilt, runCli, spawnCli, type CliRun } from '../helpers/cli.js';
import { startHttpConnect, startSocks5 } from '../helpers/proxies.js';
import { startRawServer, startSmtpServer } from '../helpers/servers.js';
import { selfSigned } from '../helpers/tls.js';

const USER = 'alice';
const AUTH_SECRET = 'Au7h-s3cret+Kq9/zZ';
const WRONG_SECRET = 'Wr0ng-s3cret+Jx4';
const PROXY_USER = 'pxuser';
const PROXY_SECRET = 'Pr0xy-s3cret-Vb7';
const WRONG_PROXY_SECRET = 'Pr0xy-wr0ng-Tt2';
/** A proxy password with `@` and `/` in it (issue 14: the old redaction stopped at the first `@`). */
const AT_PROXY_SECRET = 'Pre@S3cr3t/Zq8';

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
  ...forms(AT_PROXY_SECRET, PROXY_USER),
  'S3cr3t', // the part after the password's own `@`, which the old redaction printed
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

  /** A server that repeats what it got in AUTH: the PLAIN token, the LOGIN user and password, base64 and decoded. */
  async function startEchoServer() {
    return startRawServer((sock) => {
      sock.write('220 echo.test ESMTP\r\n');
      let buf = '';
      let login: 'user' | 'pass' | undefined;
      sock.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        let i: number;
        while ((i = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const dec = (b: string) => Buffer.from(b, 'base64').toString('latin1').replace(/\0/g, ' ');
          if (login === 'user') {
            login = 'pass';
            sock.write('334 UGFzc3dvcmQ6\r\n');
          } else if (login === 'pass') {
            login = undefined;
            sock.write(`535-5.7.8 you sent ${line}\r\n535 5.7.8 that is \x1b]52;c;${line}\x07${dec(line)}\r\n`);
          } else if (/^EHLO/i.test(line)) sock.write('250-echo.test\r\n250 AUTH PLAIN LOGIN\r\n');
          else if (/^AUTH PLAIN /i.test(line)) {
            const tok = line.slice(11);
            sock.write(`535-5.7.8 bad credentials ${tok}\r\n535 5.7.8 decoded: x${tok}y ${dec(tok)}\r\n`);
          } else if (/^AUTH LOGIN/i.test(line)) {
            login = 'user';
            sock.write('334 VXNlcm5hbWU6\r\n');
          } else if (/^QUIT/i.test(line)) sock.end('221 bye\r\n');
          else sock.write('250 ok\r\n');
        }
      });
    });
  }

  test('a server that echoes the AUTH secret (PLAIN token, LOGIN forms): scrubbed from human output, --json, JSONL, reports', async () => {
    const echo = await startEchoServer();
    try {
      const args = (method: string, ...more: string[]) => [
        'probe', '--host', '127.0.0.1', '--port', String(echo.port), '--tls', 'none',
        '--from', 'probe@mxprobe.test', '--to', 'sink@mxprobe.test', '--auth-user', USER, '--auth-pass-env', 'MXPROBE_T_PASS', '--auth-method', method, ...more,
      ];
      for (const method of ['PLAIN', 'LOGIN']) {
        const h = record(`echo probe ${method}`, await runCli(args(method), { env }));
        expect(h.code).toBe(1);
        expect(h.stdout).toMatch(/rejected/);
        expect(h.stdout).toContain('****');
        expect(h.stdout).not.toContain('\x1b');
        const j = record(`echo probe ${method} --json`, await runCli(args(method, '--json'), { env }));
        const r = JSON.parse(j.stdout) as ProbeResult;
        expect(r.reply?.text).toContain('****');
      }
      writeFileSync(join(dir, 'echo.yaml'), `name: echo
targets: [{host: 127.0.0.1, port: ${echo.port}, tls: none}]
sizes: [1KiB]
repeat: 2
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
auth: {user: ${USER}, passEnv: MXPROBE_T_PASS, method: PLAIN}
`);
      const run = record('echo run', await runCli(['run', 'echo.yaml', '--out', 'out/echo.jsonl', '--report', 'out/echo-run.html'], { env, cwd: dir }));
      expect(run.code).toBe(1);
      const lines = readFileSync(join(dir, 'out/echo.jsonl'), 'utf8');
      expect(lines).toContain('****');
      record('echo compare', await runCli(['compare', 'out/echo.jsonl', '--report', 'out/echo.html'], { env, cwd: dir }));
      record('echo compare --json', await runCli(['compare', 'out/echo.jsonl', '--json'], { env, cwd: dir }));

      // serve: the schedule's /metrics, /findings and /report, and its log
      Object.assign(process.env, { MXPROBE_T_PASS: AUTH_SECRET });
      const serve = spawnCli(['serve', '--profile', join(dir, 'echo.yaml'), '--listen', '127.0.0.1:0', '--interval', '1h', '--out', join(dir, 'out/serve.jsonl')]);
      try {
        const listening = await serve.waitLine(/listening on http:\/\/127\.0\.0\.1:\d+/);
        const url = /http:\/\/127\.0\.0\.1:\d+/.exec(listening)![0];
        await serve.waitLine(/run 1 done/);
        for (const ep of ['/metrics', '/findings', '/report', '/healthz']) {
          seen.push({ what: `serve ${ep}`, text: await (await fetch(`${url}${ep}`)).text() });
        }
        seen.push({ what: 'serve stdout', text: serve.lines.join('\n') }, { what: 'serve stderr', text: serve.stderr() });
      } finally {
        serve.kill();
        await serve.exit;
      }
    } finally {
      await echo.close();
    }
  }, 120_000);

  test('a proxy password with "@" and "/": the URL parses, and nothing of the password is printed', async () => {
    const atSocks = await startSocks5({ user: PROXY_USER, pass: AT_PROXY_SECRET });
    try {
      const url = `socks5://${PROXY_USER}:${encodeURIComponent(AT_PROXY_SECRET)}@127.0.0.1:${atSocks.port}`;
      const j = record('probe @-password --json', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', url, '--json'), { env }));
      expect(j.code, j.stderr).toBe(0);
      expect((JSON.parse(j.stdout) as ProbeResult).proxy).toBe(`socks5://127.0.0.1:${atSocks.port}`);
      // written as is: the first "@" is the password's (WHATWG URL takes the last one as the delimiter)
      const raw = `socks5://${PROXY_USER}:Pre@S3cr3t@127.0.0.1:${atSocks.port}`;
      const h = record('probe @-password raw', await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', raw), { env }));
      expect(h.stdout).toContain(`via socks5://127.0.0.1:${atSocks.port}`);
      for (const bad of [`socks5://${PROXY_USER}:${AT_PROXY_SECRET}@127.0.0.1:${atSocks.port}`, `socks5://us/er:${AT_PROXY_SECRET}@127.0.0.1:${atSocks.port}`]) {
        const r = record(`probe slash-password ${bad.slice(10, 14)}`, await runCli(probeArgs('--auth-pass-env', 'MXPROBE_T_PASS', '--proxy', bad), { env }));
        expect(r.code, r.stdout + r.stderr).toBe(2);
        expect(r.stderr).toMatch(/proxy URL/);
      }
    } finally {
      await atSocks.close();
    }
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

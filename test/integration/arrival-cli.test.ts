/**
 * The arrival check through the real CLI (child processes, dist/) against a real Dovecot (test/helpers/dovecot.ts):
 * `probe --imap` prints where and when the probe arrived; `run` with a profile `arrival:` writes arrival records as
 * their own lines and `compare` turns a truncating path into an arrival finding; a wrong IMAP password is exit 3
 * with a clear message and nothing sent. Every output channel and every file written is searched for every form of
 * both passwords.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { startRelay, type Relay } from '../../src/lab/relay.js';
import { secretForms } from '../../src/text.js';
import { ensureBuilt, runCli, type CliRun } from '../helpers/cli.js';
import { dovecotAvailable, startDeliveringSmtp, startDovecot, type Dovecot } from '../helpers/dovecot.js';

const USER = 'probe';
const PASS = 'Imap-s3cret+Wq7/x';
const WRONG = 'Wr0ng-imap+Pp2';
const NEEDLES = [...secretForms(PASS, USER), ...secretForms(WRONG, USER)];
const why = dovecotAvailable();
if (why) console.log(`arrival-cli.test.ts skipped: ${why}`);

describe.skipIf(!!why)('arrival check from the CLI', () => {
  let dc: Dovecot;
  let smtp: Awaited<ReturnType<typeof startDeliveringSmtp>>;
  let relay: Relay;
  let dir: string;
  const outputs: Array<{ what: string; text: string }> = [];
  const env = { MXPROBE_T_IMAP: PASS, MXPROBE_T_IMAP_WRONG: WRONG, NO_COLOR: '1' };
  const seen = (what: string, r: CliRun): CliRun => {
    outputs.push({ what: `${what} stdout`, text: r.stdout }, { what: `${what} stderr`, text: r.stderr });
    return r;
  };
  const imapFlags = (passEnv: string): string[] => ['--imap', `imap://${USER}@127.0.0.1:${dc.port}`, '--imap-pass-env', passEnv, '--imap-within', '10s'];
  const probeArgs = (): string[] => ['probe', '--host', `127.0.0.1:${smtp.port}`, '--tls', 'none', '--from', 'probe@mxprobe.test', '--to', 'rcpt@mxprobe.test', '--size', '64KiB'];

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-arrival-cli-'));
    dc = await startDovecot(USER, PASS);
    smtp = await startDeliveringSmtp(dc, () => 'INBOX');
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: { kind: 'cut-after', bytes: 16 * 1024 } });
  }, 60_000);

  afterAll(async () => {
    await relay?.close();
    await smtp?.close();
    await dc?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test('probe --imap: accepted, then found in INBOX, whole, and deleted; exit 0', async () => {
    const r = seen('probe', await runCli([...probeArgs(), ...imapFlags('MXPROBE_T_IMAP')], { env }));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/✓ delivered/);
    expect(r.stdout).toMatch(/\n✓ arrived in INBOX [\d.]+m?s after acceptance, whole \([\d,]+ bytes stored, seed verified\); deleted\n$/);
    expect(dc.count('INBOX')).toBe(0);
  });

  test('probe --imap --json: the result carries arrival', async () => {
    const r = seen('probe --json', await runCli([...probeArgs(), ...imapFlags('MXPROBE_T_IMAP'), '--no-imap-delete', '--json'], { env }));
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as { arrival: Record<string, unknown> };
    expect(res.arrival).toMatchObject({ found: true, folder: 'INBOX', intact: true });
    expect(res.arrival.deleted).toBeUndefined();
    expect(dc.count('INBOX')).toBe(1); // --no-imap-delete kept it
  });

  test('wrong IMAP password: exit 3, a clear message naming the variable, nothing sent', async () => {
    const before = smtp.messages;
    const r = seen('probe wrong password', await runCli([...probeArgs(), ...imapFlags('MXPROBE_T_IMAP_WRONG')], { env }));
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^mxprobe: --imap: IMAP login to imap:\/\/probe@127\.0\.0\.1:\d+ refused \(.*\): check the password in \$MXPROBE_T_IMAP_WRONG \(nothing sent\)\n$/);
    expect(smtp.messages).toBe(before);
  });

  test('run with arrival: records joined by probe id; compare names the truncating path; a wrong password is exit 3 before anything', async () => {
    const profile = join(dir, 'arrival.yaml');
    const yaml = (passEnv: string): string => `
name: arrival-test
tls: none
targets: [{ host: 127.0.0.1, port: ${smtp.port}, name: mbox }]
paths: [{ name: direct }, { name: via-cut, relay: '127.0.0.1:${relay.port}' }]
sizes: [4KiB, 64KiB]
repeat: 2
concurrency: 2
envelope: { from: probe@mxprobe.test, to: rcpt@mxprobe.test }
arrival: { imap: 'imap://${USER}@127.0.0.1:${dc.port}', passEnv: ${passEnv}, within: 10s, poll: 200ms }
`;
    writeFileSync(profile, yaml('MXPROBE_T_IMAP'));
    const out = join(dir, 'run.jsonl');
    const run = seen('run', await runCli(['run', profile, '--out', out, '-q'], { env }));
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/\narrival: 8\/8 accepted probes found in the mailbox \(8 INBOX\), 2 not intact, p50 [\d.]+m?s\n/);
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { record?: string; probeId: string; arrival?: { found: boolean; intact?: boolean } });
    const probes = lines.filter((l) => !l.record);
    const records = lines.filter((l) => l.record === 'arrival');
    expect(probes).toHaveLength(8);
    expect(records.map((a) => a.probeId).sort()).toEqual(probes.map((p) => p.probeId).sort());
    expect(records.filter((a) => !a.arrival!.found), JSON.stringify(lines)).toEqual([]);
    expect(records.filter((a) => !a.arrival!.intact)).toHaveLength(2); // via-cut at 64KiB

    const cmp = seen('compare', await runCli(['compare', out], { env }));
    expect(cmp.stdout).toMatch(/\[arrival\] On via-cut, probes arrive truncated from 64KiB on: 2\/4 that arrived are not intact; 4KiB whole \(2\)/);

    writeFileSync(profile, yaml('MXPROBE_T_IMAP_WRONG'));
    const before = smtp.messages;
    const bad = seen('run wrong password', await runCli(['run', profile, '--out', join(dir, 'bad.jsonl'), '-q'], { env }));
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/nothing sent: arrival: IMAP login to .* refused .*check the password in \$MXPROBE_T_IMAP_WRONG/);
    expect(smtp.messages).toBe(before);
    expect(readdirSync(dir)).not.toContain('bad.jsonl');
  });

  test('serve with arrival: /metrics has the time to the mailbox and found/intact per cell, and no form of the password', async () => {
    const { loadProfile } = await import('../../src/profile/index.js');
    const { startServe } = await import('../../src/serve/index.js');
    const profile = join(dir, 'serve.yaml');
    writeFileSync(profile, `
name: arrival-serve
tls: none
targets: [{ host: 127.0.0.1, port: ${smtp.port}, name: mbox }]
sizes: [4KiB]
repeat: 1
envelope: { from: probe@mxprobe.test, to: rcpt@mxprobe.test }
arrival: { imap: 'imap://${USER}@127.0.0.1:${dc.port}', passEnv: MXPROBE_T_SERVE_IMAP, within: 10s, poll: 200ms }
`);
    process.env.MXPROBE_T_SERVE_IMAP = PASS; // serve reads the password from its own environment
    const serve = await startServe({ port: 0, plan: await loadProfile(profile), intervalMs: 3_600_000, out: join(dir, 'serve.jsonl') });
    try {
      await new Promise<void>((resolve) => serve.scheduler!.once('run:end', () => resolve()));
      const text = await (await fetch(`${serve.url}/metrics`)).text();
      outputs.push({ what: '/metrics', text });
      expect(text).toMatch(/^mxprobe_arrival_found\{path="direct",target="mbox",size="4KiB"\} 1$/m);
      expect(text).toMatch(/^mxprobe_arrival_intact\{path="direct",target="mbox",size="4KiB"\} 1$/m);
      expect(text).toMatch(/^mxprobe_arrival_seconds_count\{path="direct",target="mbox",size="4KiB",folder="INBOX"\} 1$/m);
    } finally {
      await serve.close();
      delete process.env.MXPROBE_T_SERVE_IMAP;
    }
  });

  test('neither password appears in any output or file', () => {
    const files = readdirSync(dir).map((f) => ({ what: f, text: readFileSync(join(dir, f), 'utf8') }));
    expect(outputs.length).toBeGreaterThan(0);
    for (const o of [...outputs, ...files]) expect(NEEDLES.filter((n) => o.text.includes(n)), o.what).toEqual([]);
  });
});

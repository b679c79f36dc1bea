/**
 * Issue 14, the pure half: every input has a bound and no command line can be split. Each case here failed before
 * the fix (a proxy password echoed, a CR/LF accepted, a size error without its field, an unbounded profile).
 */
import { describe, expect, test } from 'vitest';
import { DEFAULT_TIMEOUTS, type ProbeSpec } from '../../src/model.js';
import { parseProxyUrl, redactProxy } from '../../src/probe/egress.js';
import { descriptorExhaustion, ProbeError, ProbeInputError } from '../../src/probe/errors.js';
import { validateSpec } from '../../src/probe/session.js';
import { applyOverrides, loadProfile, MAX_PROFILE_BYTES, parseProfile, ProfileError } from '../../src/profile/index.js';
import { MAX_PLAN_PROBES, planSizeRefusal } from '../../src/run/index.js';
import { MAX_RESULT_LINE_BYTES, readResults, type SkippedLine } from '../../src/analyze/io.js';

const profileFails = (text: string): ProfileError => {
  try {
    parseProfile(text, 'p.yaml', { env: {} });
  } catch (err) {
    expect(err).toBeInstanceOf(ProfileError);
    return err as ProfileError;
  }
  throw new Error('expected a ProfileError');
};

const yaml = (extra: string, envelope = 'envelope: {from: probe@example.com, to: sink@example.net}') =>
  `name: t\ntargets:\n  - host: mx.example.net\n${envelope}\n${extra}\n`;

describe('proxy URLs: parsed with URL, redacted from the parsed parts, never echoed', () => {
  const SECRET = 'Pre@S3cr3t';
  test('a password with @ (percent-encoded or not) is the password, not part of the host', () => {
    for (const url of [`socks5://user:${SECRET}@127.0.0.1:1080`, `socks5://user:${encodeURIComponent(SECRET)}@127.0.0.1:1080`]) {
      const p = parseProxyUrl(url);
      expect(p).toEqual({ kind: 'socks5', host: '127.0.0.1', port: 1080, user: 'user', pass: SECRET });
      expect(redactProxy(url)).toBe('socks5://127.0.0.1:1080');
    }
  });
  test('a "/" in the user or password: refused, and the message holds no part of the credentials', () => {
    for (const url of ['socks5://us/er:pw9876@127.0.0.1:1080', 'http://user:pa/ss9876@127.0.0.1:3128', 'socks5://u:12/9876@h:1080']) {
      let msg = '';
      try {
        parseProxyUrl(url);
      } catch (err) {
        msg = (err as Error).message;
      }
      expect(msg).toMatch(/proxy URL/);
      expect(msg).not.toContain('9876');
      expect(redactProxy(url)).not.toContain('9876');
    }
  });
  test('an explicit :80 on an http proxy is port 80', () => {
    expect(parseProxyUrl('http://127.0.0.1:80').port).toBe(80);
    expect(parseProxyUrl('http://127.0.0.1').port).toBe(8080);
  });
  test('the profile loader uses the same parser and shows only scheme://host:port', () => {
    const err = profileFails(yaml(`paths:\n  - {name: p, proxy: 'socks5://user:${SECRET}@127.0.0.1'}`));
    expect(err.message).toContain('paths[0].proxy: give the proxy port explicitly (socks5://127.0.0.1)');
    expect(err.message).not.toContain('S3cr3t');
    const err2 = profileFails(yaml("paths:\n  - {name: p, proxy: 'socks5://us/er:pw9876@127.0.0.1:1080'}"));
    expect(err2.message).toContain('paths[0].proxy');
    expect(err2.message).not.toContain('9876');
  });
});

describe('CR, LF and NUL in a value that goes into an SMTP command line: refused', () => {
  const spec = (over: Partial<ProbeSpec>): ProbeSpec => ({
    probeId: 't-1',
    target: { host: '127.0.0.1', port: 25, tls: 'none' },
    path: { name: 'direct' },
    sizeBytes: 4096,
    seed: 1,
    envelope: { from: 'probe@example.com', to: ['sink@example.net'] },
    timeouts: DEFAULT_TIMEOUTS,
    ...over,
  });
  test.each([
    ['ehloName', { ehloName: 'x\r\nRSET\r\nMAIL FROM:<evil@x>' }, 'CR'],
    ['envelope.from', { envelope: { from: 'a@b\nRSET', to: ['s@x'] } }, 'LF'],
    ['envelope.to[1]', { envelope: { from: 'a@b', to: ['s@x', 't@x\0'] } }, 'NUL'],
    ['auth.user', { auth: { user: 'alice\r\nNOOP', passEnv: 'PATH' } }, 'CR'],
  ] as const)('library: validateSpec names %s', (field, over, what) => {
    expect(() => validateSpec(spec(over as Partial<ProbeSpec>))).toThrow(ProbeInputError);
    expect(() => validateSpec(spec(over as Partial<ProbeSpec>))).toThrow(new RegExp(`\\(${field.replace(/[[\]]/g, '\\$&')};[^)]*\\) holds a ${what} character`));
  });
  test('profile: every string field, named by its path (with its line)', () => {
    expect(profileFails(yaml('ehlo: "x\\r\\nRSET"')).message).toMatch(/p\.yaml: ehlo: holds a CR character.*\(line 5\)/);
    expect(profileFails(yaml('auth: {user: "alice\\nNOOP", passEnv: P}')).message).toContain('auth.user: holds a LF character');
    expect(profileFails(yaml('', 'envelope: {from: probe@example.com, to: "sink@example.net\\0"}')).message).toContain('envelope.to');
  });
  test('a YAML block scalar ending in a newline is still one line', () => {
    expect(parseProfile(yaml('ehlo: |\n  probe.example.com\n'), 'p.yaml', { env: {} }).ehloName).toBe('probe.example.com');
  });
});

describe('bounds', () => {
  test('sizes below the smallest message: the item, its line, the minimum', () => {
    const err = profileFails(yaml('sizes: [1KiB, 12]'));
    expect(err.message).toMatch(/p\.yaml: sizes\[1\]: 12 bytes is below the smallest probe message with these addresses \(\d+ bytes.*\(line 5\)/);
    // the same through --sizes
    const plan = parseProfile(yaml('sizes: [1KiB]'), 'p.yaml', { env: {} });
    expect(() => applyOverrides(plan, { sizes: [12] })).toThrow(/p\.yaml: sizes: 12 bytes is below the smallest probe message/);
  });
  test(`profiles above ${MAX_PROFILE_BYTES} bytes are refused before parsing (text, file, device)`, async () => {
    const big = yaml(`x-pad: "${'a'.repeat(MAX_PROFILE_BYTES)}"`);
    expect(profileFails(big).message).toContain('above the limit of 1 MiB');
    await expect(loadProfile('/dev/zero')).rejects.toThrow(/above the limit of 1 MiB/);
  });
  test(`a plan above ${MAX_PLAN_PROBES} probes needs force`, () => {
    const plan = { targets: [{}, {}], paths: [{}, {}], sizes: [1, 2, 3, 4, 5], repeat: 1001 } as unknown as Parameters<typeof planSizeRefusal>[0];
    expect(planSizeRefusal(plan, false)).toMatch(/the plan has 20020 probes \(2 targets x 2 paths x 5 sizes x repeat 1001\), above the limit of 10000/);
    expect(planSizeRefusal(plan, true)).toBeUndefined();
    expect(planSizeRefusal({ ...plan, repeat: 3 }, false)).toBeUndefined();
  });
});

describe('out of descriptors is the machine, not the network', () => {
  test('EMFILE / ENFILE anywhere in the cause chain, in words with the limit; other errors: undefined', () => {
    const emfile = new ProbeError('ECONNRESET', 'connect EMFILE', 'connect', { cause: Object.assign(new Error('connect EMFILE'), { code: 'EMFILE' }) });
    expect(descriptorExhaustion(emfile, 1024)).toMatch(/^out of file descriptors \(EMFILE\): this process has reached its limit of 1024 open files \(ulimit -n\)/);
    expect(descriptorExhaustion({ code: 'ENFILE' }, 1024)).toMatch(/^out of file descriptors \(ENFILE\): the system/);
    expect(descriptorExhaustion(new ProbeError('ECONNRESET', 'reset', 'body', { cause: { code: 'ECONNRESET' } }), 1024)).toBeUndefined();
    expect(descriptorExhaustion(undefined)).toBeUndefined();
  });
});

describe('results files: streamed, each line bounded', () => {
  test(`a "results file" that never has a line end (/dev/zero) stops at ${MAX_RESULT_LINE_BYTES} bytes with an error`, async () => {
    await expect(readResults(['/dev/zero'])).rejects.toThrow('/dev/zero:1: a line longer than 16 MiB: not a results file');
    const { loadSinkRecords } = await import('../../src/sink/index.js');
    await expect(loadSinkRecords('/dev/zero')).rejects.toThrow('/dev/zero:1: a line longer than 16 MiB: not a sink records file');
  });
  test('a torn last line (no newline) is skipped with the resume hint; lines are numbered across chunks', async () => {
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'mxprobe-io-'));
    const line = JSON.stringify({ outcome: 'delivered', path: 'p', target: 't', sizeBytes: 1, stages: {}, note: 'x'.repeat(3000) });
    const f = join(dir, 'r.jsonl');
    await writeFile(f, `${`${line}\n`.repeat(1000)}{"outcome":"deliv`);
    const skipped: SkippedLine[] = [];
    const rs = await readResults([f], skipped);
    expect(rs).toHaveLength(1000);
    expect(rs[0]).not.toHaveProperty('note'); // a field the schema does not know is dropped
    expect(skipped).toEqual([{ file: f, line: 1001, reason: expect.stringContaining('mxprobe run --resume') }]);
  });
});

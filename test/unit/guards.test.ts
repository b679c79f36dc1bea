/** Real-target safety rules (src/probe/guards.ts): pure functions, DNS injected. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  advertisedSize,
  classifyTargets,
  guardPlan,
  isLabAddress,
  isLabHost,
  isRealProbe,
  messageFileIdentifies,
  realTargetPolicy,
  sizeRefusal,
  type GuardResolver,
} from '../../src/probe/guards.js';
import { parseProfile, ProfileError } from '../../src/profile/index.js';
import { expandPlan } from '../../src/run/index.js';
import { generatedMessage } from '../../src/probe/index.js';

describe('isLabAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['127.0.0.2', true],
    ['::1', true],
    ['0:0:0:0:0:0:0:1', true],
    ['[::1]', true],
    ['::ffff:127.0.0.1', true],
    ['198.18.0.1', true],
    ['198.19.255.255', true],
    ['198.17.255.255', false],
    ['198.20.0.0', false],
    ['128.0.0.1', false],
    ['10.0.0.1', false],
    ['192.168.1.1', false],
    ['192.0.2.1', false],
    ['::2', false],
    ['fe80::1', false],
    ['::ffff:10.0.0.1', false],
    ['0.0.0.0', false],
    ['localhost', false], // a name, not an address
    ['', false],
    ['127.0.0.1.example.net', false],
  ])('%s → %s', (ip, lab) => {
    expect(isLabAddress(ip)).toBe(lab);
  });

  it('names: only localhost is lab without a lookup', () => {
    expect(isLabHost('localhost')).toBe(true);
    expect(isLabHost('LOCALHOST.')).toBe(true);
    expect(isLabHost('mx.localhost')).toBe(true);
    expect(isLabHost('mx.example.net')).toBe(false);
    expect(isLabHost('127.0.0.9')).toBe(true);
  });
});

describe('isRealProbe (the engine decides once connected)', () => {
  const target = { host: '127.0.0.1', port: 25, tls: 'none' as const };
  it('a loopback connection to a loopback target is lab', () => {
    expect(isRealProbe({ target, path: { name: 'd' } }, '127.0.0.1')).toBe(false);
  });
  it('anything else connected to is real, and so is not knowing', () => {
    expect(isRealProbe({ target, path: { name: 'd' } }, '203.0.113.5')).toBe(true);
    expect(isRealProbe({ target, path: { name: 'd' } }, 'mx.example.net')).toBe(true); // a name a proxy resolves
    expect(isRealProbe({ target, path: { name: 'd' } }, undefined)).toBe(true);
  });
  it('a loopback relay passing the message on to a real target is real', () => {
    const path = { name: 'r', relay: { host: '127.0.0.1', port: 2525 } };
    expect(isRealProbe({ target: { host: 'mx.example.net', port: 25, tls: 'none' }, path }, '127.0.0.1')).toBe(true);
    expect(isRealProbe({ target: { mx: 'example.net', port: 25, tls: 'none' }, path }, '127.0.0.1')).toBe(true);
    expect(isRealProbe({ target, path }, '127.0.0.1')).toBe(false);
  });
});

describe('SIZE', () => {
  it('reads the advertised SIZE; 0 or no value means no limit', () => {
    expect(advertisedSize(['PIPELINING', 'SIZE 10240000', '8BITMIME'])).toBe(10240000);
    expect(advertisedSize(['size=5000'])).toBe(5000);
    expect(advertisedSize(['SIZE 0'])).toBeUndefined();
    expect(advertisedSize(['SIZE'])).toBeUndefined();
    expect(advertisedSize(['SIZEABLE 12'])).toBeUndefined();
    expect(advertisedSize([])).toBeUndefined();
    expect(advertisedSize(undefined)).toBeUndefined();
  });

  it('refuses above the advertised SIZE for real targets only, unless forced; the message says what to do', () => {
    const caps = ['SIZE 10240000'];
    expect(sizeRefusal({ capabilities: caps, sizeBytes: 16777216, real: true })).toBe(
      'server advertises SIZE 10240000; probe of 16777216 bytes refused (use --force to send anyway)',
    );
    expect(sizeRefusal({ capabilities: caps, sizeBytes: 10240000, real: true })).toBeUndefined(); // equal is allowed
    expect(sizeRefusal({ capabilities: caps, sizeBytes: 16777216, real: true, force: true })).toBeUndefined();
    expect(sizeRefusal({ capabilities: caps, sizeBytes: 16777216, real: false })).toBeUndefined();
    expect(sizeRefusal({ capabilities: ['SIZE 0'], sizeBytes: 16777216, real: true })).toBeUndefined();
  });
});

/** DNS for the tests: a fixed table, nothing leaves the process. */
function resolver(a: Record<string, string[]>, mx: Record<string, string[]> = {}): GuardResolver {
  return {
    lookup: async (h) => {
      if (a[h]) return a[h]!;
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${h}`), { code: 'ENOTFOUND' });
    },
    resolveMx: async (d) => {
      if (mx[d]) return mx[d]!;
      throw Object.assign(new Error(`queryMx ENODATA ${d}`), { code: 'ENODATA' });
    },
  };
}

describe('classifyTargets', () => {
  const r = resolver(
    { localhost: ['127.0.0.1', '::1'], 'lab.test': ['198.18.0.5'], 'mx1.example.net': ['203.0.113.7'], 'split.test': ['127.0.0.1', '192.0.2.9'] },
    { 'lab-domain.test': ['localhost', 'lab.test.'], 'example.net': ['mx1.example.net'] },
  );
  it('IP literals, names and MX domains; the reason names the host and address', async () => {
    const cs = await classifyTargets(
      [
        { host: '127.0.0.1', port: 25, tls: 'none' },
        { host: 'localhost', port: 25, tls: 'none', name: 'sink' },
        { host: '192.0.2.1', port: 25, tls: 'none' },
        { host: 'mx1.example.net', port: 25, tls: 'none' },
        { host: 'split.test', port: 25, tls: 'none' },
        { mx: 'lab-domain.test', port: 25, tls: 'none' },
        { mx: 'example.net', port: 25, tls: 'none' },
        { host: 'nowhere.test', port: 25, tls: 'none' },
        { mx: 'nomx.test', port: 25, tls: 'none' },
      ],
      [{ name: 'direct' }],
      r,
    );
    expect(cs.map((c) => [c.label, c.real])).toEqual([
      ['127.0.0.1:25', false],
      ['sink', false],
      ['192.0.2.1:25', true],
      ['mx1.example.net:25', true],
      ['split.test:25', true],
      ['mx:lab-domain.test', false],
      ['mx:example.net', true],
      ['nowhere.test:25', true],
      ['mx:nomx.test', true],
    ]);
    expect(cs[2]!.reason).toBe('target 192.0.2.1 is not a loopback or benchmark address');
    expect(cs[3]!.reason).toBe('target mx1.example.net resolves to 203.0.113.7');
    expect(cs[4]!.reason).toBe('target split.test resolves to 192.0.2.9');
    expect(cs[6]!.reason).toBe('MX host of example.net mx1.example.net resolves to 203.0.113.7');
    expect(cs[7]!.reason).toMatch(/could not be resolved \(ENOTFOUND\); treated as real/);
    expect(cs[8]!.reason).toMatch(/MX hosts of nomx\.test could not be listed/);
  });

  it('a real relay makes every target real; a lab relay leaves lab targets lab', async () => {
    const t = [{ host: '127.0.0.1', port: 25, tls: 'none' as const }];
    expect((await classifyTargets(t, [{ name: 'lb', relay: { host: '127.0.0.1', port: 2526 } }], r))[0]!.real).toBe(false);
    const viaReal = await classifyTargets(t, [{ name: 'd' }, { name: 'smarthost', relay: { host: '192.0.2.25', port: 587 } }], r);
    expect(viaReal[0]).toMatchObject({ real: true, reason: 'relay 192.0.2.25 is not a loopback or benchmark address' });
  });
});

describe('realTargetPolicy (run)', () => {
  const lab = { label: 'sink', real: false, reason: '127.0.0.1 is a loopback address' };
  const real = { label: 'mx1', real: true, reason: 'target mx1.example.net resolves to 203.0.113.7' };
  it('lab-only runs keep their rate, or none', () => {
    expect(realTargetPolicy({ targets: [lab] })).toEqual({ real: [], defaulted: false });
    expect(realTargetPolicy({ targets: [lab], ratePerTarget: 500 })).toEqual({ real: [], ratePerTarget: 500, defaulted: false });
  });
  it('real targets: 1/s by default; up to 1/s as set; more is refused without force', () => {
    expect(realTargetPolicy({ targets: [lab, real] })).toEqual({ real: [real], ratePerTarget: 1, defaulted: true });
    expect(realTargetPolicy({ targets: [real], ratePerTarget: 0.2 })).toMatchObject({ ratePerTarget: 0.2, defaulted: false });
    expect(realTargetPolicy({ targets: [real], ratePerTarget: 1 }).refused).toBeUndefined();
    const p = realTargetPolicy({ targets: [real], ratePerTarget: 5 });
    expect(p.refused).toBe(
      'rate 5/s per target is above 1/s, and target mx1 is a real server (target mx1.example.net resolves to 203.0.113.7): ' +
        'lower rate: in the profile, or add --force if you are allowed to load this server',
    );
    const forced = realTargetPolicy({ targets: [real], ratePerTarget: 5, force: true });
    expect(forced.ratePerTarget).toBe(5);
    expect(forced.refused).toBeUndefined();
  });

  it('guardPlan sets the default rate on a profile with a real target and no rate', async () => {
    const r = resolver({});
    const text = (host: string, extra = '') => `name: g
targets: [{host: '${host}', port: 25}]
envelope: {from: probe@example.org, to: [postmaster@example.net]}
${extra}`;
    const realPlan = parseProfile(text('192.0.2.1'), 'g.yaml', { env: {} });
    expect(realPlan.ratePerTarget).toBeUndefined();
    const g = await guardPlan(realPlan, { resolver: r });
    expect(g.plan.ratePerTarget).toBe(1);
    expect(g.plan.profileHash).toBe(realPlan.profileHash);
    const labPlan = parseProfile(text('127.0.0.1'), 'g.yaml', { env: {} });
    expect((await guardPlan(labPlan, { resolver: r })).plan).toBe(labPlan);
    const fast = parseProfile(text('192.0.2.1', 'rate: 10/s'), 'g.yaml', { env: {} });
    expect((await guardPlan(fast, { resolver: r })).policy.refused).toMatch(/rate 10\/s per target is above 1\/s/);
    expect((await guardPlan(fast, { resolver: r, force: true })).policy.refused).toBeUndefined();
  });
});

describe('defaults that keep real targets safe', () => {
  it('a profile without envelope.to is refused: recipients have no default', () => {
    const text = `name: g
targets: [{host: 192.0.2.1}]
envelope: {from: probe@example.org}
`;
    expect(() => parseProfile(text, 'g.yaml', { env: {} })).toThrow(ProfileError);
    expect(() => parseProfile(text, 'g.yaml', { env: {} })).toThrow(/envelope\.to: missing/);
  });

  it('TLS verification is on unless asked: no insecure in the plan or the probe specs', () => {
    const plan = parseProfile(`name: g
targets: [{host: 192.0.2.1}]
envelope: {from: probe@example.org, to: postmaster@example.net}
`, 'g.yaml', { env: {} });
    expect(plan.insecure).toBeUndefined();
    expect(expandPlan(plan, { runId: 'r' }).every((s) => s.insecure === undefined && s.force === undefined)).toBe(true);
  });

  it('every generated probe message identifies itself as a test', () => {
    for (const sizeBytes of [1024, 64 * 1024]) {
      const m = generatedMessage({ probeId: 'p1', sizeBytes, seed: 3, from: 'a@x.test', to: ['b@x.test'] });
      const first = [...(m.chunks() as Iterable<Buffer>)][0]!.toString('latin1');
      const headers = first.slice(0, first.indexOf('\r\n\r\n') + 2);
      expect(headers).toMatch(/^Auto-Submitted: auto-generated\r$/m);
      expect(headers).toMatch(/^X-Mxprobe: probe=p1; size=\d+; seed=3\r$/m);
    }
  });

  it('messageFileIdentifies reads the header block only', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-guard-'));
    const f = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    expect(await messageFileIdentifies(f('a.eml', 'Subject: x\r\nAuto-Submitted: auto-generated\r\n\r\nbody\r\n'))).toBe(true);
    expect(await messageFileIdentifies(f('b.eml', 'Subject: x\nx-mxprobe: test\n\nbody\n'))).toBe(true);
    expect(await messageFileIdentifies(f('c.eml', 'Subject: x\r\n\r\nAuto-Submitted: in the body does not count\r\n'))).toBe(false);
    expect(await messageFileIdentifies(f('d.eml', 'Subject: hello\r\n\r\nhi\r\n'))).toBe(false);
  });
});

import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_TIMEOUTS, STAGES } from '../../src/model.js';
import {
  applyOverrides,
  computeProfileHash,
  DEFAULT_SIZES,
  loadProfile,
  parseProfile,
  ProfileError,
  profileJsonSchema,
  SHIPPED_PROFILES_DIR,
} from '../../src/profile/index.js';
import type { Plan } from '../../src/profile/index.js';

const SRC = 'profiles/x.yaml';

/** A minimal valid profile plus `extra` YAML lines at the top level. */
function yaml(extra = ''): string {
  return `name: t
targets:
  - host: mx.example.net
envelope:
  from: probe@example.com
  to: sink@example.net
${extra}`;
}

const parse = (text: string, env: Record<string, string | undefined> = {}): Plan => parseProfile(text, SRC, { env });

/** Parse, expecting a ProfileError; returns it. */
function fails(text: string, env: Record<string, string | undefined> = {}): ProfileError {
  try {
    parse(text, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ProfileError);
    return err as ProfileError;
  }
  throw new Error(`expected a ProfileError for:\n${text}`);
}

/** Expect exactly one issue line naming `path`, with `fragment` in its message. */
function expectIssue(err: ProfileError, path: string, fragment?: string | RegExp): void {
  const line = err.message.split('\n').find((l) => l.startsWith(`${SRC}: ${path}: `));
  expect(line, `no issue for ${path} in:\n${err.message}`).toBeDefined();
  expect(err.issues.some((i) => i.path === path)).toBe(true);
  if (fragment !== undefined) {
    if (typeof fragment === 'string') expect(line).toContain(fragment);
    else expect(line).toMatch(fragment);
  }
}

describe('defaults', () => {
  it('fills every default of a minimal profile', () => {
    const plan = parse(yaml());
    expect(plan.name).toBe('t');
    expect(plan.source).toBe(SRC);
    expect(plan.targets).toEqual([{ name: 'mx.example.net:25', host: 'mx.example.net', port: 25, tls: 'starttls' }]);
    expect(plan.paths).toEqual([{ name: 'direct' }]);
    expect(plan.sizes).toEqual([...DEFAULT_SIZES]);
    expect(plan.repeat).toBe(3);
    expect(plan.concurrency).toBe(4);
    expect(plan.seed).toBe(1);
    expect(plan.timeouts).toEqual(DEFAULT_TIMEOUTS);
    expect(plan.envelope).toEqual({ from: 'probe@example.com', to: ['sink@example.net'] });
    for (const k of ['auth', 'ratePerTarget', 'insecure', 'ehloName', 'thresholds', 'tcpSnapshotMinBytes', 'captureDir']) {
      expect(plan, k).not.toHaveProperty(k);
    }
    expect(plan.profileHash).toMatch(/^[0-9a-f]{16}$/);
  });

  it('maps every optional top-level key onto the plan', () => {
    const plan = parse(
      yaml(`rate: 30/m
insecure: true
ehlo: probe.example.com
tcpSnapshotMin: 32KiB
capture: ./caps
seed: 42
repeat: 7
concurrency: 2
auth: {user: u, passEnv: SMTP_PASS, method: LOGIN}
`),
    );
    expect(plan.ratePerTarget).toBe(0.5);
    expect(plan.insecure).toBe(true);
    expect(plan.ehloName).toBe('probe.example.com');
    expect(plan.tcpSnapshotMinBytes).toBe(32 * 1024);
    expect(plan.captureDir).toBe('./caps');
    expect(plan.seed).toBe(42);
    expect(plan.repeat).toBe(7);
    expect(plan.concurrency).toBe(2);
    expect(plan.auth).toEqual({ user: 'u', passEnv: 'SMTP_PASS', method: 'LOGIN' });
  });

  it('treats insecure: false like leaving it out', () => {
    expect(parse(yaml('insecure: false\n'))).not.toHaveProperty('insecure');
  });
});

describe('name', () => {
  it('is required', () => {
    expectIssue(fails(yaml().replace('name: t\n', '')), 'name', 'missing');
  });
  it('must not be empty or a list', () => {
    expectIssue(fails(yaml().replace('name: t', "name: '  '")), 'name', 'empty');
    expectIssue(fails(yaml().replace('name: t', 'name: [a]')), 'name', 'got a list');
  });
});

describe('targets', () => {
  const withTargets = (t: string) => yaml().replace('targets:\n  - host: mx.example.net\n', `targets:\n${t}\n`);

  it('defaults port by TLS mode and tls from the top level', () => {
    const plan = parse(
      withTargets(`  - {host: a.example.net}
  - {host: b.example.net, tls: implicit}
  - {host: 192.0.2.1, port: 2525, tls: none, name: lab}
  - {host: '2001:db8::1'}
  - {mx: example.org, allMx: true}`) + 'tls: require-starttls\n',
    );
    expect(plan.targets).toEqual([
      { name: 'a.example.net:25', host: 'a.example.net', port: 25, tls: 'require-starttls' },
      { name: 'b.example.net:465', host: 'b.example.net', port: 465, tls: 'implicit' },
      { name: 'lab', host: '192.0.2.1', port: 2525, tls: 'none' },
      { name: '[2001:db8::1]:25', host: '2001:db8::1', port: 25, tls: 'require-starttls' },
      { name: 'mx:example.org', mx: 'example.org', port: 25, tls: 'require-starttls', allMx: true },
    ]);
  });

  it('takes the implicit TLS port default from the top-level tls', () => {
    expect(parse(yaml('tls: implicit\n')).targets[0]).toMatchObject({ port: 465, tls: 'implicit' });
  });

  it('accepts a numeric string port (after interpolation)', () => {
    expect(parse(withTargets("  - {host: a.example.net, port: '2525'}")).targets[0]!.port).toBe(2525);
  });

  it('rejects bad ports', () => {
    expectIssue(fails(withTargets('  - {host: a.example.net, port: 0}')), 'targets[0].port', 'from 1 to 65535, got 0');
    expectIssue(fails(withTargets('  - {host: a.example.net, port: 70000}')), 'targets[0].port', '70000');
    expectIssue(fails(withTargets('  - {host: a.example.net, port: smtp}')), 'targets[0].port', '"smtp"');
    expectIssue(fails(withTargets('  - {host: a.example.net, port: 25.5}')), 'targets[0].port', '25.5');
    expectIssue(fails(withTargets('  - {host: a.example.net, port: true}')), 'targets[0].port', 'got true');
  });

  it('takes host:port and [IPv6]:port as people type them, and labels IPv6 in brackets', () => {
    const t = (line: string) => parse(withTargets(line)).targets[0]!;
    expect(t('  - host: mx.example.net:587')).toMatchObject({ host: 'mx.example.net', port: 587, name: 'mx.example.net:587' });
    expect(t("  - host: '[::1]:2525'")).toMatchObject({ host: '::1', port: 2525, name: '[::1]:2525' });
    expect(t("  - host: '[2001:db8::1]'")).toMatchObject({ host: '2001:db8::1', port: 25, name: '[2001:db8::1]:25' });
    expect(t('  - {mx: example.net, family: 6, fallback: none}')).toMatchObject({ mx: 'example.net', family: 6, fallback: 'none' });
  });

  it('dns servers and address family, checked', () => {
    expect(parse(yaml('dns: {servers: [192.0.2.53, "192.0.2.54:5353", "[2001:db8::53]:53"]}\n')).dnsServers).toEqual(['192.0.2.53', '192.0.2.54:5353', '[2001:db8::53]:53']);
    expectIssue(fails(yaml('dns: {servers: [ns1.example.net]}\n')), 'dns.servers[0]', 'not a DNS server address');
    expectIssue(fails(withTargets('  - {mx: example.net, family: 5}')), 'targets[0].family', 'expected 4 (IPv4) or 6 (IPv6), got 5');
  });

  it('rejects bad hosts with a hint', () => {
    expectIssue(fails(withTargets('  - host: 10.0.0.300')), 'targets[0].host', 'not an IP address ("10.0.0.300")');
    expectIssue(fails(withTargets('  - host: smtp://mx.example.net')), 'targets[0].host', 'not a URL');
    expectIssue(fails(withTargets("  - host: '[mx.example]:25'")), 'targets[0].host', 'not an IPv6 address in brackets');
    expectIssue(fails(withTargets('  - {host: mx.example.net:587, port: 25}')), 'targets[0].port', 'differ');
    expectIssue(fails(withTargets("  - host: 'mx example'")), 'targets[0].host', 'not a host name');
    expectIssue(fails(withTargets('  - host: 25')), 'targets[0].host', 'expected a host name or an IP address, got 25');
  });

  it('rejects a bad mx domain', () => {
    expectIssue(fails(withTargets('  - mx: 192.0.2.1')), 'targets[0].mx', 'use host:');
    expectIssue(fails(withTargets('  - mx: localhost')), 'targets[0].mx', 'domain name');
  });

  it('needs exactly one of host and mx', () => {
    expectIssue(fails(withTargets('  - {host: a.example.net, mx: example.net}')), 'targets[0]', 'not both');
    expectIssue(fails(withTargets('  - {port: 25}')), 'targets[0]', 'missing host: or mx:');
  });

  it('allows allMx only with mx', () => {
    expectIssue(fails(withTargets('  - {host: a.example.net, allMx: true}')), 'targets[0].allMx', 'only with mx');
    expectIssue(fails(withTargets('  - {mx: example.net, allMx: perhaps}')), 'targets[0].allMx', 'true or false');
  });

  it('rejects a bad tls mode, with a hint for SMTPS', () => {
    expectIssue(fails(withTargets('  - {host: a.example.net, tls: ssl}')), 'targets[0].tls', '"implicit"');
    expectIssue(fails(yaml('tls: STARTTLS\n')), 'tls', 'lower case');
  });

  it('rejects duplicate target names', () => {
    expectIssue(fails(withTargets('  - {host: a.example.net}\n  - {host: a.example.net, port: 25}')), 'targets[1]', 'duplicate target name "a.example.net:25"');
    expectIssue(fails(withTargets('  - {host: a.example.net, name: x}\n  - {host: b.example.net, name: x}')), 'targets[1].name', 'duplicate');
  });

  it('must be a non-empty list', () => {
    expectIssue(fails(withTargets('  []').replace('targets:\n  []', 'targets: []')), 'targets', 'empty');
    expectIssue(fails(yaml().replace('targets:\n  - host: mx.example.net\n', '')), 'targets', 'missing');
    expectIssue(fails(yaml().replace('targets:\n  - host: mx.example.net\n', 'targets: mx.example.net\n')), 'targets', 'expected a list');
  });
});

describe('paths', () => {
  const withPaths = (p: string) => yaml(`paths:\n${p}\n`);

  it('builds direct, source-address, proxy and relay paths', () => {
    const plan = parse(
      withPaths(`  - name: direct
  - {name: via-lb, localAddress: 192.0.2.10}
  - {name: v6, localAddress: '2001:db8::10'}
  - {name: socks, proxy: 'socks5://user:pw@127.0.0.1:1080'}
  - {name: socksh, proxy: 'socks5h://proxy.example.net:1080', localAddress: 192.0.2.11}
  - {name: http, proxy: 'http://127.0.0.1:3128'}
  - {name: relay1, relay: 'smarthost.example.net:587'}
  - {name: relay2, relay: smarthost.example.net}
  - {name: relay3, relay: '[2001:db8::25]:2525'}
  - {name: relay4, relay: {host: 127.0.0.1, port: 2526, tls: none}}`),
    );
    expect(plan.paths).toEqual([
      { name: 'direct' },
      { name: 'via-lb', localAddress: '192.0.2.10' },
      { name: 'v6', localAddress: '2001:db8::10' },
      { name: 'socks', proxy: 'socks5://user:pw@127.0.0.1:1080' },
      { name: 'socksh', proxy: 'socks5h://proxy.example.net:1080', localAddress: '192.0.2.11' },
      { name: 'http', proxy: 'http://127.0.0.1:3128' },
      { name: 'relay1', relay: { host: 'smarthost.example.net', port: 587, tls: 'starttls' } },
      { name: 'relay2', relay: { host: 'smarthost.example.net', port: 25, tls: 'starttls' } },
      { name: 'relay3', relay: { host: '2001:db8::25', port: 2525, tls: 'starttls' } },
      { name: 'relay4', relay: { host: '127.0.0.1', port: 2526, tls: 'none' } },
    ]);
  });

  it('gives relays the top-level tls by default', () => {
    const plan = parse(yaml("tls: none\npaths: [{name: r, relay: '127.0.0.1:2526'}]\n"));
    expect(plan.paths[0]!.relay).toEqual({ host: '127.0.0.1', port: 2526, tls: 'none' });
  });

  it('rejects a bad localAddress', () => {
    const err = fails(withPaths('  - {name: a}\n  - {name: b, localAddress: 10.0.0.300}'));
    expect(err.message).toContain(`${SRC}: paths[1].localAddress: not an IP address ("10.0.0.300")`);
    expectIssue(fails(withPaths('  - {name: b, localAddress: eth0}')), 'paths[0].localAddress', 'not an IP address');
  });

  it('rejects bad proxy URLs and never echoes a proxy password', () => {
    expectIssue(fails(withPaths("  - {name: p, proxy: 'https://h:1'}")), 'paths[0].proxy', 'use http://');
    expectIssue(fails(withPaths("  - {name: p, proxy: 'socks4://h:1080'}")), 'paths[0].proxy', 'only SOCKS5');
    expectIssue(fails(withPaths("  - {name: p, proxy: 'socks5://h'}")), 'paths[0].proxy', 'port explicitly');
    expectIssue(fails(withPaths("  - {name: p, proxy: 'socks5://h:99999'}")), 'paths[0].proxy', 'port is out of range');
    const err = fails(withPaths("  - {name: p, proxy: 'socks5://u:s3cr3t@h'}"));
    expectIssue(err, 'paths[0].proxy', '(socks5://h)');
    expect(err.message).not.toContain('s3cr3t');
    expectIssue(fails(withPaths('  - {name: p, proxy: 127.0.0.1:1080}')), 'paths[0].proxy', 'socks5://');
  });

  it('rejects bad relays', () => {
    expectIssue(fails(withPaths("  - {name: r, relay: 'smtp://h:25'}")), 'paths[0].relay', 'not a URL');
    expectIssue(fails(withPaths("  - {name: r, relay: 'h:smtp'}")), 'paths[0].relay', 'port');
    expectIssue(fails(withPaths('  - {name: r, relay: 25}')), 'paths[0].relay', 'host:port');
    expectIssue(fails(withPaths('  - {name: r, relay: {host: h, port: 0}}')), 'paths[0].relay.port', 'got 0');
    expectIssue(fails(withPaths('  - {name: r, relay: {port: 25}}')), 'paths[0].relay.host', 'missing');
    expectIssue(fails(withPaths('  - {name: r, relay: {host: h, prot: 25}}')), 'paths[0].relay.prot', 'did you mean "port"');
  });

  it('keeps proxy and relay apart', () => {
    expectIssue(fails(withPaths("  - {name: p, proxy: 'socks5://h:1080', relay: 'r:25'}")), 'paths[0]', 'cannot be combined');
  });

  it('checks names: pattern, uniqueness, presence', () => {
    expectIssue(fails(withPaths("  - {name: 'via lb'}")), 'paths[0].name', 'letters, digits');
    expectIssue(fails(withPaths('  - {name: a}\n  - {name: a}')), 'paths[1].name', 'duplicate path name "a"');
    expectIssue(fails(withPaths('  - {localAddress: 192.0.2.1}')), 'paths[0].name', 'missing');
    expectIssue(fails(yaml('paths: []\n')), 'paths', 'empty');
  });
});

describe('sizes', () => {
  it('parses units, sorts and de-duplicates', () => {
    expect(parse(yaml('sizes: [1MiB, 1KiB, 1024, 64KiB, 1.5MB, 600]\n')).sizes).toEqual([600, 1024, 65536, 1048576, 1500000]);
  });
  it('accepts a single size and numeric values', () => {
    expect(parse(yaml('sizes: 4MiB\n')).sizes).toEqual([4 * 1024 * 1024]);
    expect(parse(yaml('sizes: [600, 1GiB]\n')).sizes).toEqual([600, 1024 ** 3]);
  });
  it('accepts several sizes in one (interpolated) string', () => {
    expect(parse(yaml("sizes: '${SIZES:-64KiB, 1KiB}'\n")).sizes).toEqual([1024, 65536]);
    expect(parse(yaml("sizes: '${SIZES:-64KiB, 1KiB}'\n"), { SIZES: '1MiB' }).sizes).toEqual([1048576]);
    expectIssue(fails(yaml("sizes: '1KiB,,2KiB'\n")), 'sizes', 'not a byte size');
  });
  it('rejects out-of-range and malformed sizes, naming the item', () => {
    expectIssue(fails(yaml('sizes: [1KiB, 0]\n')), 'sizes[1]', 'at least 1 byte');
    expectIssue(fails(yaml('sizes: [2GiB]\n')), 'sizes[0]', 'at most 1GiB');
    expectIssue(fails(yaml('sizes: [1KiB, 64 KB x]\n')), 'sizes[1]', 'not a byte size');
    expectIssue(fails(yaml('sizes: [-5]\n')), 'sizes[0]', 'not a byte size');
    expectIssue(fails(yaml('sizes: lots\n')), 'sizes', 'not a byte size');
    expectIssue(fails(yaml('sizes: []\n')), 'sizes', 'empty');
    expectIssue(fails(yaml('sizes: {a: 1}\n')), 'sizes', 'a list of sizes');
  });
});

describe('repeat, concurrency, rate, seed', () => {
  it('accept numeric strings', () => {
    const plan = parse(yaml("repeat: '5'\nconcurrency: '8'\nseed: '7'\n"));
    expect([plan.repeat, plan.concurrency, plan.seed]).toEqual([5, 8, 7]);
  });
  it('reject zero, negatives and fractions', () => {
    expectIssue(fails(yaml('repeat: 0\n')), 'repeat', 'at least 1');
    expectIssue(fails(yaml('concurrency: -2\n')), 'concurrency', 'at least 1');
    expectIssue(fails(yaml('concurrency: 1.5\n')), 'concurrency', '1.5');
    expectIssue(fails(yaml('seed: -1\n')), 'seed', 'from 0 to 4294967295');
    expectIssue(fails(yaml('seed: x\n')), 'seed', '"x"');
  });
  it('parse rates per second', () => {
    expect(parse(yaml('rate: 2/s\n')).ratePerTarget).toBe(2);
    expect(parse(yaml('rate: 30/m\n')).ratePerTarget).toBe(0.5);
    expect(parse(yaml('rate: 3\n')).ratePerTarget).toBe(3);
    expectIssue(fails(yaml('rate: fast\n')), 'rate', 'not a rate');
    expectIssue(fails(yaml('rate: 0/s\n')), 'rate', 'not a rate');
  });
});

describe('envelope', () => {
  const env = (e: string) => yaml().replace('envelope:\n  from: probe@example.com\n  to: sink@example.net\n', `envelope: ${e}\n`);
  it('takes a single recipient or a list, strips angle brackets, allows the null sender', () => {
    expect(parse(env("{from: '<>', to: [a@example.net, '<b@example.net>']}")).envelope).toEqual({ from: '', to: ['a@example.net', 'b@example.net'] });
    expect(parse(env("{from: '', to: a@example.net}")).envelope).toEqual({ from: '', to: ['a@example.net'] });
    expect(parse(env("{from: p@example.com, to: '${TO}'}"), { TO: 'a@example.net, b@example.net' }).envelope.to).toEqual(['a@example.net', 'b@example.net']);
  });
  it('rejects bad addresses and missing parts', () => {
    expectIssue(fails(env('{from: not-an-address, to: a@example.net}')), 'envelope.from', 'local@domain');
    expectIssue(fails(env("{from: 'Probe <p@example.com>', to: a@example.net}")), 'envelope.from', 'bare address');
    expectIssue(fails(env('{from: p@example.com, to: [a@example.net, nobody]}')), 'envelope.to[1]', 'local@domain');
    expectIssue(fails(env('{from: p@example.com, to: []}')), 'envelope.to', 'empty');
    expectIssue(fails(env('{from: p@example.com}')), 'envelope.to', 'missing');
    expectIssue(fails(env('{from: , to: a@example.net}')), 'envelope.from', '"<>" for the null sender');
    expectIssue(fails(yaml().replace(/envelope:[\s\S]*$/, '')), 'envelope', 'missing');
  });
});

describe('auth', () => {
  it('rejects a literal password and tells the user to use passEnv, without echoing it', () => {
    for (const key of ['pass', 'password']) {
      const err = fails(yaml(`auth: {user: u, passEnv: SMTP_PASS, ${key}: hunter2}\n`));
      expectIssue(err, `auth.${key}`, 'passEnv');
      expect(err.message).not.toContain('hunter2');
    }
  });
  it('wants a variable NAME in passEnv, never a value', () => {
    const err = fails(yaml("auth: {user: u, passEnv: '${SMTP_PASS}'}\n"), { SMTP_PASS: 'hunter2' });
    expectIssue(err, 'auth.passEnv', 'NAME');
    expect(err.message).not.toContain('hunter2');
    const err2 = fails(yaml("auth: {user: u, passEnv: 'hunter 2!'}\n"));
    expectIssue(err2, 'auth.passEnv', 'not the password itself');
    expect(err2.message).not.toContain('hunter 2!');
  });
  it('checks user and method', () => {
    expectIssue(fails(yaml('auth: {passEnv: P}\n')), 'auth.user', 'missing');
    expectIssue(fails(yaml('auth: {user: u, passEnv: P, method: CRAM-MD5}\n')), 'auth.method', 'PLAIN or LOGIN');
    expect(parse(yaml('auth: {user: u, passEnv: P}\n')).auth).toEqual({ user: 'u', passEnv: 'P' });
  });
});

describe('timeouts', () => {
  it('parses durations and keeps the other defaults', () => {
    const plan = parse(yaml('timeouts: {connect: 5s, command: 2m, data: 90s, body: 1m, dataAck: 3m, dns: 500ms, stall: 400ms, noReply: 45s}\n'));
    expect(plan.timeouts).toEqual({ dnsMs: 500, connectMs: 5000, commandMs: 120000, dataMs: 90000, bodyMs: 60000, dataAckMs: 180000, stallMs: 400, noReplyMs: 45000 });
    expect(parse(yaml('timeouts: {stall: 3}\n')).timeouts).toEqual({ ...DEFAULT_TIMEOUTS, stallMs: 3000 });
  });
  it('rejects zero and malformed durations', () => {
    expectIssue(fails(yaml('timeouts: {stall: 0s}\n')), 'timeouts.stall', 'above zero');
    expectIssue(fails(yaml('timeouts: {body: soon}\n')), 'timeouts.body', 'not a duration');
  });
  it('wants the stall window shorter than every stage deadline', () => {
    expectIssue(fails(yaml('timeouts: {stall: 1h}\n')), 'timeouts.stall', 'timeouts.command is 5m');
    expectIssue(fails(yaml('timeouts: {stall: 2m}\n')), 'timeouts.stall', 'shorter than every stage deadline');
    // a deadline set below the default stall window names the deadline
    expectIssue(fails(yaml('timeouts: {command: 5s}\n')), 'timeouts.command', '10s, the default');
    // the watchdog does not watch dns or connect: their deadlines do not bound the window
    expect(parse(yaml('timeouts: {stall: 30s, connect: 5s}\n')).timeouts).toMatchObject({ stallMs: 30_000, connectMs: 5000 });
  });
  it('suggests the right key for typos', () => {
    expectIssue(fails(yaml('timeouts: {dataack: 1m}\n')), 'timeouts.dataack', 'did you mean "dataAck"');
    expectIssue(fails(yaml('timeouts: {stallMs: 1000}\n')), 'timeouts.stallMs', 'did you mean "stall"');
  });
});

describe('ehlo, tcpSnapshotMin, capture, insecure', () => {
  it('validates each', () => {
    expect(parse(yaml("ehlo: '[192.0.2.1]'\n")).ehloName).toBe('[192.0.2.1]');
    expectIssue(fails(yaml("ehlo: 'my host'\n")), 'ehlo', 'host name');
    expect(parse(yaml('tcpSnapshotMin: 0\n')).tcpSnapshotMinBytes).toBe(0);
    expectIssue(fails(yaml('tcpSnapshotMin: big\n')), 'tcpSnapshotMin', 'not a byte size');
    expectIssue(fails(yaml("capture: ''\n")), 'capture', 'empty');
    expectIssue(fails(yaml('insecure: yes please\n')), 'insecure', 'true or false');
    expect(parse(yaml("insecure: 'true'\n")).insecure).toBe(true);
  });
});

describe('thresholds', () => {
  it('parses the k6-style forms, as strings or one-key maps', () => {
    const plan = parse(
      yaml(`thresholds:
  - 'body: p95 < 2s'
  - dataAck: p99 <= 500ms
  - total: p50 < 1s
  - stall_rate < 1%
  - success_rate >= 99%
  - 'stall_rate: rate < 0.05'
  - connect: max > 1m
`),
    );
    expect(plan.thresholds).toEqual([
      { source: 'body: p95 < 2s', metric: 'body', stat: 'p95', op: '<', value: 2000 },
      { source: 'dataAck: p99 <= 500ms', metric: 'dataAck', stat: 'p99', op: '<=', value: 500 },
      { source: 'total: p50 < 1s', metric: 'total', stat: 'p50', op: '<', value: 1000 },
      { source: 'stall_rate < 1%', metric: 'stall_rate', stat: 'rate', op: '<', value: 0.01 },
      { source: 'success_rate >= 99%', metric: 'success_rate', stat: 'rate', op: '>=', value: 0.99 },
      { source: 'stall_rate: rate < 0.05', metric: 'stall_rate', stat: 'rate', op: '<', value: 0.05 },
      { source: 'connect: max > 1m', metric: 'connect', stat: 'max', op: '>', value: 60000 },
    ]);
  });
  it('accepts every stage as a metric', () => {
    const lines = STAGES.map((s) => `  - '${s}: avg < 1s'`).join('\n');
    expect(parse(yaml(`thresholds:\n${lines}\n`)).thresholds!.map((t) => t.metric)).toEqual([...STAGES]);
  });
  it('explains bad thresholds', () => {
    expectIssue(fails(yaml('thresholds: [stall_rat < 1%]\n')), 'thresholds[0]', 'did you mean "stall_rate"');
    expectIssue(fails(yaml("thresholds: ['body < 2s']\n")), 'thresholds[0]', 'give a statistic');
    expectIssue(fails(yaml("thresholds: ['body: p42 < 2s']\n")), 'thresholds[0]', 'unknown statistic');
    expectIssue(fails(yaml("thresholds: ['body: p95 < 2000']\n")), 'thresholds[0]', 'with a unit');
    expectIssue(fails(yaml("thresholds: ['stall_rate < 150%']\n")), 'thresholds[0]', '0%..100%');
    expectIssue(fails(yaml("thresholds: ['stall_rate == 0']\n")), 'thresholds[0]', 'use <, <=, > or >=');
    expectIssue(fails(yaml("thresholds: ['ok']\n")), 'thresholds[0]', 'not a threshold');
    expectIssue(fails(yaml('thresholds: [{body: p95 < 2s, data: p95 < 1s}]\n')), 'thresholds[0]', 'one threshold per list item');
    expectIssue(fails(yaml('thresholds: [42]\n')), 'thresholds[0]', 'got 42');
  });
});

describe('interpolation', () => {
  it('resolves ${VAR} and ${VAR:-default} in strings, including numbers given as strings', () => {
    const text = `name: '\${NAME}'
targets:
  - {host: '\${HOST:-127.0.0.1}', port: '\${PORT:-2525}', tls: '\${TLS:-none}'}
paths: [{name: a, relay: 'relay-\${N}.example.net:\${RP:-26}'}]
envelope: {from: 'probe@\${DOMAIN:-example.com}', to: ['\${TO}']}
sizes: ['\${SIZE:-1KiB}']
`;
    const plan = parse(text, { NAME: 'lab', N: '7', TO: 'sink@example.net', PORT: '2600', SIZE: '' });
    expect(plan.name).toBe('lab');
    expect(plan.targets[0]).toEqual({ name: '127.0.0.1:2600', host: '127.0.0.1', port: 2600, tls: 'none' });
    expect(plan.paths[0]!.relay).toEqual({ host: 'relay-7.example.net', port: 26, tls: 'starttls' });
    expect(plan.envelope).toEqual({ from: 'probe@example.com', to: ['sink@example.net'] });
    // `:-` also applies when the variable is set but empty, as in the shell
    expect(plan.sizes).toEqual([1024]);
  });
  it('names the variable and the field when a variable is not set', () => {
    const err = fails(yaml("capture: '/tmp/\${CAPDIR}'\n"));
    expectIssue(err, 'capture', 'environment variable CAPDIR is not set');
    const err2 = fails(yaml().replace('to: sink@example.net', "to: [a@example.net, '${RCPT}']"));
    expectIssue(err2, 'envelope.to[1]', 'RCPT');
  });
  it('supports $${ for a literal ${ and rejects malformed references', () => {
    // (a function replacement: a replacement string would read $$ as $)
    expect(parse(yaml().replace('name: t', () => "name: 'cost $${X} and $HOME'")).name).toBe('cost ${X} and $HOME');
    expectIssue(fails(yaml().replace('name: t', "name: '${1X}'")), 'name', 'not a variable reference');
    expectIssue(fails(yaml().replace('name: t', "name: 'a ${X'")), 'name', 'unclosed');
  });
  it('reads process.env when no env is given', () => {
    const key = 'MXPROBE_TEST_PROFILE_HOST';
    process.env[key] = '192.0.2.77';
    try {
      const plan = parseProfile(yaml().replace('mx.example.net', `'\${${key}}'`), SRC);
      expect(plan.targets[0]!.host).toBe('192.0.2.77');
    } finally {
      delete process.env[key];
    }
  });
  it('leaves keys alone', () => {
    expectIssue(fails(yaml('${X}: 1\n'), { X: 'repeat' }), '${X}', 'unknown key');
  });
});

describe('unknown keys', () => {
  it('are errors with a suggestion at every level', () => {
    expectIssue(fails(yaml('concurency: 2\n')), 'concurency', 'did you mean "concurrency"');
    expectIssue(fails(yaml('size: [1KiB]\n')), 'size', 'did you mean "sizes"');
    expectIssue(fails(yaml().replace('  - host: mx.example.net', '  - host: mx.example.net\n    prot: 25')), 'targets[0].prot', 'did you mean "port"');
    expectIssue(fails(yaml('paths: [{name: a, local_address: 192.0.2.1}]\n')), 'paths[0].local_address', 'did you mean "localAddress"');
    expectIssue(fails(yaml().replace('  from: probe@example.com', '  form: probe@example.com')), 'envelope.form', 'did you mean "from"');
    expectIssue(fails(yaml('auth: {usr: u, passEnv: P}\n')), 'auth.usr', 'did you mean "user"');
  });
  it('say where a misplaced key belongs', () => {
    expectIssue(fails(yaml('port: 25\n')), 'port', '"port" belongs in an entry of targets:');
    expectIssue(fails(yaml('stall: 5s\n')), 'stall', 'belongs under timeouts:');
  });
  it('list the known keys when nothing is close', () => {
    expectIssue(fails(yaml('zzzzzzzz: 1\n')), 'zzzzzzzz', 'expected one of: name, targets');
  });
  it('allow x- keys at the top level for YAML anchors', () => {
    const plan = parse(
      yaml().replace('targets:\n  - host: mx.example.net', "x-common: &common {port: 2525, tls: none}\ntargets:\n  - {<<: *common, host: mx.example.net}"),
    );
    expect(plan.targets[0]).toMatchObject({ port: 2525, tls: 'none' });
  });
});

describe('messages', () => {
  it('list one issue per line with file, path and line number, in document order', () => {
    const err = fails(`name: t
targets:
  - host: mx.example.net
    port: 0
paths:
  - name: a
  - name: b
    localAddress: 10.0.0.300
envelope: {from: p@example.com, to: x}
`);
    const lines = err.message.split('\n');
    expect(lines).toEqual([
      `${SRC}: targets[0].port: expected a TCP port number from 1 to 65535, got 0 (line 4)`,
      `${SRC}: paths[1].localAddress: not an IP address ("10.0.0.300"); expected a source address of this machine such as 192.0.2.10 or 2001:db8::10 (line 8)`,
      `${SRC}: envelope.to: not an address: expected local@domain, got "x" (line 9)`,
    ]);
    expect(err.source).toBe(SRC);
    expect(err.issues.map((i) => [i.path, i.line])).toEqual([
      ['targets[0].port', 4],
      ['paths[1].localAddress', 8],
      ['envelope.to', 9],
    ]);
  });
  it('give line:column for YAML syntax errors', () => {
    const err = fails('name: t\ntargets: [\n  - host: a\n');
    expect(err.message).toMatch(/^profiles\/x\.yaml:\d+:\d+: YAML syntax error: /);
    const dup = fails('name: t\nname: u\n');
    expect(dup.message).toMatch(/^profiles\/x\.yaml:2:1: YAML syntax error: .*unique/);
  });
  it('explain an empty file and a top level that is not a map', () => {
    expect(fails('').message).toBe(`${SRC}: the profile is empty (expected keys such as name:, targets:, envelope:)`);
    expect(fails('# only a comment\n').message).toContain('empty');
    expect(fails('- a\n- b\n').message).toContain('expected a YAML map of keys');
  });
});

describe('loadProfile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mxprobe-profile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('loads a file and records its source', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, yaml());
    const plan = await loadProfile(file, { env: {} });
    expect(plan.source).toBe(file);
    expect(plan.name).toBe('t');
  });
  it('reports a missing file and a directory clearly', async () => {
    const missing = join(dir, 'nope.yaml');
    const err = await loadProfile(missing).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProfileError);
    expect((err as ProfileError).message).toMatch(new RegExp(`^${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: no such profile file`));
    expect((err as ProfileError).message).toContain(SHIPPED_PROFILES_DIR);
    const isDir = await loadProfile(dir).catch((e: unknown) => e);
    expect((isDir as ProfileError).message).toContain('is a directory');
  });
  it('names the file in validation errors', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, yaml('repeat: 0\n'));
    const err = await loadProfile(file, { env: {} }).catch((e: unknown) => e);
    expect((err as ProfileError).message).toContain(`${file}: repeat: `);
  });
});

describe('applyOverrides', () => {
  const base = () => parse(yaml('paths: [{name: via-lb, localAddress: 192.0.2.10}, {name: direct}, {name: proxy, proxy: "socks5://127.0.0.1:1080"}]\n'));

  it('replaces sizes, selects paths in the given order, sets counts, and recomputes the hash', () => {
    const plan = base();
    const next = applyOverrides(plan, { sizes: [65536, 1024, 1024], paths: ['direct', 'via-lb'], repeat: 9, concurrency: 1, seed: 5 });
    expect(next.sizes).toEqual([1024, 65536]);
    expect(next.paths.map((p) => p.name)).toEqual(['direct', 'via-lb']);
    expect([next.repeat, next.concurrency, next.seed]).toEqual([9, 1, 5]);
    expect(next.profileHash).not.toBe(plan.profileHash);
    expect(next.profileHash).toBe(computeProfileHash(next));
    // the original is untouched
    expect(plan.paths).toHaveLength(3);
    expect(plan.repeat).toBe(3);
  });
  it('is the identity for no overrides', () => {
    const plan = base();
    expect(applyOverrides(plan, {})).toEqual(plan);
  });
  it('rejects an unknown path naming the known ones', () => {
    let err: unknown;
    try {
      applyOverrides(base(), { paths: ['direkt'] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProfileError);
    const msg = (err as ProfileError).message;
    expect(msg).toContain(`${SRC}: paths: unknown path "direkt" (did you mean "direct"?); the profile defines: via-lb, direct, proxy`);
  });
  it('rejects bad values', () => {
    expect(() => applyOverrides(base(), { sizes: [0] })).toThrow(/sizes: a size of at least 1 byte/);
    expect(() => applyOverrides(base(), { sizes: [] })).toThrow(/sizes: the override lists no size/);
    expect(() => applyOverrides(base(), { repeat: 0 })).toThrow(/repeat: .*at least 1/);
    expect(() => applyOverrides(base(), { concurrency: 1.5 })).toThrow(/concurrency: /);
    expect(() => applyOverrides(base(), { seed: -1 })).toThrow(/seed: /);
    expect(() => applyOverrides(base(), { paths: [] })).toThrow(/paths: the override selects no path/);
  });
});

describe('profileHash', () => {
  it('is the same for the same plan however it is written', () => {
    const a = parse(yaml('sizes: [64KiB, 1KiB]\nrepeat: 3\n'));
    const b = parseProfile(
      `# comments and key order do not matter
envelope: {to: [sink@example.net], from: probe@example.com}
sizes: [1024, 65536, 1KiB]
targets: [{port: 25, host: mx.example.net}]
name: t
`,
      'elsewhere.yaml',
      { env: {} },
    );
    expect(b.profileHash).toBe(a.profileHash);
    expect(parse(yaml('sizes: [64KiB, 1KiB]\n')).profileHash).toBe(a.profileHash);
  });
  it('changes when a size changes', () => {
    const a = parse(yaml('sizes: [64KiB, 1KiB]\n'));
    const b = parse(yaml('sizes: [64KiB, 2KiB]\n'));
    expect(b.profileHash).not.toBe(a.profileHash);
  });
  it('covers the plan without source and profileHash', () => {
    const plan = parse(yaml());
    expect(computeProfileHash({ ...plan, source: 'other', profileHash: 'x' })).toBe(plan.profileHash);
    expect(computeProfileHash({ ...plan, seed: 2 })).not.toBe(plan.profileHash);
    // how fast the probes run is not part of the plan --resume compares
    expect(computeProfileHash({ ...plan, concurrency: plan.concurrency + 7 })).toBe(plan.profileHash);
  });
});

describe('shipped profiles', () => {
  it('all load', async () => {
    const files = (await readdir(SHIPPED_PROFILES_DIR)).filter((f) => f.endsWith('.yaml'));
    expect(files.sort()).toEqual(expect.arrayContaining(['demo.yaml', 'large-attachments.yaml', 'lb-vs-direct.yaml', 'verify-fix.yaml']));
    for (const f of files) {
      const plan = await loadProfile(join(SHIPPED_PROFILES_DIR, f), { env: {} });
      expect(plan.name, f).toBe(f.replace(/\.yaml$/, ''));
      expect(plan.targets.length, f).toBeGreaterThan(0);
    }
  });
  it('demo.yaml takes its addresses from the environment', async () => {
    const file = join(SHIPPED_PROFILES_DIR, 'demo.yaml');
    const byDefault = await loadProfile(file, { env: {} });
    expect(byDefault.targets[0]).toMatchObject({ host: '127.0.0.1', port: 2525, tls: 'none' });
    expect(byDefault.paths).toEqual([{ name: 'direct' }, { name: 'via-lb', relay: { host: '127.0.0.1', port: 2526, tls: 'none' } }]);
    expect(byDefault.sizes).toEqual([1, 16, 48, 64, 256, 1024, 4096].map((k) => k * 1024));
    expect([byDefault.repeat, byDefault.concurrency, byDefault.timeouts.stallMs]).toEqual([3, 8, 1500]);
    expect(byDefault.envelope).toEqual({ from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] });
    const lab = await loadProfile(file, { env: { MXPROBE_DEMO_HOST: '127.0.0.2', MXPROBE_DEMO_PORT: '40001', MXPROBE_DEMO_RELAY: '127.0.0.1:40002' } });
    expect(lab.targets[0]).toMatchObject({ host: '127.0.0.2', port: 40001 });
    expect(lab.paths[1]!.relay).toEqual({ host: '127.0.0.1', port: 40002, tls: 'none' });
    expect(lab.profileHash).not.toBe(byDefault.profileHash);
  });
  it('verify-fix.yaml carries its thresholds', async () => {
    const plan = await loadProfile(join(SHIPPED_PROFILES_DIR, 'verify-fix.yaml'), { env: {} });
    expect(plan.thresholds).toEqual([
      { source: 'stall_rate < 1%', metric: 'stall_rate', stat: 'rate', op: '<', value: 0.01 },
      { source: 'body: p95 < 5s', metric: 'body', stat: 'p95', op: '<', value: 5000 },
    ]);
  });
  it('lb-vs-direct.yaml compares two source addresses over sizes 1KiB..4MiB', async () => {
    const plan = await loadProfile(join(SHIPPED_PROFILES_DIR, 'lb-vs-direct.yaml'), { env: {} });
    expect(plan.paths.map((p) => p.name)).toEqual(['via-lb', 'direct']);
    expect(plan.paths.every((p) => p.localAddress !== undefined)).toBe(true);
    expect(plan.sizes[0]).toBe(1024);
    expect(plan.sizes.at(-1)).toBe(4 * 1024 * 1024);
  });
  it('large-attachments.yaml goes up to 32MiB on one path with long deadlines', async () => {
    const plan = await loadProfile(join(SHIPPED_PROFILES_DIR, 'large-attachments.yaml'), { env: {} });
    expect(plan.paths).toHaveLength(1);
    expect(plan.sizes.at(-1)).toBe(32 * 1024 * 1024);
    expect(plan.timeouts.bodyMs).toBeGreaterThan(DEFAULT_TIMEOUTS.bodyMs);
  });
});

describe('profileJsonSchema', () => {
  const schema = JSON.parse(JSON.stringify(profileJsonSchema())) as {
    $schema: string;
    properties: Record<string, { description?: string; default?: unknown; properties?: Record<string, { default?: unknown }> }>;
    required: string[];
    additionalProperties: boolean;
    patternProperties: Record<string, unknown>;
  };
  it('is JSON with every profile key, descriptions and defaults', () => {
    expect(schema.$schema).toMatch(/json-schema\.org/);
    expect(schema.properties.targets).toBeDefined();
    expect(Object.keys(schema.properties).sort()).toEqual(
      ['arrival', 'auth', 'capture', 'concurrency', 'dns', 'ehlo', 'envelope', 'insecure', 'name', 'paths', 'rate', 'repeat', 'seed', 'sizes', 'tcpSnapshotMin', 'thresholds', 'timeouts', 'tls', 'targets'].sort(),
    );
    expect(schema.required.sort()).toEqual(['envelope', 'name', 'targets']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.patternProperties).toHaveProperty('^x-');
    for (const [k, v] of Object.entries(schema.properties)) expect(v.description, k).toBeTruthy();
    expect(schema.properties.repeat!.default).toBe(3);
    expect(schema.properties.timeouts!.properties!.stall!.default).toBe('10s');
  });
  it('knows every top-level key the shipped profiles use', async () => {
    const { parse: parseYaml } = await import('yaml');
    const { readFile } = await import('node:fs/promises');
    for (const f of (await readdir(SHIPPED_PROFILES_DIR)).filter((x) => x.endsWith('.yaml'))) {
      const doc = parseYaml(await readFile(join(SHIPPED_PROFILES_DIR, f), 'utf8')) as Record<string, unknown>;
      for (const key of Object.keys(doc)) expect(schema.properties, `${f}: ${key}`).toHaveProperty(key);
    }
  });
});

describe('arrival:', () => {
  it('fills its defaults: INBOX and Junk, 5 minutes, delete', () => {
    const plan = parse(yaml('arrival: { imap: imaps://probe@imap.example.net, passEnv: IMAP_PASS }'));
    expect(plan.arrival).toEqual({ imap: 'imaps://probe@imap.example.net', passEnv: 'IMAP_PASS', folders: ['INBOX', 'Junk'], withinMs: 300_000, delete: true });
  });
  it('takes folders, within, delete and poll', () => {
    const plan = parse(yaml('arrival: { imap: "imap://p@127.0.0.1:1143", passEnv: P, folders: [INBOX, Spam], within: 90s, delete: false, poll: 500ms }'));
    expect(plan.arrival).toEqual({ imap: 'imap://p@127.0.0.1:1143', passEnv: 'P', folders: ['INBOX', 'Spam'], withinMs: 90_000, delete: false, pollMs: 500 });
  });
  it('refuses a password in the URL without echoing it, and an unknown scheme', () => {
    const err = fails(yaml('arrival: { imap: "imaps://probe:Hunter2x@imap.example.net", passEnv: P }'));
    expectIssue(err, 'arrival.imap', 'the IMAP URL carries a password');
    expect(err.message).not.toContain('Hunter2x');
    expectIssue(fails(yaml('arrival: { imap: "pop3://p@h", passEnv: P }')), 'arrival.imap', 'must start with imaps:// or imap://');
  });
});

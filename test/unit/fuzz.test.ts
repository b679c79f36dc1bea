/**
 * Bounded fuzzing (fast-check) of the two parsers that take hostile input: the SMTP reply parser (bytes from any
 * server) and the profile loader (text from any file). Neither may crash: the reply parser returns replies or
 * throws ProbeError EPROTOCOL; the profile loader returns a Plan or throws ProfileError.
 *
 * Each property runs a fixed number of cases from a fixed seed (reproducible; set MXPROBE_FUZZ_SEED to explore
 * other seeds) and stops early after its time budget on a slow machine, so the suite stays fast and never flaky.
 */
import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { ProbeError } from '../../src/probe/errors.js';
import { MAX_LINE_BYTES, MAX_REPLY_LINES, ReplyParser } from '../../src/probe/reply.js';
import { parseProfile, ProfileError } from '../../src/profile/index.js';
import type { SmtpReply } from '../../src/model.js';

const SEED = Number(process.env.MXPROBE_FUZZ_SEED ?? 20240917);
const budget = (numRuns: number) => ({ seed: SEED, numRuns, interruptAfterTimeLimit: 2500 });

// ------------------------------------------------------------------------------------------------ reply parser

/** Push chunks through a fresh parser; returns the replies, or the error it threw (which must be EPROTOCOL). */
function feed(chunks: Uint8Array[]): { replies: SmtpReply[]; error?: ProbeError } {
  const p = new ReplyParser();
  const replies: SmtpReply[] = [];
  for (const c of chunks) {
    try {
      const out = p.push(Buffer.from(c), 'ehlo');
      expect(Array.isArray(out)).toBe(true);
      replies.push(...out);
    } catch (err) {
      if (!(err instanceof ProbeError)) throw new Error(`not a ProbeError: ${String(err)}`, { cause: err });
      expect(err.code).toBe('EPROTOCOL');
      expect(err.stage).toBe('ehlo');
      expect(err.message.length).toBeGreaterThan(0);
      expect(err.message.length).toBeLessThan(300); // never echoes a megabyte of garbage
      return { replies, error: err };
    }
  }
  return { replies };
}

function checkReply(r: SmtpReply): void {
  expect(Number.isInteger(r.code)).toBe(true);
  expect(r.code).toBeGreaterThanOrEqual(200);
  expect(r.code).toBeLessThan(600);
  expect(typeof r.text).toBe('string');
  if (r.enhanced !== undefined) expect(r.enhanced).toMatch(/^[245]\.\d{1,3}\.\d{1,3}$/);
}

/** Split a buffer at the given (sorted, deduplicated) cut points. */
function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(buf.subarray(prev, p));
    prev = p;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** One valid SMTP reply: code, 1..n lines, optional enhanced code, text of printable / 8-bit bytes. */
const validReply = fc
  .record({
    code: fc.integer({ min: 200, max: 599 }),
    enhanced: fc.option(fc.tuple(fc.constantFrom(2, 4, 5), fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: 999 })), { nil: undefined }),
    lines: fc.array(
      fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((n) => String.fromCharCode(n)), maxLength: 120 }),
      { minLength: 1, maxLength: 8 },
    ),
    lf: fc.boolean(), // bare LF line ends are accepted too
  })
  .map(({ code, enhanced, lines, lf }) => {
    const eol = lf ? '\n' : '\r\n';
    const text = lines.map((l, i) => (i === 0 && enhanced ? `${enhanced.join('.')} ${l}` : l));
    const wire = text.map((l, i) => `${code}${i === text.length - 1 ? ' ' : '-'}${l}${eol}`).join('');
    return { code, lines: text, wire: Buffer.from(wire, 'latin1') };
  });

describe('fuzz: ReplyParser.push', () => {
  it('random bytes in random chunks: replies or EPROTOCOL, nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 600 }), { maxLength: 12 }), (chunks) => {
        const { replies } = feed(chunks);
        replies.forEach(checkReply);
      }),
      budget(3000),
    );
  });

  it('random bytes drawn mostly from SMTP-ish characters (digits, space, dash, CR, LF, NUL)', () => {
    const smtpish = fc.uint8Array({ maxLength: 400 }).map((a) => a.map((b) => [0x32, 0x35, 0x30, 0x20, 0x2d, 0x0d, 0x0a, 0x00, 0x34, 0x41, 0xff][b % 11]!));
    fc.assert(
      fc.property(fc.array(smtpish, { maxLength: 10 }), (chunks) => {
        feed(chunks).replies.forEach(checkReply);
      }),
      budget(3000),
    );
  });

  it('valid replies split at random points parse to exactly the same replies as whole', () => {
    fc.assert(
      fc.property(fc.array(validReply, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 20 }), (replies, cuts) => {
        const wire = Buffer.concat(replies.map((r) => r.wire));
        const whole = feed([wire]);
        const split = feed(splitAt(wire, cuts));
        expect(whole.error).toBeUndefined();
        expect(split.error).toBeUndefined();
        expect(split.replies).toEqual(whole.replies);
        expect(whole.replies.map((r) => r.code)).toEqual(replies.map((r) => r.code));
        expect(whole.replies.map((r) => r.text)).toEqual(replies.map((r) => r.lines.join('\n')));
        whole.replies.forEach(checkReply);
      }),
      budget(2000),
    );
  });

  it('valid replies with garbage spliced in: still only replies or EPROTOCOL', () => {
    fc.assert(
      fc.property(fc.array(validReply, { minLength: 1, maxLength: 4 }), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 50 }), fc.array(fc.nat(), { maxLength: 8 }), (replies, at, junk, cuts) => {
        const wire = Buffer.concat(replies.map((r) => r.wire));
        const i = at % (wire.length + 1);
        const bad = Buffer.concat([wire.subarray(0, i), Buffer.from(junk), wire.subarray(i)]);
        feed(splitAt(bad, cuts)).replies.forEach(checkReply);
      }),
      budget(2000),
    );
  });

  it('long lines: a line over the limit is EPROTOCOL whether or not it ever ends, however it is chunked', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: MAX_LINE_BYTES + 1, max: 3 * MAX_LINE_BYTES }),
        fc.boolean(),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 10 }),
        (len, ends, looksValid, cuts) => {
          const body = Buffer.alloc(len, 0x61);
          if (looksValid) body.write('250 ', 0, 'latin1');
          const wire = ends ? Buffer.concat([body, Buffer.from('\r\n')]) : body;
          const r = feed(splitAt(wire, cuts));
          expect(r.error?.message).toMatch(/longer than \d+ bytes/);
        },
      ),
      budget(300),
    );
  });

  it('a multiline reply that does not end within the line cap is EPROTOCOL', () => {
    fc.assert(
      fc.property(fc.integer({ min: MAX_REPLY_LINES, max: MAX_REPLY_LINES * 2 }), fc.array(fc.nat(), { maxLength: 10 }), (n, cuts) => {
        const wire = Buffer.from('250-x\r\n'.repeat(n), 'latin1');
        const r = feed(splitAt(wire, cuts));
        expect(r.error?.message).toMatch(/did not end within/);
        expect(r.replies).toEqual([]);
      }),
      budget(200),
    );
  });
});

// ------------------------------------------------------------------------------------------------ profile loader

/** Parse with an empty environment; returns the plan, or the ProfileError (anything else fails the property). */
function load(text: string): unknown {
  try {
    return parseProfile(text, 'fuzz.yaml', { env: { MXPROBE_SET: '25' } });
  } catch (err) {
    if (!(err instanceof ProfileError)) throw new Error(`not a ProfileError: ${String(err)}\n--- input ---\n${text.slice(0, 2000)}`, { cause: err });
    expect(err.issues.length).toBeGreaterThan(0);
    for (const i of err.issues) {
      expect(typeof i.message).toBe('string');
      expect(i.message.length).toBeGreaterThan(0);
    }
    expect(err.message.split('\n').every((l) => l.startsWith('fuzz.yaml'))).toBe(true);
    return err;
  }
}

const VALID = {
  name: 'fuzz',
  targets: [{ host: '127.0.0.1', port: 2525 }],
  paths: [{ name: 'direct' }, { name: 'lo2', localAddress: '127.0.0.2' }],
  sizes: ['1KiB', '64KiB'],
  repeat: 2,
  concurrency: 2,
  rate: '2/s',
  envelope: { from: 'probe@mxprobe.test', to: 'sink@mxprobe.test' },
  timeouts: { stall: '5s', body: '1m' },
  thresholds: ['body: p95 < 2s', 'stall_rate < 1%'],
};

/** Scalars and structures a profile might plausibly (or implausibly) hold. */
const value: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  any: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    tie('scalar'),
    fc.array(tie('any'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('host', 'port', 'name', 'mx', 'tls', 'relay', 'proxy', 'to', 'from', 'stall', 'passEnv', 'password')), tie('any'), { maxKeys: 4 }),
  ),
  scalar: fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.constantFrom(
      '64KiB', '1.5MiB', '-1', '0', '1e400', '99999999999999999999', '10s', '0ms', '2/s', '0/s', '${MXPROBE_SET}', '${NOPE}', '${', '$${x}',
      '127.0.0.1', '::1', '10.0.0.300', 'socks5://u:p@127.0.0.1:1080', 'http://[::1]:8080', 'relay:25', 'starttls', 'implicit',
      'body: p95 < 2s', 'stall_rate < 101%', 'NaN', 'Infinity', '', ' ', '\u0000', 'é', 'a@b', '@', 'x'.repeat(300),
    ),
  ),
})).any;

const KEYS = Object.keys(VALID) as Array<keyof typeof VALID>;

describe('fuzz: parseProfile', () => {
  it('random text: a Plan or a ProfileError', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), (text) => {
        load(text);
      }),
      budget(1500),
    );
  });

  it('YAML-ish text built from profile fragments: a Plan or a ProfileError', () => {
    const fragment = fc.constantFrom(
      'name: x\n', 'targets:\n', '  - host: 127.0.0.1\n', '  - {mx: example.net, allMx: true}\n', 'envelope: {from: a@b.c, to: d@e.f}\n',
      'sizes: [1KiB, 2KiB]\n', 'sizes: 1KiB\n', 'paths:\n', '  - name: a\n', '    relay: 127.0.0.1:25\n', '    proxy: socks5://h:1\n',
      'timeouts: {stall: 1s}\n', '&a x: 1\n', '*a\n', '<<: *a\n', '? complex\n', '- \n', ': :\n', '"unterminated\n', "'\n", '{[}]\n',
      '\t\n', '---\n', '...\n', '%YAML 1.2\n', '!!binary aGk=\n', '!tag x\n', 'x: &b [*b]\n', 'a: 1\na: 2\n', '  ', '# comment\n', '\uFEFF',
    );
    fc.assert(
      fc.property(fc.array(fragment, { maxLength: 14 }), (parts) => {
        load(parts.join(''));
      }),
      budget(1500),
    );
  });

  it('random structured documents dumped to YAML: a Plan or a ProfileError', () => {
    fc.assert(
      fc.property(value, (v) => {
        load(stringify(v));
      }),
      budget(1000),
    );
  });

  it('a valid profile with random keys replaced, added or removed: a Plan or a ProfileError', () => {
    const mutation = fc.record({
      replace: fc.dictionary(fc.constantFrom(...KEYS), value, { maxKeys: 3 }),
      remove: fc.subarray(KEYS, { maxLength: 3 }),
      add: fc.dictionary(fc.string({ maxLength: 10 }), value, { maxKeys: 2 }),
      deep: fc.option(fc.tuple(fc.constantFrom('targets', 'paths', 'envelope', 'timeouts'), fc.string({ maxLength: 10 }), value), { nil: undefined }),
    });
    fc.assert(
      fc.property(mutation, (m) => {
        const doc: Record<string, unknown> = structuredClone(VALID);
        for (const k of m.remove) delete doc[k];
        Object.assign(doc, m.replace, m.add);
        if (m.deep) {
          const [where, key, v] = m.deep;
          const target = doc[where];
          if (Array.isArray(target) && target[0] && typeof target[0] === 'object') (target[0] as Record<string, unknown>)[key] = v;
          else if (target && typeof target === 'object') (target as Record<string, unknown>)[key] = v;
        }
        load(stringify(doc));
      }),
      budget(1500),
    );
  });

  it('found by fuzzing: an alias inside the node it names is a ProfileError, not a stack overflow', () => {
    for (const text of ['x: &b [*b]\n', 'a: &m {self: *m}\n', 'name: &n\n  - *n\n']) {
      const err = load(text);
      expect(err).toBeInstanceOf(ProfileError);
      expect((err as ProfileError).message).toBe('fuzz.yaml: YAML error: an alias (*name) refers to a node that contains it; a profile cannot be cyclic');
    }
  });

  it('the valid base profile itself loads (the mutations start from a real plan)', () => {
    const plan = load(stringify(VALID));
    expect(plan).not.toBeInstanceOf(ProfileError);
  });
});

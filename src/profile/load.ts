/**
 * YAML profile → validated Plan. Order of work: YAML syntax → `${VAR}` interpolation → shape and units (zod schema)
 * → cross-field rules and defaults → profileHash. Each step reports every issue it finds, located in the file.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import type { Document } from 'yaml';
import type * as z from 'zod';
import { DEFAULT_TIMEOUTS } from '../model.js';
import type { ArrivalSpec, PathSpec, TargetSpec, Timeouts } from '../model.js';
import type { Plan } from './plan.js';
import { closest, formatPath, ProfileError, show } from './errors.js';
import { minMessageSize } from '../probe/message.js';
import type { ProfileIssue, RawIssue } from './errors.js';
import { interpolate } from './interpolate.js';
import type { Env } from './interpolate.js';
import { FieldError, toInt, toSize, MAX_SEED } from './fields.js';
import { formatDuration } from '../units.js';
import { stallWindowConflicts } from '../timeouts.js';
import { KNOWN_KEYS, ProfileSchema } from './schema.js';
import type { ProfileOutput } from './schema.js';

export interface LoadOptions {
  /** Variables for `${VAR}` interpolation. Default: `process.env`. */
  env?: Env;
}

/** Sizes used when a profile has no `sizes`. */
export const DEFAULT_SIZES: readonly number[] = Object.freeze([1024, 16 * 1024, 64 * 1024, 256 * 1024, 1024 * 1024]);
export const DEFAULT_REPEAT = 3;
export const DEFAULT_CONCURRENCY = 4;
export const DEFAULT_SEED = 1;

/** The `profiles/` folder shipped with mxprobe (next to `src/` and `dist/`). */
export const SHIPPED_PROFILES_DIR = fileURLToPath(new URL('../../profiles/', import.meta.url));

// ------------------------------------------------------------------------------------------------ locating

type Seg = string | number;

/** Line/column of the YAML node at `path` (of the key itself when `atKey`), or of its nearest existing parent. */
function locate(doc: Document, lc: LineCounter, path: Seg[], atKey: boolean): { line: number; column: number } | undefined {
  let node: unknown = doc.contents;
  let offset: number | undefined;
  let depth = 0;
  for (const seg of path) {
    let next: unknown;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
      if (pair) {
        next = pair.value;
        keyOffset = isScalar(pair.key) ? pair.key.range?.[0] : undefined;
      }
    } else if (isSeq(node) && typeof seg === 'number') {
      next = node.items[seg];
    }
    if (next === undefined && keyOffset === undefined) break;
    depth++;
    if (atKey && depth === path.length && keyOffset !== undefined) {
      offset = keyOffset;
      break;
    }
    node = next;
    const range = (next as { range?: [number, number, number] } | null)?.range;
    offset = range?.[0] ?? keyOffset ?? offset;
  }
  if (offset === undefined) return undefined; // nothing below the document root matched: no useful position
  const pos = lc.linePos(offset);
  return { line: pos.line, column: pos.col };
}

function located(doc: Document, lc: LineCounter, issues: Array<RawIssue & { atKey?: boolean }>): ProfileIssue[] {
  const out = issues.map((i) => ({ path: formatPath(i.path), message: i.message, ...locate(doc, lc, i.path, i.atKey ?? false) }));
  // document order; issues without a position keep their place at the end
  return out
    .map((issue, index) => ({ issue, index }))
    .sort((a, b) => (a.issue.line ?? Infinity) - (b.issue.line ?? Infinity) || a.index - b.index)
    .map((x) => x.issue);
}

// ----------------------------------------------------------------------------------------------- zod issues

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a map of key: value',
  record: 'a map of key: value',
};

const errorMap: z.core.$ZodErrorMap = (iss) => {
  switch (iss.code) {
    case 'invalid_type': {
      const what = TYPE_WORDS[iss.expected] ?? iss.expected;
      return iss.input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${show(iss.input)}`;
    }
    case 'invalid_value':
      return `expected one of ${iss.values.map(String).join(', ')}, got ${show(iss.input)}`;
    case 'too_small':
      return iss.origin === 'array' ? 'the list is empty' : undefined;
    default:
      return undefined;
  }
};

const SECRET_KEY = /^(pass|password|passwd|pwd|secret)$/i;

const WHERE: Record<string, string> = {
  '': 'at the top level',
  'targets[]': 'in an entry of targets:',
  'paths[]': 'in an entry of paths:',
  'paths[].relay': 'under a path relay:',
  envelope: 'under envelope:',
  auth: 'under auth:',
  arrival: 'under arrival:',
  timeouts: 'under timeouts:',
};

function unknownKeyMessage(parent: Seg[], key: string): string {
  if (SECRET_KEY.test(key)) {
    return (
      'secrets must not be written in a profile: put the password in an environment variable and name that ' +
      'variable with auth.passEnv (e.g. passEnv: SMTP_PASS)'
    );
  }
  const pattern = parent.map((s) => (typeof s === 'number' ? '[]' : s)).join('.').replace(/\.\[\]/g, '[]');
  const known = KNOWN_KEYS[pattern] ?? [];
  const guess = closest(key, known);
  if (guess) return `unknown key (did you mean "${guess}"?)`;
  for (const [other, keys] of Object.entries(KNOWN_KEYS)) {
    if (other === pattern) continue;
    const home = keys.find((k) => k.toLowerCase() === key.toLowerCase());
    if (home) return `unknown key ${WHERE[pattern] ?? 'here'}; "${home}" belongs ${WHERE[other]}`;
  }
  return `unknown key (expected one of: ${known.join(', ')})`;
}

/** A union branch that failed only because the value has another type (e.g. a string where a list was tried). */
function isTypeMismatch(branch: readonly z.core.$ZodIssue[]): boolean {
  return branch.length === 1 && branch[0]!.path.length === 0 && (branch[0]!.code === 'invalid_type' || branch[0]!.code === 'invalid_union');
}

function fromZod(issues: readonly z.core.$ZodIssue[], prefix: Seg[] = []): Array<RawIssue & { atKey?: boolean }> {
  const out: Array<RawIssue & { atKey?: boolean }> = [];
  for (const iss of issues) {
    const path = [...prefix, ...(iss.path as Seg[])];
    if (iss.code === 'invalid_union' && iss.errors.length > 0) {
      const branch = iss.errors.find((b) => !isTypeMismatch(b));
      if (branch) {
        out.push(...fromZod(branch, path));
        continue;
      }
    }
    if (iss.code === 'unrecognized_keys') {
      for (const key of iss.keys) out.push({ path: [...path, key], message: unknownKeyMessage(path, key), atKey: true });
      continue;
    }
    out.push({ path, message: iss.message });
  }
  return out;
}

// ------------------------------------------------------------------------------------------ cross-field rules

const hostLabel = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

function buildPlan(p: ProfileOutput, source: string, issues: RawIssue[]): Plan {
  const rootTls = p.tls ?? 'starttls';

  const targets: TargetSpec[] = p.targets.map((t, i) => {
    if (t.host !== undefined && t.mx !== undefined) {
      issues.push({ path: ['targets', i], message: 'give host: (one server) or mx: (a domain whose MX hosts are resolved), not both' });
    } else if (t.host === undefined && t.mx === undefined) {
      issues.push({ path: ['targets', i], message: 'missing host: or mx: (e.g. host: mail.example.com, or mx: example.com)' });
    }
    if (t.allMx !== undefined && t.mx === undefined) {
      issues.push({ path: ['targets', i, 'allMx'], message: 'allMx applies only with mx: (a domain whose MX hosts are probed)' });
    }
    const tls = t.tls ?? rootTls;
    if (t.port !== undefined && t.host?.port !== undefined && t.port !== t.host.port) {
      issues.push({ path: ['targets', i, 'port'], message: `port ${t.port} and the port in host (${t.host.port}) differ: give one` });
    }
    const port = t.port ?? t.host?.port ?? (tls === 'implicit' ? 465 : 25);
    const name = t.name ?? (t.host !== undefined ? hostLabel(t.host.host, port) : `mx:${t.mx ?? ''}`);
    const spec: TargetSpec = { name, port, tls };
    if (t.host !== undefined) spec.host = t.host.host;
    else if (t.mx !== undefined) spec.mx = t.mx;
    if (t.allMx) spec.allMx = true;
    if (t.family !== undefined) spec.family = t.family;
    if (t.fallback !== undefined) spec.fallback = t.fallback;
    return spec;
  });
  const seenTargets = new Map<string, number>();
  targets.forEach((t, i) => {
    const first = seenTargets.get(t.name!);
    if (first !== undefined) {
      issues.push({
        path: ['targets', i, ...(p.targets[i]!.name !== undefined ? ['name'] : [])],
        message: `duplicate target name "${t.name}" (also targets[${first}]); give each target a distinct name:`,
      });
    } else seenTargets.set(t.name!, i);
  });

  const paths: PathSpec[] = (p.paths ?? [{ name: 'direct' }]).map((q, i) => {
    if (q.proxy !== undefined && q.relay !== undefined) {
      issues.push({
        path: ['paths', i],
        message: 'proxy and relay cannot be combined: a relay is reached directly (optionally from localAddress); keep one of them',
      });
    }
    const spec: PathSpec = { name: q.name };
    if (q.localAddress !== undefined) spec.localAddress = q.localAddress;
    if (q.proxy !== undefined) spec.proxy = q.proxy;
    if (q.relay !== undefined) {
      const own = 'tls' in q.relay ? q.relay.tls : undefined;
      spec.relay = { host: q.relay.host, port: q.relay.port ?? 25, tls: own ?? rootTls };
    }
    return spec;
  });
  const seenPaths = new Map<string, number>();
  paths.forEach((q, i) => {
    const first = seenPaths.get(q.name);
    if (first !== undefined) issues.push({ path: ['paths', i, 'name'], message: `duplicate path name "${q.name}" (also paths[${first}])` });
    else seenPaths.set(q.name, i);
  });

  const t = p.timeouts ?? {};
  const timeouts: Timeouts = {
    dnsMs: t.dns ?? DEFAULT_TIMEOUTS.dnsMs,
    connectMs: t.connect ?? DEFAULT_TIMEOUTS.connectMs,
    commandMs: t.command ?? DEFAULT_TIMEOUTS.commandMs,
    dataMs: t.data ?? DEFAULT_TIMEOUTS.dataMs,
    bodyMs: t.body ?? DEFAULT_TIMEOUTS.bodyMs,
    dataAckMs: t.dataAck ?? DEFAULT_TIMEOUTS.dataAckMs,
    stallMs: t.stall ?? DEFAULT_TIMEOUTS.stallMs,
    noReplyMs: t.noReply ?? DEFAULT_TIMEOUTS.noReplyMs,
  };
  const tooShort = stallWindowConflicts(timeouts);
  if (tooShort.length > 0) {
    const stallText = `${formatDuration(timeouts.stallMs)}${t.stall === undefined ? ', the default' : ''}`;
    issues.push({
      path: t.stall !== undefined ? ['timeouts', 'stall'] : ['timeouts', tooShort[0]!.key],
      message:
        `the stall window (${stallText}) must be shorter than every stage deadline, but ` +
        tooShort.map((c) => `timeouts.${c.key} is ${formatDuration(c.ms)}`).join(', ') +
        '; lower timeouts.stall or raise the deadline',
    });
  }

  sizeIssues(p.sizes, p.envelope).forEach((x) => issues.push(x));

  const plan: Plan = {
    name: p.name,
    source,
    profileHash: '',
    targets,
    paths,
    sizes: sortSizes(p.sizes ?? [...DEFAULT_SIZES]),
    repeat: p.repeat ?? DEFAULT_REPEAT,
    envelope: { from: p.envelope.from, to: p.envelope.to },
    timeouts,
    concurrency: p.concurrency ?? DEFAULT_CONCURRENCY,
    seed: p.seed ?? DEFAULT_SEED,
  };
  if (p.auth) plan.auth = { user: p.auth.user, passEnv: p.auth.passEnv, ...(p.auth.method ? { method: p.auth.method } : {}) };
  if (p.arrival) plan.arrival = arrivalOf(p.arrival);
  if (p.rate !== undefined) plan.ratePerTarget = p.rate;
  if (p.insecure) plan.insecure = true;
  if (p.ehlo !== undefined) plan.ehloName = p.ehlo;
  if (p.dns !== undefined) plan.dnsServers = p.dns.servers;
  if (p.thresholds && p.thresholds.length > 0) plan.thresholds = p.thresholds;
  if (p.tcpSnapshotMin !== undefined) plan.tcpSnapshotMinBytes = p.tcpSnapshotMin;
  if (p.capture !== undefined) plan.captureDir = p.capture;
  plan.profileHash = computeProfileHash(plan);
  return plan;
}

/** The profile's `arrival:` with its defaults (INBOX and Junk, 5 min, delete). */
function arrivalOf(a: NonNullable<ProfileOutput['arrival']>): ArrivalSpec {
  const out: ArrivalSpec = { imap: a.imap, passEnv: a.passEnv, folders: a.folders ?? ['INBOX', 'Junk'], withinMs: a.within ?? 300_000, delete: a.delete ?? true };
  if (a.poll !== undefined) out.pollMs = a.poll;
  return out;
}

/** A probe id as long as the ones a run makes (`<runId>-<10 hex>`), for the size of the generated headers. */
const SAMPLE_PROBE_ID = '20000101T000000Z-0000-0000000000';

/** Sizes below the smallest generated message with these addresses, as issues at `sizes[i]` (so with its line). */
function sizeIssues(sizes: number[] | undefined, envelope: { from: string; to: string[] }): RawIssue[] {
  if (!sizes) return [];
  const min = Math.max(...[0, 0xffff_ffff].map((seed) => minMessageSize({ probeId: SAMPLE_PROBE_ID, seed, from: envelope.from, to: envelope.to })));
  return sizes.flatMap((size, i) =>
    size < min ? [{ path: ['sizes', i], message: `${size} bytes is below the smallest probe message with these addresses (${min} bytes, the headers alone): give at least ${min}` }] : [],
  );
}

const sortSizes = (sizes: number[]): number[] => [...new Set(sizes)].sort((a, b) => a - b);

// ---------------------------------------------------------------------------------------------------- hash

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

/** First 16 hex chars of sha256 over the canonical (sorted-keys) JSON of the plan without `source`/`profileHash`. */
/**
 * What `--resume` compares: the plan without where it came from, and without `concurrency` and `transcript`,
 * which change how fast the probes run and what is recorded, not which probes or what they send.
 */
export function computeProfileHash(plan: Plan): string {
  const { source: _source, profileHash: _hash, concurrency: _concurrency, transcript: _transcript, ...rest } = plan;
  return createHash('sha256').update(JSON.stringify(canonical(rest))).digest('hex').slice(0, 16);
}

// ------------------------------------------------------------------------------------------------- loading

/** True when a value from YAML contains itself (through an alias). */
function isCyclic(v: unknown, open: Set<object> = new Set()): boolean {
  if (v === null || typeof v !== 'object') return false;
  if (open.has(v)) return true;
  open.add(v);
  const kids = v instanceof Map ? [...v.keys(), ...v.values()] : v instanceof Set ? [...v] : Object.values(v);
  const found = kids.some((k) => isCyclic(k, open));
  open.delete(v);
  return found;
}

/** Parse and validate profile text. `source` names the file in messages. Throws ProfileError listing every issue. */
export function parseProfile(text: string, source: string, opts: LoadOptions = {}): Plan {
  if (text.length > MAX_PROFILE_BYTES) throw new ProfileError(source, [{ path: '', message: tooLarge(`${text.length} characters`) }]);
  const env = opts.env ?? process.env;
  const lc = new LineCounter();
  const doc = parseDocument(text.replace(/^\uFEFF/, ''), { lineCounter: lc, prettyErrors: true, merge: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    // one error per line: the later ones on a line are usually consequences of the first
    const seen = new Set<number | undefined>();
    const issues: ProfileIssue[] = [];
    for (const e of doc.errors) {
      const line = e.linePos?.[0].line;
      if (seen.has(line)) continue;
      seen.add(line);
      const first = e.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      issues.push({ path: '', message: `YAML syntax error: ${first}`, line, column: e.linePos?.[0].col });
    }
    throw new ProfileError(source, issues);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ProfileError(source, [{ path: '', message: `YAML error: ${(err as Error).message}` }]);
  }
  // an alias inside the node it names (`x: &a [*a]`) gives a cyclic value that would recurse forever below
  // (found by test/unit/fuzz.test.ts)
  if (isCyclic(value)) {
    throw new ProfileError(source, [{ path: '', message: 'YAML error: an alias (*name) refers to a node that contains it; a profile cannot be cyclic' }]);
  }
  if (value === null || value === undefined) {
    throw new ProfileError(source, [{ path: '', message: 'the profile is empty (expected keys such as name:, targets:, envelope:)' }]);
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw new ProfileError(source, [
      { path: '', message: `expected a YAML map of keys (name:, targets:, envelope:, …) at the top level, got ${show(value)}`, line: 1, column: 1 },
    ]);
  }
  // `x-…` keys at the top level are the user's (anchors to reuse with *alias); they are not part of the plan
  const root: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) if (!k.startsWith('x-')) root[k] = v;

  const raw: RawIssue[] = [];
  const resolved = interpolate(root, env, raw);
  if (raw.length > 0) throw new ProfileError(source, located(doc, lc, raw));

  const parsed = ProfileSchema.safeParse(resolved, { reportInput: true, error: errorMap });
  if (!parsed.success) throw new ProfileError(source, located(doc, lc, fromZod(parsed.error.issues)));

  const plan = buildPlan(parsed.data, source, raw);
  if (raw.length > 0) throw new ProfileError(source, located(doc, lc, raw));
  return plan;
}

/** The largest profile read (bytes): a profile is a page of YAML; above this it is refused before parsing. */
export const MAX_PROFILE_BYTES = 1024 * 1024;

const tooLarge = (what: string): string =>
  `the profile is ${what}, above the limit of ${MAX_PROFILE_BYTES / 1024 / 1024} MiB: a profile is a page of YAML (is this the right file?)`;

/** At most `max + 1` bytes of a file (a device such as /dev/zero never ends: its size is not what stat says). */
async function readHead(file: string, max: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    if (st.isFile() && st.size > max) return Buffer.alloc(max + 1);
    const buf = Buffer.alloc(max + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, null);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** Read and validate a profile file. A missing or unreadable file is a ProfileError too; so is one above MAX_PROFILE_BYTES. */
export async function loadProfile(file: string, opts: LoadOptions = {}): Promise<Plan> {
  let text: string;
  try {
    const head = await readHead(file, MAX_PROFILE_BYTES);
    if (head.length > MAX_PROFILE_BYTES) throw new ProfileError(file, [{ path: '', message: tooLarge('larger than that') }]);
    text = head.toString('utf8');
  } catch (err) {
    if (err instanceof ProfileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const message =
      code === 'ENOENT'
        ? `no such profile file (the example profiles shipped with mxprobe are in ${SHIPPED_PROFILES_DIR}; copy one and edit it)`
        : code === 'EISDIR'
          ? 'is a directory, expected a profile file (.yaml)'
          : code === 'EACCES' || code === 'EPERM'
            ? 'cannot read the profile: permission denied'
            : `cannot read the profile: ${(err as Error).message}`;
    throw new ProfileError(file, [{ path: '', message }]);
  }
  return parseProfile(text, file, opts);
}

// ----------------------------------------------------------------------------------------------- overrides

export interface PlanOverrides {
  sizes?: number[];
  paths?: string[];
  repeat?: number;
  concurrency?: number;
  seed?: number;
}

/**
 * A copy of `plan` with command-line overrides applied (and profileHash recomputed). `paths` selects paths by name,
 * in the order given; an unknown name is a ProfileError naming the known ones.
 */
export function applyOverrides(plan: Plan, o: PlanOverrides): Plan {
  const source = plan.source ?? `profile ${plan.name}`;
  const issues: ProfileIssue[] = [];
  const check = <T>(path: string, fn: () => T): T | undefined => {
    try {
      return fn();
    } catch (err) {
      if (err instanceof FieldError) {
        issues.push({ path, message: err.message });
        return undefined;
      }
      throw err;
    }
  };
  const next: Plan = { ...plan };
  if (o.sizes !== undefined) {
    if (o.sizes.length === 0) issues.push({ path: 'sizes', message: 'the override lists no size' });
    const sizes = o.sizes.map((s) => check('sizes', () => toSize(s)));
    if (sizes.every((s): s is number => s !== undefined)) {
      for (const x of sizeIssues(sizes, plan.envelope)) issues.push({ path: 'sizes', message: x.message });
      next.sizes = sortSizes(sizes);
    }
  }
  if (o.paths !== undefined) {
    const known = plan.paths.map((q) => q.name);
    if (o.paths.length === 0) issues.push({ path: 'paths', message: `the override selects no path (the profile defines: ${known.join(', ')})` });
    const chosen: PathSpec[] = [];
    for (const name of o.paths) {
      const q = plan.paths.find((x) => x.name === name);
      if (!q) {
        const guess = closest(name, known);
        issues.push({
          path: 'paths',
          message: `unknown path "${name}"${guess ? ` (did you mean "${guess}"?)` : ''}; the profile defines: ${known.join(', ')}`,
        });
      } else if (!chosen.includes(q)) chosen.push(q);
    }
    next.paths = chosen;
  }
  if (o.repeat !== undefined) next.repeat = check('repeat', () => toInt(o.repeat!, 'a whole number of probes', 1)) ?? plan.repeat;
  if (o.concurrency !== undefined) {
    next.concurrency = check('concurrency', () => toInt(o.concurrency!, 'a whole number of probes in flight', 1)) ?? plan.concurrency;
  }
  if (o.seed !== undefined) next.seed = check('seed', () => toInt(o.seed!, 'a whole number', 0, MAX_SEED)) ?? plan.seed;
  if (issues.length > 0) throw new ProfileError(source, issues);
  next.profileHash = computeProfileHash(next);
  return next;
}

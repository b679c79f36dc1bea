/**
 * Plan → probe specs: one per (path, target, size, repeat), in a seeded, interleaved order. Pure functions.
 *
 * Order: the run is cut into rounds, one per repeat; every round holds each cell (path × target × size) once,
 * in an order shuffled from `plan.seed`. So cells are interleaved in time (network drift hits every cell alike,
 * not one path after another), and a run stopped early has nearly the same number of probes in every cell.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ProbeResult, ProbeSpec, TargetSpec } from '../model.js';
import type { Plan } from '../profile/plan.js';
import { mulberry32 } from '../prng.js';

/** A probe spec as the runner schedules it: the spec plus where it sits in the plan. */
export interface PlannedProbe extends ProbeSpec {
  runId: string;
  /** `path|target|size|repeat`: what `--resume` matches on; written on the result line. */
  key: string;
  /** 0-based repeat index within the cell. */
  repeat: number;
  /** Position in the run's order (0-based). */
  order: number;
  /** Target label, as in results: `TargetSpec.name`, `host:port` or `mx:domain`. */
  targetLabel: string;
}

// the probe engine's label, so keys and result lines agree
export { targetLabel } from '../probe/session.js';
import { targetLabel } from '../probe/session.js';

/**
 * The key of a probe: `path|target|size|repeat`. For a spec from `expandPlan` or a result line written by the
 * runner (which carries `key`); `undefined` for a result without one (written by something else).
 */
export function probeKey(x: PlannedProbe | ProbeResult | { key?: string }): string | undefined;
export function probeKey(x: { key?: string }): string | undefined {
  return typeof x.key === 'string' && x.key ? x.key : undefined;
}

/** Build a key from its parts (path and target names cannot contain `|`). */
export function makeKey(path: string, target: string, sizeBytes: number, repeat: number): string {
  return `${path}|${target}|${sizeBytes}|${repeat}`;
}

/** Sortable, filesystem-safe run id: `20261123T181500Z-ab12` (UTC second + 4 random hex digits). */
export function newRunId(now: Date = new Date()): string {
  const iso = now.toISOString(); // 2026-11-23T18:15:00.123Z
  const stamp = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}T${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** mulberry32 as floats in [0, 1): small, fast, good enough for shuffling; deterministic from a 32-bit seed. */
export function prng(seed: number): () => number {
  const next = mulberry32(seed);
  return () => next() / 4294967296;
}

/** Fisher–Yates in place with the given random source. */
export function shuffleInPlace<T>(xs: T[], rnd: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const tmp = xs[i]!;
    xs[i] = xs[j]!;
    xs[j] = tmp;
  }
  return xs;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** The message seed of one probe: a 32-bit number from the plan seed and the probe's key. */
export function probeSeed(planSeed: number, key: string): number {
  return digest(`${planSeed >>> 0}\u0000${key}`).readUInt32BE(0);
}

/**
 * Probe id: `<runId>-<10 hex digits of sha256(key)>`. Derived from the key, not from the position, so ids
 * stay the same when a run is resumed, and the sink can join its records to results by id.
 */
export function probeIdFor(runId: string, key: string): string {
  return `${runId}-${digest(key).toString('hex').slice(0, 10)}`;
}

/**
 * One spec per (path, target, size, repeat), in the run's order (see the file comment). Targets are taken as
 * given: MX targets with `allMx` must be expanded before (`expandMxTargets`).
 */
export function expandPlan(plan: Plan, opts: { runId: string }): PlannedProbe[] {
  const { runId } = opts;
  const cells: Array<{ path: Plan['paths'][number]; target: TargetSpec; label: string; sizeBytes: number }> = [];
  for (const target of plan.targets) {
    const label = targetLabel(target);
    for (const path of plan.paths) for (const sizeBytes of plan.sizes) cells.push({ path, target, label, sizeBytes });
  }
  const rnd = prng(plan.seed);
  const out: PlannedProbe[] = [];
  for (let repeat = 0; repeat < plan.repeat; repeat++) {
    const round = shuffleInPlace(cells.slice(), rnd);
    for (const c of round) {
      const key = makeKey(c.path.name, c.label, c.sizeBytes, repeat);
      const spec: PlannedProbe = {
        probeId: probeIdFor(runId, key),
        runId,
        key,
        repeat,
        order: out.length,
        targetLabel: c.label,
        target: c.target,
        path: c.path,
        sizeBytes: c.sizeBytes,
        seed: probeSeed(plan.seed, key),
        envelope: plan.envelope,
        timeouts: plan.timeouts,
      };
      if (plan.auth) spec.auth = plan.auth;
      if (plan.ehloName !== undefined) spec.ehloName = plan.ehloName;
      if (plan.dnsServers) spec.dnsServers = plan.dnsServers;
      if (plan.insecure !== undefined) spec.insecure = plan.insecure;
      if (plan.tcpSnapshotMinBytes !== undefined) spec.tcpSnapshotMinBytes = plan.tcpSnapshotMinBytes;
      if (plan.captureDir !== undefined) spec.captureDir = plan.captureDir;
      if (plan.transcript) spec.transcript = true;
      out.push(spec);
    }
  }
  return out;
}

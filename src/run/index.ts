/**
 * The runner: a Plan → scheduled probes (concurrency, per-target rate, interleaved order) → a JSONL results
 * file, with resume and a graceful stop. Prints nothing: it emits events (`RunEvents`) that the CLI's progress
 * display, exporters or tests subscribe to.
 *
 * Scheduling: probes start in the run's order (`expandPlan`) while fewer than `plan.concurrency` are in flight.
 * With `plan.ratePerTarget`, starts to one target are spaced by at least 1/rate seconds; while the next probe's
 * target must wait, the next ready probe to another target starts instead (order kept within each target).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { clockMs } from '../clock.js';
import type { Arrival, PathSpec, ProbeResult, ProbeSpec, Stage } from '../model.js';
import { acceptedAtOf, arrivalLine } from '../arrival/record.js';
import { openArrival, type ArrivalCheck } from './arrival.js';
import type { Plan } from '../profile/plan.js';
import type { CaptureSession } from '../probe/capture.js';
import { RunError } from './errors.js';
import { expandPlan, newRunId, type PlannedProbe } from './expand.js';
import { ResultsWriter, readResultsFile, type ResultsFile } from './jsonl.js';
import { expandMxTargets, type ResolveMx } from './mx.js';
import { guardPlan } from '../probe/guards.js'; // real-target safety rules (issue 9)
import { parseProxyUrl } from '../probe/egress.js';
import { MAX_WORKERS } from './worker-wire.js';
import type { ProbePool } from './workers.js'; // loaded only for a run with workers: it loads the engine

export { RunError, type RunErrorCode } from './errors.js';
export {
  expandPlan,
  makeKey,
  newRunId,
  probeIdFor,
  probeKey,
  probeSeed,
  prng,
  shuffleInPlace,
  targetLabel,
  type PlannedProbe,
} from './expand.js';
export { ResultsWriter, readResultsFile, type ResultsFile } from './jsonl.js';
export { expandMxTargets, type ResolveMx } from './mx.js';
export { slimResult } from './slim.js';
export { MAX_WORKERS } from './worker-wire.js';

/** What the runner hands the probe engine (structurally the engine's `ProbeOptions`). */
export interface RunProbeOptions {
  signal?: AbortSignal;
  onStage?: (e: { probeId: string; stage: Stage; tMs: number }) => void;
  capture?: CaptureSession;
}
export type ProbeFn = (spec: ProbeSpec, opts?: RunProbeOptions) => Promise<ProbeResult>;
export type ValidateFn = (spec: ProbeSpec) => void;

/** Events of a run, by name → payload. */
export interface RunEvents {
  /** Problems that do not stop the run (e.g. a torn last line dropped on resume). */
  'run:warning': { message: string };
  /** After the checks (specs valid, results file writable), before the first probe. */
  'run:start': {
    runId: string;
    /** Probes in the whole plan (including those skipped because they were already recorded). */
    total: number;
    /** Probes already in the results file (resume). */
    skipped: number;
    /** Probes this run will send: total − skipped. */
    pending: number;
    out: string;
    profileHash: string;
    concurrency: number;
    /** Threads the probes run in: 1 = this thread; more = worker threads (`RunOptions.workers`). */
    workers: number;
    ratePerTarget?: number;
    /** Labels of the targets (after `allMx` expansion), paths and sizes of the plan. */
    targets: string[];
    paths: string[];
    sizes: number[];
    repeat: number;
    /** True when this continues a run recorded in `out`. */
    resumed: boolean;
  };
  'probe:start': { spec: PlannedProbe; inFlight: number };
  /**
   * A stage of a probe began. Heard for the probes started while someone listens: the engine is asked for its
   * stages only then (with `workers`, each one is a message from the probe's thread).
   */
  'probe:stage': { probeId: string; stage: Stage; tMs: number };
  /** A probe finished and its line is written. `done` counts skipped probes too (done/total is progress). */
  'probe:end': { result: ProbeResult; spec: PlannedProbe; done: number; total: number };
  /** Every probe is recorded and `waiting` arrival look-ups still go on: the run ends when they do. */
  'run:arrivals': { waiting: number };
  /** The IMAP look-up of an accepted probe ended (found or not) and its arrival record is written. */
  'probe:arrival': { result: ProbeResult; arrival: Arrival };
  /** A probe ended by the stop (not a measurement; not written; `--resume` runs it again). */
  'probe:dropped': { spec: PlannedProbe; reason: 'aborted' | 'abandoned' };
  /** The stop signal arrived: no new probes; `inFlight` probes get `graceMs` to finish. */
  'run:stopping': { inFlight: number; graceMs: number };
  'run:end': { runId: string; results: ProbeResult[]; interrupted: boolean; out: string };
}

/** An EventEmitter typed with `RunEvents` (listeners receive the payload object). */
export type RunEmitter = EventEmitter<{ [K in keyof RunEvents]: [RunEvents[K]] }>;

export function createRunEmitter(): RunEmitter {
  return new EventEmitter() as RunEmitter;
}

export interface RunOptions {
  /** Results file (JSONL). Created with its folder; appended to. */
  out: string;
  /** Continue the run recorded in `out`: same runId, skip the probes already there, append. */
  resume?: boolean;
  /** With `resume`: append even when the file was written by another plan (another profile hash); else ERESUME. */
  resumeOtherPlan?: boolean;
  /** Abort = stop: no new probes; in-flight ones get `graceMs` to finish, then are ended and dropped. */
  signal?: AbortSignal;
  /** Abort = end the in-flight probes now (a second Ctrl-C). */
  abandonSignal?: AbortSignal;
  /** Default 2000. */
  graceMs?: number;
  /** After in-flight probes are told to abort, how long to wait for them before giving up on them. Default 1000. */
  settleMs?: number;
  /** The probe engine (default: `probe` from `src/probe`). */
  probeFn?: ProbeFn;
  /**
   * Threads the probes run in (default 1: this one). N > 1 spreads them over min(N, concurrency, probes to send)
   * worker threads, each with an engine of its own (`openProbePool`, src/run/workers.ts), started after the checks
   * and ended with the run; scheduling, the results file and the events stay here, in this thread. It helps when
   * this thread is the limit (many probes in flight, the receiver elsewhere); on one box with the receiver it takes
   * CPU from the receiver. Not with `probeFn` (give `openProbePool(…).probeFn` as `probeFn` instead).
   */
  workers?: number;
  /** Spec validation, called for every spec before anything is sent (default: `validateSpec` from `src/probe`). */
  validate?: ValidateFn;
  /** MX lookup for `allMx` targets (default: `dns.promises.resolveMx`). */
  resolveMx?: ResolveMx;
  emitter?: EventEmitter;
  /**
   * Packet capture of stalled probes. Default: when the plan has `captureDir`, one run-wide tcpdump is started
   * before the first probe and stopped at the end; `false` never captures; a session is used as given.
   */
  capture?: CaptureSession | false;
  /**
   * Keep every result in `RunSummary.results` (default true). False keeps memory flat over long runs:
   * `results` is then empty, and subscribers of `probe:end` keep what they need (e.g. `slimResult` copies).
   */
  keepResults?: boolean;
  /** Check that every path's `localAddress` can be bound before sending anything (default true). */
  checkBind?: boolean;
  /** Run id for a new run (default: `newRunId()`); with `resume`, must match the file's when given. */
  runId?: string;
  /**
   * The arrival check (plan `arrival:`): default, one IMAP connection opened before the first probe and closed at
   * the end; `false` never looks; a check is used as given (and not closed).
   */
  arrival?: ArrivalCheck | false;
  /**
   * Real targets (src/probe/guards.ts): allow a plan rate above 1/s per target, and set `force` on every probe
   * (send even above the SIZE a real target advertises).
   */
  force?: boolean;
}

export interface RunSummary {
  runId: string;
  out: string;
  profileHash: string;
  /** Results of the probes sent by this call, in the order they finished (empty with `keepResults: false`). */
  results: ProbeResult[];
  /** Probes recorded by this call (= results.length unless `keepResults` is false). */
  recorded: number;
  /** With `resume`: the results already in the file (valid lines), before this call. */
  previous: ProbeResult[];
  /** True when the stop signal ended the run before every probe was sent. */
  interrupted: boolean;
  /** Probes skipped because the file already had them. */
  skipped: number;
  /** Probes in the plan. */
  total: number;
  /** Probes ended by the stop and not recorded (run again by `--resume`). */
  dropped: number;
  /** Probes never started because of the stop. */
  notStarted: number;
  warnings: string[];
}

/** The most probes a plan may have without `force` (`run --force`): a typo such as `repeat: 10000` is not a run. */
export const MAX_PLAN_PROBES = 10_000;

/** Why a plan is refused for its size (targets × paths × sizes × repeat above MAX_PLAN_PROBES), or undefined. */
export function planSizeRefusal(plan: Pick<Plan, 'targets' | 'paths' | 'sizes' | 'repeat'>, force: boolean): string | undefined {
  const n = plan.targets.length * plan.paths.length * plan.sizes.length * plan.repeat;
  if (force || n <= MAX_PLAN_PROBES) return undefined;
  return (
    `the plan has ${n} probes (${plan.targets.length} targets x ${plan.paths.length} paths x ${plan.sizes.length} sizes x repeat ${plan.repeat}), ` +
    `above the limit of ${MAX_PLAN_PROBES}: lower repeat: or the sizes, or add --force if you mean it`
  );
}

/** The TCP ports the probes of a plan connect to (targets, relays, proxies): the capture filter. */
export function planPorts(plan: Plan): number[] {
  const ports = new Set<number>();
  for (const t of plan.targets) ports.add(t.port);
  for (const p of plan.paths) {
    if (p.relay) ports.add(p.relay.port);
    if (p.proxy) ports.add(parseProxyUrl(p.proxy).port);
  }
  return [...ports].sort((a, b) => a - b);
}

async function openCapture(plan: Plan): Promise<CaptureSession> {
  const { startCapture } = await import('../probe/capture.js');
  try {
    return await startCapture({ dir: plan.captureDir!, filter: planPorts(plan).map((p) => `tcp port ${p}`).join(' or ') });
  } catch (err) {
    throw new RunError('ECAPTURE', `capture (${plan.captureDir}): ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Every path's source address must be an address of this machine, or every probe over it would fail at
 * connect: check by binding a listening socket to it (port 0) before anything is sent.
 */
export async function checkLocalAddresses(paths: readonly PathSpec[]): Promise<void> {
  const seen = new Set<string>();
  for (const p of paths) {
    const addr = p.localAddress;
    if (!addr || seen.has(addr)) continue;
    seen.add(addr);
    await new Promise<void>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', (err: NodeJS.ErrnoException) => {
        const why =
          err.code === 'EADDRNOTAVAIL'
            ? `it is not an address of this machine (EADDRNOTAVAIL); configure it (ip addr add ${addr}/${net.isIPv6(addr) ? 128 : 32} dev <interface>) or fix localAddress in the profile`
            : err.code === 'EACCES' || err.code === 'EPERM'
              ? `permission denied (${err.code})`
              : `${err.code ?? ''} ${err.message}`.trim();
        reject(new RunError('EBIND', `path ${p.name}: cannot bind source address ${addr}: ${why}`, { cause: err }));
      });
      srv.listen({ port: 0, host: addr, exclusive: true }, () => srv.close(() => resolve()));
    });
  }
}

type EngineModule = { probe: ProbeFn; validateSpec: ValidateFn };
let engine: Promise<EngineModule> | undefined;
/** The real engine, loaded on first use (so expanding or reading results does not load it). */
function loadEngine(): Promise<EngineModule> {
  engine ??= import('../probe/index.js').then((m): EngineModule => ({ probe: m.probe, validateSpec: m.validateSpec }));
  return engine;
}

function isAbortError(err: unknown): boolean {
  return !!err && typeof err === 'object' && ((err as Error).name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}

function describeSpec(s: PlannedProbe): string {
  return `path ${s.path.name}, target ${s.targetLabel}, size ${s.sizeBytes}`;
}

/**
 * Check the specs before anything is sent: one per cell (the probes of a cell differ only in probe id and
 * seed, which no check depends on). Errors are grouped by message (a missing secret fails every cell alike)
 * and thrown as one `RunError` (`EINPUT`) naming the first cell each applies to.
 */
function validateAll(all: PlannedProbe[], validate: ValidateFn): void {
  const specs = all.filter((s) => s.repeat === 0);
  const problems = new Map<string, { first: PlannedProbe; count: number }>();
  for (const s of specs) {
    try {
      validate(s);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      const p = problems.get(msg);
      if (p) p.count++;
      else problems.set(msg, { first: s, count: 1 });
    }
  }
  if (problems.size === 0) return;
  const lines = [...problems].map(([msg, p]) =>
    p.count === specs.length ? msg : `${msg} (${describeSpec(p.first)}${p.count > 1 ? `, and ${p.count - 1} more cell${p.count > 2 ? 's' : ''}` : ''})`,
  );
  throw new RunError('EINPUT', lines.length === 1 ? `nothing sent: ${lines[0]}` : `nothing sent:\n  ${lines.join('\n  ')}`);
}

/** Resume: read the file, check it belongs to this plan, and find what to skip. */
function prepareResume(file: string, plan: Plan, runId: string | undefined, warn: (m: string) => void, allowOtherPlan: boolean): { rf: ResultsFile; runId?: string } {
  const rf = readResultsFile(file);
  if (rf.truncated) {
    warn(`${file}: line ${rf.truncated.line} is incomplete (${rf.truncated.droppedBytes} bytes, a write cut short); it is dropped and that probe runs again`);
  }
  if (rf.results.length === 0) return { rf, runId };
  // The hash covers what is probed and sent (not concurrency): another hash is another plan, and appending it
  // would mix two plans in one file. Refused unless the caller allows it (`mxprobe run --resume … --force`).
  const foreign = rf.profileHashes.filter((h) => h !== plan.profileHash);
  if (foreign.length > 0) {
    const what = `${file} was written with a different plan (profile hash ${foreign.join(', ')}; now ${plan.profileHash})`;
    if (!allowOtherPlan) {
      throw new RunError(
        'ERESUME',
        `${what}: resuming would mix two plans in one file. Give the profile and the overrides (--sizes, --paths, --repeat, --seed) of the run that wrote it — its "finish with:" line has them — or --force to append anyway`,
      );
    }
    warn(`${what}: appending anyway (--force); probes are matched by path|target|size|repeat; new lines carry the new hash`);
  }
  if (rf.unkeyed > 0) warn(`${file}: ${rf.unkeyed} line(s) have no probe key (not written by mxprobe run); they cannot be matched and are not skipped`);
  if (runId !== undefined && rf.runId !== undefined && rf.runId !== runId) {
    throw new RunError('ERESUME', `cannot resume ${file} as run ${runId}: the file holds run ${rf.runId}`);
  }
  return { rf, runId: rf.runId ?? runId };
}

/**
 * Run a plan. Resolves when every probe is recorded, or after a stop (`signal`) with what finished. Rejects
 * before sending anything when a spec is invalid (`EINPUT`), the results file is not writable (`EOUTPUT`), an
 * `allMx` domain cannot be listed (`EDNS`) or the resume file is unusable (`ERESUME`); rejects during the run
 * only when a line cannot be written, the engine fails in an unexpected way, or a subscriber throws (the run
 * then stops, and every probe that finished is in the file).
 */
export async function runPlan(plan: Plan, opts: RunOptions): Promise<RunSummary> {
  const emitter = (opts.emitter ?? new EventEmitter()) as RunEmitter;
  const graceMs = opts.graceMs ?? 2000;
  const settleMs = opts.settleMs ?? 1000;
  const warnings: string[] = [];
  const warn = (message: string): void => {
    warnings.push(message);
    emitter.emit('run:warning', { message });
  };

  // --- checks, before anything is sent -------------------------------------------------------------------
  let runId = opts.runId;
  let previous: ProbeResult[] = [];
  let truncateTo: number | undefined;
  const recorded = new Set<string>();
  if (opts.resume) {
    const r = prepareResume(opts.out, plan, runId, warn, !!opts.resumeOtherPlan);
    runId = r.runId;
    previous = r.rf.results;
    if (r.rf.truncated) truncateTo = r.rf.truncated.validBytes;
    for (const p of previous) if (typeof p.key === 'string') recorded.add(p.key);
  }
  runId ??= newRunId();

  const targets = await expandMxTargets(plan.targets, opts.resolveMx);
  // real-target safety (src/probe/guards.ts): at most 1 probe/s per real target when the plan sets no rate; a
  // higher plan rate to a real target needs `force`. Lab-only plans (loopback, 198.18/15) are left as they are.
  const resolveMx = opts.resolveMx;
  const guard = await guardPlan({ ...plan, targets }, { force: !!opts.force, resolver: resolveMx ? { resolveMx: async (d) => (await resolveMx(d)).map((m) => m.exchange) } : {} });
  if (guard.policy.refused) throw new RunError('EINPUT', `nothing sent: ${guard.policy.refused}`);
  if (guard.policy.defaulted) {
    plan = { ...plan, ratePerTarget: guard.plan.ratePerTarget }; // the profile hash stays the profile's
    const t = guard.policy.real[0]!;
    warn(`target ${t.label} is a real server (${t.reason}): at most ${plan.ratePerTarget}/s per target (set rate: in the profile to change it)`);
  }
  const tooMany = planSizeRefusal({ ...plan, targets }, !!opts.force);
  if (tooMany) throw new RunError('EINPUT', `nothing sent: ${tooMany}`);
  const specs = expandPlan({ ...plan, targets }, { runId });
  if (opts.force) for (const s of specs) s.force = true; // real-target guard override (guards.ts, `run --force`)
  const validate = opts.validate ?? (await loadEngine()).validateSpec;
  validateAll(specs, validate);
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new RunError('EINPUT', `nothing sent: workers: expected a whole number from 1 to ${MAX_WORKERS}, got ${workers}`);
  }
  if (workers > 1 && opts.probeFn) throw new TypeError('runPlan: workers > 1 runs the built-in engine in worker threads; with probeFn, give openProbePool(…).probeFn as probeFn instead');
  let probeFn = opts.probeFn ?? (await loadEngine()).probe;
  if (opts.checkBind !== false) await checkLocalAddresses(plan.paths);

  const todo = specs.filter((s) => !recorded.has(s.key));
  const skipped = specs.length - todo.length;
  const total = specs.length;
  const ownArrival = opts.arrival === undefined && !!plan.arrival && todo.length > 0;
  const arrival = opts.arrival || (ownArrival ? await openArrival(plan.arrival!) : undefined);
  let writer: ResultsWriter;
  try {
    writer = ResultsWriter.open(opts.out, truncateTo === undefined ? {} : { truncateTo });
  } catch (err) {
    if (ownArrival) await arrival!.close();
    throw err;
  }
  let capture: CaptureSession | undefined;
  let ownCapture = false;
  if (opts.capture) capture = opts.capture;
  else if (opts.capture === undefined && plan.captureDir && todo.length > 0 && !opts.signal?.aborted) {
    try {
      capture = await openCapture(plan);
      ownCapture = true;
    } catch (err) {
      writer.close();
      throw err;
    }
  }

  const concurrency = Math.max(1, Math.floor(plan.concurrency || 1));
  const threads = Math.max(1, Math.min(workers, concurrency, todo.length));
  const rate = plan.ratePerTarget !== undefined && plan.ratePerTarget > 0 && Number.isFinite(plan.ratePerTarget) ? plan.ratePerTarget : undefined;
  const intervalMs = rate ? 1000 / rate : 0;

  const startEvt: RunEvents['run:start'] = {
    runId,
    total,
    skipped,
    pending: todo.length,
    out: opts.out,
    profileHash: plan.profileHash,
    concurrency,
    workers: threads,
    targets: [...new Set(specs.map((x) => x.targetLabel))],
    paths: plan.paths.map((x) => x.name),
    sizes: [...plan.sizes],
    repeat: plan.repeat,
    resumed: !!opts.resume && previous.length > 0,
  };
  if (rate) startEvt.ratePerTarget = rate;

  // --- state -------------------------------------------------------------------------------------------
  interface TargetQueue { items: PlannedProbe[]; head: number; nextAt: number }
  const queues = new Map<string, TargetQueue>();
  for (const s of todo) {
    let q = queues.get(s.targetLabel);
    if (!q) queues.set(s.targetLabel, (q = { items: [], head: 0, nextAt: 0 }));
    q.items.push(s);
  }
  const inFlight = new Map<string, { spec: PlannedProbe; ctrl: AbortController }>();
  const results: ProbeResult[] = [];
  const keep = opts.keepResults !== false;
  let recordedCount = 0;
  let done = skipped;
  let started = 0;
  let dropped = 0;
  let stopping = false;
  let stoppedBySignal = false;
  let fatal: unknown;
  let finished = false;
  let rateTimer: NodeJS.Timeout | undefined;
  let rateTimerAt = Infinity;
  let graceTimer: NodeJS.Timeout | undefined;
  let settleTimer: NodeJS.Timeout | undefined;
  let endedInFlight = false;

  let resolveRun!: () => void;
  const over = new Promise<void>((res) => (resolveRun = res));

  const clearTimers = (): void => {
    if (rateTimer) clearTimeout(rateTimer);
    if (graceTimer) clearTimeout(graceTimer);
    if (settleTimer) clearTimeout(settleTimer);
    rateTimer = graceTimer = settleTimer = undefined;
    rateTimerAt = Infinity;
  };

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearTimers();
    resolveRun();
  };

  const maybeFinish = (): void => {
    if (finished || inFlight.size > 0) return;
    if (stopping || started >= todo.length) finish();
  };

  /** Tell every in-flight probe to stop now; give them `settleMs` to settle, then leave them behind. */
  const endInFlight = (): void => {
    if (endedInFlight) return;
    endedInFlight = true;
    if (graceTimer) clearTimeout(graceTimer);
    graceTimer = undefined;
    for (const f of inFlight.values()) f.ctrl.abort();
    if (inFlight.size === 0) return maybeFinish();
    settleTimer = setTimeout(() => {
      settleTimer = undefined;
      for (const f of [...inFlight.values()]) {
        inFlight.delete(f.spec.probeId);
        dropped++;
        safeEmit('probe:dropped', { spec: f.spec, reason: 'abandoned' });
      }
      maybeFinish();
    }, settleMs);
    settleTimer.unref?.();
  };

  const stop = (why: 'signal' | 'fatal'): void => {
    if (why === 'signal' && !stopping) stoppedBySignal = true;
    if (stopping) {
      if (why === 'fatal') endInFlight();
      return;
    }
    stopping = true;
    if (rateTimer) clearTimeout(rateTimer);
    rateTimer = undefined;
    rateTimerAt = Infinity;
    if (why === 'fatal') return endInFlight();
    safeEmit('run:stopping', { inFlight: inFlight.size, graceMs });
    if (inFlight.size === 0) return maybeFinish();
    graceTimer = setTimeout(endInFlight, graceMs);
  };

  const fail = (err: unknown): void => {
    fatal ??= err;
    stop('fatal');
  };

  function safeEmit<K extends keyof RunEvents>(name: K, payload: RunEvents[K]): void {
    try {
      (emitter.emit as (n: string, p: unknown) => boolean)(name, payload);
    } catch (err) {
      fail(err);
    }
  }

  const onResult = (spec: PlannedProbe, ctrl: AbortController, r: ProbeResult): void => {
    if (!inFlight.has(spec.probeId)) return; // abandoned after the settle window: too late to count
    inFlight.delete(spec.probeId);
    if (ctrl.signal.aborted && r.error?.code === 'EABORTED') {
      dropped++;
      safeEmit('probe:dropped', { spec, reason: 'aborted' });
      return;
    }
    // runner fields first on the line, then the engine's; ours win
    const ours = { runId, profileHash: plan.profileHash, key: spec.key };
    const line = Object.assign({ probeId: r.probeId ?? spec.probeId }, ours, r, ours) as ProbeResult;
    try {
      writer.append(line);
    } catch (err) {
      return fail(err);
    }
    if (keep) results.push(line);
    recordedCount++;
    done++;
    safeEmit('probe:end', { result: line, spec, done, total });
    if (arrival && line.outcome === 'delivered') lookFor(line);
  };

  const arrivals = new Set<Promise<void>>();
  /** Look for an accepted probe; its arrival record is appended when the look-up ends, the run goes on meanwhile. */
  const lookFor = (line: ProbeResult): void => {
    const p = arrival!
      .expect({ probeId: line.probeId, sizeBytes: line.sizeBytes, acceptedAt: acceptedAtOf(line) })
      .then((a) => {
        writer.append(arrivalLine(line, a));
        line.arrival = a;
        safeEmit('probe:arrival', { result: line, arrival: a });
      })
      .catch(fail)
      .finally(() => arrivals.delete(p));
    arrivals.add(p);
  };

  const onError = (spec: PlannedProbe, err: unknown): void => {
    if (!inFlight.has(spec.probeId)) return;
    inFlight.delete(spec.probeId);
    if (isAbortError(err) && (stopping || finished)) {
      dropped++;
      safeEmit('probe:dropped', { spec, reason: 'aborted' });
      return;
    }
    const msg = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: string })?.code;
    fail(
      code === 'EINPUT'
        ? new RunError('EINPUT', `probe ${spec.probeId} (${describeSpec(spec)}): ${msg}`, { cause: err })
        : code === 'EENV' || code === 'EWORKER' // a worker thread that died: the machine, not the network
          ? new RunError('EENV', `probe ${spec.probeId} (${describeSpec(spec)}): ${msg}`, { cause: err })
          : err instanceof Error
          ? err
          : new Error(`probe ${spec.probeId} failed: ${msg}`),
    );
  };

  const launch = (spec: PlannedProbe): void => {
    const ctrl = new AbortController();
    inFlight.set(spec.probeId, { spec, ctrl });
    started++;
    safeEmit('probe:start', { spec, inFlight: inFlight.size });
    let p: Promise<ProbeResult>;
    try {
      const po: RunProbeOptions = { signal: ctrl.signal };
      if (emitter.listenerCount('probe:stage') > 0) po.onStage = (e) => safeEmit('probe:stage', e);
      if (capture) po.capture = capture;
      p = probeFn(spec, po);
    } catch (err) {
      p = Promise.reject(err);
    }
    p.then(
      (r) => onResult(spec, ctrl, r),
      (err) => onError(spec, err),
    )
      .catch(fail)
      .finally(() => {
        if (!finished) pump();
      });
  };

  /** Start every probe that may start now; arm a timer for the earliest rate-limited one. */
  function pump(): void {
    if (finished) return;
    while (!stopping && inFlight.size < concurrency) {
      const now = clockMs();
      let best: TargetQueue | undefined;
      let earliest = Infinity;
      for (const q of queues.values()) {
        if (q.head >= q.items.length) continue;
        if (q.nextAt <= now) {
          if (!best || q.items[q.head]!.order < best.items[best.head]!.order) best = q;
        } else if (q.nextAt < earliest) earliest = q.nextAt;
      }
      if (!best) {
        if (earliest < rateTimerAt) {
          if (rateTimer) clearTimeout(rateTimer);
          rateTimerAt = earliest;
          rateTimer = setTimeout(() => {
            rateTimer = undefined;
            rateTimerAt = Infinity;
            pump();
          }, Math.max(1, Math.ceil(earliest - now)));
        }
        break;
      }
      const spec = best.items[best.head]!;
      best.head++;
      if (intervalMs) best.nextAt = now + intervalMs;
      launch(spec);
    }
    maybeFinish();
  }

  /** Every probe is recorded; wait for the look-ups still going (a stop ends the wait: they are then "not found"). */
  const awaitArrivals = async (): Promise<void> => {
    safeEmit('run:arrivals', { waiting: arrivals.size });
    const closeOnStop = (): void => void arrival?.close();
    if (ownArrival) opts.signal?.addEventListener('abort', closeOnStop, { once: true });
    try {
      while (arrivals.size) await Promise.all([...arrivals]);
    } finally {
      opts.signal?.removeEventListener('abort', closeOnStop);
    }
  };

  // --- go ------------------------------------------------------------------------------------------------
  const onAbort = (): void => stop('signal');
  const onAbandon = (): void => {
    stop('signal');
    endInFlight();
  };
  let pool: ProbePool | undefined;
  try {
    if (threads > 1) {
      pool = (await import('./workers.js')).openProbePool({ workers: threads });
      probeFn = pool.probeFn;
    }
    safeEmit('run:start', startEvt);
    if (fatal) throw fatal;
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.abandonSignal?.aborted) onAbandon();
    else opts.abandonSignal?.addEventListener('abort', onAbandon, { once: true });
    pump();
    await over;
    // a stopped run does not wait for slow arrivals: closing settles them as "the run ended before it was found"
    if (ownArrival && (stoppedBySignal || fatal)) await arrival!.close();
    if (arrivals.size) await awaitArrivals();
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    opts.abandonSignal?.removeEventListener('abort', onAbandon);
    clearTimers();
    // after the settle window: a probe still in a worker is left behind, as in this thread, and ended with it
    await pool?.close();
    if (ownArrival) await arrival!.close();
    writer.close();
    if (ownCapture) await capture!.stop().catch(() => undefined);
  }
  if (fatal) throw fatal;

  const notStarted = todo.length - started;
  const interrupted = stoppedBySignal && recordedCount < todo.length;
  const summary: RunSummary = {
    runId,
    out: opts.out,
    profileHash: plan.profileHash,
    results,
    recorded: recordedCount,
    previous,
    interrupted,
    skipped,
    total,
    dropped,
    notStarted,
    warnings,
  };
  safeEmit('run:end', { runId, results, interrupted, out: opts.out });
  return summary;
}

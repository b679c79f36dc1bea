/**
 * A pool of probe worker threads (issue 19, "both cores"): `probeFn` runs each probe in one of N `worker_threads`
 * Workers, each with an engine of its own (`src/probe`), and hands back what the engine would have in this thread.
 * It is a `ProbeFn`, so `runPlan` keeps its scheduling, its one results file and its one event stream: only the
 * probes move.
 *
 * - A probe goes to the live worker with the fewest probes in flight; its result comes back by `postMessage` (a
 *   structured clone of the plain `ProbeResult`).
 * - The caller's `signal` → a message → the worker aborts that probe's own controller. The engine's rejections are
 *   rebuilt here as the same classes (`AbortError` with its `.result`, `ProbeInputError`, `ProbeEnvError`): the
 *   runner and the CLI branch on them. Anything else comes back as an `Error` with the worker's name, code and stack.
 * - `onStage` is forwarded only when the caller passes one (one message per stage).
 * - `capture` (a run-wide tcpdump of this thread): the worker's engine gets a stand-in whose `extract` asks this
 *   thread and waits for the answer.
 * - A worker that dies (an uncaught error, an exit) fails its probes in flight with a `ProbeWorkerError`; later
 *   probes go to the live workers, and fail with the same error when none is left.
 * - Idle workers do not keep the process alive (unref'd while nothing is in flight); `close()` terminates them.
 *
 * Environment: the workers share this thread's `process.env` (`SHARE_ENV`), so `MXPROBE_SS` and AUTH secrets
 * (`passEnv`) read by the engine are those of the process at the time of the probe, as in this thread.
 */
import { pathToFileURL } from 'node:url';
import { SHARE_ENV, Worker } from 'node:worker_threads';
import type { ProbeResult } from '../model.js';
import { ProbeEnvError, ProbeInputError } from '../probe/errors.js';
import { AbortError } from '../probe/session.js';
import type { ProbeFn, RunProbeOptions } from './index.js';
import { MAX_WORKERS, type FromWorker, type ToWorker, type WireError, type WorkerInit } from './worker-wire.js';

export { MAX_WORKERS, toWire, type FromWorker, type ToWorker, type WireError, type WorkerInit } from './worker-wire.js';

/** The error a worker sent, rebuilt as the class the engine throws in this thread (by name). */
export function fromWire(w: WireError, where: string): Error {
  switch (w.name) {
    case 'AbortError': {
      const e = new AbortError(w.message);
      if (w.result) e.result = w.result;
      return e;
    }
    case 'ProbeInputError':
      return new ProbeInputError(w.message);
    case 'ProbeEnvError':
      return new ProbeEnvError(w.message);
    default: {
      const e = new Error(w.message) as Error & { code?: string };
      e.name = w.name;
      if (w.code !== undefined) e.code = w.code;
      // the stack that matters is the worker's: where it was thrown
      e.stack = `${w.stack ?? `${w.name}: ${w.message}`}\n    (in ${where})`;
      return e;
    }
  }
}

/** A worker thread ended (crashed, or exited) while it had probes to run: those probes measured nothing. */
export class ProbeWorkerError extends Error {
  override name = 'ProbeWorkerError';
  readonly code = 'EWORKER';
}

// --- the pool ----------------------------------------------------------------------------------------------------
export interface ProbePoolOptions {
  /** Worker threads, 1 … MAX_WORKERS. */
  workers: number;
  /** The module each worker imports `probe` from (file URL or absolute path). Default: the engine, `src/probe`. */
  engine?: string | URL;
  /** The worker's entry module (file URL or absolute path). Default: `probe-worker.js` next to this module. */
  entry?: string | URL;
}

export interface ProbePool {
  /** Worker threads started. */
  readonly size: number;
  /** Run one probe in a worker (the engine's `probe`, across the thread boundary). */
  readonly probeFn: ProbeFn;
  /** Probes in flight, per worker (index = worker number − 1); a dead worker counts 0. */
  inFlight(): number[];
  /** Terminate every worker; probes still in flight are rejected (`ProbeWorkerError`). Idempotent. */
  close(): Promise<void>;
}

interface Pending {
  resolve: (r: ProbeResult) => void;
  reject: (e: unknown) => void;
  opts: RunProbeOptions;
  detach: () => void;
}

interface Slot {
  n: number;
  worker: Worker;
  pending: Map<number, Pending>;
  /** Set when the worker died: why. */
  dead?: ProbeWorkerError;
}

function asUrl(u: string | URL): URL {
  return u instanceof URL ? u : u.startsWith('file:') ? new URL(u) : pathToFileURL(u);
}

/** Start `opts.workers` worker threads; see the module comment. Throws a RangeError on a bad worker count. */
export function openProbePool(opts: ProbePoolOptions): ProbePool {
  const n = opts.workers;
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) throw new RangeError(`workers: expected a whole number from 1 to ${MAX_WORKERS}, got ${n}`);
  // '../run/': the same file from dist/run/workers.js (tsc) and from dist/bundle/mxprobe.cjs (the CLI's bundle,
  // scripts/bundle.mjs, two levels below the package root too): the worker entry is not in the bundle
  const entry = asUrl(opts.entry ?? new URL('../run/probe-worker.js', import.meta.url));
  const init: WorkerInit = { engine: asUrl(opts.engine ?? new URL('../probe/index.js', import.meta.url)).href };
  // this process's Node flags, as a worker inherits them by default, less the one Node refuses in a worker with an
  // entry file: --input-type (how the main script's own text is read, `node --input-type=module -e …`)
  // Given only when that flag is there: Node accepts V8 and process-wide flags (--max-old-space-size, --stack-size,
  // --expose-gc…) when a worker inherits them, but refuses the same flags passed as `execArgv` (ERR_WORKER_INVALID_EXEC_ARGV)
  const inputType = process.execArgv.some((a) => a.startsWith('--input-type'));
  const execArgv = inputType ? process.execArgv.filter((a, i, all) => !a.startsWith('--input-type') && all[i - 1] !== '--input-type') : undefined;
  let nextId = 1;
  let closed = false;
  const slots: Slot[] = [];

  const settle = (slot: Slot, id: number): Pending | undefined => {
    const p = slot.pending.get(id);
    if (!p) return undefined;
    slot.pending.delete(id);
    p.detach();
    if (slot.pending.size === 0) slot.worker.unref(); // idle: does not keep the process alive
    return p;
  };

  const die = (slot: Slot, why: string, cause?: unknown): void => {
    if (slot.dead) return;
    const count = slot.pending.size;
    slot.dead = new ProbeWorkerError(
      `probe worker thread ${slot.n} of ${n} ${why}${count ? ` with ${count} probe${count === 1 ? '' : 's'} in flight (not measured)` : ''}`,
      cause === undefined ? undefined : { cause },
    );
    for (const id of [...slot.pending.keys()]) settle(slot, id)!.reject(slot.dead);
  };

  const onMessage = (slot: Slot, m: FromWorker): void => {
    switch (m.type) {
      case 'result':
        settle(slot, m.id)?.resolve(m.result);
        return;
      case 'error':
        settle(slot, m.id)?.reject(fromWire(m.error, `probe worker thread ${slot.n}`));
        return;
      case 'stage': {
        const p = slot.pending.get(m.id);
        if (!p?.opts.onStage) return;
        try {
          p.opts.onStage(m.e);
        } catch (err) {
          // a throwing subscriber ends the probe with its error (not lost in a message handler); the worker is told to stop it
          settle(slot, m.id)!.reject(err);
          post(slot, { type: 'abort', id: m.id });
        }
        return;
      }
      case 'extract': {
        const capture = slot.pending.get(m.id)?.opts.capture;
        const answer = (a: { path?: string; error?: string }): void => post(slot, { type: 'extracted', req: m.req, ...a });
        if (!capture) return answer({ error: 'the probe ended before its capture was extracted' });
        capture.extract(m.tuple, m.name).then(
          (path) => answer({ path }),
          (err: unknown) => answer({ error: err instanceof Error ? err.message : String(err) }),
        );
        return;
      }
    }
  };

  const post = (slot: Slot, m: ToWorker): void => {
    if (slot.dead) return;
    try {
      slot.worker.postMessage(m);
    } catch (err) {
      die(slot, `could not be sent a message (${(err as Error).message})`, err);
    }
  };

  for (let i = 0; i < n; i++) {
    const worker = new Worker(entry, { workerData: init, env: SHARE_ENV, ...(execArgv ? { execArgv } : {}) });
    const slot: Slot = { n: i + 1, worker, pending: new Map() };
    worker.on('message', (m: FromWorker) => onMessage(slot, m));
    worker.on('error', (err) => die(slot, `failed: ${err.message}`, err));
    // a message that cannot be read belongs to no probe we can name: the worker is no longer trusted with any
    worker.on('messageerror', (err) => {
      die(slot, `sent a message that could not be read (${err.message})`, err);
      void worker.terminate();
    });
    worker.on('exit', (code) => die(slot, closed ? 'was stopped (the pool was closed)' : `exited (code ${code})`));
    worker.unref(); // idle until its first probe; after the listeners (a 'message' listener refs the worker again)
    slots.push(slot);
  }

  const pick = (): Slot | undefined => {
    let best: Slot | undefined;
    for (const s of slots) if (!s.dead && (!best || s.pending.size < best.pending.size)) best = s;
    return best;
  };

  const probeFn: ProbeFn = (spec, po = {}) => {
    if (po.signal?.aborted) return Promise.reject(new AbortError('aborted before start'));
    if (closed) return Promise.reject(new ProbeWorkerError('the probe worker pool is closed'));
    const slot = pick();
    if (!slot) return Promise.reject(slots[0]!.dead!); // every worker died: say why the first did
    const id = nextId++;
    return new Promise<ProbeResult>((resolve, reject) => {
      const onAbort = (): void => post(slot, { type: 'abort', id });
      po.signal?.addEventListener('abort', onAbort, { once: true });
      slot.pending.set(id, { resolve, reject, opts: po, detach: () => po.signal?.removeEventListener('abort', onAbort) });
      if (slot.pending.size === 1) slot.worker.ref(); // a probe in flight keeps the process alive, as in this thread
      const m: ToWorker = { type: 'probe', id, spec, stages: !!po.onStage };
      if (po.capture) m.capture = { dir: po.capture.dir, iface: po.capture.iface };
      post(slot, m);
    });
  };

  return {
    size: n,
    probeFn,
    inFlight: () => slots.map((s) => s.pending.size),
    close: async () => {
      if (closed) return;
      closed = true;
      await Promise.all(slots.map((s) => s.worker.terminate()));
      for (const s of slots) die(s, 'was stopped (the pool was closed)');
    },
  };
}

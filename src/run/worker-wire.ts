/**
 * The messages between the main thread and a probe worker thread (src/run/workers.ts ↔ src/run/probe-worker.ts),
 * and errors as plain data. Imports no engine code: the worker loads only the engine it is told to.
 */
import type { ProbeResult, ProbeSpec, Stage } from '../model.js';
import type { SocketTuple } from '../probe/tcpinfo.js';

/** The most worker threads a pool takes: beyond the machine's cores a thread only costs memory (~10 MB each). */
export const MAX_WORKERS = 64;

/** What a worker is started with (`workerData`). */
export interface WorkerInit {
  /** URL of the module to import `probe` from. */
  engine: string;
}

export type ToWorker =
  | { type: 'probe'; id: number; spec: ProbeSpec; stages: boolean; capture?: { dir: string; iface: string } }
  | { type: 'abort'; id: number }
  | { type: 'extracted'; req: number; path?: string; error?: string };

export type FromWorker =
  | { type: 'stage'; id: number; e: { probeId: string; stage: Stage; tMs: number } }
  | { type: 'extract'; id: number; req: number; tuple: SocketTuple; name: string }
  | { type: 'result'; id: number; result: ProbeResult }
  | { type: 'error'; id: number; error: WireError };

/** An error as it crosses the thread boundary: what is needed to rebuild it. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  /** An `AbortError`'s measurement until the abort. */
  result?: ProbeResult;
}

/** An error (or anything thrown) as plain data for `postMessage`. */
export function toWire(err: unknown): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const w: WireError = { name: err.name, message: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') w.code = code;
  if (err.stack) w.stack = err.stack;
  const result = (err as { result?: ProbeResult }).result;
  if (result) w.result = result;
  return w;
}

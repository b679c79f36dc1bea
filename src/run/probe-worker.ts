/**
 * The entry of a probe worker thread (started by `openProbePool`, src/run/workers.ts): runs the probes the main
 * thread sends in this thread's engine and posts back their stages, results and errors. Prints nothing.
 *
 * In: `probe` (a spec), `abort` (that probe's controller is aborted), `extracted` (the main thread's answer to a
 * capture extract). Out: `stage`, `extract`, `result`, `error` (worker-wire.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ProbeResult, ProbeSpec } from '../model.js';
import type { CaptureSession } from '../probe/capture.js';
import type { SocketTuple } from '../probe/tcpinfo.js';
import type { RunProbeOptions } from './index.js';
import { toWire, type FromWorker, type ToWorker, type WorkerInit } from './worker-wire.js';

if (!parentPort) throw new Error('probe-worker.js is the entry of a worker thread (openProbePool), not a program');
const port = parentPort;
const init = workerData as WorkerInit;
// loaded before the first message is read (messages wait in the port meanwhile); a failure here ends the worker
// with an 'error' the pool reports
const { probe } = (await import(init.engine)) as { probe: (spec: ProbeSpec, opts: RunProbeOptions) => Promise<ProbeResult> };

const running = new Map<number, AbortController>();
const extracts = new Map<number, { resolve: (path: string) => void; reject: (e: Error) => void }>();
let nextReq = 1;

const send = (m: FromWorker): void => port.postMessage(m);

/** The capture the engine sees: `extract` asks the main thread, which holds the run-wide tcpdump. */
function captureStandIn(id: number, info: { dir: string; iface: string }): CaptureSession {
  return {
    dir: info.dir,
    iface: info.iface,
    extract: (tuple: SocketTuple, name: string) =>
      new Promise<string>((resolve, reject) => {
        const req = nextReq++;
        extracts.set(req, { resolve, reject });
        send({ type: 'extract', id, req, tuple, name });
      }),
    // the run's capture belongs to the main thread, which stops it at the end of the run
    stop: () => Promise.resolve(),
  };
}

async function run(m: Extract<ToWorker, { type: 'probe' }>): Promise<void> {
  const ctrl = new AbortController();
  running.set(m.id, ctrl);
  const opts: RunProbeOptions = { signal: ctrl.signal };
  if (m.stages) opts.onStage = (e) => send({ type: 'stage', id: m.id, e });
  if (m.capture) opts.capture = captureStandIn(m.id, m.capture);
  try {
    const result = await probe(m.spec, opts);
    try {
      send({ type: 'result', id: m.id, result });
    } catch (err) {
      // a result that cannot be cloned is a bug of the engine: said, not lost
      send({ type: 'error', id: m.id, error: toWire(err) });
    }
  } catch (err) {
    send({ type: 'error', id: m.id, error: toWire(err) });
  } finally {
    running.delete(m.id);
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'probe':
      void run(m);
      return;
    case 'abort':
      running.get(m.id)?.abort();
      return;
    case 'extracted': {
      const x = extracts.get(m.req);
      if (!x) return;
      extracts.delete(m.req);
      if (m.path !== undefined) x.resolve(m.path);
      else x.reject(new Error(m.error ?? 'capture extract failed'));
      return;
    }
  }
});

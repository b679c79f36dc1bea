// An engine for probe worker threads in tests (openProbePool({ engine })): the real `probe` of the build (dist/),
// except for specs whose path name asks for a failure the real engine cannot be made to show on demand.
//   input / env / bug   reject with ProbeInputError / ProbeEnvError / a TypeError (the engine's classes, from dist)
//   crash               an uncaught exception in the worker thread;  exit: the thread exits with code 7
//   capture             asks opts.capture.extract for a pcap, as the engine does at a stall, and reports the answer
//   hang                waits for the abort, then rejects as the engine does (AbortError with an aborted result)
import { AbortError, ProbeEnvError, ProbeInputError, probe as realProbe } from '../../dist/probe/index.js';

function result(spec, over = {}) {
  return {
    probeId: spec.probeId,
    target: `${spec.target.host}:${spec.target.port}`,
    path: spec.path.name,
    sizeBytes: spec.sizeBytes,
    seed: spec.seed,
    outcome: 'delivered',
    stages: { connect: 0.1 },
    startedAt: new Date().toISOString(),
    durationMs: 1,
    bytesWritten: 0,
    bytesRead: 0,
    ...over,
  };
}

export async function probe(spec, opts = {}) {
  switch (spec.path.name) {
    case 'input':
      throw new ProbeInputError('message file /nowhere.eml: no such file');
    case 'env':
      throw new ProbeEnvError('out of file descriptors (EMFILE): this process has reached its limit of 150 open files (ulimit -n)');
    case 'bug':
      throw new TypeError("Cannot read properties of undefined (reading 'x')");
    case 'crash':
      setImmediate(() => {
        throw new Error('boom in the worker');
      });
      return new Promise(() => undefined);
    case 'exit':
      process.exit(7);
      break;
    case 'capture': {
      opts.onStage?.({ probeId: spec.probeId, stage: 'body', tMs: 1 });
      const tuple = { localAddress: '127.0.0.1', localPort: 40000, remoteAddress: '127.0.0.1', remotePort: spec.target.port };
      try {
        return result(spec, { outcome: 'stalled', stage: 'body', capture: await opts.capture.extract(tuple, spec.probeId) });
      } catch (err) {
        return result(spec, { outcome: 'stalled', stage: 'body', captureError: err.message });
      }
    }
    case 'hang':
      return new Promise((_, reject) => {
        const onAbort = () => {
          const e = new AbortError('aborted');
          e.result = result(spec, { outcome: 'aborted', stage: 'greeting' });
          reject(e);
        };
        if (opts.signal?.aborted) onAbort();
        else opts.signal?.addEventListener('abort', onAbort, { once: true });
      });
    default:
      return realProbe(spec, opts);
  }
}

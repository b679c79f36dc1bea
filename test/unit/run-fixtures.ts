/** Shared fixtures of the runner's unit tests: a plan builder and fake probe engines. */
import { DEFAULT_TIMEOUTS, type ProbeResult, type ProbeSpec } from '../../src/model.js';
import type { Plan } from '../../src/profile/plan.js';
import type { RunProbeOptions } from '../../src/run/index.js';

export function makePlan(over: Partial<Plan> = {}): Plan {
  return {
    name: 'unit',
    profileHash: 'hash-unit-000001',
    targets: [{ host: '127.0.0.1', port: 2525, tls: 'none' }],
    paths: [{ name: 'direct' }, { name: 'via-lb' }],
    sizes: [1024, 4096, 65536],
    repeat: 4,
    envelope: { from: 'probe@example.test', to: ['sink@example.test'] },
    timeouts: { ...DEFAULT_TIMEOUTS },
    concurrency: 3,
    seed: 42,
    ...over,
  };
}

/** A result as the engine would return it (delivered unless `outcome` says otherwise). */
export function fakeResult(spec: ProbeSpec, outcome: ProbeResult['outcome'] = 'delivered'): ProbeResult {
  const r: ProbeResult = {
    probeId: spec.probeId,
    runId: spec.runId,
    target: spec.target.name ?? `${spec.target.host}:${spec.target.port}`,
    path: spec.path.name,
    sizeBytes: spec.sizeBytes,
    seed: spec.seed,
    outcome,
    stages: { connect: 0.2, greeting: 1, body: 2 },
    startedAt: new Date().toISOString(),
    durationMs: 5,
    bytesWritten: spec.sizeBytes + 100,
    bytesRead: 200,
  };
  if (outcome !== 'delivered') r.stage = 'body';
  return r;
}

function abortError(): Error {
  const e = new Error('aborted');
  e.name = 'AbortError';
  return e;
}

/**
 * A fake engine: resolves after `delayMs` (per spec, or fixed), honours the abort signal like the real one
 * (rejects with an AbortError), and records what it was asked to send.
 */
export function fakeProbe(opts: { delayMs?: number | ((s: ProbeSpec) => number); outcome?: (s: ProbeSpec) => ProbeResult['outcome'] } = {}) {
  const calls: Array<{ spec: ProbeSpec; t: number }> = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fn = (spec: ProbeSpec, o: RunProbeOptions = {}): Promise<ProbeResult> => {
    calls.push({ spec, t: performance.now() });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const d = typeof opts.delayMs === 'function' ? opts.delayMs(spec) : (opts.delayMs ?? 1);
    return new Promise<ProbeResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        o.signal?.removeEventListener('abort', onAbort);
        inFlight--;
        o.onStage?.({ probeId: spec.probeId, stage: 'body', tMs: d });
        resolve(fakeResult(spec, opts.outcome?.(spec) ?? 'delivered'));
      }, d);
      const onAbort = (): void => {
        clearTimeout(timer);
        inFlight--;
        reject(abortError());
      };
      if (o.signal?.aborted) return onAbort();
      o.signal?.addEventListener('abort', onAbort, { once: true });
    });
  };
  return {
    fn,
    calls,
    get maxInFlight() {
      return maxInFlight;
    },
  };
}

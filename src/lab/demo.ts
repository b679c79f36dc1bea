/**
 * The self-contained demo topology: a sink (the receiving MX), a `direct` path to it and a `via-lb` path through
 * the fault-injecting relay (incident 1's load balancer by default), the demo profile run over both, interleaved,
 * and the comparator's answer with the receiver's side joined in. Everything on loopback; no printing here.
 */
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { compare, type CompareResult } from '../analyze/compare.js';
import type { ProbeResult } from '../model.js';
import { applyOverrides, loadProfile, SHIPPED_PROFILES_DIR } from '../profile/index.js';
import type { Plan } from '../profile/plan.js';
import { runPlan, newRunId } from '../run/index.js';
import { joinSink, startSink, type Sink, type SinkRecord } from '../sink/index.js';
import { formatFault, parseFault, startRelay, type FaultSpec, type Relay } from './relay.js';
import { clockMs } from '../clock.js';

export interface DemoOptions {
  /** Fault on the via-lb path, client → server. Default `blackhole-after=64KiB` (incident 1). */
  fault?: FaultSpec;
  /** Fault on the via-lb path, server → client. Default none. */
  serverFault?: FaultSpec;
  /** Profile to run (default: the shipped profiles/demo.yaml). */
  profile?: string;
  sizes?: number[];
  repeat?: number;
  concurrency?: number;
  /** Override the profile's stall window (ms). */
  stallMs?: number;
  /** Results file (default results/demo-<runId>.jsonl). */
  out?: string;
  /** Run events (probe:start / probe:end …) for a progress display. */
  emitter?: EventEmitter;
  signal?: AbortSignal;
  abandonSignal?: AbortSignal;
}

export interface DemoResult {
  runId: string;
  out: string;
  fault: string;
  plan: Plan;
  results: ProbeResult[];
  sinkRecords: SinkRecord[];
  analysis: CompareResult;
  interrupted: boolean;
  /** The sink's greeting delay (0 when smtp-server's early-talker wait was removed). */
  sinkGreetingDelayMs: number;
  wallMs: number;
}

export const DEFAULT_DEMO_FAULT = 'blackhole-after=64KiB';

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = clockMs();
  const fault = o.fault ?? parseFault(DEFAULT_DEMO_FAULT);
  let sink: Sink | undefined;
  let relay: Relay | undefined;
  try {
    sink = await startSink({ host: '127.0.0.1', port: 0, silentTimeoutMs: 30_000 });
    relay = await startRelay({
      listenHost: '127.0.0.1',
      listenPort: 0,
      targetHost: sink.host,
      targetPort: sink.port,
      clientToServer: fault,
      ...(o.serverFault ? { serverToClient: o.serverFault } : {}),
    });
    const env = {
      ...process.env,
      MXPROBE_DEMO_HOST: sink.host,
      MXPROBE_DEMO_PORT: String(sink.port),
      MXPROBE_DEMO_RELAY: `${relay.host}:${relay.port}`,
    };
    let plan = await loadProfile(o.profile ?? join(SHIPPED_PROFILES_DIR, 'demo.yaml'), { env });
    const over: Parameters<typeof applyOverrides>[1] = {};
    if (o.sizes) over.sizes = o.sizes;
    if (o.repeat) over.repeat = o.repeat;
    if (o.concurrency) over.concurrency = o.concurrency;
    if (Object.keys(over).length) plan = applyOverrides(plan, over);
    if (o.stallMs) plan = { ...plan, timeouts: { ...plan.timeouts, stallMs: o.stallMs } };
    const runId = newRunId();
    const out = o.out ?? join('results', `demo-${runId}.jsonl`);
    const summary = await runPlan(plan, {
      out,
      runId,
      ...(o.emitter ? { emitter: o.emitter } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.abandonSignal ? { abandonSignal: o.abandonSignal } : {}),
      capture: false,
    });
    // The receiver writes a stalled probe's record when its connection ends. A frozen relay connection never
    // ends by itself (the relay stopped reading, so it never sees the sender's close): closing the relay ends
    // them all, then the records get a moment to arrive before joining.
    await relay.close();
    relay = undefined;
    await Promise.all(
      summary.results.filter((r) => r.outcome !== 'delivered').map((r) => sink!.waitFor(r.probeId, 2000)),
    );
    const sinkRecords = sink.records();
    const joined = joinSink(summary.results, sinkRecords);
    return {
      runId: summary.runId,
      out: summary.out,
      fault: formatFault(fault),
      plan,
      results: joined,
      sinkRecords,
      analysis: compare(joined),
      interrupted: summary.interrupted,
      sinkGreetingDelayMs: sink.greetingDelayMs,
      wallMs: clockMs() - t0,
    };
  } finally {
    await relay?.close();
    await sink?.close();
  }
}

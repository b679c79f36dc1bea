/**
 * mxprobe as a library: `import { probe, runPlan, compare, loadProfile } from 'mxprobe'`.
 * Nothing here prints, reads process.argv or exits; the CLI (src/cli) is one consumer of this API.
 */
export * from './model.js';
export { parseSize, parseDuration, parseRate, formatSize, formatMs, formatDuration, UnitError } from './units.js';
export { stallWindowConflicts } from './timeouts.js';
export * from './probe/index.js';
export { tcpSnapshot, tcpInfoAvailable, type SocketTuple } from './probe/tcpinfo.js';
export { startCapture, CaptureError, type CaptureSession } from './probe/capture.js';
export {
  isLabAddress,
  isLabHost,
  isRealProbe,
  advertisedSize,
  sizeRefusal,
  classifyTargets,
  realTargetPolicy,
  guardPlan,
  messageFileIdentifies,
  REAL_TARGET_DEFAULT_RATE,
  REAL_TARGET_MAX_RATE,
  type TargetClass,
  type RealTargetPolicy,
  type GuardResolver,
} from './probe/guards.js';
export * from './profile/index.js';
export type { Plan, Threshold } from './profile/plan.js';
export * from './run/index.js';
export { openProbePool, ProbeWorkerError, type ProbePool, type ProbePoolOptions } from './run/workers.js';
export * from './analyze/index.js';
export { readResults } from './analyze/io.js';
export * from './sink/index.js';
export { startRelay, parseFault, formatFault, type FaultSpec, type Relay, type RelayOptions } from './lab/relay.js';
export { runDemo, type DemoOptions, type DemoResult } from './lab/demo.js';
export { startServe, type Serve, type ServeOptions } from './serve/index.js';
export { renderReport, writeReport, reportInputFor } from './report/index.js';

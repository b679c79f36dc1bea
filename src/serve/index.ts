/** Continuous probing with Prometheus metrics: the schedule, /metrics, /probe (blackbox_exporter style). */
export { startServe, buildAllowList, ServeError, type Serve, type ServeOptions, type ServeEvents, type ProbeRequestEvent, type ServeErrorCode } from './server.js';
export { Scheduler, defaultServeOut, type SchedulerOptions, type SchedulerEvents } from './scheduler.js';
export { ServeMetrics, STAGE_BUCKETS_SECONDS, stallOffsetBytes, type ServeMetricsOptions } from './metrics.js';
export {
  parseProbeRequest,
  probeMetricsText,
  probeBudgetMs,
  HttpError,
  DEFAULT_ENDPOINT_ENVELOPE,
  type ProbeEndpointConfig,
  type EndpointProbe,
} from './probe-endpoint.js';
export {
  TargetAllowList,
  parseAllowPattern,
  parseProbeTarget,
  formatProbeTarget,
  AllowPatternError,
  LOOPBACK_PATTERNS,
  type AllowRule,
  type ProbeTarget,
} from './allow.js';

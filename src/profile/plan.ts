import type { ArrivalSpec, AuthSpec, Envelope, PathSpec, TargetSpec, Timeouts } from '../model.js';

/** A k6-style threshold from a profile, e.g. `body: p95 < 2s` or `stall_rate < 1%`. */
export interface Threshold {
  /** The text as written in the profile, for messages. */
  source: string;
  /** A stage name (`body`, `dataAck`, …), `total`, `stall_rate`, or `success_rate`. */
  metric: string;
  /** `p50` | `p95` | `p99` | `avg` | `max` | `rate` */
  stat: string;
  op: '<' | '<=' | '>' | '>=';
  /** ms for stage metrics; a fraction 0..1 for rates. */
  value: number;
}

/** A validated profile: what `run` executes. Produced by `src/profile/`, consumed by `src/run/`. */
export interface Plan {
  name: string;
  /** File it was loaded from, if any. */
  source?: string;
  /** sha256 (hex, first 16 chars) of the canonical JSON of this plan, written on every result line. */
  profileHash: string;
  targets: TargetSpec[];
  paths: PathSpec[];
  /** Message sizes in bytes, ascending, distinct. */
  sizes: number[];
  /** Probes per cell (path × target × size). */
  repeat: number;
  envelope: Envelope;
  auth?: AuthSpec;
  /** Look for each accepted probe in a mailbox by IMAP (profile `arrival:`). */
  arrival?: ArrivalSpec;
  timeouts: Timeouts;
  /** Probes in flight at once over the whole run. */
  concurrency: number;
  /** Max probe starts per second per target (undefined: unlimited). */
  ratePerTarget?: number;
  /** Seed of the shuffle and of the message contents. */
  seed: number;
  insecure?: boolean;
  ehloName?: string;
  /** DNS servers for MX and address lookups (profile `dns.servers`). */
  dnsServers?: string[];
  thresholds?: Threshold[];
  tcpSnapshotMinBytes?: number;
  captureDir?: string;
  /** Record each probe's SMTP conversation in its result (`mxprobe run --transcript`); not part of the profile hash. */
  transcript?: boolean;
}

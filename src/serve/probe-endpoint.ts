/**
 * `/probe?target=H:P&path=NAME&size=1MiB[&tls=none][&stall=2s][&noReply=5s][&timeout=30]`: one probe on request, answered in
 * the Prometheus text format with the metrics of that probe only — the blackbox_exporter multi-target pattern,
 * so one Prometheus scrapes many egress hosts (one mxprobe agent on each) for many targets.
 *
 * The time budget is the `timeout` query parameter (seconds, or a duration like `45s`), else Prometheus's
 * `X-Prometheus-Scrape-Timeout-Seconds` header minus half a second, else 60 s; every stage deadline and the
 * stall window are capped to it, so the probe answers in time with what it measured.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { Gauge, Registry } from 'prom-client';
import { ackedBodyOffset, sinkBodyBytes } from '../analyze/cells.js';
import {
  DEFAULT_TIMEOUTS,
  TLS_MODES,
  type Envelope,
  type PathSpec,
  type ProbeResult,
  type ProbeSpec,
  type TargetSpec,
  type Timeouts,
  type TlsMode,
} from '../model.js';
import type { Plan } from '../profile/plan.js';
import { parseDuration, parseSize, formatSize } from '../units.js';
import { formatProbeTarget, parseProbeTarget, type ProbeTarget, type TargetAllowList } from './allow.js';

/** An answer other than 200: status and a one-line message for people. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface ProbeEndpointConfig {
  plan?: Plan;
  allow: TargetAllowList;
  /** Envelope without a profile (a profile's envelope wins). */
  envelope: Envelope;
  /** Largest `size` accepted (default 64 MiB, or the profile's largest size when larger). */
  maxSizeBytes?: number;
  /** Default budget when neither `timeout` nor the Prometheus header is given (default 60 s). */
  defaultBudgetMs?: number;
}

export const DEFAULT_ENDPOINT_ENVELOPE: Envelope = Object.freeze({ from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'] }) as Envelope;
const MAX_BUDGET_MS = 600_000;
const MIN_BUDGET_MS = 500;
const DEFAULT_MAX_SIZE = 64 * 1024 * 1024;

export interface EndpointProbe {
  spec: ProbeSpec;
  target: ProbeTarget;
  budgetMs: number;
  /** `format=json`: answer with the ProbeResult as JSON instead of metrics. */
  json: boolean;
}

function one(q: URLSearchParams, name: string): string | undefined {
  const all = q.getAll(name);
  if (all.length > 1) throw new HttpError(400, `${name} is given ${all.length} times; give it once`);
  const v = all[0];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function matchesProfileTarget(t: TargetSpec, pt: ProbeTarget): boolean {
  if (t.port !== pt.port) return false;
  if (pt.mx !== undefined) return t.mx !== undefined && t.mx.toLowerCase().replace(/\.$/, '') === pt.mx.toLowerCase().replace(/\.$/, '');
  return t.host !== undefined && pt.host !== undefined && t.host.toLowerCase().replace(/\.$/, '') === pt.host.toLowerCase().replace(/\.$/, '');
}

/** Budget in ms from `timeout` (seconds or a duration) or the scrape-timeout header. */
export function probeBudgetMs(timeout: string | undefined, scrapeTimeoutHeader: string | undefined, defaultMs = 60_000): number {
  let ms: number;
  if (timeout !== undefined) {
    try {
      ms = parseDuration(timeout);
    } catch {
      throw new HttpError(400, `timeout "${timeout}" is not a duration (seconds, or e.g. 45s, 2m)`);
    }
  } else if (scrapeTimeoutHeader !== undefined && scrapeTimeoutHeader.trim() !== '') {
    const s = Number(scrapeTimeoutHeader);
    if (!(s > 0) || !Number.isFinite(s)) throw new HttpError(400, `X-Prometheus-Scrape-Timeout-Seconds "${scrapeTimeoutHeader}" is not a number of seconds`);
    // answer a little before Prometheus gives up on the scrape
    ms = s * 1000 - 500;
  } else ms = defaultMs;
  return Math.min(MAX_BUDGET_MS, Math.max(MIN_BUDGET_MS, ms));
}

/** Every deadline capped to the budget; the watchdog's windows from `stall` / `noReply` (or the profile), capped too. */
function cappedTimeouts(base: Timeouts, budgetMs: number, w: { stallMs?: number; noReplyMs?: number }): Timeouts {
  const t = { ...base };
  for (const k of Object.keys(t) as Array<keyof Timeouts>) t[k] = Math.min(t[k], budgetMs);
  if (w.stallMs !== undefined) t.stallMs = Math.min(w.stallMs, budgetMs);
  if (w.noReplyMs !== undefined) t.noReplyMs = Math.min(w.noReplyMs, budgetMs);
  return t;
}

/** A `stall` / `noReply` query parameter: a duration of at least 100 ms, or absent. */
function windowParam(q: URLSearchParams, name: 'stall' | 'noReply'): number | undefined {
  const text = one(q, name);
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch {
    throw new HttpError(400, `${name} "${text}" is not a duration (e.g. 2s, 500ms)`);
  }
  if (ms < 100) throw new HttpError(400, `${name} ${text} is too short (at least 100ms)`);
  return ms;
}

/** Parse and check a /probe request. Throws HttpError (400 bad input, 403 target not allowed). */
export function parseProbeRequest(q: URLSearchParams, scrapeTimeoutHeader: string | undefined, cfg: ProbeEndpointConfig): EndpointProbe {
  const plan = cfg.plan;
  const targetText = one(q, 'target');
  if (!targetText) throw new HttpError(400, 'target is missing: /probe?target=HOST:PORT&path=NAME&size=1MiB');
  let target: ProbeTarget;
  try {
    target = parseProbeTarget(targetText);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }

  // path: one of the profile's; without a profile only "direct"
  const pathName = one(q, 'path');
  let path: PathSpec;
  if (plan) {
    const names = plan.paths.map((p) => p.name);
    if (pathName === undefined) {
      if (plan.paths.length !== 1) throw new HttpError(400, `path is missing: give one of the profile's paths (${names.join(', ')})`);
      path = plan.paths[0]!;
    } else {
      const found = plan.paths.find((p) => p.name === pathName);
      if (!found) throw new HttpError(400, `unknown path "${pathName}": the profile defines ${names.join(', ')}`);
      path = found;
    }
  } else {
    if (pathName !== undefined && pathName !== 'direct') {
      throw new HttpError(400, `unknown path "${pathName}": without --profile only "direct" exists (paths come from a profile)`);
    }
    path = { name: 'direct' };
  }

  const sizeText = one(q, 'size');
  if (sizeText === undefined) throw new HttpError(400, 'size is missing: e.g. size=64KiB or size=1MiB (exact message bytes)');
  let sizeBytes: number;
  try {
    sizeBytes = parseSize(sizeText);
  } catch (err) {
    throw new HttpError(400, (err as Error).message);
  }
  const maxSize = Math.max(cfg.maxSizeBytes ?? DEFAULT_MAX_SIZE, ...(plan?.sizes ?? []));
  if (sizeBytes > maxSize) throw new HttpError(400, `size ${formatSize(sizeBytes)} is larger than this agent sends (at most ${formatSize(maxSize)})`);

  const tlsText = one(q, 'tls');
  if (tlsText !== undefined && !(TLS_MODES as readonly string[]).includes(tlsText)) {
    throw new HttpError(400, `tls "${tlsText}" is not one of ${TLS_MODES.join(', ')}`);
  }

  const stallMs = windowParam(q, 'stall');
  const noReplyMs = windowParam(q, 'noReply');
  const budgetMs = probeBudgetMs(one(q, 'timeout'), scrapeTimeoutHeader, cfg.defaultBudgetMs);
  const format = one(q, 'format');
  if (format !== undefined && format !== 'json' && format !== 'prometheus') throw new HttpError(400, `format "${format}" is not json or prometheus`);

  // the allow list, before anything is sent
  if (!cfg.allow.allows(target)) {
    throw new HttpError(
      403,
      `target ${formatProbeTarget(target)} is not allowed: this agent probes only ${cfg.allow.describe()} ` +
        '(add targets with --allow-target; see mxprobe serve --help)',
    );
  }

  const known = plan?.targets.find((t) => matchesProfileTarget(t, target));
  const tls: TlsMode = (tlsText as TlsMode | undefined) ?? known?.tls ?? 'starttls';
  const spec: ProbeSpec = {
    probeId: `probe-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`,
    target: {
      ...(known?.name ? { name: known.name } : {}),
      ...(target.mx !== undefined ? { mx: target.mx } : { host: target.host! }),
      port: target.port,
      tls,
    },
    path,
    sizeBytes,
    seed: randomInt(0, 2 ** 31),
    envelope: plan?.envelope ?? cfg.envelope,
    timeouts: cappedTimeouts(plan?.timeouts ?? DEFAULT_TIMEOUTS, budgetMs, { ...(stallMs !== undefined ? { stallMs } : {}), ...(noReplyMs !== undefined ? { noReplyMs } : {}) }),
  };
  if (plan?.ehloName !== undefined) spec.ehloName = plan.ehloName;
  if (plan?.insecure !== undefined) spec.insecure = plan.insecure;
  // the profile's credentials go only to the profile's own targets
  if (plan?.auth && known) spec.auth = plan.auth;
  if (plan?.tcpSnapshotMinBytes !== undefined) spec.tcpSnapshotMinBytes = plan.tcpSnapshotMinBytes;
  return { spec, target, budgetMs, json: format === 'json' };
}

/**
 * The metrics of one probe in the Prometheus text format (blackbox_exporter style names: `probe_success`,
 * `probe_duration_seconds`, …). `aborted`: the budget ran out before the probe reported.
 */
export async function probeMetricsText(r: ProbeResult | undefined, spec: ProbeSpec, budgetMs: number): Promise<{ text: string; contentType: string }> {
  const reg = new Registry();
  const registers = [reg];
  const g = (name: string, help: string, labelNames: string[] = []) => new Gauge({ name, help, labelNames, registers });
  const success = g('probe_success', 'Whether the probe delivered the message (2xx after the body): 1 or 0.');
  const duration = g('probe_duration_seconds', 'How long the probe took, connect to QUIT or to the failure.');
  const stage = g('probe_stage_duration_seconds', "Time of each SMTP stage (the last stage of a failed probe holds its partial time).", ['stage']);
  const outcome = g('probe_outcome', 'The outcome of the probe (1 for the one that happened) and the stage it ended in.', ['outcome', 'stage']);
  const size = g('probe_message_size_bytes', 'Exact message bytes the probe sent on the wire.');
  const body = g('probe_body_bytes_written', 'Message bytes accepted by the kernel (the body offset reached; overstates what the network moved).');
  const timedOut = g('probe_timed_out', '1 when the request budget ran out before the probe reported.');
  size.set(spec.sizeBytes);
  if (!r) {
    success.set(0);
    duration.set(budgetMs / 1000);
    timedOut.set(1);
    return { text: await reg.metrics(), contentType: reg.contentType };
  }
  timedOut.set(0);
  success.set(r.outcome === 'delivered' ? 1 : 0);
  duration.set(r.durationMs / 1000);
  for (const [st, ms] of Object.entries(r.stages ?? {})) if (typeof ms === 'number' && Number.isFinite(ms)) stage.set({ stage: st }, ms / 1000);
  outcome.set({ outcome: r.outcome, stage: r.outcome === 'delivered' ? '' : (r.stage ?? '') }, 1);
  body.set(r.bodyBytesWritten ?? 0);
  const acked = ackedBodyOffset(r);
  if (acked && acked[1] === 'body') g('probe_body_bytes_acked', "Message bytes the peer acknowledged (the kernel's bytes_acked minus the commands).").set(acked[0]);
  const sink = sinkBodyBytes(r);
  if (sink !== undefined) g('probe_body_bytes_received', 'Message bytes the receiving sink saw.').set(sink);
  if (r.reply) g('probe_smtp_reply_code', 'The last SMTP reply code received.').set(r.reply.code);
  if (r.tcp?.retransTotal !== undefined) g('probe_tcp_retransmits', 'Retransmitted segments on the connection (ss retrans total).').set(r.tcp.retransTotal);
  if (r.tcp?.rttMs !== undefined) g('probe_tcp_rtt_seconds', 'Smoothed RTT of the connection (ss).').set(r.tcp.rttMs / 1000);
  if (r.tls) g('probe_tls_version_info', 'TLS version and cipher used (1).', ['version', 'cipher']).set({ version: r.tls.version, cipher: r.tls.cipher }, 1);
  return { text: await reg.metrics(), contentType: reg.contentType };
}

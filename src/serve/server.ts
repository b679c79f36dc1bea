/**
 * `mxprobe serve` as a library: an HTTP server with `/metrics` (the schedule's metrics), `/probe` (one probe on
 * request, blackbox_exporter style), `/findings` (JSON), `/report` (the HTML report of the recent window) and
 * `/healthz`; and, with a plan, the schedule itself. Prints nothing: events are emitted for the CLI to log.
 */
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createRequire } from 'node:module';
import { computeCells } from '../analyze/cells.js';
import type { Envelope, ProbeResult, ProbeSpec } from '../model.js';
import type { Plan } from '../profile/plan.js';
import { renderReport } from '../report/html.js';
import { checkLocalAddresses, expandPlan, planSizeRefusal, type RunOptions } from '../run/index.js';
import { LOOPBACK_PATTERNS, TargetAllowList, formatProbeTarget, parseAllowPattern, type AllowRule } from './allow.js';
import { ServeMetrics } from './metrics.js';
import {
  DEFAULT_ENDPOINT_ENVELOPE,
  HttpError,
  parseProbeRequest,
  probeMetricsText,
  type ProbeEndpointConfig,
} from './probe-endpoint.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import { connectionCap, describeServerError, HTTP_HEADERS_TIMEOUT_MS, HTTP_KEEPALIVE_TIMEOUT_MS, openFileLimit } from './limits.js';
import { clockMs } from '../clock.js';

const require = createRequire(import.meta.url);
let VERSION = '';
try {
  VERSION = (require('../../package.json') as { version: string }).version;
} catch {
  VERSION = '';
}

export type ServeErrorCode = 'ELISTEN' | 'EINPUT' | 'EBIND';

export class ServeError extends Error {
  override name = 'ServeError';
  constructor(
    readonly code: ServeErrorCode,
    message: string,
    /** The system error code (EADDRINUSE, EACCES, …) for ELISTEN. */
    readonly sysCode?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

type ProbeFn = (spec: ProbeSpec, opts?: { signal?: AbortSignal }) => Promise<ProbeResult>;

export interface ServeOptions {
  /** Listen here (default 127.0.0.1, port 9466; port 0 picks a free one). Host `''` or `::`/`0.0.0.0`: all interfaces. */
  host?: string;
  port?: number;
  /** With a plan: run it every `intervalMs` and export its metrics. Without: `/probe` only. */
  plan?: Plan;
  /** Default 5 min. */
  intervalMs?: number;
  /** Results file of the schedule (default `results/serve-YYYYMMDD.jsonl`). */
  out?: SchedulerOptions['out'];
  /** `--allow-target` patterns for `/probe`. Profile targets are always allowed; without a profile and patterns: loopback. */
  allowTargets?: readonly string[];
  /** Envelope of `/probe` without a profile. */
  envelope?: Envelope;
  /** Probes `/probe` runs at once; more requests get 429 (default 8). */
  maxConcurrentProbes?: number;
  windowRuns?: number;
  maxWindowResults?: number;
  /** Concurrent HTTP connections (default 64, lowered to keep descriptors for probes under `ulimit -n`; limits.ts). */
  maxConnections?: number;
  /** Request headers (and an idle connection's first request) must come within this long (default 10 s). */
  headersTimeoutMs?: number;
  /** Shutdown: in-flight probes get this long (default 1500 ms) before they are ended. */
  graceMs?: number;
  /** Export process_* / nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
  /** For tests: the probe engine (default: src/probe) and runner options. */
  probeFn?: ProbeFn;
  runOptions?: SchedulerOptions['runOptions'];
}

export interface ProbeRequestEvent {
  status: number;
  target?: string;
  path?: string;
  sizeBytes?: number;
  outcome?: string;
  stage?: string;
  durationMs: number;
  message?: string;
  remote?: string;
}

export interface ServeEvents {
  'probe-request': [ProbeRequestEvent];
  /** The HTTP server could not accept a connection (out of descriptors, …): `message` says it in words. */
  'server-error': [{ code?: string; message: string }];
}

export interface Serve extends EventEmitter<ServeEvents> {
  readonly host: string;
  readonly port: number;
  /** `http://host:port` */
  readonly url: string;
  readonly metrics: ServeMetrics;
  readonly scheduler: Scheduler | undefined;
  readonly allow: TargetAllowList;
  /** Stop scheduling, end in-flight probes (within `graceMs` + a little), close the HTTP server. Idempotent. */
  close(): Promise<void>;
}

/** The allow list of /probe: profile targets, plus the patterns (or loopback when there are neither). */
export function buildAllowList(plan: Plan | undefined, patterns: readonly string[] | undefined): TargetAllowList {
  const rules: AllowRule[] = [];
  if (plan) {
    for (const t of plan.targets) {
      if (t.mx) rules.push(parseAllowPattern(`mx:${t.mx}:${t.port}`));
      else if (t.host) rules.push(parseAllowPattern(`${t.host.includes(':') ? `[${t.host}]` : t.host}:${t.port}`));
    }
  }
  if (patterns && patterns.length) rules.push(...patterns.map(parseAllowPattern));
  else if (!plan) rules.push(...LOOPBACK_PATTERNS.map(parseAllowPattern));
  return new TargetAllowList(rules);
}

function windowWords(started: number, windowRuns: number): string {
  const n = Math.min(started, windowRuns);
  return n === 0 ? 'no run yet' : n === 1 ? 'the last run' : `the last ${n} runs`;
}

function send(res: http.ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

function escHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Check the plan before serving: every spec valid, every source address bindable. */
async function checkPlan(plan: Plan, runOptions: SchedulerOptions['runOptions'] | undefined): Promise<void> {
  const tooMany = planSizeRefusal(plan, false);
  if (tooMany) throw new ServeError('EINPUT', `the profile cannot be scheduled: ${tooMany}`);
  const validate = runOptions?.validate ?? (await import('../probe/index.js')).validateSpec;
  const specs = expandPlan({ ...plan, repeat: 1 }, { runId: 'check' });
  const problems = new Set<string>();
  for (const s of specs) {
    try {
      validate(s);
    } catch (err) {
      problems.add((err as Error).message);
    }
  }
  if (problems.size) throw new ServeError('EINPUT', `the profile cannot be probed: ${[...problems].join('; ')}`);
  if (runOptions?.checkBind !== false) {
    try {
      await checkLocalAddresses(plan.paths);
    } catch (err) {
      throw new ServeError('EBIND', (err as Error).message, undefined, { cause: err });
    }
  }
}

/** Start serving. Rejects with ServeError: ELISTEN (address in use, …), EINPUT (the profile), EBIND (source address). */
export async function startServe(opts: ServeOptions = {}): Promise<Serve> {
  const plan = opts.plan;
  const allow = buildAllowList(plan, opts.allowTargets);
  if (plan) await checkPlan(plan, opts.runOptions);
  const metrics = new ServeMetrics({
    defaultMetrics: opts.defaultMetrics,
    info: { version: VERSION, profile: plan?.name ?? '', profileHash: plan?.profileHash ?? '' },
  });
  const probeFn: ProbeFn = opts.probeFn ?? (opts.runOptions?.probeFn as ProbeFn | undefined) ?? (await import('../probe/index.js')).probe;
  const endpointCfg: ProbeEndpointConfig = { allow, envelope: opts.envelope ?? DEFAULT_ENDPOINT_ENVELOPE };
  if (plan) endpointCfg.plan = plan;
  const maxProbes = Math.max(1, opts.maxConcurrentProbes ?? 8);
  const inflight = new Set<AbortController>();
  let closing = false;

  const scheduler = plan
    ? new Scheduler({
        plan,
        intervalMs: opts.intervalMs ?? 300_000,
        metrics,
        ...(opts.out !== undefined ? { out: opts.out } : {}),
        ...(opts.windowRuns !== undefined ? { windowRuns: opts.windowRuns } : {}),
        ...(opts.maxWindowResults !== undefined ? { maxWindowResults: opts.maxWindowResults } : {}),
        graceMs: opts.graceMs ?? 1500,
        settleMs: 400,
        runOptions: { ...opts.runOptions, ...(opts.probeFn ? { probeFn: opts.probeFn as NonNullable<RunOptions['probeFn']> } : {}) },
      })
    : undefined;

  const emitter = new EventEmitter<ServeEvents>();

  async function handleProbe(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const t0 = clockMs();
    const ev: ProbeRequestEvent = { status: 200, durationMs: 0, remote: req.socket.remoteAddress };
    const done = (): void => {
      ev.durationMs = clockMs() - t0;
      emitter.emit('probe-request', ev);
    };
    let parsed: ReturnType<typeof parseProbeRequest>;
    try {
      const hdr = req.headers['x-prometheus-scrape-timeout-seconds'];
      parsed = parseProbeRequest(url.searchParams, Array.isArray(hdr) ? hdr[0] : hdr, endpointCfg);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 400;
      metrics.probeRequests.inc({ result: status === 403 ? 'forbidden' : 'bad-request' });
      ev.status = status;
      ev.message = (err as Error).message;
      const t = url.searchParams.get('target');
      if (t) ev.target = t;
      send(res, status, 'text/plain; charset=utf-8', `${(err as Error).message}\n`);
      return done();
    }
    const { spec, budgetMs } = parsed;
    ev.target = formatProbeTarget(parsed.target);
    ev.path = spec.path.name;
    ev.sizeBytes = spec.sizeBytes;
    if (closing || inflight.size >= maxProbes) {
      metrics.probeRequests.inc({ result: 'busy' });
      ev.status = closing ? 503 : 429;
      ev.message = closing ? 'shutting down' : `${inflight.size} probes already in flight (at most ${maxProbes})`;
      send(res, ev.status, 'text/plain; charset=utf-8', `${ev.message}\n`, closing ? {} : { 'Retry-After': '5' });
      return done();
    }
    const ctrl = new AbortController();
    inflight.add(ctrl);
    // the scraper went away: stop probing for it
    res.on('close', () => {
      if (!res.writableFinished) ctrl.abort();
    });
    // the budget: the probe's deadlines are capped to it; this is the backstop
    const timer = setTimeout(() => ctrl.abort(), budgetMs + 1000);
    let result: ProbeResult | undefined;
    try {
      result = await probeFn(spec, { signal: ctrl.signal });
    } catch (err) {
      const aborted = ctrl.signal.aborted || (err as Error)?.name === 'AbortError';
      if (!aborted) {
        metrics.probeRequests.inc({ result: 'error' });
        ev.status = (err as Error)?.name === 'ProbeInputError' ? 400 : 500;
        ev.message = (err as Error).message;
        send(res, ev.status, 'text/plain; charset=utf-8', `probe failed: ${(err as Error).message}\n`);
        return done();
      }
    } finally {
      clearTimeout(timer);
      inflight.delete(ctrl);
    }
    metrics.probeRequests.inc({ result: 'ok' });
    if (result) {
      ev.outcome = result.outcome;
      if (result.stage) ev.stage = result.stage;
    } else ev.outcome = 'aborted';
    if (parsed.json) send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(result ?? { aborted: true, probeId: spec.probeId }, null, 2)}\n`);
    else {
      const m = await probeMetricsText(result, spec, budgetMs);
      send(res, 200, m.contentType, m.text);
    }
    done();
  }

  function findingsDoc(): unknown {
    const win = scheduler?.window() ?? [];
    const c = scheduler?.lastCompare;
    return {
      profile: plan?.name ?? null,
      windowProbes: win.length,
      runs: scheduler?.runsStarted ?? 0,
      verdict: c?.verdict ?? (plan ? 'No run has finished yet.' : 'No profile: nothing is scheduled (only /probe).'),
      findings: c?.findings ?? [],
      cells: c?.cells ?? computeCells(win),
    };
  }

  function indexPage(): string {
    const c = scheduler?.lastCompare;
    const lines = [
      `<li><a href="metrics">/metrics</a> — Prometheus metrics${plan ? ` of the schedule (${escHtml(plan.name)}, every ${Math.round((scheduler!.intervalMs / 1000) * 10) / 10}s)` : ''}</li>`,
      `<li><code>/probe?target=HOST:PORT&amp;path=NAME&amp;size=1MiB</code> — one probe, its metrics (allowed targets: ${escHtml(allow.describe())})</li>`,
      `<li><a href="findings">/findings</a> — the comparator's current findings (JSON)</li>`,
      `<li><a href="report">/report</a> — HTML report of the recent runs</li>`,
      `<li><a href="healthz">/healthz</a></li>`,
    ];
    return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mxprobe serve</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2em;max-width:60em}code{background:#f3f4f6;padding:1px 4px}</style></head>
<body><h1>mxprobe serve</h1>${c ? `<p><b>Verdict:</b> ${escHtml(c.verdict)}</p>` : ''}<ul>${lines.join('')}</ul></body></html>`;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://mxprobe.invalid');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, 'text/plain; charset=utf-8', `${req.method} is not supported: use GET\n`, { Allow: 'GET, HEAD' });
    }
    switch (url.pathname) {
      case '/metrics': {
        const text = await metrics.text();
        return send(res, 200, metrics.contentType, text);
      }
      case '/probe':
        return handleProbe(req, res, url);
      case '/healthz': {
        const doc = {
          status: 'ok',
          version: VERSION,
          profile: plan?.name ?? null,
          runs: scheduler?.runsStarted ?? 0,
          running: scheduler?.running ?? false,
          lastRunEndedAt: scheduler?.lastRunEndedAt?.toISOString() ?? null,
          lastError: scheduler?.lastError?.message ?? null,
          probesInFlight: inflight.size,
        };
        return send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(doc)}\n`);
      }
      case '/findings':
        return send(res, 200, 'application/json; charset=utf-8', `${JSON.stringify(findingsDoc(), null, 2)}\n`);
      case '/report': {
        const win = scheduler?.window() ?? [];
        const c = scheduler?.lastCompare;
        const html = renderReport({
          title: `mxprobe serve${plan ? ` — ${plan.name}` : ''}`,
          subtitle: `${windowWords(scheduler?.runsStarted ?? 0, opts.windowRuns ?? 6)} (${win.length} probe${win.length === 1 ? '' : 's'}), as of ${new Date().toISOString()}`,
          results: win,
          cells: c?.cells ?? computeCells(win),
          findings: c?.findings ?? [],
          verdict: c?.verdict ?? (plan ? 'No run has finished yet.' : 'No profile: nothing is scheduled.'),
          generatedAt: new Date().toISOString(),
        });
        return send(res, 200, 'text/html; charset=utf-8', html);
      }
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', indexPage());
      default:
        return send(res, 404, 'text/plain; charset=utf-8', `not found: ${url.pathname} (try /metrics, /probe, /findings, /report, /healthz)\n`);
    }
  }

  const server = http.createServer({ connectionsCheckingInterval: 1000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      send(res, 500, 'text/plain; charset=utf-8', `internal error: ${(err as Error)?.message ?? String(err)}\n`);
    });
  });
  server.requestTimeout = 0; // a /probe may take minutes; budgets are enforced per probe
  // bounds (limits.ts): slow or idle clients are cut off, and never take the descriptors probes need
  const fdLimit = openFileLimit();
  const probesAtOnce = maxProbes + (plan ? Math.max(1, plan.concurrency) : 0);
  server.maxConnections = connectionCap({ requested: opts.maxConnections, fdLimit, probes: probesAtOnce });
  const headersTimeoutMs = opts.headersTimeoutMs ?? HTTP_HEADERS_TIMEOUT_MS;
  server.headersTimeout = headersTimeoutMs;
  // a connection that never sends a request is not covered by headersTimeout: it gets as long, then is closed
  server.on('connection', (sock: Socket) => sock.setTimeout(headersTimeoutMs, () => sock.destroy()));
  server.on('request', (req: http.IncomingMessage) => req.socket.setTimeout(0)); // a /probe may take minutes
  server.keepAliveTimeout = HTTP_KEEPALIVE_TIMEOUT_MS;
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 9466;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const addr = `${host.includes(':') ? `[${host}]` : host || '*'}:${port}`;
      const why =
        err.code === 'EADDRINUSE'
          ? 'address already in use (another mxprobe serve or exporter is there; choose another --listen port)'
          : err.code === 'EACCES'
            ? 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)'
            : err.code === 'EADDRNOTAVAIL'
              ? 'that address is not on this machine'
              : `${err.code ?? ''} ${err.message}`.trim();
      reject(new ServeError('ELISTEN', `cannot listen on ${addr}: ${why}`, err.code, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: host === '' ? undefined : host, port }, () => {
      server.off('error', onError);
      // after listening, an accept error (EMFILE) must not crash the process: it is reported, serving goes on
      server.on('error', (err: NodeJS.ErrnoException) => emitter.emit('server-error', { code: err.code, message: describeServerError(err, fdLimit) }));
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.address.includes(':') ? `[${addr.address}]` : addr.address;

  let closed: Promise<void> | undefined;
  const handle_ = Object.assign(emitter, {
    host: addr.address,
    port: addr.port,
    url: `http://${shownHost === '[::]' ? '[::1]' : shownHost === '0.0.0.0' ? '127.0.0.1' : shownHost}:${addr.port}`,
    metrics,
    scheduler,
    allow,
    close(): Promise<void> {
      closed ??= (async () => {
        closing = true;
        const graceMs = opts.graceMs ?? 1500;
        // /probe requests: give them the same grace, then end them (their scraper gets probe_timed_out 1)
        const graceTimer = inflight.size ? setTimeout(() => inflight.forEach((c) => c.abort()), graceMs) : undefined;
        await scheduler?.stop();
        const serverClosed = new Promise<void>((r) => server.close(() => r()));
        server.closeIdleConnections();
        // wait a moment for the in-flight answers, then cut every connection
        const t = Date.now();
        while (inflight.size && Date.now() - t < graceMs + 500) await new Promise((r) => setTimeout(r, 25));
        if (graceTimer) clearTimeout(graceTimer);
        server.closeAllConnections();
        await serverClosed;
      })();
      return closed;
    },
  }) as Serve;
  scheduler?.start();
  return handle_;
}

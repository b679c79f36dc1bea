/**
 * `mxprobe serve` in-process against real servers on 127.0.0.1: a real smtp-server, and the fault-injecting
 * relay dropping everything after 64 KiB (the load balancer of incident 1) as the "via-lb" path.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import { loadProfile } from '../../src/profile/index.js';
import { startServe, type Serve } from '../../src/serve/index.js';
import { startSmtpServer } from '../helpers/servers.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the Prometheus text exposition format (what prom-client writes): samples, HELP and TYPE. */
function parseProm(text: string): { samples: Sample[]; types: Map<string, string>; help: Map<string, string> } {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'HELP' ? help : types).set(m[2]!, m[3]!);
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? '';
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gy;
    let lm: RegExpExecArray | null;
    let consumed = 0;
    while ((lm = re.exec(body))) {
      labels[lm[1]!] = lm[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
      consumed = re.lastIndex;
    }
    if (consumed !== body.length) throw new Error(`bad labels in: ${line}`);
    const v = m[3]!;
    samples.push({ name: m[1]!, labels, value: v === '+Inf' ? Infinity : v === '-Inf' ? -Infinity : Number(v) });
  }
  return { samples, types, help };
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(url, { headers });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t = Date.now();
  while (!cond()) {
    if (Date.now() - t > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('serve with a profile: schedule, /metrics, /probe through the lab relay', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let relay: Relay;
  let serve: Serve;
  let dir: string;
  const events: string[] = [];
  let runsEnded = 0;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-serve-'));
    smtp = await startSmtpServer();
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: parseFault('blackhole-after=64KiB') });
    const profile = join(dir, 'serve.yaml');
    writeFileSync(
      profile,
      `name: serve-test
tls: none
targets:
  - {host: 127.0.0.1, port: ${smtp.port}, name: sink}
paths:
  - name: direct
  - name: via-lb
    relay: '127.0.0.1:${relay.port}'
sizes: [1KiB, 256KiB]
repeat: 1
concurrency: 4
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {connect: 5s, command: 10s, data: 10s, body: 10s, dataAck: 10s, stall: 1s, noReply: 1s}
`,
    );
    const plan = await loadProfile(profile);
    // the interval is shorter than a run (via-lb 256KiB stalls for 1 s): runs must queue, not overlap
    serve = await startServe({ port: 0, plan, intervalMs: 400, out: join(dir, 'serve.jsonl') });
    serve.scheduler!.on('run:start', () => events.push('start'));
    serve.scheduler!.on('run:end', () => {
      events.push('end');
      runsEnded++;
    });
    serve.scheduler!.on('run:error', (e) => events.push(`error ${e.error.message}`));
    await waitFor(() => runsEnded >= 2, 30_000, 'two scheduled runs');
  });

  afterAll(async () => {
    const t = Date.now();
    await serve?.close();
    // shutdown ends in-flight probes within the grace period (1.5 s) plus settling
    expect(Date.now() - t).toBeLessThan(10_000);
    await relay?.close();
    await smtp?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports counters, histograms and gauges of the scheduled probes', async () => {
    const res = await get(`${serve.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.type).toContain('text/plain');
    const { samples, types } = parseProm(res.text);
    expect(types.get('mxprobe_probe_stage_duration_seconds')).toBe('histogram');
    expect(types.get('mxprobe_probes_total')).toBe('counter');
    expect(types.get('mxprobe_probe_success')).toBe('gauge');

    const delivered = find(samples, 'mxprobe_probes_total', { path: 'direct', target: 'sink', size: '1KiB', outcome: 'delivered' });
    expect(delivered).toHaveLength(1);
    expect(delivered[0]!.value).toBeGreaterThanOrEqual(2);
    expect(delivered[0]!.labels.stage).toBe('');
    const stalled = find(samples, 'mxprobe_probes_total', { path: 'via-lb', size: '256KiB', outcome: 'stalled' });
    expect(stalled.length).toBe(1);
    expect(stalled[0]!.value).toBeGreaterThanOrEqual(2);
    expect(['body', 'dataAck']).toContain(stalled[0]!.labels.stage);

    // histogram: buckets from 1 ms to 600 s, cumulative, +Inf equals _count
    const cell = { path: 'direct', target: 'sink', size: '1KiB', stage: 'greeting' };
    const buckets = find(samples, 'mxprobe_probe_stage_duration_seconds_bucket', cell);
    const les = buckets.map((b) => b.labels.le);
    expect(les[0]).toBe('0.001');
    expect(les).toContain('600');
    expect(les[les.length - 1]).toBe('+Inf');
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    const count = find(samples, 'mxprobe_probe_stage_duration_seconds_count', cell)[0]!.value;
    expect(buckets[buckets.length - 1]!.value).toBe(count);
    expect(count).toBeGreaterThanOrEqual(2);
    expect(find(samples, 'mxprobe_probe_stage_duration_seconds_sum', cell)[0]!.value).toBeGreaterThan(0);
    // a stalled probe's partial body is not a body duration
    expect(find(samples, 'mxprobe_probe_stage_duration_seconds_count', { path: 'via-lb', size: '256KiB', stage: stalled[0]!.labels.stage! })).toHaveLength(0);

    expect(find(samples, 'mxprobe_probe_success', { path: 'direct', size: '1KiB' })[0]!.value).toBe(1);
    expect(find(samples, 'mxprobe_probe_success', { path: 'via-lb', size: '1KiB' })[0]!.value).toBe(1);
    expect(find(samples, 'mxprobe_probe_success', { path: 'via-lb', size: '256KiB' })[0]!.value).toBe(0);
    const offset = find(samples, 'mxprobe_last_stall_offset_bytes', { path: 'via-lb', size: '256KiB' });
    expect(offset).toHaveLength(1);
    expect(offset[0]!.value).toBeGreaterThan(0);
    expect(offset[0]!.value).toBeLessThanOrEqual(256 * 1024);

    expect(find(samples, 'mxprobe_last_run_timestamp_seconds')[0]!.value).toBeGreaterThan(Date.now() / 1000 - 120);
    expect(find(samples, 'mxprobe_run_duration_seconds')[0]!.value).toBeGreaterThan(0.5);
    expect(find(samples, 'mxprobe_runs_total', { result: 'complete' })[0]!.value).toBeGreaterThanOrEqual(2);
    expect(types.get('mxprobe_findings')).toBe('gauge');
    expect(find(samples, 'mxprobe_stall_findings')).toHaveLength(1);
    expect(find(samples, 'mxprobe_info')[0]!.labels.profile).toBe('serve-test');
    // each run outlasts the 400 ms interval: boundaries were skipped, and runs never overlapped
    expect(find(samples, 'mxprobe_skipped_intervals_total')[0]!.value).toBeGreaterThanOrEqual(1);
    const seq = events.filter((e) => e === 'start' || e === 'end');
    for (let i = 0; i < seq.length; i++) expect(seq[i]).toBe(i % 2 === 0 ? 'start' : 'end');
    expect(events.filter((e) => e.startsWith('error'))).toEqual([]);
  });

  it('appends every scheduled probe to the results file', () => {
    const lines = readFileSync(join(dir, 'serve.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { path: string; runId: string; outcome: string });
    expect(lines.length).toBeGreaterThanOrEqual(8);
    expect(new Set(lines.map((l) => l.runId)).size).toBeGreaterThanOrEqual(2);
  });

  it('/probe: 256KiB through the blackholing relay stalls (probe_success 0), 1KiB delivers (1)', async () => {
    const t = encodeURIComponent(`127.0.0.1:${smtp.port}`);
    const big = await get(`${serve.url}/probe?target=${t}&path=via-lb&size=256KiB&stall=1s&noReply=1s`);
    expect(big.status).toBe(200);
    const b = parseProm(big.text).samples;
    expect(find(b, 'probe_success')[0]!.value).toBe(0);
    expect(find(b, 'probe_outcome', { outcome: 'stalled' })[0]!.value).toBe(1);
    expect(find(b, 'probe_message_size_bytes')[0]!.value).toBe(256 * 1024);
    expect(find(b, 'probe_timed_out')[0]!.value).toBe(0);
    // only this probe's metrics: nothing of the schedule
    expect(b.some((s) => s.name.startsWith('mxprobe_'))).toBe(false);

    const small = await get(`${serve.url}/probe?target=${t}&path=via-lb&size=1KiB`);
    expect(small.status).toBe(200);
    const s = parseProm(small.text).samples;
    expect(find(s, 'probe_success')[0]!.value).toBe(1);
    expect(find(s, 'probe_outcome', { outcome: 'delivered' })[0]!.value).toBe(1);
    expect(find(s, 'probe_body_bytes_written')[0]!.value).toBe(1024);
    expect(find(s, 'probe_smtp_reply_code')[0]!.value).toBe(250);
    const stages = find(s, 'probe_stage_duration_seconds').map((x) => x.labels.stage);
    expect(stages).toEqual(expect.arrayContaining(['connect', 'greeting', 'ehlo', 'mail', 'rcpt', 'data', 'body', 'dataAck']));
    expect(find(s, 'probe_duration_seconds')[0]!.value).toBeGreaterThan(0);

    const js = await get(`${serve.url}/probe?target=${t}&path=direct&size=1KiB&format=json`);
    expect(js.type).toContain('application/json');
    const r = JSON.parse(js.text) as { outcome: string; target: string; path: string };
    expect(r).toMatchObject({ outcome: 'delivered', target: 'sink', path: 'direct' });
  });

  it('/probe refuses targets outside the profile (403) and bad requests (400), before sending anything', async () => {
    const before = smtp.received.length;
    const conns = relay.stats().connections;
    const forbidden = await get(`${serve.url}/probe?target=127.0.0.2:${smtp.port}&path=direct&size=1KiB`);
    expect(forbidden.status).toBe(403);
    expect(forbidden.text).toContain('not allowed');
    expect(forbidden.text).toContain(`127.0.0.1:${smtp.port}`);
    const t = encodeURIComponent(`127.0.0.1:${smtp.port}`);
    const cases: Array<[string, RegExp]> = [
      [`/probe?path=direct&size=1KiB`, /target is missing/],
      [`/probe?target=${t}&path=nope&size=1KiB`, /unknown path "nope".*direct, via-lb/],
      [`/probe?target=${t}&size=1KiB`, /path is missing/],
      [`/probe?target=${t}&path=direct`, /size is missing/],
      [`/probe?target=${t}&path=direct&size=12XB`, /not a byte size/],
      [`/probe?target=${t}&path=direct&size=1KiB&tls=maybe`, /tls "maybe"/],
      [`/probe?target=${t}&path=direct&size=1KiB&timeout=soon`, /timeout "soon"/],
    ];
    for (const [q, re] of cases) {
      const res = await get(`${serve.url}${q}`);
      expect(res.status, q).toBe(400);
      expect(res.text, q).toMatch(re);
    }
    expect(smtp.received.length).toBe(before);
    expect(relay.stats().connections).toBe(conns);
    const m = parseProm((await get(`${serve.url}/metrics`)).text).samples;
    expect(find(m, 'mxprobe_probe_requests_total', { result: 'forbidden' })[0]!.value).toBe(1);
    expect(find(m, 'mxprobe_probe_requests_total', { result: 'bad-request' })[0]!.value).toBe(cases.length);
  });

  it('serves /healthz, /findings (JSON), /report (HTML with a heatmap), 404 and 405', async () => {
    const h = await get(`${serve.url}/healthz`);
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text)).toMatchObject({ status: 'ok', profile: 'serve-test' });
    const f = JSON.parse((await get(`${serve.url}/findings`)).text) as { verdict: string; cells: unknown[]; windowProbes: number };
    expect(f.cells).toHaveLength(4);
    expect(f.windowProbes).toBeGreaterThanOrEqual(8);
    expect(f.verdict.length).toBeGreaterThan(10);
    const rep = await get(`${serve.url}/report`);
    expect(rep.type).toContain('text/html');
    expect(rep.text.match(/ data-cell="/g)).toHaveLength(4);
    expect((await get(`${serve.url}/nope`)).status).toBe(404);
    expect((await fetch(`${serve.url}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('serve without a profile', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let relay: Relay;
  let serve: Serve;

  beforeAll(async () => {
    smtp = await startSmtpServer();
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: parseFault('blackhole-after=64KiB') });
    serve = await startServe({ port: 0, defaultMetrics: false });
  });
  afterAll(async () => {
    await serve?.close();
    await relay?.close();
    await smtp?.close();
  });

  it('probes loopback targets over "direct" and nothing else', async () => {
    const ok = await get(`${serve.url}/probe?target=127.0.0.1:${smtp.port}&size=2KiB&tls=none`);
    expect(find(parseProm(ok.text).samples, 'probe_success')[0]!.value).toBe(1);
    expect(smtp.received.at(-1)).toMatchObject({ from: 'probe@mxprobe.test', to: ['sink@mxprobe.test'], bytes: 2048 });
    expect((await get(`${serve.url}/probe?target=192.0.2.1:25&size=1KiB`)).status).toBe(403);
    expect((await get(`${serve.url}/probe?target=mx.example.net:25&size=1KiB`)).status).toBe(403);
    const p = await get(`${serve.url}/probe?target=127.0.0.1:${smtp.port}&size=1KiB&path=via-lb`);
    expect(p.status).toBe(400);
    expect(p.text).toContain('only "direct"');
  });

  it("answers within Prometheus' scrape timeout: the stall window is capped to the budget", async () => {
    const t0 = Date.now();
    const res = await get(`${serve.url}/probe?target=127.0.0.1:${relay.port}&size=256KiB&tls=none`, { 'X-Prometheus-Scrape-Timeout-Seconds': '2.5' });
    const took = Date.now() - t0;
    const s = parseProm(res.text).samples;
    expect(find(s, 'probe_success')[0]!.value).toBe(0);
    const oc = find(s, 'probe_outcome')[0]!;
    expect(['stalled', 'timeout']).toContain(oc.labels.outcome);
    // the default stall window is 10 s; the budget (2.5 s - 0.5 s) cut it short
    expect(took).toBeLessThan(8000);
  });

  it('exports no schedule metrics, but counts /probe requests', async () => {
    const { samples } = parseProm((await get(`${serve.url}/metrics`)).text);
    expect(find(samples, 'mxprobe_probe_requests_total', { result: 'ok' })[0]!.value).toBeGreaterThanOrEqual(2);
    expect(find(samples, 'mxprobe_probes_total')).toHaveLength(0);
    expect(samples.some((x) => x.name.startsWith('process_'))).toBe(false);
  });
});

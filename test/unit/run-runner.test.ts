import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ProbeResult } from '../../src/model.js';
import { computeCells } from '../../src/analyze/cells.js';
import { createRunEmitter, expandPlan, readResultsFile, RunError, runPlan, slimResult, type RunEvents } from '../../src/run/index.js';
import { fakeProbe, fakeResult, makePlan } from './run-fixtures.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mxprobe-run-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function lines(file: string): ProbeResult[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as ProbeResult);
}

describe('runPlan', () => {
  it('runs every probe within the concurrency limit and writes one line per probe', async () => {
    const out = join(dir, 'sub', 'r.jsonl');
    const plan = makePlan({ concurrency: 3 });
    const fake = fakeProbe({ delayMs: (s) => (s.sizeBytes === 1024 ? 2 : 6) });
    const ee = createRunEmitter();
    const seen: Array<keyof RunEvents> = [];
    let lastEnd: RunEvents['probe:end'] | undefined;
    ee.on('run:start', (e) => {
      seen.push('run:start');
      expect(e).toMatchObject({ total: 24, skipped: 0, pending: 24, out, concurrency: 3, profileHash: plan.profileHash });
    });
    ee.on('probe:start', () => seen.push('probe:start'));
    ee.on('probe:stage', () => seen.push('probe:stage'));
    ee.on('probe:end', (e) => {
      seen.push('probe:end');
      lastEnd = e;
      // the line is in the file when subscribers hear of it
      expect(lines(out).some((l) => l.probeId === e.result.probeId)).toBe(true);
    });
    ee.on('run:end', () => seen.push('run:end'));

    const res = await runPlan(plan, { out, probeFn: fake.fn, emitter: ee, runId: 'RUN1' });
    expect(res.interrupted).toBe(false);
    expect(res.results).toHaveLength(24);
    expect(fake.calls).toHaveLength(24);
    expect(fake.maxInFlight).toBeLessThanOrEqual(3);
    expect(fake.maxInFlight).toBeGreaterThan(1);
    // probes start in the run's order
    expect(fake.calls.map((c) => c.spec.probeId)).toEqual(expandPlan(plan, { runId: 'RUN1' }).map((s) => s.probeId));
    const file = lines(out);
    expect(file).toHaveLength(24);
    for (const l of file) {
      expect(l.runId).toBe('RUN1');
      expect(l.profileHash).toBe(plan.profileHash);
      expect(l.key).toMatch(/^(direct|via-lb)\|127\.0\.0\.1:2525\|\d+\|[0-3]$/);
      expect(Object.keys(l).slice(0, 4)).toEqual(['probeId', 'runId', 'profileHash', 'key']);
    }
    expect(new Set(file.map((l) => l.key)).size).toBe(24);
    expect(seen[0]).toBe('run:start');
    expect(seen.at(-1)).toBe('run:end');
    expect(seen.filter((s) => s === 'probe:stage')).toHaveLength(24);
    expect(lastEnd).toMatchObject({ done: 24, total: 24 });
  });

  it('asks the engine for stages only while someone listens to probe:stage (with workers, each is a message)', async () => {
    const asked: boolean[] = [];
    const fake = fakeProbe();
    const probeFn: typeof fake.fn = (s, o) => {
      asked.push(typeof o?.onStage === 'function');
      return fake.fn(s, o);
    };
    await runPlan(makePlan({ repeat: 1 }), { out: join(dir, 'quiet.jsonl'), probeFn });
    expect(asked).toEqual([false, false, false, false, false, false]);
    const ee = createRunEmitter();
    let stages = 0;
    ee.on('probe:stage', () => stages++);
    asked.length = 0;
    await runPlan(makePlan({ repeat: 1 }), { out: join(dir, 'heard.jsonl'), probeFn, emitter: ee });
    expect(asked).toEqual([true, true, true, true, true, true]);
    expect(stages).toBe(6);
  });

  it('checks the output is writable before sending anything', async () => {
    writeFileSync(join(dir, 'afile'), 'x');
    const fake = fakeProbe();
    const err = await runPlan(makePlan(), { out: join(dir, 'afile', 'r.jsonl'), probeFn: fake.fn }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunError);
    expect((err as RunError).code).toBe('EOUTPUT');
    expect((err as Error).message).toMatch(/cannot write results to .*afile\/r\.jsonl: .*a part of the path is a file/);
    expect(fake.calls).toHaveLength(0);
  });

  it('validates every spec before sending anything (one message per distinct problem)', async () => {
    const fake = fakeProbe();
    const out = join(dir, 'r.jsonl');
    const plan = makePlan({ auth: { user: 'u', passEnv: 'MXPROBE_TEST_SURELY_UNSET_VAR' } });
    const err = await runPlan(plan, { out, probeFn: fake.fn }).catch((e: unknown) => e);
    expect((err as RunError).code).toBe('EINPUT');
    expect((err as Error).message).toBe('nothing sent: AUTH secret: environment variable MXPROBE_TEST_SURELY_UNSET_VAR is not set');
    expect(fake.calls).toHaveLength(0);

    // a problem of one size only names the first probe it applies to
    const tiny = await runPlan(makePlan({ sizes: [10, 4096] }), { out, probeFn: fake.fn }).catch((e: unknown) => e);
    expect((tiny as RunError).code).toBe('EINPUT');
    expect((tiny as Error).message).toMatch(/^nothing sent: .*\(path (direct|via-lb), target 127\.0\.0\.1:2525, size 10, and 1 more cell\)$/);
    expect(fake.calls).toHaveLength(0);
  });

  it('resumes: same runId, skips recorded probes, appends the rest', async () => {
    const out = join(dir, 'r.jsonl');
    const plan = makePlan();
    // a first run, stopped after 10 probes
    const first = fakeProbe();
    const ac = new AbortController();
    const ee = createRunEmitter();
    ee.on('probe:end', (e) => {
      if (e.done === 10) ac.abort();
    });
    const r1 = await runPlan({ ...plan, concurrency: 1, profileHash: 'hash-other-00001' }, { out, probeFn: first.fn, signal: ac.signal, emitter: ee });
    expect(r1.interrupted).toBe(true);
    expect(r1.results).toHaveLength(10);
    expect(r1.notStarted).toBe(14);

    const second = fakeProbe();
    const ee2 = createRunEmitter();
    let start: RunEvents['run:start'] | undefined;
    const warnings: string[] = [];
    ee2.on('run:start', (e) => (start = e));
    ee2.on('run:warning', (e) => warnings.push(e.message));
    // another plan wrote the file: refused, nothing sent
    const refused = fakeProbe();
    await expect(runPlan(plan, { out, resume: true, probeFn: refused.fn })).rejects.toMatchObject({ code: 'ERESUME', message: expect.stringMatching(/different plan .*--force to append anyway/) });
    expect(refused.calls).toHaveLength(0);
    const r2 = await runPlan(plan, { out, resume: true, resumeOtherPlan: true, probeFn: second.fn, emitter: ee2 });
    expect(r2.runId).toBe(r1.runId);
    expect(r2.skipped).toBe(10);
    expect(r2.previous).toHaveLength(10);
    expect(second.calls).toHaveLength(14);
    expect(start).toMatchObject({ total: 24, skipped: 10, pending: 14, runId: r1.runId });
    const done = new Set(r1.results.map((r) => r.key));
    expect(second.calls.every((c) => !done.has((c.spec as { key?: string }).key))).toBe(true);
    // allowed: said, and appended
    expect(warnings.join('\n')).toMatch(/different plan.*appending anyway/);
    const file = lines(out);
    expect(file).toHaveLength(24);
    expect(new Set(file.map((l) => l.key)).size).toBe(24);
    expect(new Set(file.map((l) => l.runId))).toEqual(new Set([r1.runId]));

    // resuming a complete run sends nothing
    const third = fakeProbe();
    const r3 = await runPlan(plan, { out, resume: true, resumeOtherPlan: true, probeFn: third.fn });
    expect(third.calls).toHaveLength(0);
    expect(r3.skipped).toBe(24);
    expect(r3.interrupted).toBe(false);
  });

  it('resume drops a torn last line, warns, and runs that probe again', async () => {
    const out = join(dir, 'r.jsonl');
    const plan = makePlan({ repeat: 1 });
    await runPlan(plan, { out, probeFn: fakeProbe().fn, runId: 'RUNX' });
    const full = readFileSync(out, 'utf8').split('\n').filter(Boolean);
    expect(full).toHaveLength(6);
    // keep 4 lines and half of the 5th, without its newline (as kill -9 during a write would)
    writeFileSync(out, full.slice(0, 4).join('\n') + '\n' + full[4]!.slice(0, 40));
    const rf = readResultsFile(out);
    expect(rf.results).toHaveLength(4);
    expect(rf.truncated).toMatchObject({ line: 5 });

    const warnings: string[] = [];
    const ee = createRunEmitter();
    ee.on('run:warning', (e) => warnings.push(e.message));
    const again = fakeProbe();
    const r = await runPlan(plan, { out, resume: true, probeFn: again.fn, emitter: ee });
    expect(warnings.some((w) => /line 5 is incomplete/.test(w))).toBe(true);
    expect(again.calls).toHaveLength(2);
    expect(r.runId).toBe('RUNX');
    const after = lines(out); // every line parses
    expect(after).toHaveLength(6);
    expect(new Set(after.map((l) => l.key)).size).toBe(6);
  });

  it('resume refuses a file that is not a results file, naming the line', async () => {
    const out = join(dir, 'r.jsonl');
    writeFileSync(out, '{"probeId":"a","outcome":"delivered","key":"k"}\nhello world\n{"probeId":"b","outcome":"delivered"}\n');
    const err = await runPlan(makePlan(), { out, resume: true, probeFn: fakeProbe().fn }).catch((e: unknown) => e);
    expect((err as RunError).code).toBe('ERESUME');
    expect((err as Error).message).toContain('r.jsonl:2: not a probe result line (invalid JSON)');
    const missing = await runPlan(makePlan(), { out: join(dir, 'nope.jsonl'), resume: true, probeFn: fakeProbe().fn }).catch((e: unknown) => e);
    expect((missing as Error).message).toMatch(/nothing to resume: .*nope\.jsonl does not exist/);
  });

  it('starts a new line when the file lacks a final newline', async () => {
    const out = join(dir, 'r.jsonl');
    const plan = makePlan({ repeat: 1, paths: [{ name: 'direct' }], sizes: [1024] });
    await runPlan(plan, { out, probeFn: fakeProbe().fn });
    const text = readFileSync(out, 'utf8');
    writeFileSync(out, text.trimEnd()); // valid JSON, newline lost
    await runPlan({ ...plan, repeat: 2 }, { out, resume: true, probeFn: fakeProbe().fn });
    expect(lines(out)).toHaveLength(2);
  });

  it('on abort stops scheduling, lets in-flight probes finish within the grace period, then ends the rest', async () => {
    const out = join(dir, 'r.jsonl');
    // concurrency 4: two quick probes finish within the grace period, two slow ones are ended by it
    const plan = makePlan({ concurrency: 4, repeat: 5 });
    const specs = expandPlan(plan, { runId: 'RUNA' });
    const slow = new Set(specs.slice(0, 2).map((s) => s.probeId));
    const fake = fakeProbe({ delayMs: (s) => (slow.has(s.probeId) ? 30_000 : s.probeId === specs[2]!.probeId || s.probeId === specs[3]!.probeId ? 150 : 5) });
    const ac = new AbortController();
    const ee = createRunEmitter();
    let stopping: RunEvents['run:stopping'] | undefined;
    const dropped: string[] = [];
    ee.on('run:stopping', (e) => (stopping = e));
    ee.on('probe:dropped', (e) => dropped.push(e.spec.probeId));
    ee.on('probe:start', (e) => {
      if (e.spec.order === 3) setTimeout(() => ac.abort(), 20);
    });
    const t0 = performance.now();
    const res = await runPlan(plan, { out, probeFn: fake.fn, signal: ac.signal, graceMs: 400, emitter: ee, runId: 'RUNA' });
    const took = performance.now() - t0;
    expect(res.interrupted).toBe(true);
    expect(stopping).toEqual({ inFlight: 4, graceMs: 400 });
    expect(fake.calls).toHaveLength(4); // nothing started after the stop
    expect(res.results.map((r) => r.probeId).sort()).toEqual([specs[2]!.probeId, specs[3]!.probeId].sort());
    expect(dropped.sort()).toEqual([...slow].sort());
    expect(res.dropped).toBe(2);
    expect(res.notStarted).toBe(plan.repeat * 6 - 4);
    expect(lines(out).map((l) => l.probeId).sort()).toEqual(res.results.map((r) => r.probeId).sort());
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(10_000); // ended by the grace period, not by the 30 s probes
  });

  it('abandonSignal ends in-flight probes at once; a probe that ignores its signal is given up after settleMs', async () => {
    const out = join(dir, 'r.jsonl');
    const plan = makePlan({ concurrency: 2 });
    const stubborn = (): Promise<ProbeResult> => new Promise(() => undefined); // never settles
    const ac = new AbortController();
    const ab = new AbortController();
    const ee = createRunEmitter();
    const reasons: string[] = [];
    ee.on('probe:dropped', (e) => reasons.push(e.reason));
    ee.on('probe:start', (e) => {
      if (e.inFlight === 2) setTimeout(() => ac.abort(), 10);
    });
    ee.on('run:stopping', () => setTimeout(() => ab.abort(), 10));
    const t0 = performance.now();
    const res = await runPlan(plan, { out, probeFn: stubborn, signal: ac.signal, abandonSignal: ab.signal, graceMs: 60_000, settleMs: 100, emitter: ee });
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(res.interrupted).toBe(true);
    expect(reasons).toEqual(['abandoned', 'abandoned']);
    expect(res.results).toHaveLength(0);
  });

  it('an already-aborted signal sends nothing', async () => {
    const fake = fakeProbe();
    const res = await runPlan(makePlan(), { out: join(dir, 'r.jsonl'), probeFn: fake.fn, signal: AbortSignal.abort() });
    expect(fake.calls).toHaveLength(0);
    expect(res.interrupted).toBe(true);
    expect(res.notStarted).toBe(24);
  });

  it('spaces the starts to one target by at least 1/rate, while other targets proceed', async () => {
    const plan = makePlan({
      targets: [
        { name: 'slowed', host: '127.0.0.1', port: 2525, tls: 'none' },
        { name: 'free', host: '127.0.0.2', port: 2525, tls: 'none' },
      ],
      paths: [{ name: 'direct' }],
      sizes: [1024],
      repeat: 6,
      concurrency: 4,
      ratePerTarget: 20, // one start per 50 ms per target
    });
    const fake = fakeProbe({ delayMs: 1 });
    const res = await runPlan(plan, { out: join(dir, 'r.jsonl'), probeFn: fake.fn });
    expect(res.results).toHaveLength(12);
    for (const name of ['slowed', 'free']) {
      const ts = fake.calls.filter((c) => c.spec.target.name === name).map((c) => c.t);
      expect(ts).toHaveLength(6);
      for (let i = 1; i < ts.length; i++) expect(ts[i]! - ts[i - 1]!).toBeGreaterThanOrEqual(45);
    }
  });

  it('stops and rejects when the engine fails unexpectedly, keeping what finished', async () => {
    const out = join(dir, 'r.jsonl');
    const good = fakeProbe({ delayMs: 1 });
    let n = 0;
    const flaky = (spec: Parameters<typeof good.fn>[0], o?: Parameters<typeof good.fn>[1]) => {
      if (++n === 5) return Promise.reject(new TypeError('engine bug'));
      return good.fn(spec, o);
    };
    const err = await runPlan(makePlan({ concurrency: 1 }), { out, probeFn: flaky }).catch((e: unknown) => e);
    expect((err as Error).message).toBe('engine bug');
    expect(lines(out)).toHaveLength(4);
  });

  it('keepResults: false keeps memory flat (nothing retained) while the file and the events get everything', async () => {
    const out = join(dir, 'r.jsonl');
    const ee = createRunEmitter();
    let ends = 0;
    ee.on('probe:end', () => ends++);
    const res = await runPlan(makePlan(), { out, probeFn: fakeProbe().fn, emitter: ee, keepResults: false });
    expect(res.results).toHaveLength(0);
    expect(res.recorded).toBe(24);
    expect(ends).toBe(24);
    expect(lines(out)).toHaveLength(24);
  });
});

describe('slimResult', () => {
  it('keeps exactly what the cell statistics use', () => {
    const specs = expandPlan(makePlan(), { runId: 'S' });
    const full: ProbeResult[] = specs.map((s, i) => {
      const outcome = i % 3 === 0 ? 'stalled' : i % 5 === 0 ? 'rejected' : 'delivered';
      const r = { ...fakeResult(s, outcome), capabilities: ['PIPELINING', 'SIZE 1000'], recipients: [{ address: 'x@y', code: 250 }] } as ProbeResult;
      r.durationMs = 3 + i;
      if (outcome === 'stalled') {
        r.bodyBytesWritten = 2048 + i;
        r.tcp = { at: 'stall', tMs: 10, bytesAcked: 1500 + i, retrans: 3, raw: 'x'.repeat(300) };
      }
      if (outcome === 'rejected') r.reply = { code: 552, enhanced: '5.3.4', text: 'message too big for system' };
      return r;
    });
    const slim = full.map(slimResult);
    expect(computeCells(slim)).toEqual(computeCells(full));
    expect(JSON.stringify(slim).length).toBeLessThan(JSON.stringify(full).length);
    expect(slim[0]!.key).toBe(full[0]!.key);
  });
});

describe('runPlan with an arrival check', () => {
  it("writes each probe's line at once and its arrival record when known; only accepted probes are looked for; waits for the last", async () => {
    const out = join(dir, 'r.jsonl');
    const plan = makePlan({ concurrency: 2 });
    const fake = fakeProbe({ outcome: (s) => (s.sizeBytes === 1024 ? 'stalled' : 'delivered') });
    const asked: string[] = [];
    const release: Array<() => void> = [];
    const check = {
      expect: (e: { probeId: string }) => {
        asked.push(e.probeId);
        // the look-up ends only when the test says so: the probe lines must not wait for it
        return new Promise<{ found: boolean; folder: string; intact: boolean }>((resolve) => release.push(() => resolve({ found: true, folder: 'INBOX', intact: true })));
      },
      close: async () => undefined,
    };
    const ee = createRunEmitter();
    const events: string[] = [];
    ee.on('run:arrivals', (e) => {
      events.push(`waiting ${e.waiting}`);
      expect(lines(out).every((l) => !(l as { record?: string }).record)).toBe(true); // every probe line is written, no arrival yet
      for (const r of release) r();
    });
    ee.on('probe:arrival', () => events.push('arrival'));
    const summary = await runPlan(plan, { out, probeFn: fake.fn, validate: () => undefined, checkBind: false, emitter: ee, arrival: check });
    const delivered = summary.results.filter((r) => r.outcome === 'delivered');
    expect(delivered.length).toBeGreaterThan(0);
    expect(asked.sort()).toEqual(delivered.map((r) => r.probeId).sort());
    expect(events[0]).toBe(`waiting ${delivered.length}`);
    const records = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { record?: string; probeId: string });
    expect(records.filter((l) => l.record === 'arrival').map((l) => l.probeId).sort()).toEqual(asked.sort());
    expect(delivered.every((r) => r.arrival?.found)).toBe(true);
  });
});

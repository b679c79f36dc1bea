import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { attachProgress, formatEta, outcomeLabel, renderBar } from '../../src/cli/progress.js';
import { createRunEmitter, expandPlan, type RunEvents } from '../../src/run/index.js';
import { fakeResult, makePlan } from './run-fixtures.js';

function sink(isTTY: boolean) {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 200;
  return { stream, text: () => text };
}

const start = (over: Partial<RunEvents['run:start']> = {}): RunEvents['run:start'] => ({
  runId: 'R',
  total: 4,
  skipped: 0,
  pending: 4,
  out: 'r.jsonl',
  profileHash: 'h',
  concurrency: 2,
  workers: 1,
  targets: ['127.0.0.1:2525'],
  paths: ['direct', 'via-lb'],
  sizes: [1024],
  repeat: 2,
  resumed: false,
  ...over,
});

describe('progress', () => {
  it('labels outcomes with their stage (and code for rejections)', () => {
    const specs = expandPlan(makePlan(), { runId: 'R' });
    expect(outcomeLabel(fakeResult(specs[0]!))).toBe('delivered');
    expect(outcomeLabel(fakeResult(specs[0]!, 'stalled'))).toBe('stalled@body');
    expect(outcomeLabel({ ...fakeResult(specs[0]!, 'stalled'), stallKind: 'no-ack' })).toBe('stalled(no-ack)@body');
    const rej = { ...fakeResult(specs[0]!, 'rejected'), stage: 'rcpt' as const, reply: { code: 550, text: 'no' } };
    expect(outcomeLabel(rej)).toBe('rejected 550@rcpt');
  });

  it('renders the bar with counts, in-flight and ETA', () => {
    expect(renderBar({ done: 37, total: 120, counts: { delivered: 30, stalled: 7 }, inFlight: 4, etaMs: 12_000 })).toBe(
      '[######..............] 37/120  delivered 30  stalled 7  in flight 4  ETA 12s',
    );
    expect(formatEta(125_000)).toBe('2m05s');
    expect(formatEta(Number.NaN)).toBe('?');
  });

  it('writes one plain line per finished probe when not a terminal', () => {
    const out = sink(false);
    const ee = createRunEmitter();
    const p = attachProgress(ee, { stream: out.stream });
    const specs = expandPlan(makePlan({ sizes: [65536] }), { runId: 'R' });
    ee.emit('run:start', start());
    const r = { ...fakeResult(specs[0]!, 'stalled'), durationMs: 1520 };
    ee.emit('probe:end', { result: r, spec: specs[0]!, done: 12, total: 120 });
    ee.emit('run:stopping', { inFlight: 3, graceMs: 2000 });
    p.stop();
    expect(out.text()).toBe(
      `probe 12/120 ${r.path} 64KiB stalled@body 1.52s\n` +
        'stopping: waiting up to 2s for 3 probes in flight (Ctrl-C again to abandon)\n',
    );
    expect(out.text()).not.toContain('\r');
  });

  it('redraws a bar in place on a terminal, and leaves it on screen when stopped', async () => {
    const out = sink(true);
    const ee = createRunEmitter();
    const p = attachProgress(ee, { stream: out.stream, redrawMs: 10 });
    const specs = expandPlan(makePlan(), { runId: 'R' });
    ee.emit('run:start', start());
    ee.emit('probe:start', { spec: specs[0]!, inFlight: 1 });
    ee.emit('probe:end', { result: fakeResult(specs[0]!), spec: specs[0]!, done: 1, total: 4 });
    await new Promise((r) => setTimeout(r, 50));
    p.line('warning: something');
    p.stop();
    const text = out.text();
    expect(text).toContain('\r\u001b[K[#####...............] 1/4  delivered 1');
    expect(text).toContain('\r\u001b[Kwarning: something\n');
    expect(text.endsWith('\n')).toBe(true);
    // no probe lines on a terminal: the bar says it all
    expect(text).not.toMatch(/^probe /m);
  });
});

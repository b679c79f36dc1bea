import { describe, expect, it } from 'vitest';
import { bisect } from '../../src/analyze/bisect.js';
import { compare } from '../../src/analyze/compare.js';
import { evaluateThresholds, verifyRuns } from '../../src/analyze/verify.js';
import {
  formatEvidence,
  renderBisectResult,
  renderBisectStep,
  renderCompare,
  renderFindings,
  renderVerify,
  visibleWidth,
  wrap,
} from '../../src/cli/render.js';
import { KiB, MiB, SIZES, grid, probe } from './fixtures.js';

const lb = () =>
  grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? { outcome: 'stalled', ackedBytes: 62 * KiB } : undefined) });

describe('wrap', () => {
  it('wraps at the width with a hanging indent', () => {
    const out = wrap('one two three four five six seven', 12, '  ', '- ');
    expect(out).toBe('- one two\n  three four\n  five six\n  seven');
    for (const l of out.split('\n')) expect(l.length).toBeLessThanOrEqual(12);
  });
});

describe('formatEvidence', () => {
  it('sizes, times, p-values, short lists; nested objects left out', () => {
    expect(
      formatEvidence({ thresholdBytes: 65536, lastAckMs: 1500, pValue: 7.4e-7, sizes: [65536, 1048576], everySize: false, cells: [{ a: 1 }], wscale: { snd: 7, rcv: 7 } }),
    ).toBe('thresholdBytes 64KiB · lastAckMs 1.50s · pValue 7.4e-7 · sizes 64KiB, 1MiB · everySize no · wscale snd 7, rcv 7');
  });
});

describe('renderFindings / renderCompare', () => {
  it('numbers findings, tags their kind, wraps them, and adds the evidence line', () => {
    const c = compare(lb());
    const out = renderFindings(c.findings, { width: 100 });
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^1\. \[path-specific\] Path via-lb stalls in the message body from 64KiB on where direct does not: 18\/18/);
    expect(out).toMatch(/\n {3}evidence: mode stalling-cells · stalled 18 · total 18 · reference direct · referenceStalled 0/);
    expect(out).toMatch(/\n2\. \[size-threshold\]/);
    expect(out).toMatch(/\n4\. \[mechanism\]/);
    for (const l of lines) expect(visibleWidth(l)).toBeLessThanOrEqual(100);
    expect(renderFindings([])).toBe('(no findings)');
  });

  it('the whole report: table, findings, verdict', () => {
    const out = renderCompare(compare(lb()), { width: 100 });
    expect(out).toMatch(/^target mx\.test:25\nsize\s+direct\s+via-lb\n/);
    expect(out).toContain('\n\nFindings\n1. ');
    expect(out).toMatch(/\n\nVerdict\n {2}Path via-lb stalls in the message body from 64KiB on \(18\/18 probes; direct 0\/18,\n? ?p<0\.001\)\./);
  });
});

describe('renderVerify', () => {
  it('grid of before→after, the calls with their tests, thresholds, summary', () => {
    const before = lb();
    const after = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6 });
    const v = verifyRuns(before, after);
    const t = evaluateThresholds(after, [{ source: 'stall_rate < 1%', metric: 'stall_rate', stat: 'rate', op: '<', value: 0.01 }]);
    const out = renderVerify(v, t, { width: 120 });
    expect(out).toMatch(/^target mx\.test:25\nsize\s+direct\s+via-lb\n\s+4KiB\s+= unchanged 0\/6→0\/6\s+= unchanged 0\/6→0\/6\n/);
    expect(out).toMatch(/\n\s+64KiB\s+= unchanged 0\/6→0\/6\s+✓ fixed 6\/6→0\/6\n/);
    expect(out).toContain('\nCalls\n  ✓ fixed via-lb 64KiB: Fisher exact: 6/6 → 0/6 failed, p = 0.026 (raw = 0.002, 12 hypotheses) — was (6 stalled)\n');
    expect(out).toContain('\nThresholds (new run)\n  ✓ stall_rate < 1% — 0% (0/72): ok\n');
    expect(out).toMatch(/Summary: 3 fixed, 0 still failing, 0 regressed, 9 unchanged; baseline failures: 3, fixed: 3\.$/);
  });
});

describe('renderBisectStep / renderBisectResult', () => {
  it('one line per step with the bracket, and the final bracket', async () => {
    const lines: string[] = [];
    const res = await bisect(
      async (sizeBytes, count) => Array.from({ length: count }, () => (sizeBytes > 100_000 ? probe({ sizeBytes, outcome: 'stalled', ackedBytes: 90_000 }) : probe({ sizeBytes }))),
      { low: 4 * KiB, high: MiB, onStep: (s) => lines.push(renderBisectStep(s)) },
    );
    expect(lines[0]).toBe('step  1  check high      1MiB  ✗ stalled@body (1 probe, stopped at ~87.9KiB)   bracket 4KiB … 1MiB');
    expect(lines[1]).toBe('step  2  check low       4KiB  ✓ clean (2 probes)   bracket 4KiB … 1MiB');
    expect(lines[2]).toBe('step  3  search         64KiB  ✓ clean (2 probes)   bracket 64KiB … 1MiB');
    const out = renderBisectResult(res, 'via-lb');
    expect(out.split('\n')[0]).toMatch(/^Path via-lb stalls from somewhere in \(9\d\.\dKiB, 9\d\.\dKiB\]$/);
    expect(out).toContain('stalled probes stopped at ~87.9KiB of the body');
  });
});

/**
 * Arrivals in results files and the comparator: arrival records are their own lines joined by probe id (a bad one
 * is skipped and named), and the arrival rule says which path's accepted probes never arrive, arrive truncated from a
 * size on, or land in Junk.
 */
import { describe, expect, test } from 'vitest';
import type { Arrival, ProbeResult } from '../../src/model.js';
import { compare } from '../../src/analyze/index.js';
import { parseResults, type SkippedLine } from '../../src/analyze/io.js';
import { arrivalLine, describeArrival } from '../../src/arrival/record.js';
import { KiB, MiB, probe } from './fixtures.js';

const within = 'not found in INBOX, Junk within 5m';

function withArrival(path: string, sizeBytes: number, a: Arrival, i: number): ProbeResult {
  return { ...probe({ path, sizeBytes, id: `${path}-${sizeBytes}-${i}` }), arrival: a };
}

function series(path: string, sizes: number[], n: number, a: (size: number, i: number) => Arrival): ProbeResult[] {
  return sizes.flatMap((s) => Array.from({ length: n }, (_, i) => withArrival(path, s, a(s, i), i)));
}

describe('arrival records in a results file', () => {
  test('joined to their probe by id; the probe line stays as written; a bad record is skipped and named', () => {
    const r = probe({ path: 'direct', sizeBytes: 4 * KiB, id: 'p-1' });
    const ok = arrivalLine(r, { found: true, latencyMs: 1200, folder: 'INBOX', sizeBytes: 4500, intact: true });
    const bad = { record: 'arrival', probeId: 'p-1', arrival: { found: 'yes' } };
    const skipped: SkippedLine[] = [];
    const got = parseResults([JSON.stringify(r), JSON.stringify(ok), JSON.stringify(bad), ''].join('\n'), 'r.jsonl', skipped);
    expect(got).toHaveLength(1);
    expect(got[0]!.arrival).toEqual(ok.arrival);
    expect(skipped).toEqual([{ file: 'r.jsonl', line: 3, reason: expect.stringMatching(/^not an arrival record \(arrival\.found: /) }]);
  });

  test('a record for a probe that was not accepted is not joined (only accepted probes are looked for)', () => {
    const r = probe({ path: 'direct', sizeBytes: 4 * KiB, outcome: 'stalled', id: 'p-2' });
    const got = parseResults([JSON.stringify(r), JSON.stringify(arrivalLine(r, { found: false, reason: within }))].join('\n'), 'r.jsonl');
    expect(got[0]!.arrival).toBeUndefined();
  });

  test('resume reads a file with arrival records: they are not probes to skip, and not an error', async () => {
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { readResultsFile } = await import('../../src/run/jsonl.js');
    const dir = mkdtempSync(join(tmpdir(), 'mxprobe-arrival-resume-'));
    try {
      const r = { ...probe({ path: 'direct', sizeBytes: 4 * KiB, id: 'p-3' }), key: 'direct|t|4096|0', runId: 'run-1' };
      const file = join(dir, 'r.jsonl');
      writeFileSync(file, `${JSON.stringify(r)}\n${JSON.stringify(arrivalLine(r, { found: false, reason: within }))}\n`);
      const rf = readResultsFile(file);
      expect(rf.results.map((x) => x.probeId)).toEqual(['p-3']);
      expect(rf.unkeyed).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('describeArrival says folder, time, whole or why not', () => {
    expect(describeArrival({ found: true, latencyMs: 6200, folder: 'INBOX', sizeBytes: 1_049_000, intact: true, deleted: true })).toBe(
      'in INBOX 6.20s after acceptance, whole (1,049,000 bytes stored, seed verified); deleted',
    );
    expect(describeArrival({ found: false, reason: within })).toBe(`not in the mailbox: ${within}`);
  });
});

describe('the arrival rule', () => {
  const sizes = [4 * KiB, 64 * KiB, MiB];

  test('accepted on both paths, never arrives over one: named with the other path and its p50', () => {
    const rs = [
      ...series('via-lb', sizes, 3, () => ({ found: false, reason: within })),
      ...series('direct', sizes, 3, (_s, i) => ({ found: true, latencyMs: 4000 + i * 100, folder: 'INBOX', intact: true })),
    ];
    const f = compare(rs).findings.filter((x) => x.kind === 'arrival');
    expect(f).toHaveLength(1);
    expect(f[0]!.path).toBe('via-lb');
    expect(f[0]!.stall).toBe(false);
    expect(f[0]!.statement).toMatch(/^via-lb: 9\/9 accepted, 0\/9 arrived \(not found in INBOX, Junk within 5m\); direct: 9\/9 arrived, p50 4\.10s, p < 0\.001/);
  });

  test('truncated from a size on, whole below', () => {
    const rs = series('via-lb', [...sizes, 4 * MiB], 2, (s) =>
      s >= MiB ? { found: true, folder: 'INBOX', intact: false, reason: 'truncated: 65,000 bytes stored of 1,048,576 sent' } : { found: true, folder: 'INBOX', intact: true },
    );
    const f = compare(rs).findings.find((x) => x.kind === 'arrival')!;
    expect(f.sizeBytes).toBe(MiB);
    expect(f.statement).toMatch(/^On via-lb, probes arrive truncated from 1MiB on: 4\/8 that arrived are not intact; 4KiB, 64KiB whole \(4\)/);
  });

  test('lands in Junk on one path only', () => {
    const rs = [
      ...series('relay-b', sizes, 2, () => ({ found: true, folder: 'Junk', intact: true })),
      ...series('direct', sizes, 2, () => ({ found: true, folder: 'INBOX', intact: true })),
    ];
    const f = compare(rs).findings.filter((x) => x.kind === 'arrival');
    expect(f.map((x) => x.statement)).toEqual(['On relay-b, 6/6 probes that arrived land in Junk (direct: 0/6): the receiver files mail from this path as spam.']);
  });

  test('every probe found whole in INBOX, or no arrival records at all: no arrival finding', () => {
    const whole = series('direct', sizes, 2, () => ({ found: true, folder: 'INBOX', intact: true }));
    expect(compare(whole).findings.filter((x) => x.kind === 'arrival')).toEqual([]);
    expect(compare(whole.map(({ arrival: _a, ...r }) => r)).findings.filter((x) => x.kind === 'arrival')).toEqual([]);
  });
});

describe('arrival thresholds (verify, run, serve)', () => {
  test('arrival: p50 over the probes found; arrival_rate = found whole / accepted and looked for', async () => {
    const { evaluateThresholds } = await import('../../src/analyze/verify.js');
    const { parseThreshold } = await import('../../src/profile/fields.js');
    const rs = [
      withArrival('direct', 4 * KiB, { found: true, latencyMs: 2000, folder: 'INBOX', intact: true }, 1),
      withArrival('direct', 4 * KiB, { found: true, latencyMs: 4000, folder: 'INBOX', intact: false, reason: 'truncated: …' }, 2),
      withArrival('direct', 4 * KiB, { found: false, reason: within }, 3),
      probe({ path: 'direct', sizeBytes: 4 * KiB, outcome: 'stalled' }),
    ];
    const [lat, rate] = evaluateThresholds(rs, [parseThreshold('arrival: p50 < 5s'), parseThreshold('arrival_rate >= 99%')]);
    expect(lat).toMatchObject({ ok: true, actual: 3000, n: 2 });
    expect(rate).toMatchObject({ ok: false, n: 3 });
    expect(rate!.actual).toBeCloseTo(1 / 3);
    expect(rate!.message).toMatch(/^arrival_rate >= 99% — 33(\.3)?% \(1\/3\): FAILED/);
  });
});

describe('the HTML report with arrivals', () => {
  test('an arrival section per size and path, the arrival in the raw table, every value escaped, no inline style', async () => {
    const { renderReport } = await import('../../src/report/html.js');
    const rs = [
      ...series('via-lb', [4 * KiB], 2, () => ({ found: false, reason: within })),
      ...series('direct', [4 * KiB], 2, (_s, i) => ({ found: true, latencyMs: 1000 + i * 1000, folder: i ? '<img src=x onerror=alert(1)>' : 'INBOX', intact: true })),
    ];
    const c = compare(rs);
    const html = renderReport({ title: 't', results: rs, cells: c.cells, findings: c.findings, verdict: c.verdict });
    const section = /<section id="arrival">[\s\S]*?<\/section>/.exec(html)?.[0] ?? '';
    expect(section).toMatch(/<td class="ar-bad">0\/2<\/td>/);
    expect(section).toMatch(/<td class="ar-ok">2\/2 · p50 1\.50s<\/td>/);
    expect(html).toContain('not in the mailbox: not found in INBOX, Junk within 5m');
    expect(html).not.toContain('<img src=x');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).not.toMatch(/\sstyle=/);
    const plain = compare(rs.map(({ arrival: _a, ...r }) => r));
    expect(renderReport({ title: 't', results: plain.cells.length ? rs.map(({ arrival: _a, ...r }) => r) : [], cells: plain.cells, findings: [], verdict: '' })).not.toContain('id="arrival"');
  });
});

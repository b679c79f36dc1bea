import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compare } from '../../src/analyze/compare.js';
import { verifyRuns } from '../../src/analyze/verify.js';
import { renderReport, stallColor, stallPoints, jsonForScript } from '../../src/report/html.js';
import { reportInputFor, writeReport, ReportWriteError } from '../../src/report/index.js';
import { KiB, MiB, SIZES, grid } from './fixtures.js';

const lb = () =>
  grid({
    paths: ['direct', 'via-lb'],
    sizes: SIZES,
    repeat: 6,
    shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? { outcome: 'stalled', ackedBytes: 62 * KiB } : undefined),
  });

function report(results = lb(), extra: Partial<Parameters<typeof renderReport>[0]> = {}): string {
  const r = compare(results);
  return renderReport({ title: 'lb vs direct', results, cells: r.cells, findings: r.findings, verdict: r.verdict, ...extra });
}

/** Every value of an attribute in the document. */
function attrs(html: string, name: string): string[] {
  return [...html.matchAll(new RegExp(`\\s${name}="([^"]*)"`, 'g'))].map((m) => m[1]!);
}

describe('renderReport', () => {
  it('is one document with no external resource at all', () => {
    const html = report();
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/https?:\/\//i);
    expect(html).not.toMatch(/\/\/[a-z0-9.-]+\.[a-z]{2,}\//i); // protocol-relative URLs
    for (const v of [...attrs(html, 'src'), ...attrs(html, 'href')]) expect(v).toMatch(/^(#|data:)/);
    expect(html).not.toMatch(/@import|\burl\(/); // CSS url(...) (JS has URL.createObjectURL)
    expect(html).not.toMatch(/<(link|iframe|object|embed|img)\b/i);
    // the policy forbids loading anything even if a value slipped through
    expect(html).toContain(`default-src 'none'`);
  });

  it('has one heatmap cell per (path, size), each carrying its numbers', () => {
    const results = lb();
    const html = report(results);
    const cells = attrs(html, 'data-cell');
    expect(cells).toHaveLength(2 * SIZES.length);
    expect(new Set(cells).size).toBe(cells.length);
    const rates = attrs(html, 'data-stall-rate').map(Number);
    // via-lb stalls from 64 KiB on: 3 sizes at 100%, everything else at 0%
    expect(rates.filter((r) => r === 1)).toHaveLength(3);
    expect(rates.filter((r) => r === 0)).toHaveLength(2 * SIZES.length - 3);
    expect(cells).toContain(`via-lb|mx.test:25|${64 * KiB}`);
    // sizes are formatted for people, hover titles carry the numbers
    expect(html).toContain('>64KiB</th>');
    expect(html).toMatch(/title="via-lb, 64KiB \(65,536 bytes\)\nstalled 6\/6 \(100%; 95% CI/);
  });

  it('puts the verdict on top, in the verdict section, marked bad when a path stalls', () => {
    const results = lb();
    const r = compare(results);
    const html = report(results);
    const verdictAt = html.indexOf('id="verdict"');
    expect(verdictAt).toBeGreaterThan(0);
    expect(verdictAt).toBeLessThan(html.indexOf('id="heatmap"'));
    expect(html).toMatch(/class="verdict bad"/);
    expect(html).toContain(r.verdict.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;'));
  });

  it('marks a clean run good and says there is nothing to plot', () => {
    const results = grid({ paths: ['direct'], sizes: [KiB, MiB], repeat: 3 });
    const html = report(results);
    expect(html).toMatch(/class="verdict good"/);
    expect(html).toContain('No probe stalled: nothing to plot.');
    expect(attrs(html, 'data-cell')).toHaveLength(2);
  });

  it('escapes everything that comes from results, and the embedded JSON cannot end its script', () => {
    const evil = '<script>alert(1)</script>"\'&';
    const results = grid({
      paths: [evil, 'direct'],
      targets: ['<img src=x onerror=alert(2)>:25'],
      sizes: [KiB, 64 * KiB],
      repeat: 3,
      shape: ({ path, sizeBytes }) =>
        path === evil && sizeBytes === 64 * KiB ? { outcome: 'rejected', stage: 'rcpt', reply: { code: 550, text: '</script><b>bold</b>' } } : undefined,
    });
    const html = report(results, { title: '<i>title</i>', subtitle: '<u>sub</u>' });
    // exactly the two script elements of the report itself
    expect(html.match(/<script\b/gi)).toHaveLength(2);
    expect(html.match(/<\/script>/gi)).toHaveLength(2);
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<b>bold');
    expect(html).not.toContain('<i>title');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;');
    // the JSON is still the data, byte for byte, once parsed
    const json = /<script type="application\/json" id="mxprobe-data">([\s\S]*?)<\/script>/.exec(html)![1]!;
    const data = JSON.parse(json) as { results: Array<{ path: string }> };
    expect(data.results.some((x) => x.path === evil)).toBe(true);
    expect(jsonForScript({ a: '</script>\u2028' })).toBe('{"a":"\\u003c/script\\u003e\\u2028"}');
  });

  it('lays out several targets as column groups: cells = targets × paths × sizes', () => {
    const results = grid({ paths: ['a', 'b', 'c'], targets: ['mx1:25', 'mx2:25'], sizes: [KiB, 16 * KiB], repeat: 2 });
    const html = report(results);
    expect(attrs(html, 'data-cell')).toHaveLength(12);
    expect((html.match(/class="tgt"/g) ?? []).length).toBe(2);
  });

  it('plots one point per stalled probe at its acknowledged offset', () => {
    const results = lb();
    const pts = stallPoints(results);
    expect(pts).toHaveLength(3 * 6);
    expect(pts.every((p) => p.source === 'bytesAcked' && p.offset === 62 * KiB)).toBe(true);
    const html = report(results);
    expect(attrs(html, 'data-point')).toHaveLength(18);
  });

  it('draws a waterfall row per cell, with the failed stage hatched', () => {
    const html = report();
    expect(attrs(html, 'data-wf-cell')).toHaveLength(2 * SIZES.length);
    expect((html.match(/class="seg fail[ "]/g) ?? []).length).toBe(3);
    // a 10 s stall next to ~100 ms transactions is cut at the edge of the shared scale, not the scale stretched
    expect((html.match(/class="seg fail clipped"/g) ?? []).length).toBe(3);
  });

  it('shows the before → after grid of verify', () => {
    const before = lb();
    const after = grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6 });
    const v = verifyRuns(before, after);
    const r = compare(after);
    const html = renderReport({
      results: after,
      cells: r.cells,
      findings: r.findings,
      verdict: 'Fixed.',
      verify: { baseline: 'before.jsonl', after: 'after.jsonl', result: v, thresholds: [] },
    });
    const statuses = attrs(html, 'data-status');
    expect(statuses).toHaveLength(2 * SIZES.length);
    expect(statuses.filter((s) => s === 'fixed')).toHaveLength(3);
    expect(html).toMatch(/class="verdict good"/);
  });

  it('scales colour from pale to dark red', () => {
    expect(stallColor(0)).toBe('rgb(237,247,237)');
    expect(stallColor(1)).toBe('rgb(140,10,20)');
    expect(stallColor(2)).toBe(stallColor(1));
  });
});

describe('writeReport', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mxprobe-report-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates folders and writes atomically (no temporary file left)', async () => {
    const file = join(dir, 'a', 'b', 'report.html');
    const bytes = await writeReport(file, reportInputFor(lb(), { title: 't' }));
    const text = readFileSync(file, 'utf8');
    expect(Buffer.byteLength(text)).toBe(bytes);
    expect(text).toContain('data-cell=');
    expect(readdirSync(join(dir, 'a', 'b'))).toEqual(['report.html']);
  });

  it('names the file when it cannot write', async () => {
    const blocker = join(dir, 'file');
    writeFileSync(blocker, 'x');
    const err = await writeReport(join(blocker, 'r.html'), reportInputFor(lb())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ReportWriteError);
    expect((err as Error).message).toContain(join(blocker, 'r.html'));
  });
});

describe('transcript per probe', () => {
  it('a closed <details> in the probe row, escaped, control characters made visible; none without a transcript', () => {
    const results = lb();
    results[0] = { ...results[0]!, transcript: [
      { tMs: 0.4, dir: '*', text: 'connected to 127.0.0.1:25' },
      { tMs: 1.2, dir: '<', text: '220 <b>evil</b>\u001b[31m' },
      { tMs: 1.9, dir: '>', text: 'EHLO probe' },
    ] };
    const html = report(results);
    expect(html.match(/<details class="transcript">/g)).toHaveLength(1);
    expect(html).toContain('transcript (3 lines)');
    expect(html).toMatch(/1\.2ms &lt;- 220 &lt;b&gt;evil&lt;\/b&gt;\ufffd\[31m/);
    expect(html).toMatch(/1\.9ms -&gt; EHLO probe/);
    expect(html).not.toContain('<b>evil</b>');
  });
});

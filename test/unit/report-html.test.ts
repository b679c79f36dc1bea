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
    expect(html).toMatch(/title="via-lb, 64KiB \(65,536 bytes\)\ndelivered 0\/6\nstalled 6\/6 \(100%; 95% CI/);
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
    expect((html.match(/class="seg fail clipped k[0-9a-z]+"/g) ?? []).length).toBe(3);
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

describe('renderReport: the heatmap says what the table says', () => {
  it('each cell shows delivered/total, coloured by what happened: stall kind, rejection, timeout, delivered', () => {
    const rs = grid({
      paths: ['direct', 'via-lb', 'via-fw', 'via-slow'], sizes: [KiB, MiB], repeat: 3,
      shape: ({ path, sizeBytes }) =>
        sizeBytes !== MiB ? undefined
          : path === 'direct' ? { outcome: 'rejected', stage: 'dataAck', reply: { code: 552, enhanced: '5.3.4', text: 'message too big' } }
          : path === 'via-lb' ? { outcome: 'stalled' }
          : path === 'via-fw' ? { outcome: 'stalled', tcp: { sndWnd: 0, retrans: 0, unacked: 0 } }
          : { outcome: 'timeout' },
    });
    const html = report(rs);
    const td = (path: string, size: number): string => new RegExp(`<td class="[^"]*" tabindex="0" data-cell="${path}\\|mx\\.test:25\\|${size}"[^>]*>.*?</td>`).exec(html)![0];
    // 100% rejected is "0/3", coloured as a rejection: never a light green "0/3" of a stall-rate scale
    expect(td('direct', MiB)).toMatch(/class="hm w-rejected dark sr-0"/);
    expect(td('direct', MiB)).toContain('<div class="hm-main">0/3</div><div class="hm-sub">3 rejected 552@dataAck</div>');
    expect(td('via-lb', MiB)).toMatch(/class="hm w-no-ack dark sr-10"/);
    expect(td('via-lb', MiB)).toContain('3 stalled no-ack@body');
    expect(td('via-fw', MiB)).toMatch(/class="hm w-window-closed dark sr-10"/);
    expect(td('via-slow', MiB)).toMatch(/class="hm w-timeout dark sr-0"/);
    expect(td('direct', KiB)).toMatch(/class="hm w-delivered sr-0"/);
    expect(td('direct', KiB)).toContain('<div class="hm-main">3/3</div>');
    // a legend entry per colour in use, and the stall rate as a second view
    for (const w of ['delivered', 'no-ack', 'window-closed', 'rejected', 'timeout']) expect(html).toContain(`<i class="sw w-${w}"></i>`);
    expect(html).toContain('<input type="radio" name="hmview" value="rate">');
    expect(html).toMatch(/\.view-rate td\.hm\.sr-10\{background:rgb\(140,10,20\)/);
  });

  it('a cell where some probes delivered is pale in the colour of the rest', () => {
    const html = report(grid({ paths: ['a', 'b'], sizes: [MiB], repeat: 4, shape: ({ path, i }) => (path === 'b' && i < 1 ? 'stalled' : undefined) }));
    expect(html).toMatch(/class="hm w-no-ack mixed sr-3"[^>]*data-delivered="3" data-total="4"/);
  });
});

describe('renderReport: hostile values and the CSP', () => {
  it('a crafted durationMs (or size) in a results line never becomes markup', () => {
    const rs = lb();
    const evil = '"><svg onload=alert(1)>';
    const stalled = rs.findIndex((r) => r.outcome === 'stalled');
    const bad = [{ ...rs[0]!, durationMs: evil as unknown as number }, { ...rs[1]!, stages: { body: evil as unknown as number } }, ...rs.slice(2)];
    bad[stalled] = { ...bad[stalled]!, stallKind: evil as unknown as 'no-ack' };
    const html = report(bad);
    expect(html).not.toContain('<svg onload');
    expect(html).not.toMatch(/data-v="[^"0-9.e+-]/);
  });

  it("has no 'unsafe-inline': the one style and the one script are allowed by their hashes, and no element has a style attribute", async () => {
    const { createHash } = await import('node:crypto');
    const html = report();
    const csp = /http-equiv="Content-Security-Policy" content="([^"]*)"/.exec(html)![1]!;
    expect(csp).not.toContain('unsafe-inline');
    const hash = (t: string): string => `'sha256-${createHash('sha256').update(t, 'utf8').digest('base64')}'`;
    const style = /<style>([\s\S]*?)<\/style>/.exec(html)![1]!;
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)![1]!;
    expect(csp).toContain(`style-src ${hash(style)}`);
    expect(csp).toContain(`script-src ${hash(script)}`);
    expect(html).not.toMatch(/\sstyle="/);
    expect((html.match(/<style>/g) ?? []).length).toBe(1);
    expect((html.match(/<script>/g) ?? []).length).toBe(1);
  });
});

describe('renderReport: axes', () => {
  it('tick labels never collide: 48KiB and 64KiB are both labelled, on two rows', () => {
    const html = report();
    const ticks = [...html.matchAll(/<text class="tick" x="([\d.]+)" y="([\d.]+)" text-anchor="middle">(\d+(?:KiB|MiB|B))<\/text>/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), label: m[3]! }));
    const labels = ticks.map((t) => t.label);
    for (const s of ['4KiB', '16KiB', '48KiB', '64KiB', '256KiB', '1MiB']) expect(labels).toContain(s);
    const at = (l: string) => ticks.find((t) => t.label === l)!;
    expect(at('48KiB').y).not.toBe(at('64KiB').y);
    for (const a of ticks) for (const b of ticks) if (a !== b && a.y === b.y) expect(Math.abs(a.x - b.x)).toBeGreaterThanOrEqual((a.label.length + b.label.length) * 3.25);
  });

  it('a time axis: one dot per probe, one lane per path, coloured by what happened', () => {
    const results = lb().map((r, i) => ({ ...r, startedAt: new Date(Date.parse('2024-05-01T10:00:00Z') + i * 1000).toISOString() }));
    const html = report(results);
    const dots = [...html.matchAll(/<circle class="tl-pt" data-what="([a-z-]+)"/g)].map((m) => m[1]);
    expect(dots).toHaveLength(results.length);
    expect(dots.filter((w) => w === 'no-ack')).toHaveLength(18);
    expect(html).toMatch(/<section id="timeline">[\s\S]*>direct<\/text>[\s\S]*>via-lb<\/text>/);
    expect(html).toContain('over 1m11s');
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

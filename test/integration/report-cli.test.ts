/** `--report FILE.html` on `compare` and `verify` (the built CLI), from synthetic results files. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../helpers/cli.js';
import { KiB, SIZES, grid } from '../unit/fixtures.js';

const count = (html: string, attr: string): number => (html.match(new RegExp(` ${attr}="`, 'g')) ?? []).length;

describe('--report on compare and verify', () => {
  let dir: string;
  let before: string;
  let after: string;

  beforeAll(() => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-report-cli-'));
    const jsonl = (rs: unknown[]) => `${rs.map((r) => JSON.stringify(r)).join('\n')}\n`;
    before = join(dir, 'before.jsonl');
    after = join(dir, 'after.jsonl');
    writeFileSync(
      before,
      jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, shape: ({ path, sizeBytes }) => (path === 'via-lb' && sizeBytes >= 64 * KiB ? { outcome: 'stalled', ackedBytes: 62 * KiB } : undefined) })),
    );
    writeFileSync(after, jsonl(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 6, seed: 2 })));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('compare --report writes the heatmap of every cell; stdout stays JSON with --json', async () => {
    const file = join(dir, 'reports', 'compare.html');
    const r = await runCli(['compare', before, '--json', '--report', file]);
    expect(r.code, r.stderr).toBe(1);
    expect(() => JSON.parse(r.stdout)).not.toThrow();
    expect(r.stderr).toContain(`report: ${file}`);
    const html = readFileSync(file, 'utf8');
    expect(count(html, 'data-cell')).toBe(2 * SIZES.length);
    expect(html).toContain('class="verdict bad"');
    expect(html).toContain('before.jsonl');
  });

  it('verify --report adds the before → after grid and the thresholds', async () => {
    const file = join(dir, 'verify.html');
    const r = await runCli(['verify', '--baseline', before, after, '--threshold', 'stall_rate < 1%', '--report', file]);
    expect(r.code, r.stderr).toBe(0);
    const html = readFileSync(file, 'utf8');
    expect(count(html, 'data-verify-cell')).toBe(2 * SIZES.length);
    expect((html.match(/data-status="fixed"/g) ?? []).length).toBe(3);
    expect(html).toContain('Thresholds on the new run');
    expect(html).toContain('class="verdict good"');
  });

  it('a report that cannot be written is an environment error (exit 3), named', async () => {
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, 'x');
    const r = await runCli(['compare', before, '--report', join(blocker, 'r.html')]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`cannot write the report ${join(blocker, 'r.html')}`);
  });
});

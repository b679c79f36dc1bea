import { describe, expect, it } from 'vitest';
import { computeCells } from '../../src/analyze/cells.js';
import { renderCell, renderCellTable, visibleWidth } from '../../src/cli/render.js';
import { KiB, MiB, SIZES, grid, probe } from './fixtures.js';

const lbShape = ({ path, sizeBytes }: { path: string; sizeBytes: number }) =>
  path === 'via-lb' && sizeBytes >= 64 * KiB ? ('stalled' as const) : undefined;

describe('renderCell', () => {
  it('all delivered, none delivered, some delivered', () => {
    const ok = computeCells([1, 2, 3].map(() => probe({ sizeBytes: 4 * KiB, rand: () => 0.5 })))[0]!;
    expect(renderCell(ok)).toMatch(/^✓ 3\/3 1\d\d(\.\d)?ms$/);
    const bad = computeCells([1, 2, 3, 4, 5].map(() => probe({ sizeBytes: MiB, outcome: 'stalled' })))[0]!;
    expect(renderCell(bad)).toBe('✗ 5/5 stalled(no-ack)@body');
    const mixed = computeCells([
      probe({ sizeBytes: 4 * KiB, rand: () => 0.5 }),
      probe({ sizeBytes: 4 * KiB, rand: () => 0.5 }),
      probe({ sizeBytes: 4 * KiB, outcome: 'stalled' }),
    ])[0]!;
    expect(renderCell(mixed)).toMatch(/^~ 2\/3 \d+ms · 1 stalled(\(no-ack\))?@body$/);
    const many = computeCells([
      probe({ sizeBytes: 4 * KiB, outcome: 'stalled' }),
      probe({ sizeBytes: 4 * KiB, outcome: 'stalled' }),
      probe({ sizeBytes: 4 * KiB, outcome: 'reset', stage: 'connect' }),
    ])[0]!;
    expect(renderCell(many)).toBe('✗ 2/3 stalled(no-ack)@body +1 other');
    const rej = computeCells([probe({ sizeBytes: MiB, outcome: 'rejected', stage: 'dataAck', reply: { code: 552, text: 'too big' } })])[0]!;
    expect(renderCell(rej)).toBe('✗ 1/1 rejected 552@dataAck');
  });
});

describe('renderCellTable', () => {
  it('one row per size, one column per path, aligned', () => {
    const cells = computeCells(grid({ paths: ['direct', 'via-lb'], sizes: SIZES, repeat: 12, shape: lbShape }));
    const out = renderCellTable(cells);
    const lines = out.split('\n');
    expect(lines[0]).toBe('target mx.test:25');
    expect(lines[1]).toMatch(/^size\s+direct\s+via-lb$/);
    expect(lines[2]).toMatch(/^\s+4KiB\s+✓ 12\/12 \S+ms\s+✓ 12\/12 \S+ms$/);
    expect(lines[5]).toMatch(/^\s+64KiB\s+✓ 12\/12 \S+ms\s+✗ 12\/12 stalled\(no-ack\)@body$/);
    expect(lines[7]).toMatch(/^\s+1MiB\s+✓ 12\/12 \S+\s+✗ 12\/12 stalled\(no-ack\)@body$/);
    // columns aligned: the via-lb column starts at the same offset on every row
    const col = lines[1]!.indexOf('via-lb');
    for (const l of lines.slice(2, 8)) expect(l[col - 1]).toBe(' ');
    for (const l of lines.slice(2, 8)) expect(l.slice(col)).toMatch(/^[✓✗~]/);
    for (const l of lines) expect(visibleWidth(l)).toBeLessThanOrEqual(120);
  });

  it('several targets: a target row over the path columns, or one block per target when too wide', () => {
    const cells = computeCells(grid({ paths: ['direct', 'via-lb'], targets: ['mx1:25', 'mx2:25'], sizes: [4 * KiB, MiB], repeat: 3 }));
    const out = renderCellTable(cells);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(/^\s+→ mx1:25\s+→ mx2:25$/);
    expect(lines[1]).toMatch(/^size\s+direct\s+via-lb\s+direct\s+via-lb$/);
    const narrow = renderCellTable(cells, { width: 40 });
    expect(narrow).toContain('target mx1:25\nsize');
    expect(narrow).toContain('\n\ntarget mx2:25\nsize');
  });

  it('missing cells show a dash; colour adds ANSI codes without changing visible widths', () => {
    const cells = computeCells([probe({ path: 'a', sizeBytes: 1000 }), probe({ path: 'b', sizeBytes: 2000, outcome: 'stalled' })]);
    const plain = renderCellTable(cells);
    expect(plain).toMatch(/1000B\s+✓ 1\/1 \S+\s+–/);
    const colored = renderCellTable(cells, { color: true });
    expect(colored).toContain('\u001b[');
    const strip = (s: string) => s.replace(/\u001b\[[0-9;]*m/g, '');
    expect(strip(colored)).toBe(plain);
  });

  it('empty input', () => {
    expect(renderCellTable([])).toBe('(no probes)');
  });
});

/**
 * Terminal rendering of comparator output: the cell table, findings, verdict, verify and bisect reports.
 * Returns strings; prints nothing.
 */
import type { BisectResult, BisectStep } from '../analyze/bisect.js';
import type { CellStats } from '../analyze/cells.js';
import type { CellComparison, CellVerdict, ThresholdResult, VerifyResult } from '../analyze/verify.js';
import type { Finding } from '../model.js';
import { formatMs, formatSize } from '../units.js';

export interface RenderOptions {
  /** ANSI colours (default false). */
  color?: boolean;
  /** Wrap width for the table; wider tables are split per target (default 120). */
  width?: number;
}

const ANSI = { red: 31, green: 32, yellow: 33, dim: 2, bold: 1 } as const;
type Tone = keyof typeof ANSI;

export function paint(s: string, tone: Tone | undefined, color: boolean | undefined): string {
  if (!color || !tone) return s;
  return `\u001b[${ANSI[tone]}m${s}\u001b[0m`;
}

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-9;]*m/g;
/** Visible width: ANSI codes stripped; the symbols used here (✓ ✗ ~ · →) are one column wide. */
export function visibleWidth(s: string): number {
  return [...s.replace(ANSI_RE, '')].length;
}
function padEnd(s: string, w: number): string {
  return s + ' '.repeat(Math.max(0, w - visibleWidth(s)));
}
function padStart(s: string, w: number): string {
  return ' '.repeat(Math.max(0, w - visibleWidth(s))) + s;
}

/** `stalled(no-ack)@body`, `rejected 552@dataAck`. */
export function failureLabel(f: NonNullable<CellStats['dominantFailure']>): string {
  const code = f.code ? ` ${f.code}` : '';
  const kind = f.stallKind ? `(${f.stallKind})` : '';
  return `${f.outcome}${kind}${code}${f.stage ? `@${f.stage}` : ''}`;
}

/**
 * One cell as text: `✓ 3/3 41ms` (all delivered: delivered/total, median total time),
 * `✗ 5/5 stalled@body` (none delivered: count of the dominant failure/total, outcome@stage),
 * `~ 2/3 12ms · 1 stalled@body` (some delivered). `+N other` counts further failures of other kinds.
 */
export function renderCell(c: CellStats, color?: boolean): string {
  const failed = c.total - c.delivered;
  const dom = c.dominantFailure;
  const other = dom ? failed - dom.count : 0;
  const otherTxt = other > 0 ? ` +${other} other` : '';
  const tone: Tone = dom && (dom.outcome === 'rejected' || dom.outcome === 'timeout') ? 'yellow' : 'red';
  if (failed === 0) {
    const t = c.medianTotalMs !== undefined ? ` ${formatMs(c.medianTotalMs)}` : '';
    return `${paint('✓', 'green', color)} ${c.delivered}/${c.total}${t}`;
  }
  if (c.delivered === 0) {
    const label = dom ? `${dom.count}/${c.total} ${failureLabel(dom)}` : `0/${c.total}`;
    return `${paint('✗', tone, color)} ${paint(label, tone, color)}${otherTxt}`;
  }
  const t = c.medianTotalMs !== undefined ? ` ${formatMs(c.medianTotalMs)}` : '';
  const label = dom ? ` · ${dom.count} ${failureLabel(dom)}` : '';
  return `${paint('~', tone, color)} ${c.delivered}/${c.total}${t}${paint(label, tone, color)}${otherTxt}`;
}

function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}

/** Anything laid out in the size × path (× target) grid. */
export interface GridItem {
  path: string;
  target: string;
  sizeBytes: number;
}

function renderBlock<T extends GridItem>(
  items: T[],
  targets: string[],
  paths: string[],
  render: (x: T) => string,
  opts: RenderOptions,
  showTargetRow: boolean,
): string {
  const color = opts.color;
  const sizes = uniq(items.map((c) => c.sizeBytes)).sort((a, b) => a - b);
  const byKey = new Map(items.map((c) => [`${c.target}\u0000${c.path}\u0000${c.sizeBytes}`, c]));
  const cols: Array<{ target: string; path: string }> = [];
  for (const t of targets) for (const p of paths) {
    if (items.some((c) => c.target === t && c.path === p)) cols.push({ target: t, path: p });
  }
  const body: string[][] = sizes.map((s) =>
    cols.map((col) => {
      const c = byKey.get(`${col.target}\u0000${col.path}\u0000${s}`);
      return c ? render(c) : paint('–', 'dim', color);
    }),
  );
  const sizeLabels = sizes.map((s) => formatSize(s));
  const w0 = Math.max(4, ...sizeLabels.map((l) => l.length));
  const widths = cols.map((col, i) => Math.max(visibleWidth(col.path), ...body.map((row) => visibleWidth(row[i]!))));
  const gap = '   ';
  const lines: string[] = [];
  if (showTargetRow) {
    // target labels spanning their path columns
    let line = ' '.repeat(w0);
    let i = 0;
    while (i < cols.length) {
      const t = cols[i]!.target;
      let span = 0;
      let j = i;
      while (j < cols.length && cols[j]!.target === t) {
        span += widths[j]! + gap.length;
        j++;
      }
      line += gap + padEnd(paint(`→ ${t}`, 'bold', color), span - gap.length);
      i = j;
    }
    lines.push(line.trimEnd());
  }
  lines.push(
    (padEnd(paint('size', 'bold', color), w0) + cols.map((c, i) => gap + padEnd(paint(c.path, 'bold', color), widths[i]!)).join('')).trimEnd(),
  );
  body.forEach((row, r) => {
    lines.push((padStart(sizeLabels[r]!, w0) + row.map((cell, i) => gap + padEnd(cell, widths[i]!)).join('')).trimEnd());
  });
  return lines.join('\n');
}

/**
 * Lay items out with one row per size and one column per path (× target when there are several): one block
 * with a target row on top when it fits `opts.width`, else one block per target.
 */
export function renderGrid<T extends GridItem>(items: T[], render: (x: T) => string, opts: RenderOptions = {}): string {
  const width = opts.width ?? 120;
  const targets = uniq(items.map((c) => c.target)).sort();
  const paths = uniq(items.map((c) => c.path)).sort();
  if (targets.length === 1) return `target ${paint(targets[0]!, 'bold', opts.color)}\n` + renderBlock(items, targets, paths, render, opts, false);
  const wide = renderBlock(items, targets, paths, render, opts, true);
  if (Math.max(...wide.split('\n').map(visibleWidth)) <= width) return wide;
  return targets
    .map((t) => `target ${paint(t, 'bold', opts.color)}\n` + renderBlock(items.filter((c) => c.target === t), [t], paths, render, opts, false))
    .join('\n\n');
}

/**
 * The table of cells: one row per size, one column per path (× target when there are several). Each cell
 * reads `✓ delivered/total median-time`, `✗ failed/total outcome@stage`, or `~ delivered/total time · n outcome@stage`.
 */
export function renderCellTable(cells: CellStats[], opts: RenderOptions = {}): string {
  if (cells.length === 0) return '(no probes)';
  const out = renderGrid(cells, (c) => renderCell(c, opts.color), opts);
  const legend = paint(
    '✓ all delivered (delivered/total, median time)  ~ some failed  ✗ none delivered (failures/total, outcome@stage)',
    'dim',
    opts.color,
  );
  return `${out}\n${legend}`;
}

// ---------------------------------------------------------------------------------------------- paragraphs

/** Word-wrap `text` to `width` columns, every line prefixed with `indent` (the first with `first` if given). */
export function wrap(text: string, width = 100, indent = '', first = indent): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const w of words) {
    if (!empty && visibleWidth(line) + 1 + visibleWidth(w) > width) {
      lines.push(line);
      line = indent + w;
    } else {
      line += (empty ? '' : ' ') + w;
    }
    empty = false;
  }
  lines.push(line);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------- findings

function fmtP(p: number): string {
  if (p === 0) return '0';
  if (p < 0.001) return p.toExponential(1);
  return p < 0.1 ? p.toFixed(3) : p.toFixed(2);
}

/** Evidence values for people: sizes for `…Bytes`, times for `…Ms`, p-values, short lists; nested objects left to --json. */
export function formatEvidence(ev: Record<string, unknown>): string {
  const parts: string[] = [];
  const val = (k: string, v: unknown): string | undefined => {
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number') {
      if (/Bytes$/.test(k)) return formatSize(Math.round(v));
      if (/Ms$/.test(k)) return formatMs(v);
      if (/^p[vV]alue/.test(k)) return fmtP(v);
      return Number.isInteger(v) ? String(v) : v.toFixed(3);
    }
    if (typeof v === 'string') return v.length > 60 ? `${v.slice(0, 57)}…` : v;
    if (typeof v === 'boolean') return v ? 'yes' : 'no';
    if (Array.isArray(v)) {
      if (v.length > 0 && v.length <= 8 && v.every((x) => typeof x === 'number' || typeof x === 'string')) {
        return v.map((x) => (typeof x === 'number' && (k === 'sizes' || /Bytes$/.test(k)) ? formatSize(x) : typeof x === 'number' && k === 'stallRateCi' ? `${(x * 100).toFixed(1)}%` : String(x))).join(', ');
      }
      return undefined;
    }
    if (typeof v === 'object') {
      const o = v as Record<string, unknown>;
      const flat = Object.entries(o).filter(([, x]) => typeof x === 'number' || typeof x === 'string');
      if (flat.length && flat.length === Object.keys(o).length && flat.length <= 6) return flat.map(([a, b]) => `${a} ${String(b)}`).join(', ');
      return undefined;
    }
    return undefined;
  };
  for (const [k, v] of Object.entries(ev)) {
    const s = val(k, v);
    if (s !== undefined && s !== '') parts.push(`${k} ${s}`);
  }
  return parts.join(' · ');
}

/** Numbered findings, each with its evidence line. */
export function renderFindings(findings: readonly Finding[], opts: RenderOptions = {}): string {
  if (findings.length === 0) return paint('(no findings)', 'dim', opts.color);
  const width = Math.min(opts.width ?? 100, 120);
  const n = String(findings.length).length;
  return findings
    .map((f, i) => {
      const num = `${String(i + 1).padStart(n)}. `;
      const tone: Tone | undefined = f.stall ? 'red' : f.kind === 'insufficient-data' || f.kind === 'scattered-stalls' ? undefined : 'yellow';
      const tag = paint(`[${f.kind}]`, tone, opts.color);
      const indent = ' '.repeat(num.length);
      const body = wrap(`${tag} ${f.statement}`, width, indent, num);
      const evText = formatEvidence({ ...f.evidence, ...(f.pValue !== undefined && !('pValue' in f.evidence) ? { pValue: f.pValue } : {}) });
      return evText ? `${body}\n${paint(wrap(`evidence: ${evText}`, width, indent + '  ', indent), 'dim', opts.color)}` : body;
    })
    .join('\n');
}

/** The verdict paragraph, wrapped. */
export function renderVerdict(text: string, opts: RenderOptions = {}): string {
  return wrap(text, Math.min(opts.width ?? 100, 120), '  ');
}

/** The whole `compare` report: table, findings, verdict. */
export function renderCompare(r: { cells: CellStats[]; findings: readonly Finding[]; verdict: string }, opts: RenderOptions = {}): string {
  const h = (s: string): string => paint(s, 'bold', opts.color);
  return [
    renderCellTable(r.cells, opts),
    '',
    h('Findings'),
    renderFindings(r.findings, opts),
    '',
    h('Verdict'),
    renderVerdict(r.verdict, opts),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------- verify

const VERIFY_MARK: Record<CellVerdict, [string, Tone | undefined]> = {
  fixed: ['✓ fixed', 'green'],
  'still-failing': ['✗ still failing', 'red'],
  regressed: ['✗ regressed', 'red'],
  unchanged: ['= unchanged', undefined],
  inconclusive: ['? inconclusive', 'yellow'],
  'not-probed': ['– not probed', 'dim'],
  new: ['+ new', 'dim'],
};

/** One verify cell: `✓ fixed 12/12→0/12`. */
export function renderVerifyCell(c: CellComparison, color?: boolean): string {
  const [label, tone] = VERIFY_MARK[c.status];
  const b = c.before ? `${c.before.failed}/${c.before.total}` : '–';
  const a = c.after ? `${c.after.failed}/${c.after.total}` : '–';
  return `${paint(label, tone, color)} ${b}→${a}`;
}

/** The verify report: grid of cells (failed before → after), the calls with their tests, thresholds, a summary line. */
export function renderVerify(
  v: VerifyResult,
  thresholds: readonly ThresholdResult[],
  opts: RenderOptions & { expectFixed?: boolean } = {},
): string {
  const h = (s: string): string => paint(s, 'bold', opts.color);
  const lines: string[] = [];
  lines.push(renderGrid(v.cells, (c) => renderVerifyCell(c, opts.color), opts));
  lines.push(paint('cells: failed probes before→after (failed = not delivered)', 'dim', opts.color));
  const notable = v.cells.filter((c) => c.status !== 'unchanged' || c.baselineFailing);
  const multiTarget = new Set(v.cells.map((c) => c.target)).size > 1;
  lines.push('');
  lines.push(h('Calls'));
  if (!notable.length) lines.push('  every cell unchanged, none failing');
  for (const c of notable) {
    const [label, tone] = VERIFY_MARK[c.status];
    const where = `${c.path}${multiTarget ? ` → ${c.target}` : ''} ${formatSize(c.sizeBytes)}`;
    lines.push(wrap(`${paint(label, tone, opts.color)}  ${where}: ${c.test}${c.note ? ` — ${c.note}` : ''}`, Math.min(opts.width ?? 100, 120), '      ', '  '));
  }
  if (thresholds.length) {
    lines.push('');
    lines.push(h('Thresholds (new run)'));
    for (const t of thresholds) lines.push(`  ${t.ok ? paint('✓', 'green', opts.color) : paint('✗', 'red', opts.color)} ${t.message}`);
  }
  lines.push('');
  const c = v.counts;
  const parts = [`${c.fixed} fixed`, `${c['still-failing']} still failing`, `${c.regressed} regressed`, `${c.unchanged} unchanged`];
  if (c.inconclusive) parts.push(`${c.inconclusive} inconclusive`);
  if (c['not-probed']) parts.push(`${c['not-probed']} not probed again`);
  if (c.new) parts.push(`${c.new} new`);
  lines.push(`${h('Summary')}: ${parts.join(', ')}; baseline failures: ${v.baselineFailing}, fixed: ${v.fixed}.`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------- bisect

/** `step 3  search       256KiB  ✗ stalled@body (1 probe, ~64KiB acked)   bracket 4KiB … 256KiB` */
export function renderBisectStep(s: BisectStep, color?: boolean): string {
  const role = s.role === 'check-high' ? 'check high' : s.role === 'check-low' ? 'check low' : 'search';
  const mark =
    s.verdict === 'clean'
      ? paint(`✓ clean`, 'green', color)
      : s.verdict === 'stalls'
        ? paint(`✗ ${s.detail ?? 'stalls'}`, 'red', color)
        : paint(`! ${s.detail ?? 'no answer'}`, 'yellow', color);
  const extra = `${s.probes} probe${s.probes === 1 ? '' : 's'}${s.stallOffsetBytes !== undefined ? `, stopped at ~${formatSize(s.stallOffsetBytes)}` : ''}`;
  return `step ${String(s.n).padStart(2)}  ${role.padEnd(10)}  ${formatSize(s.sizeBytes).padStart(8)}  ${mark} (${extra})   bracket ${formatSize(s.low)} … ${formatSize(s.high)}`;
}

export function renderBisectResult(r: BisectResult, path: string, color?: boolean): string {
  const head = r.converged
    ? paint(`Path ${path} stalls from somewhere in (${formatSize(r.low)}, ${formatSize(r.high)}]`, 'bold', color)
    : paint(`No threshold found for path ${path}`, 'bold', color);
  const lines = [head, `  ${r.reason}`];
  if (r.stallOffsetBytes !== undefined) lines.push(`  stalled probes stopped at ~${formatSize(r.stallOffsetBytes)} of the body (acknowledged / received)`);
  return lines.join('\n');
}

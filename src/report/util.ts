/** Small pure helpers of the HTML report: escaping, numbers for people, ticks. */
import { formatSize } from '../units.js';

/** Escape text for HTML element content and attribute values (double or single quoted). */
export function esc(v: unknown): string {
  return String(v ?? '')
    // control characters from a results file (names, reply texts) have no business in a page either
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * A number for an attribute or a coordinate: a finite number as written, anything else (a string a crafted results
 * line put where a number belongs) as the empty string. Never raw text.
 */
export function numAttr(v: unknown): string {
  return typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
}

/** A finite number, or the fallback (values from a results file are not trusted to be numbers). */
export function finite(v: unknown, fallback = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

/** JSON safe inside <script type="application/json">: no `</script>`, no `<!--`, no U+2028/9 surprises. */
export function jsonForScript(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export function uniq<T>(xs: Iterable<T>): T[] {
  return [...new Set(xs)];
}

export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

export function median(xs: number[]): number | undefined {
  if (!xs.length) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** 12345 → `12,345`. */
export function group(n: number): string {
  return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A byte count for people: exact bytes below 1 KiB, else the size with one decimal and the exact count. */
export function bytesText(n: number): string {
  return n < 1024 ? `${n} B` : `${formatSize(n)} (${group(n)} B)`;
}

export const r1 = (x: number): number => Math.round(x * 10) / 10;

/** 1-2-5 ticks from 0 to at least max. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let i = 0; ; i++) {
    const v = i * step;
    out.push(v);
    if (v >= max * (1 - 1e-9)) break;
  }
  return out;
}

/**
 * Rows for tick labels on one axis so that none collide: each label goes to the first row whose last label ends
 * at least `gap` px before it. Returns the row index per position (positions ascending).
 */
export function labelRows(xs: readonly number[], widths: readonly number[], gap = 6): number[] {
  const ends: number[] = [];
  return xs.map((x, i) => {
    const half = (widths[i] ?? 0) / 2;
    let row = ends.findIndex((e) => x - half >= e + gap);
    if (row < 0) row = ends.length;
    ends[row] = x + half;
    return row;
  });
}

export const gkey = (target: string, path: string, size: number): string => `${target}\u0000${path}\u0000${size}`;

/** Results grouped by cell, keyed by `gkey(target, path, size)`. */
export function probesByCell<T extends { target: string; path: string; sizeBytes: number }>(results: readonly T[]): Map<string, T[]> {
  const byCell = new Map<string, T[]>();
  for (const r of results) {
    const k = gkey(r.target, r.path, r.sizeBytes);
    const a = byCell.get(k);
    if (a) a.push(r);
    else byCell.set(k, [r]);
  }
  return byCell;
}

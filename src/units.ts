/** Human units in, plain numbers out: `64KiB` → 65536, `30s` → 30000 (ms), `2/s` → 2 (per second). */

const SIZE_UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1000, kb: 1000, m: 1000 ** 2, mb: 1000 ** 2, g: 1000 ** 3, gb: 1000 ** 3,
  ki: 1024, kib: 1024, mi: 1024 ** 2, mib: 1024 ** 2, gi: 1024 ** 3, gib: 1024 ** 3,
};

export class UnitError extends Error {
  override name = 'UnitError';
}

/** Parse a byte size: `1048576`, `64KiB`, `1MiB`, `1.5MB`. KiB/MiB/GiB are powers of 1024, KB/MB/GB of 1000. */
export function parseSize(input: string | number): number {
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input < 0) throw new UnitError(`not a byte size: ${input} (expected a whole number of bytes or e.g. 64KiB, 1MiB)`);
    return input;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  const mult = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) throw new UnitError(`not a byte size: "${input}" (expected e.g. 512, 64KiB, 1MiB, 1.5MB)`);
  const value = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(value)) throw new UnitError(`byte size too large: "${input}"`);
  return value;
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, min: 60_000, h: 3_600_000 };

/** Parse a duration to ms: `500ms`, `10s`, `2m`, `1h`, `1.5s`. A bare number is seconds. */
export function parseDuration(input: string | number): number {
  if (typeof input === 'number') {
    if (!(input >= 0) || !Number.isFinite(input)) throw new UnitError(`not a duration: ${input}`);
    return input * 1000;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(input);
  const unit = m ? (m[2] === '' ? 's' : m[2]!.toLowerCase()) : '';
  const mult = DURATION_UNITS[unit];
  if (!m || mult === undefined) throw new UnitError(`not a duration: "${input}" (expected e.g. 500ms, 10s, 2m, 1h)`);
  return Number(m[1]) * mult;
}

/** Parse a rate: `2/s`, `30/m`, `0.5/s`, `100/h` → probes per second. */
export function parseRate(input: string | number): number {
  if (typeof input === 'number') {
    if (!(input > 0) || !Number.isFinite(input)) throw new UnitError(`not a rate: ${input}`);
    return input;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*\/\s*(s|sec|m|min|h)\s*$/i.exec(input);
  if (!m || Number(m[1]) <= 0) throw new UnitError(`not a rate: "${input}" (expected e.g. 2/s, 30/m, 100/h)`);
  const per = m[2]!.toLowerCase().startsWith('s') ? 1 : m[2]!.toLowerCase().startsWith('m') ? 60 : 3600;
  return Number(m[1]) / per;
}

/** 65536 → `64KiB`, 1500 → `1500B`, 1572864 → `1.5MiB`. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let i = 0;
  while (i < units.length - 1 && Math.abs(v) >= 1024 && (v / 1024) * 10 === Math.round((v / 1024) * 10)) {
    v /= 1024;
    i++;
  }
  if (i === 0 && bytes >= 1024) {
    // not a round number of KiB: show one decimal of the best unit
    while (i < units.length - 1 && Math.abs(v) >= 1024) { v /= 1024; i++; }
    return `${v.toFixed(1)}${units[i]}`;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)}${units[i]}`;
}

/** Milliseconds for people: `0.42ms`, `12.3ms`, `1.52s`, `2m05s`. */
export function formatMs(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 100) return `${ms.toFixed(1)}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  const m = Math.floor(ms / 60_000);
  const s = Math.round((ms % 60_000) / 1000);
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/** A duration as a person would type it, exact: 1500 → `1500ms`, 10000 → `10s`, 120000 → `2m`, 3600000 → `1h`. */
export function formatDuration(ms: number): string {
  if (ms >= 3_600_000 && ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}

/** A byte size that parses back to exactly the same number: 65536 → `64KiB`, 1048576 → `1MiB`, 1500 → `1500`. */
export function formatSizeExact(bytes: number): string {
  for (const [unit, n] of [['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/**
 * 1048576 → `1,048,576`: what `toLocaleString('en-US')` gives for integers, without initialising ICU (about 15 ms
 * of a one-off probe's start-up: bench/startup.mjs).
 */
export function groupDigits(n: number): string {
  const s = String(Math.trunc(Math.abs(n)));
  return `${n < 0 ? '-' : ''}${s.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;
}

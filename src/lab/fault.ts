/**
 * Fault specifications for the lab relay: text like `blackhole-after=64KiB` ⇄ a plain `FaultSpec`.
 * Pure functions; nothing here does I/O.
 */
import { UnitError, formatSize, parseDuration, parseSize } from '../units.js';

/** Faults that act once a direction has forwarded exactly `bytes` bytes. */
export const LIMIT_FAULTS = ['blackhole-after', 'freeze-after', 'reset-after', 'close-after', 'cut-after'] as const;
export type LimitFaultKind = (typeof LIMIT_FAULTS)[number];

export type FaultSpec =
  | { kind: 'none' }
  | { kind: LimitFaultKind; bytes: number }
  | { kind: 'delay'; ms: number }
  | { kind: 'throttle'; bytesPerSec: number };

export type FaultKind = FaultSpec['kind'];

/** One line per valid form, for error messages and `--help`. */
export const FAULT_FORMS: ReadonlyArray<{ form: string; example: string; meaning: string; models?: string }> = [
  { form: 'none', example: 'none', meaning: 'forward everything untouched (the control path)' },
  {
    form: 'blackhole-after=SIZE',
    example: 'blackhole-after=64KiB',
    meaning: 'forward SIZE bytes, then keep reading and silently drop the rest: the sender\'s writes all succeed, nothing more arrives',
    models: 'incident 1: the load balancer that dropped DATA segments',
  },
  {
    form: 'freeze-after=SIZE',
    example: 'freeze-after=64KiB',
    meaning: 'forward SIZE bytes, then stop reading: the sender\'s TCP window closes and its writes stop draining',
    models: 'incident 2\'s family: a middlebox that broke window scaling',
  },
  {
    form: 'reset-after=SIZE',
    example: 'reset-after=1MiB',
    meaning: 'forward SIZE bytes, then reset (RST) both connections',
  },
  {
    form: 'close-after=SIZE',
    example: 'close-after=1MiB',
    meaning: 'forward SIZE bytes, then close both connections cleanly (FIN)',
  },
  {
    form: 'cut-after=SIZE',
    example: 'cut-after=64KiB',
    meaning: 'forward SIZE bytes, then drop the rest of the message up to its final CRLF.CRLF and forward from there: the server accepts a truncated message',
    models: 'a device on the way that loses part of the body and still lets the transaction end (the arrival check finds it)',
  },
  { form: 'delay=DURATION', example: 'delay=200ms', meaning: 'hold every chunk for DURATION before forwarding it, order kept' },
  { form: 'throttle=SIZE/s', example: 'throttle=64KiB/s', meaning: 'forward at most SIZE bytes per second (token bucket, backpressure to the sender)' },
];

/** The valid forms as an indented block, for error messages. */
export function faultFormsText(indent = '  '): string {
  const w = Math.max(...FAULT_FORMS.map((f) => f.form.length));
  return FAULT_FORMS.map((f) => `${indent}${f.form.padEnd(w)}  e.g. ${f.example}`).join('\n');
}

function bad(text: string, why: string): UnitError {
  return new UnitError(`bad fault "${text}": ${why}\nvalid faults:\n${faultFormsText()}`);
}

/**
 * Parse fault text: `none`, `blackhole-after=64KiB`, `freeze-after=65536`, `reset-after=1MiB`, `close-after=1MiB`,
 * `delay=200ms`, `throttle=1MiB/s`. Throws `UnitError` naming what is wrong and listing the valid forms.
 */
export function parseFault(text: string): FaultSpec {
  const t = text.trim();
  if (t === '') throw bad(text, 'empty');
  const eq = t.indexOf('=');
  const kind = (eq < 0 ? t : t.slice(0, eq)).trim().toLowerCase();
  const arg = eq < 0 ? undefined : t.slice(eq + 1).trim();
  if (kind === 'none') {
    if (arg !== undefined) throw bad(text, '"none" takes no value');
    return { kind: 'none' };
  }
  if ((LIMIT_FAULTS as readonly string[]).includes(kind)) {
    if (!arg) throw bad(text, `${kind} needs a byte count, e.g. ${kind}=64KiB`);
    let bytes: number;
    try {
      bytes = parseSize(arg);
    } catch (err) {
      throw bad(text, (err as Error).message);
    }
    return { kind: kind as LimitFaultKind, bytes };
  }
  if (kind === 'delay') {
    if (!arg) throw bad(text, 'delay needs a duration, e.g. delay=200ms');
    // units.ts reads a bare number as seconds; for a delay that surprise (200 → 200 s) is worse than asking.
    if (/^\d+(\.\d+)?$/.test(arg)) throw bad(text, `give the delay a unit: delay=${arg}ms or delay=${arg}s`);
    let ms: number;
    try {
      ms = parseDuration(arg);
    } catch (err) {
      throw bad(text, (err as Error).message);
    }
    return { kind: 'delay', ms };
  }
  if (kind === 'throttle') {
    if (!arg) throw bad(text, 'throttle needs a rate, e.g. throttle=64KiB/s');
    const m = /^(.+?)\s*\/\s*(s|sec)$/i.exec(arg);
    if (!m) throw bad(text, `not a rate in bytes per second: "${arg}" (expected e.g. 64KiB/s, 1MiB/s, 1000/s)`);
    let bytesPerSec: number;
    try {
      bytesPerSec = parseSize(m[1]!);
    } catch (err) {
      throw bad(text, (err as Error).message);
    }
    if (bytesPerSec <= 0) throw bad(text, 'the rate must be more than 0 bytes per second');
    return { kind: 'throttle', bytesPerSec };
  }
  throw bad(text, `unknown fault "${kind}"`);
}

/** A size as text that parses back to exactly the same number: `64KiB`, `1.5MiB`, `65537`. */
function exactSize(bytes: number): string {
  const s = formatSize(bytes);
  try {
    if (parseSize(s) === bytes) return s;
  } catch {
    // fall through
  }
  return String(bytes);
}

/** The inverse of `parseFault`: `parseFault(formatFault(f))` equals `f`. */
export function formatFault(f: FaultSpec): string {
  switch (f.kind) {
    case 'none':
      return 'none';
    case 'delay':
      return f.ms >= 1000 && f.ms % 1000 === 0 ? `delay=${f.ms / 1000}s` : `delay=${f.ms}ms`;
    case 'throttle':
      return `throttle=${exactSize(f.bytesPerSec)}/s`;
    default:
      return `${f.kind}=${exactSize(f.bytes)}`;
  }
}

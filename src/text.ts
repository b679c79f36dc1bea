/**
 * Text from the network is untrusted (DESIGN.md): three pure helpers every edge uses.
 *
 * - `forTerminal`: strip control characters (C0 but tab and newline, DEL, C1; so no ESC, no OSC 52, no bell)
 *   before a string reaches a terminal. JSON output never uses it: JSON escapes control characters itself.
 * - `secretForms` + `scrubSecrets`: every encoding in which a secret travels on the wire (as is, URL-encoded,
 *   base64 of it, of the AUTH PLAIN token, of `user:pass` for HTTP Basic, and the base64 of the secret at each
 *   of the three alignments it can sit at inside a longer base64 string), replaced by `****`.
 * - `lineBreakIn`: the first CR, LF or NUL in a value that goes into an SMTP command line or a header.
 */

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_ALL = /[\u0000-\u001f\u007f-\u009f]/g;

/** The string without control characters (tab and newline kept; `oneLine` also turns those into spaces). */
export function forTerminal(s: string, o: { oneLine?: boolean } = {}): string {
  return o.oneLine ? s.replace(CONTROL_ALL, (c) => (c === '\t' || c === '\n' ? ' ' : '')) : s.replace(CONTROL, '');
}

/** Shortest fragment `scrubSecrets` looks for: shorter ones would match ordinary text. */
const MIN_FORM = 4;

const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

/** The base64 characters that depend only on `secret` when it starts at byte offset `k` (mod 3) of a longer string. */
function alignedCore(secret: Buffer, k: 0 | 1 | 2): string {
  const enc = b64(Buffer.concat([Buffer.alloc(k), secret]));
  // character i carries bits [6i, 6i+6): only those inside the secret's bits [8k, 8(k+n)) are its own
  return enc.slice(Math.ceil((4 * k) / 3), Math.floor((4 * (k + secret.length)) / 3));
}

/** Every form of `secret` worth scrubbing, longest first. `user` adds the AUTH PLAIN token and HTTP Basic forms. */
export function secretForms(secret: string, user?: string): string[] {
  if (!secret) return [];
  const raw = Buffer.from(secret);
  // replies are decoded as latin1 (reply.ts): a non-ASCII secret echoed in UTF-8 arrives as its bytes read as latin1
  const forms = new Set<string>([secret, raw.toString('latin1'), encodeURIComponent(secret), b64(secret), b64(secret).replace(/=+$/, '')]);
  for (const k of [0, 1, 2] as const) forms.add(alignedCore(raw, k));
  if (user !== undefined) {
    forms.add(b64(`\0${user}\0${secret}`));
    forms.add(b64(`${user}\0${user}\0${secret}`));
    forms.add(b64(`${user}:${secret}`));
  }
  return [...forms].filter((f) => f.length >= MIN_FORM).sort((a, b) => b.length - a.length);
}

/** `text` with every occurrence of every form replaced by `****`. */
export function scrubSecrets(text: string, forms: readonly string[]): string {
  let out = text;
  for (const f of forms) if (out.includes(f)) out = out.split(f).join('****');
  return out;
}

/** Name of the first CR / LF / NUL in `v` (`"CR"`, `"LF"`, `"NUL"`), or undefined when it has none. */
export function lineBreakIn(v: string): 'CR' | 'LF' | 'NUL' | undefined {
  const m = /[\r\n\0]/.exec(v);
  if (!m) return undefined;
  return m[0] === '\r' ? 'CR' : m[0] === '\n' ? 'LF' : 'NUL';
}

/**
 * A copy of plain data (objects, arrays) with `forTerminal` applied to every string in it, keys included: what a
 * command renders for a terminal goes through this once, so no field is forgotten. Numbers, booleans stay.
 */
export function forTerminalDeep<T>(v: T): T {
  if (typeof v === 'string') return forTerminal(v) as T;
  if (Array.isArray(v)) return v.map((x) => forTerminalDeep(x)) as T;
  if (v && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[forTerminal(k)] = forTerminalDeep(x);
    return out as T;
  }
  return v;
}

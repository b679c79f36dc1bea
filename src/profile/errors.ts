/** Profile errors: every issue names the file, the field path and what was expected, one issue per line. */

export interface ProfileIssue {
  /** Field path, e.g. `paths[1].localAddress`; empty for the whole file. */
  path: string;
  /** What is wrong and what was expected, e.g. `not an IP address ("10.0.0.300")`. */
  message: string;
  /** 1-based position in the YAML text, when known. */
  line?: number;
  column?: number;
}

/** An issue before it is located in the YAML text: the path as segments. */
export interface RawIssue {
  path: Array<string | number>;
  message: string;
}

/**
 * A profile that cannot be used. `message` holds one line per issue:
 * `profiles/x.yaml: paths[1].localAddress: not an IP address ("10.0.0.300") (line 14)`;
 * YAML syntax errors read `profiles/x.yaml:3:5: YAML syntax error: …`.
 */
export class ProfileError extends Error {
  override name = 'ProfileError';
  readonly issues: ProfileIssue[];
  readonly source: string;

  constructor(source: string, issues: ProfileIssue[]) {
    super(issues.map((i) => formatIssue(source, i)).join('\n'));
    this.source = source;
    this.issues = issues;
  }
}

export function formatIssue(source: string, issue: ProfileIssue): string {
  if (!issue.path) {
    return issue.line !== undefined
      ? `${source}:${issue.line}:${issue.column ?? 1}: ${issue.message}`
      : `${source}: ${issue.message}`;
  }
  const where = issue.line !== undefined ? ` (line ${issue.line})` : '';
  return `${source}: ${issue.path}: ${issue.message}${where}`;
}

/** `['paths', 1, 'localAddress']` → `paths[1].localAddress`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${String(seg)}` : String(seg);
  }
  return out;
}

/** A value as shown in a message: strings quoted, collections named, long values cut. */
export function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a map';
  if (typeof value === 'string') {
    const s = value.length > 80 ? `${value.slice(0, 77)}...` : value;
    return JSON.stringify(s);
  }
  return String(value);
}

/** Optimal string alignment distance (Levenshtein + adjacent transpositions). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

const normalise = (s: string): string => s.toLowerCase().replace(/[_\-\s]/g, '');

/** The known word closest to `word` (typo, case, snake_case, a trailing `Ms`), or undefined when none is close. */
export function closest(word: string, known: readonly string[]): string | undefined {
  const w = normalise(word);
  for (const k of known) if (normalise(k) === w) return k;
  if (w.endsWith('ms')) for (const k of known) if (normalise(k) === w.slice(0, -2)) return k;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = editDistance(w, normalise(k));
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const limit = w.length <= 4 ? 1 : w.length <= 8 ? 2 : 3;
  return bestD <= limit ? best : undefined;
}

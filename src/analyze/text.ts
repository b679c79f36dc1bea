/** Prose helpers shared by the comparator's rules and the verdict: sizes, lists, stage phrases. Pure. */
import type { Stage } from '../model.js';
import { formatSize } from '../units.js';

/** `64KiB`, or a short list / range of sizes. */
export function sizeList(sizes: readonly number[]): string {
  const s = [...new Set(sizes)].sort((a, b) => a - b);
  if (s.length === 0) return '';
  if (s.length === 1) return formatSize(s[0]!);
  if (s.length <= 3) return s.map(formatSize).join(', ');
  return `${formatSize(s[0]!)}–${formatSize(s[s.length - 1]!)}`;
}

/** Approximate size for prose: `~64KiB`, `1.2MiB`, `900B`. */
export function approxSize(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)}B`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)}KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)}MiB`;
}

/** `61–64KiB`, `0–1.2KiB`, `1.0–1.1MiB`. */
export function sizeRange(min: number, max: number): string {
  const unit = max >= 1024 * 1024 ? 1024 * 1024 : max >= 1024 ? 1024 : 1;
  const name = unit === 1 ? 'B' : unit === 1024 ? 'KiB' : 'MiB';
  const digits = unit === 1024 * 1024 || max / unit < 10 ? 1 : 0;
  const f = (v: number): string => (v / unit).toFixed(unit === 1 ? 0 : digits);
  const a = f(min);
  const b = f(max);
  return a === b ? `${b}${name}` : `${a}–${b}${name}`;
}

/** `a`, `a and b`, `a, b and c`. */
export function joinAnd(xs: readonly string[]): string {
  if (xs.length <= 1) return xs.join('');
  return `${xs.slice(0, -1).join(', ')} and ${xs[xs.length - 1]}`;
}

export function pushTo<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const l = m.get(k);
  if (l) l.push(v);
  else m.set(k, [v]);
}

export function countBy<T, K>(xs: readonly T[], key: (x: T) => K | undefined): Map<K, number> {
  const m = new Map<K, number>();
  for (const x of xs) {
    const k = key(x);
    if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/** The most frequent key (the first one seen on a tie). */
export function top<K>(m: Map<K, number>): K | undefined {
  let best: [K, number] | undefined;
  for (const e of m) if (!best || e[1] > best[1]) best = e;
  return best?.[0];
}

/** The dominant stage of a set of probes and how many of them ended there. */
export interface StageSplit {
  stage?: Stage;
  count: number;
  total: number;
}

export function stageSplit(stages: readonly (Stage | undefined)[]): StageSplit {
  const counts = countBy(stages, (s) => s);
  const stage = top(counts);
  return { ...(stage ? { stage } : {}), count: stage ? counts.get(stage)! : 0, total: stages.length };
}

/** Stage counts from an evidence record (`{ dataAck: 68, body: 1 }`) back to a list, for `stagePhrase`. */
export function stagesFromCounts(rec: Record<string, number>): Stage[] {
  return Object.entries(rec).flatMap(([k, n]) => Array<Stage>(n).fill(k as Stage));
}

function phraseOf(st: Stage): [string, string] {
  // [phrase, qualifier inside it or undefined]: the split goes into the parentheses of a phrase that has them
  switch (st) {
    case 'dataAck':
      return ['after the message body was written (waiting for the final reply', ')'];
    case 'body':
      return ['in the message body', ''];
    case 'connect':
      return ['while connecting', ''];
    case 'greeting':
      return ['waiting for the greeting', ''];
    case 'dns':
      return ['resolving the target', ''];
    case 'tls':
      return ['in the TLS handshake', ''];
    default:
      return [`at ${st === 'data' ? 'DATA' : st.toUpperCase()}`, ''];
  }
}

/**
 * The dominant stage the probes ended in, in words, with the split when it is mixed:
 * "in the message body", "after the message body was written (waiting for the final reply; at dataAck in 68 of 69)".
 */
export function stagePhrase(stages: readonly (Stage | undefined)[]): string {
  const { stage, count, total } = stageSplit(stages);
  if (stage === undefined) return 'in an unknown stage';
  const [head, close] = phraseOf(stage);
  const split = count < total ? `at ${stage} in ${count} of ${total}` : '';
  if (close) return `${head}${split ? `; ${split}` : ''}${close}`;
  return split ? `${head} (${split})` : head;
}

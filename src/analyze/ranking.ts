/** How findings rank: a base per kind (stall findings above everything else), -log10(p) breaking ties. Pure. */
import type { Finding, FindingKind } from '../model.js';

const SCORE: Record<FindingKind, number> = {
  'path-specific': 90,
  'target-specific': 88,
  'size-threshold': 85,
  'pmtu-blackhole': 80,
  'stall-offset': 78,
  'acked-not-received': 77,
  'window-scale-rewrite': 77,
  mechanism: 76,
  'kernel-unread': 62,
  'mss-clamp': 54,
  'scattered-stalls': 60,
  'no-reply': 58,
  failure: 57,
  fallback: 52,
  timeout: 55,
  slow: 50,
  rejection: 45,
  'insufficient-data': 35,
  arrival: 70,
};

export function score(kind: FindingKind, p?: number): number {
  const bonus = p !== undefined && p > 0 ? Math.min(9.9, -Math.log10(p)) : p === 0 ? 9.9 : 0;
  return Math.round((SCORE[kind] + bonus) * 10) / 10;
}

/** Highest score first; a smaller p first on a tie. */
export function rank(fs: readonly Finding[]): Finding[] {
  return [...fs].sort((x, y) => y.score - x.score || (x.pValue ?? 1) - (y.pValue ?? 1));
}

/**
 * Small, exact statistics for the comparator. Pure functions, no dependencies.
 *
 * - `wilson(k, n)`: Wilson score interval for a proportion (the one to use with few probes: it never
 *   leaves [0, 1] and is honest at 0/n and n/n).
 * - `fisherExact(a, b, c, d)`: Fisher's exact test on a 2×2 table, two-sided (sum of the probabilities of all
 *   tables with the same margins that are no more likely than the observed one — R's and SciPy's definition).
 * - `percentile(sorted, p)`: linear interpolation between closest ranks (R type 7, NumPy's default).
 */

/** z for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

/** Wilson score interval for k successes in n trials; [0, 1] when n is 0. */
export function wilson(k: number, n: number, z: number = Z95): [number, number] {
  if (n <= 0) return [0, 1];
  if (k < 0 || k > n) throw new RangeError(`wilson: k=${k} outside 0..${n}`);
  const p = k / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  // exact ends at 0/n and n/n (avoid -1e-17)
  const lo = k === 0 ? 0 : Math.max(0, centre - half);
  const hi = k === n ? 1 : Math.min(1, centre + half);
  return [lo, hi];
}

/** ln(n!) by summation with a cache: exact enough for the table sizes a probe run produces (thousands). */
const lnFactCache: number[] = [0];
export function lnFactorial(n: number): number {
  if (n < 0 || !Number.isInteger(n)) throw new RangeError(`lnFactorial: ${n}`);
  for (let i = lnFactCache.length; i <= n; i++) lnFactCache[i] = lnFactCache[i - 1]! + Math.log(i);
  return lnFactCache[n]!;
}

/**
 * Two-sided Fisher's exact test for the 2×2 table
 * ```
 *            yes  no
 *   group 1   a    b
 *   group 2   c    d
 * ```
 * Returns the p-value (1 when a margin is empty).
 */
export function fisherExact(a: number, b: number, c: number, d: number): number {
  for (const x of [a, b, c, d]) if (!Number.isInteger(x) || x < 0) throw new RangeError(`fisherExact: bad count ${x}`);
  const r1 = a + b;
  const r2 = c + d;
  const c1 = a + c;
  const n = r1 + r2;
  if (r1 === 0 || r2 === 0 || c1 === 0 || c1 === n) return 1;
  const base = lnFactorial(r1) + lnFactorial(r2) + lnFactorial(c1) + lnFactorial(n - c1) - lnFactorial(n);
  const lnP = (x: number): number =>
    base - lnFactorial(x) - lnFactorial(r1 - x) - lnFactorial(c1 - x) - lnFactorial(r2 - c1 + x);
  const lo = Math.max(0, c1 - r2);
  const hi = Math.min(r1, c1);
  const observed = lnP(a);
  // relative tolerance as in R (1 + 1e-7) so that ties in floating point count as "as extreme"
  const cutoff = observed + Math.log1p(1e-7);
  let p = 0;
  for (let x = lo; x <= hi; x++) {
    const l = lnP(x);
    if (l <= cutoff) p += Math.exp(l);
  }
  return Math.min(1, p);
}

/** Percentile of an ascending-sorted array by linear interpolation (R type 7). `p` in 0..100. NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  if (n === 1) return sorted[0]!;
  const h = ((n - 1) * Math.min(100, Math.max(0, p))) / 100;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Median of unsorted values (NaN when empty). */
export function median(values: readonly number[]): number {
  return percentile([...values].sort((x, y) => x - y), 50);
}

/** Ascending copy. */
export function sortedCopy(values: readonly number[]): number[] {
  return [...values].sort((x, y) => x - y);
}

/**
 * How many probes per group (both groups equal size) would make a difference in proportions like p1 vs p2
 * significant by Fisher's exact test at `alpha`, assuming the observed proportions hold. Searches n upward
 * from `fromN`; returns undefined when even `maxN` would not do (proportions too close).
 */
export function probesForSignificance(
  p1: number,
  p2: number,
  alpha = 0.05,
  fromN = 1,
  maxN = 200,
): number | undefined {
  if (p1 === p2) return undefined;
  for (let n = Math.max(1, fromN); n <= maxN; n++) {
    const a = Math.round(p1 * n);
    const c = Math.round(p2 * n);
    if (a === c) continue;
    if (fisherExact(a, n - a, c, n - c) < alpha) return n;
  }
  return undefined;
}

/** `p < 0.001`, `p = 0.012`, `p = 0.48`. */
export function formatP(p: number): string {
  if (p < 0.001) return 'p < 0.001';
  // never print a significant p as "0.050" (or a non-significant one as "0.050"): one more digit there
  if (p < 0.1) return `p = ${p.toFixed(3) === '0.050' || p.toFixed(3) === '0.010' ? p.toFixed(4) : p.toFixed(3)}`;
  return `p = ${p.toFixed(2)}`;
}

/** 0.25 → `25%`, 0.0125 → `1.3%`. */
export function formatPct(x: number): string {
  const v = x * 100;
  if (v === 0 || v === 100 || v >= 10) return `${Math.round(v)}%`;
  return `${v.toFixed(1)}%`;
}

/**
 * Probes per cell that would make a pooled difference significant: group 1 pools `cells1` cells, group 2
 * pools `cells2` cells, each of `r` probes; the proportions p1 and p2 are assumed to hold. Returns the
 * smallest r > `fromR` with Fisher p < alpha, or undefined when even `maxR` would not do.
 */
export function probesPerCellForSignificance(
  p1: number,
  cells1: number,
  p2: number,
  cells2: number,
  fromR: number,
  alpha = 0.05,
  maxR = 100,
): number | undefined {
  if (p1 === p2 || cells1 < 1 || cells2 < 1) return undefined;
  for (let r = Math.max(1, fromR + 1); r <= maxR; r++) {
    const n1 = cells1 * r;
    const n2 = cells2 * r;
    const a = Math.round(p1 * n1);
    const c = Math.round(p2 * n2);
    if (fisherExact(a, n1 - a, c, n2 - c) < alpha) return r;
  }
  return undefined;
}

/**
 * Two-sided Mann–Whitney U test (Wilcoxon rank-sum) of x against y. Exact distribution for small samples
 * without ties (n1·n2 ≤ 2500), normal approximation with tie correction otherwise. Returns U of x and p.
 */
export function mannWhitney(x: readonly number[], y: readonly number[]): { u: number; p: number } {
  const n1 = x.length;
  const n2 = y.length;
  if (n1 === 0 || n2 === 0) return { u: NaN, p: 1 };
  const all = [...x.map((v) => ({ v, g: 0 })), ...y.map((v) => ({ v, g: 1 }))].sort((a, b) => a.v - b.v);
  const ranks = new Array<number>(all.length);
  let ties = 0;
  for (let i = 0; i < all.length; ) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    const t = j - i + 1;
    if (t > 1) ties += t * t * t - t;
    for (let k = i; k <= j; k++) ranks[k] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let r1 = 0;
  all.forEach((e, i) => {
    if (e.g === 0) r1 += ranks[i]!;
  });
  const u = r1 - (n1 * (n1 + 1)) / 2;
  const mean = (n1 * n2) / 2;
  if (ties === 0 && n1 * n2 <= 2500) {
    // exact: number of arrangements with U = k, by the recurrence f(m, n, k) = f(m-1, n, k-n) + f(m, n-1, k)
    const maxU = n1 * n2;
    let prev: number[][] = []; // prev[n][k] for m-1
    for (let n = 0; n <= n2; n++) prev[n] = Array.from({ length: maxU + 1 }, (_, k) => (k === 0 ? 1 : 0));
    for (let m = 1; m <= n1; m++) {
      const cur: number[][] = [];
      cur[0] = Array.from({ length: maxU + 1 }, (_, k) => (k === 0 ? 1 : 0));
      for (let n = 1; n <= n2; n++) {
        const row = new Array<number>(maxU + 1).fill(0);
        for (let k = 0; k <= maxU; k++) row[k] = (k >= n ? prev[n]![k - n]! : 0) + cur[n - 1]![k]!;
        cur[n] = row;
      }
      prev = cur;
    }
    const dist = prev[n2]!;
    const totalWays = dist.reduce((a, b) => a + b, 0);
    const ur = Math.round(u);
    let lo = 0;
    let hi = 0;
    for (let k = 0; k <= maxU; k++) {
      if (k <= ur) lo += dist[k]!;
      if (k >= ur) hi += dist[k]!;
    }
    return { u, p: Math.min(1, (2 * Math.min(lo, hi)) / totalWays) };
  }
  const n = n1 + n2;
  const sd = Math.sqrt(((n1 * n2) / 12) * (n + 1 - ties / (n * (n - 1))));
  if (sd === 0) return { u, p: 1 };
  const zc = (Math.abs(u - mean) - 0.5) / sd;
  return { u, p: Math.min(1, 2 * (1 - normalCdf(Math.max(0, zc)))) };
}

/** Standard normal CDF (Abramowitz–Stegun 7.1.26 via erf; |error| < 1.5e-7). */
export function normalCdf(z: number): number {
  const t = 1 / (1 + (0.3275911 * Math.abs(z)) / Math.SQRT2);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erf = 1 - poly * Math.exp(-(z * z) / 2);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

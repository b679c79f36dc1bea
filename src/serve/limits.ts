/**
 * Bounds of `serve`'s HTTP side, so scrapers and idle clients can never take the descriptors the probes need:
 * a cap on concurrent connections (below the process's open-file limit minus a reserve for probes), short
 * header and keep-alive timeouts, and EMFILE / ENFILE said in words. Pure (`openFileLimit` is in fsutil.ts).
 */
import { openFileLimit } from '../fsutil.js';

export { openFileLimit };

/** Concurrent HTTP connections `serve` accepts by default (Prometheus needs one per scraper). */
export const DEFAULT_MAX_HTTP_CONNECTIONS = 64;
/** A client must send its request headers within this long (also: the first request of an idle connection). */
export const HTTP_HEADERS_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this long. */
export const HTTP_KEEPALIVE_TIMEOUT_MS = 5_000;
/** Descriptors kept free for the process itself (files, DNS, the results file, stdio). */
export const BASE_RESERVE_FDS = 64;
/** Descriptors a probe may hold at once (its socket, a proxy's, a capture): reserved per concurrent probe. */
export const FDS_PER_PROBE = 4;

/**
 * The connection cap: the requested one, lowered so that the probes (`probes` at once, FDS_PER_PROBE each) and
 * BASE_RESERVE_FDS always have descriptors left under `fdLimit`. At least 1.
 */
export function connectionCap(o: { requested?: number; fdLimit?: number; probes: number }): number {
  const requested = Math.max(1, Math.floor(o.requested ?? DEFAULT_MAX_HTTP_CONNECTIONS));
  if (o.fdLimit === undefined) return requested;
  const room = o.fdLimit - BASE_RESERVE_FDS - o.probes * FDS_PER_PROBE;
  return Math.max(1, Math.min(requested, room));
}

/** An accept / socket error of the server in words: out of descriptors names the limit; anything else as is. */
export function describeServerError(err: NodeJS.ErrnoException, fdLimit: number | undefined): string {
  if (err.code === 'EMFILE' || err.code === 'ENFILE') {
    const limit = fdLimit === undefined ? 'the limit' : `the limit of ${fdLimit}`;
    const who = err.code === 'EMFILE' ? `this process has reached ${limit} open files (ulimit -n)` : 'the system has reached its limit of open files (fs.file-max)';
    return `out of file descriptors (${err.code}): ${who}; new HTTP connections are refused until some close. Raise the limit (ulimit -n) or lower --max-connections`;
  }
  return `HTTP server error: ${err.code ?? ''} ${err.message}`.trim();
}

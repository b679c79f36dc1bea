import type { Outcome, Stage } from '../model.js';
import { openFileLimit } from '../fsutil.js';

/**
 * One error type for everything that ends a probe early, with a stable `code`, the `stage` it happened in, the
 * last command and reply, and the underlying `cause`. `classify` is the only place that maps codes to outcomes.
 */
export type ProbeErrorCode =
  | 'ETIMEDOUT'
  | 'ESTALL'
  | 'ECONNRESET'
  | 'ECLOSED'
  | 'ECONNREFUSED'
  | 'EUNREACHABLE'
  | 'EADDRNOTAVAIL'
  | 'ETLS'
  | 'EPROTOCOL'
  | 'EDNS'
  | 'EREJECTED'
  | 'EPROXY'
  | 'EABORTED'
  /** A real target advertised a SIZE below the probe's size; the probe was not sent (src/probe/guards.ts). */
  | 'ESIZE';

export class ProbeError extends Error {
  override name = 'ProbeError';
  constructor(
    readonly code: ProbeErrorCode,
    message: string,
    readonly stage: Stage,
    readonly extra: { lastCommand?: string; cause?: unknown } = {},
  ) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
  }
}

/** Bad input found before anything is sent: message too small, missing secret, unreadable message file. */
export class ProbeInputError extends Error {
  override name = 'ProbeInputError';
  readonly code = 'EINPUT';
}

/**
 * The machine, not the network: this process ran out of file descriptors and could not open a socket. Not a
 * measurement (a `reset` here would blame the path): `probe` rejects with it, the runner stops with exit 3.
 */
export class ProbeEnvError extends Error {
  override name = 'ProbeEnvError';
  readonly code = 'EENV';
}

/** Read when the engine loads: once descriptors run out, even /proc/self/limits cannot be opened. */
const FD_LIMIT = openFileLimit();

/** EMFILE / ENFILE anywhere in an error's cause chain, said in words with the limit; undefined otherwise. */
export function descriptorExhaustion(err: unknown, limit: number | undefined = FD_LIMIT): string | undefined {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 8; e = e.cause as typeof e, depth++) {
    if (e.code === 'EMFILE') {
      return `out of file descriptors (EMFILE): this process has reached ${limit === undefined ? 'its limit of' : `its limit of ${limit}`} open files (ulimit -n), so no socket could be opened; nothing was measured. Raise ulimit -n or lower the concurrency`;
    }
    if (e.code === 'ENFILE') return 'out of file descriptors (ENFILE): the system has reached its limit of open files (fs.file-max), so no socket could be opened; nothing was measured';
  }
  return undefined;
}

/** The only mapping from error codes to outcomes. */
export function classify(code: ProbeErrorCode, stage: Stage): Outcome {
  switch (code) {
    case 'ESTALL':
      return 'stalled';
    case 'ETIMEDOUT':
      // a dns deadline is a resolver that did not answer: dns-error, as when c-ares gives up first (ETIMEOUT → EDNS);
      // `timeout` means data still moved, which never holds in dns (test/integration/mx.test.ts)
      return stage === 'connect' ? 'unreachable' : stage === 'dns' ? 'dns-error' : 'timeout';
    case 'ECONNRESET':
    case 'ECLOSED':
      return 'reset';
    case 'ECONNREFUSED':
      return 'refused';
    case 'EUNREACHABLE':
    case 'EADDRNOTAVAIL':
    case 'EPROXY':
      return 'unreachable';
    case 'ETLS':
      return 'tls-error';
    case 'EPROTOCOL':
      return 'protocol-error';
    case 'EDNS':
      return 'dns-error';
    case 'EREJECTED':
    case 'ESIZE':
      return 'rejected';
    case 'EABORTED':
      return 'timeout';
  }
}

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** Turn a raw Node error (socket, dns, tls) into a ProbeError for the stage it happened in. */
export function toProbeError(err: unknown, stage: Stage, lastCommand?: string): ProbeError {
  if (err instanceof ProbeError) return err;
  const e = err as NodeJS.ErrnoException & { reason?: string; library?: string };
  const raw = typeof e?.code === 'string' ? e.code : '';
  const msg = e?.message ?? String(err);
  const mk = (code: ProbeErrorCode, m = msg) => new ProbeError(code, m, stage, { lastCommand, cause: err });
  if (raw === 'ECONNRESET' || raw === 'EPIPE' || raw === 'ECONNABORTED') return mk('ECONNRESET');
  if (raw === 'ECONNREFUSED') return mk('ECONNREFUSED');
  if (raw === 'EHOSTUNREACH' || raw === 'ENETUNREACH' || raw === 'EHOSTDOWN' || raw === 'ENETDOWN') return mk('EUNREACHABLE');
  if (raw === 'EADDRNOTAVAIL' || raw === 'EADDRINUSE' || raw === 'EINVAL' && stage === 'connect') {
    return mk('EADDRNOTAVAIL', `cannot use the source address: ${msg}`);
  }
  if (raw === 'ENOTFOUND' || raw === 'EAI_AGAIN' || raw === 'ENODATA' || raw === 'ESERVFAIL' || raw === 'ENOTIMP' || raw === 'EREFUSED' || raw === 'ECONNREFUSED_DNS') {
    return mk('EDNS');
  }
  if (raw === 'ETIMEDOUT') return mk('ETIMEDOUT');
  if (TLS_CODE.test(raw) || e?.library !== undefined || /SSL|TLS|certificate/i.test(msg)) return mk('ETLS');
  return mk('ECONNRESET', msg || 'connection failed');
}

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
      return 'aborted';
  }
}

const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** Node writes `connect ECONNREFUSED ::1:25`; people (and URLs) write `[::1]:25`. */
export function bracketIpv6(message: string, address: string | undefined, port: number | undefined): string {
  if (!address || port === undefined || !address.includes(':')) return message;
  return message.split(`${address}:${port}`).join(`[${address}]:${port}`);
}

/** Turn a raw Node error (socket, dns, tls) into a ProbeError for the stage it happened in. */
export function toProbeError(err: unknown, stage: Stage, lastCommand?: string): ProbeError {
  if (err instanceof ProbeError) return err;
  const e = err as NodeJS.ErrnoException & { reason?: string; library?: string; address?: string; port?: number };
  const raw = typeof e?.code === 'string' ? e.code : '';
  const msg = bracketIpv6(e?.message ?? String(err), e?.address, e?.port);
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

// ---------------------------------------------------------------------------------------------------------------
// Errors in words, with the fix

/** What the sentence about an error may mention: how TLS was used, the proxy (redacted), the certificate name. */
export interface ErrorContext {
  tlsMode?: string;
  /** Proxy URL with credentials stripped. */
  proxy?: string;
  /** The name the certificate was checked against. */
  servername?: string;
}

const SELF_SIGNED = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN']);
const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY']);

/** OpenSSL's `…:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/…` → `wrong version number`. */
export function opensslReason(message: string): string {
  const m = /SSL routines:[^:]*:([^:]+)(?::|$)/.exec(message);
  const alert = /SSL alert number (\d+)/.exec(message);
  return m ? `${m[1]!.trim()}${alert ? ` (TLS alert ${alert[1]})` : ''}` : message;
}

function causeCode(err: ProbeError): string {
  const c = err.extra.cause as { code?: unknown } | undefined;
  return typeof c?.code === 'string' ? c.code : '';
}

/** A TLS failure as a sentence with what to do about it; undefined when it is not a TLS failure. */
function tlsInWords(err: ProbeError, ctx: ErrorContext): string | undefined {
  if (err.code !== 'ETLS') return undefined;
  const raw = causeCode(err);
  const detail = opensslReason(err.message);
  if (raw === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number/i.test(err.message)) {
    return err.stage === 'tls'
      ? 'the server speaks plain SMTP on this port (it answered the TLS handshake in plain text): use --tls starttls (or --tls none)'
      : 'the server accepted STARTTLS but then answered in plain text, not TLS (OpenSSL: wrong version number)';
  }
  if (SELF_SIGNED.has(raw)) {
    return `the server's certificate is self-signed (${detail}): trust its CA with NODE_EXTRA_CA_CERTS=ca.pem, or skip verification with --insecure`;
  }
  if (UNTRUSTED.has(raw)) {
    return `the server's certificate is issued by a CA this machine does not trust (${detail}): add the CA with NODE_EXTRA_CA_CERTS=ca.pem, or skip verification with --insecure`;
  }
  if (raw === 'CERT_HAS_EXPIRED') return `the server's certificate has expired (${detail}): renew it, or probe anyway with --insecure`;
  if (raw === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const name = ctx.servername ? `"${ctx.servername}"` : 'the name probed';
    return `the server's certificate is not issued for ${name} (${detail}): give the name it was issued for with --servername NAME, or --insecure`;
  }
  if (/SSL routines/.test(err.message)) return `TLS handshake failed: ${detail}`;
  return undefined;
}

/** A failure to reach the target through a proxy is first the proxy's: say so when the message does not. */
function proxyInWords(err: ProbeError, ctx: ErrorContext): string | undefined {
  if (!ctx.proxy || err.stage !== 'connect' || /proxy/i.test(err.message)) return undefined;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `the proxy ${ctx.proxy} refused the connection (${err.message}): is the proxy running on that port?`;
    case 'EUNREACHABLE':
      return `the proxy ${ctx.proxy} is unreachable (${err.message})`;
    case 'ECONNRESET':
    case 'ECLOSED':
      return `the proxy ${ctx.proxy} closed the connection before the target was reached (${err.message})`;
    case 'ETIMEDOUT':
      return `${err.message} through the proxy ${ctx.proxy}: the proxy, or the target behind it, did not answer`;
    default:
      return undefined;
  }
}

/** The message recorded for a failure: a sentence with the fix where one is known, else the error's own message. */
export function inWords(err: ProbeError, ctx: ErrorContext = {}): string {
  return tlsInWords(err, ctx) ?? proxyInWords(err, ctx) ?? err.message;
}

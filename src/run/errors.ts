/**
 * Errors of the runner, with a stable code the CLI maps to an exit code:
 * - `EOUTPUT`: the results file cannot be created or written (environment: exit 3);
 * - `EINPUT`: a probe spec is not usable (missing secret, message too small…) — nothing was sent (exit 2);
 * - `EDNS`: the MX hosts of an `allMx` target cannot be listed (exit 2);
 * - `ERESUME`: the file given to resume is missing or not a results file (exit 2);
 * - `ECAPTURE`: the plan asks for packet captures and tcpdump cannot be started (environment: exit 3);
 * - `EBIND`: a path's source address (`localAddress`) cannot be bound on this machine (environment: exit 3);
 * - `EENV`: the machine ran out of something a probe needs (file descriptors: EMFILE) — not a measurement (exit 3).
 */
export type RunErrorCode = 'EOUTPUT' | 'EINPUT' | 'EDNS' | 'ERESUME' | 'ECAPTURE' | 'EBIND' | 'EENV';

export class RunError extends Error {
  override name = 'RunError';
  constructor(
    readonly code: RunErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

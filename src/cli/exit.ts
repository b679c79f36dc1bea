/** Exit codes are an interface (README "Exit codes"). */
export const EXIT = {
  OK: 0,
  /** findings, a failed expectation, a probe that did not deliver */
  FINDINGS: 1,
  /** bad usage or bad input (flags, profile, message file, unresolvable host) */
  USAGE: 2,
  /** environment error: cannot bind, no permission, output not writable */
  ENV: 3,
  /** a `verify` threshold failed */
  THRESHOLD: 99,
  /** interrupted (SIGINT) */
  INTERRUPTED: 130,
} as const;

/** Thrown by commands for a one-line error and an exit code; `main` prints `mxprobe: <message>`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(message: string, readonly exitCode: number = EXIT.USAGE) {
    super(message);
  }
}

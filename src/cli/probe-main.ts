import { runCli, type CommandTable } from './program.js';

/**
 * The CLI with `probe` alone in its command table: the entry of dist/bundle/probe.cjs (scripts/bundle.mjs), which
 * bin/mxprobe.js runs for exactly the command lines on which main.ts would register `probe` alone (`commandsFor`:
 * the first argument not starting with '-' is `probe`). Same program, same output and exit codes; a bundle
 * without the ~400 KiB of other commands a one-off probe never runs (issue 16). It imports program.ts, never
 * main.ts, whose table would bring every command into the bundle.
 */
const COMMANDS: CommandTable = { probe: () => import('./probe.js') };

/** Parse argv and run `probe`; resolves to the process exit code (main.ts's `main`, given this table). */
export function main(argv: string[]): Promise<number> {
  return runCli(COMMANDS, argv);
}

import type { Command } from 'commander';
import { commandsIn, programOf, runCli, type CommandTable } from './program.js';

/**
 * The whole CLI: every command, in the order of `mxprobe --help`; add new ones here. Each is a file exporting
 * `register(program)`, imported lazily (program.ts). `mxprobe probe …` runs probe-main.ts instead, the same code
 * with `probe` alone in its table (bin/mxprobe.js picks it by `commandsFor`'s rule).
 */
const COMMANDS: CommandTable = {
  demo: () => import('./demo.js'),
  probe: () => import('./probe.js'),
  lab: () => import('./lab.js'),
  schema: () => import('./schema.js'),
  run: () => import('./run.js'),
  compare: () => import('./compare.js'),
  verify: () => import('./verify.js'),
  bisect: () => import('./bisect.js'),
  sink: () => import('./sink.js'),
  serve: () => import('./serve.js'),
};

/** Which command modules a command line needs: the named command only; none for a bare --version; else all (help). */
export function commandsFor(args: readonly string[]): string[] {
  return commandsIn(COMMANDS, args);
}

/** The commander program with the given commands registered (default: all, in the order of `mxprobe --help`). */
export function buildProgram(names?: readonly string[]): Promise<Command> {
  return programOf(COMMANDS, names);
}

/** Parse argv and run a command; resolves to the process exit code. Never calls process.exit itself. */
export function main(argv: string[]): Promise<number> {
  return runCli(COMMANDS, argv);
}

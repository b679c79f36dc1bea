import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { CliError, EXIT } from './exit.js';
import { UnitError } from '../units.js';
import { ProfileError } from '../profile/errors.js';
import { forTerminal } from '../text.js';

/**
 * The CLI's program, given a table of commands: the whole CLI (main.ts) and the probe-only entry (probe-main.ts,
 * the bundle `mxprobe probe` runs: scripts/bundle.mjs, bin/mxprobe.js) are this code with their own table.
 *
 * Each command lives in its own file and exports `register(program)`. The table imports them lazily: `mxprobe
 * probe` loads the probe engine and commander, not zod, yaml, smtp-server or prom-client (start-up time is part
 * of the swaks habit: bench/startup.mjs).
 */
export type CommandModule = { register: (program: Command) => void };
export type CommandTable = Readonly<Record<string, () => Promise<CommandModule>>>;

/** Which of the table's commands a command line needs: the named command only; none for a bare --version; else all (help). */
export function commandsIn(table: CommandTable, args: readonly string[]): string[] {
  const first = args.find((a) => !a.startsWith('-'));
  if (first !== undefined && Object.hasOwn(table, first)) return [first];
  if (first === undefined && args.some((a) => a === '-V' || a === '--version')) return [];
  return Object.keys(table);
}

let version: string | undefined;
/** package.json's version, read once; not through require(), whose first file look-up took 1 ms of start-up (issue 16). */
function pkgVersion(): string {
  return (version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version);
}

/** The commander program with the given commands of the table registered (default: all, in the table's order). */
export async function programOf(table: CommandTable, names: readonly string[] = Object.keys(table)): Promise<Command> {
  const { Command } = await import('commander');
  const program = new Command('mxprobe')
    .version(pkgVersion(), '-V, --version')
    .description(
      'Synthetic SMTP delivery prober: sends size-graded test messages over chosen egress paths, times every ' +
        'stage, notices stalls within seconds, attaches TCP evidence, and names the path and size that stall.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const mod of await Promise.all(names.map((n) => table[n]!()))) mod.register(program);
  program.addHelpText(
    'after',
    `
Start here:
  npx mxprobe demo                 reproduce a load-balancer stall on loopback and see the verdict
  mxprobe probe --host H --from A --to B --size 1MiB     one instrumented transaction (swaks habit)
  mxprobe run profiles/lb-vs-direct.yaml                  paths x sizes, interleaved, then the table

Units: durations 500ms, 10s, 2m, 1h (a bare number is seconds, in flags and profiles alike);
       sizes 512, 64KiB, 1MiB (powers of 1024), 1.5MB (powers of 1000).

Exit codes: 0 clean, 1 findings / not delivered, 2 bad usage or input, 3 environment error,
            99 verify threshold failed, 130 interrupted.`,
  );
  return program;
}

let pipeGuarded = false;

/** `mxprobe … | head`: a closed pipe ends the output, not the process with a stack trace. Installed once. */
function quietOnClosedPipe(): void {
  if (pipeGuarded) return;
  pipeGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw e;
    });
  }
}

/**
 * Parse argv and run a command of the table (only those `commandsIn` names are registered); resolves to the
 * process exit code. Never calls process.exit itself.
 */
export async function runCli(table: CommandTable, argv: string[]): Promise<number> {
  quietOnClosedPipe();
  const args = argv.slice(2);
  // the one command line that needs nothing else: answered before commander is even loaded (bench/startup.mjs)
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
    process.stdout.write(`${pkgVersion()}\n`);
    return EXIT.OK;
  }
  const { CommanderError } = await import('commander');
  const program = await programOf(table, commandsIn(table, args));
  let code: number = EXIT.OK;
  // commands report their exit code through this hook
  program.hook('postAction', (_this, action) => {
    const c = (action as Command & { exitCodeValue?: number }).exitCodeValue;
    if (typeof c === 'number') code = c;
  });
  for (const sub of program.commands) sub.exitOverride();
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.OK;
      // commander already printed the message
      return EXIT.USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`mxprobe: ${forTerminal(err.message)}\n`);
      return err.exitCode;
    }
    if (err instanceof UnitError || err instanceof ProfileError) {
      process.stderr.write(`mxprobe: ${forTerminal(err.message)}\n`);
      return EXIT.USAGE;
    }
    process.stderr.write(`mxprobe: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.ENV;
  }
}

/** Commands call this to set the process exit code without exiting. */
export function setExitCode(cmd: Command, code: number): void {
  (cmd as Command & { exitCodeValue?: number }).exitCodeValue = code;
}

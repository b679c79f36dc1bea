import { Command, CommanderError } from 'commander';
import { createRequire } from 'node:module';
import { CliError, EXIT } from './exit.js';
import { UnitError } from '../units.js';
import { ProfileError } from '../profile/index.js';
// Each command lives in its own file and exports `register(program)`; add new ones to COMMANDS.
import { register as registerProbe } from './probe.js';
import { register as registerDemo } from './demo.js';
import { register as registerLab } from './lab.js';
import { register as registerSchema } from './schema.js';
import { register as registerRun } from './run.js';
import { register as registerCompare } from './compare.js';
import { register as registerVerify } from './verify.js';
import { register as registerBisect } from './bisect.js';
import { register as registerServe } from './serve.js';
import { register as registerSink } from './sink.js';
import { forTerminal } from '../text.js';

const COMMANDS: Array<(program: Command) => void> = [
  registerDemo,
  registerProbe,
  registerLab,
  registerSchema,
  registerRun,
  registerCompare,
  registerVerify,
  registerBisect,
  registerSink,
  registerServe,
];

const require = createRequire(import.meta.url);
const pkg = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('mxprobe')
    .version(pkg.version, '-V, --version')
    .description(
      'Synthetic SMTP delivery prober: sends size-graded test messages over chosen egress paths, times every ' +
        'stage, notices stalls within seconds, attaches TCP evidence, and names the path and size that stall.',
    )
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const reg of COMMANDS) reg(program);
  program.addHelpText(
    'after',
    `
Start here:
  npx mxprobe demo                 reproduce a load-balancer stall on loopback and see the verdict
  mxprobe probe --host H --from A --to B --size 1MiB     one instrumented transaction (swaks habit)
  mxprobe run profiles/lb-vs-direct.yaml                  paths x sizes, interleaved, then the table

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

/** Parse argv and run a command; resolves to the process exit code. Never calls process.exit itself. */
export async function main(argv: string[]): Promise<number> {
  quietOnClosedPipe();
  const program = buildProgram();
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

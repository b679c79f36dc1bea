/**
 * `mxprobe lab relay`: the fault-injecting TCP relay on the command line. Put it between a prober and an SMTP
 * server to reproduce the incidents on loopback: `--client-to-server blackhole-after=64KiB` is the load balancer
 * that dropped DATA segments; `freeze-after=64KiB` is the window-scaling stall.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  type ConnectionReport,
  type Direction,
  type DirectionReport,
  type EndedBy,
  FAULT_FORMS,
  type FaultEvent,
  type FaultSpec,
  type Relay,
  formatFault,
  parseFault,
  startRelay,
} from '../lab/relay.js';
import { formatMs, formatSize, parseSize } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { durationArg, parseHostPort } from './options.js';
import { clockMs } from '../clock.js';

interface RelayFlags {
  listen: { host: string; port: number };
  to: { host: string; port: number };
  clientToServer: FaultSpec;
  serverToClient: FaultSpec;
  connectTimeout: number;
  json?: boolean;
}

const ARROW: Record<Direction, string> = { clientToServer: 'client→server', serverToClient: 'server→client' };

function faultArg(v: string): FaultSpec {
  try {
    return parseFault(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** `127.0.0.1:2526`, `[::1]:2526`, or a bare port (`2526` → 127.0.0.1:2526). */
function addressArg(what: string, allowZero: boolean) {
  return (v: string): { host: string; port: number } => {
    try {
      const hp = /^\d+$/.test(v.trim()) ? { host: '127.0.0.1', port: Number(v.trim()) } : parseHostPort(v.trim());
      if (hp.port > 65535 || (!allowZero && hp.port === 0)) throw new Error(`not a usable ${what} port: "${v}"`);
      return hp;
    } catch (e) {
      throw new InvalidArgumentError(`${(e as Error).message} (expected HOST:PORT, e.g. 127.0.0.1:2525)`);
    }
  };
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A size that reads back exactly: `64KiB`, `1.5MiB`, else the plain byte count `65537B`. */
function bytesText(n: number): string {
  const s = formatSize(n);
  try {
    if (parseSize(s) === n) return s;
  } catch {
    // fall through
  }
  return `${n}B`;
}

/** Greedy word wrap to `width` columns; continuation lines get `indent`. */
function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  if (line) lines.push(line);
  return lines.join(`\n${indent}`);
}

function faultsHelp(): string {
  const w = Math.max(...FAULT_FORMS.map((f) => f.form.length));
  const indent = ' '.repeat(w + 4);
  const lines = FAULT_FORMS.map((f) => {
    const text = f.meaning + (f.models ? `. Models ${f.models}.` : '');
    return `  ${f.form.padEnd(w)}  ${wrap(text, 96 - indent.length, indent)}`;
  });
  return `
Faults (one per direction; SIZE takes 65536, 64KiB, 1MiB, 1.5MB; counts are exact, per connection and direction):
${lines.join('\n')}

  A blackhole and a freeze look alike to an SMTP client until you look at where it waits: with a blackhole the
  sender's writes all complete and it then waits for a final reply that never comes (the stall shows in dataAck;
  on a real network, with retransmissions); with a freeze its writes stop draining mid-body (the stall shows in
  body, the peer's window at 0). A FIN or RST from either side is still relayed after a blackhole, so
  connections wind down when a peer gives up.

Examples:
  # incident 1: a load balancer that drops everything after the first 64 KiB of the client's data
  mxprobe lab relay --listen 127.0.0.1:2526 --to 127.0.0.1:2525 --client-to-server blackhole-after=64KiB
  # incident 2's family: the window closes after 64 KiB
  mxprobe lab relay --listen 127.0.0.1:2526 --to 127.0.0.1:2525 --client-to-server freeze-after=64KiB
  # a slow, far-away path
  mxprobe lab relay --listen 2526 --to 127.0.0.1:2525 --client-to-server throttle=256KiB/s --server-to-client delay=80ms

Output: one line when listening, one when a fault acts, one per connection when it ends (bytes each way, what
the fault did, who ended it). Runs until SIGINT/SIGTERM, then closes every connection and exits 0.
Exit codes: 0 stopped by a signal, 2 bad flags or fault text, 3 cannot listen (address in use, no permission).`;
}

export function register(program: Command): void {
  const lab = program
    .command('lab')
    .summary('loopback lab: a fault-injecting TCP relay that reproduces the incidents')
    .description('Tools to reproduce the incidents\' delivery stalls on one machine, without touching a real network.');

  lab
    .command('relay')
    .summary('forward TCP to a target, injecting a fault per direction (blackhole, freeze, reset, delay, throttle)')
    .description(
      'Listen on --listen and forward every connection to --to, applying one fault to the bytes the client sends ' +
        '(--client-to-server) and one to the bytes the server sends back (--server-to-client). Point a probe (or ' +
        'any SMTP client) at the relay, a sink or real SMTP server behind it, and the incidents happen on loopback.',
    )
    .requiredOption('--listen <host:port>', 'address to listen on; a bare port means 127.0.0.1; port 0 picks a free one', addressArg('listen', true))
    .requiredOption('--to <host:port>', 'where to forward each connection (an SMTP server, `mxprobe sink`, …)', addressArg('target', false))
    .addOption(
      new Option('--client-to-server <fault>', 'fault on bytes the client sends to the server (faults below)').argParser(faultArg).default({ kind: 'none' }, 'none'),
    )
    .addOption(
      new Option('--server-to-client <fault>', 'fault on bytes the server sends to the client (faults below)').argParser(faultArg).default({ kind: 'none' }, 'none'),
    )
    .addOption(
      new Option('--connect-timeout <duration>', 'give up reaching --to after this long and reset the client').argParser(durationArg).default(10_000, '10s'),
    )
    .option('--json', 'print one JSON object per line (event: listening | fault | connection | closed) instead of text')
    .addHelpText('after', faultsHelp())
    .action(async (flags: RelayFlags, cmd: Command) => {
      await runRelay(flags);
      setExitCode(cmd, EXIT.OK);
    });
}

async function runRelay(flags: RelayFlags): Promise<void> {
  const out = (line: string): void => void process.stdout.write(`${line}\n`);
  const emit = (obj: Record<string, unknown>): void => out(JSON.stringify(obj));
  const t0 = clockMs();

  let relay: Relay;
  try {
    relay = await startRelay({
      listenHost: flags.listen.host,
      listenPort: flags.listen.port,
      targetHost: flags.to.host,
      targetPort: flags.to.port,
      clientToServer: flags.clientToServer,
      serverToClient: flags.serverToClient,
      connectTimeoutMs: flags.connectTimeout,
    });
  } catch (err) {
    throw listenError(err as NodeJS.ErrnoException, hostPort(flags.listen.host, flags.listen.port));
  }

  const listen = hostPort(relay.host, relay.port);
  const target = hostPort(relay.targetHost, relay.targetPort);
  if (flags.json) {
    emit({
      event: 'listening',
      listen,
      target,
      clientToServer: formatFault(flags.clientToServer),
      serverToClient: formatFault(flags.serverToClient),
    });
  } else {
    const faults = (['clientToServer', 'serverToClient'] as const)
      .filter((d) => flags[d].kind !== 'none')
      .map((d) => `${ARROW[d]}: ${formatFault(flags[d])}`);
    out(`relay ${listen} → ${target}  ${faults.length ? faults.join('  ') : 'no faults (plain relay)'}`);
  }

  relay.on('fault', (e) => (flags.json ? emit({ event: 'fault', ...e, faultText: formatFault(e.fault) }) : out(faultLine(e))));
  relay.on('connection', (r) => (flags.json ? emit({ event: 'connection', ...r }) : out(connectionLine(r))));
  relay.on('warning', (err) => process.stderr.write(`mxprobe: relay: ${err.message}\n`));

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const onSignal = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  await relay.close();
  const s = relay.stats();
  const elapsed = clockMs() - t0;
  if (flags.json) {
    emit({ event: 'closed', signal, durationMs: elapsed, ...s });
  } else {
    out(
      `relay closed (${signal}) after ${formatMs(elapsed)}: ${s.connections} connection${s.connections === 1 ? '' : 's'}, ` +
        `client→server ${bytesText(s.bytesClientToServer)}, server→client ${bytesText(s.bytesServerToClient)}`,
    );
  }
}

function listenError(err: NodeJS.ErrnoException, addr: string): CliError {
  switch (err.code) {
    case 'EADDRINUSE':
      return new CliError(`cannot listen on ${addr}: address already in use (another relay or server is there; choose another --listen port, or port 0 for any free one)`, EXIT.ENV);
    case 'EACCES':
      return new CliError(`cannot listen on ${addr}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)`, EXIT.ENV);
    case 'EADDRNOTAVAIL':
      return new CliError(`cannot listen on ${addr}: that address is not on this machine (try 127.0.0.1)`, EXIT.ENV);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(`cannot listen on ${addr}: the host name does not resolve`, EXIT.USAGE);
    default:
      return new CliError(`cannot listen on ${addr}: ${err.code ? `${err.code} ` : ''}${err.message}`, EXIT.ENV);
  }
}

const FAULT_ACTION: Record<string, string> = {
  'blackhole-after': 'from here on everything is swallowed; the sender\'s writes still succeed',
  'freeze-after': 'the relay stops reading; the sender\'s window will close',
  'reset-after': 'resetting both sides',
  'close-after': 'closing both sides',
};

function faultLine(e: FaultEvent): string {
  return `#${e.id} ${ARROW[e.direction]} ${formatFault(e.fault)} acted at ${formatMs(e.atMs)}: ${FAULT_ACTION[e.fault.kind] ?? ''}`;
}

const ENDED: Record<EndedBy, string> = {
  'client-closed': 'client closed',
  'server-closed': 'server closed',
  'client-reset': 'client reset',
  'server-reset': 'server reset',
  'client-error': 'client error',
  'server-error': 'server error',
  'fault-reset': 'relay reset both sides (fault)',
  'fault-closed': 'relay closed both sides (fault)',
  'connect-failed': 'target unreachable, client reset',
  'relay-closed': 'relay shut down',
};

/** What a fault did on one direction of a connection, or undefined for `none`. */
function faultNote(d: Direction, r: DirectionReport): string | undefined {
  const f = r.fault;
  const name = `${ARROW[d]} ${formatFault(f)}`;
  if (f.kind === 'none') return undefined;
  if (f.kind === 'delay' || f.kind === 'throttle') return name;
  if (r.triggeredAtMs === undefined) return `${name} not reached`;
  const at = formatMs(r.triggeredAtMs);
  switch (f.kind) {
    case 'blackhole-after':
      return `${name} swallowed ${bytesText(r.droppedBytes)} from ${at} on`;
    case 'freeze-after':
      return `${name} froze at ${at}${r.heldBytes ? ` (${bytesText(r.heldBytes)} read past the limit, held back)` : ''}`;
    case 'reset-after':
      return `${name} reset at ${at}`;
    case 'close-after':
      return `${name} closed at ${at}${r.droppedBytes ? `, dropped ${bytesText(r.droppedBytes)} after` : ''}`;
  }
}

function connectionLine(r: ConnectionReport): string {
  const notes = [faultNote('clientToServer', r.clientToServer), faultNote('serverToClient', r.serverToClient)].filter(Boolean);
  const ended = ENDED[r.endedBy] + (r.error ? ` (${r.error})` : '');
  return (
    `#${r.id} ${r.client}  ${formatMs(r.durationMs)}  client→server ${bytesText(r.c2sBytes)}  server→client ${bytesText(r.s2cBytes)}  ` +
    `ended: ${ended}${notes.length ? `  [${notes.join('; ')}]` : ''}`
  );
}

import net from 'node:net';
import { dns } from '../probe/endpoints.js';
import { Command, InvalidArgumentError, Option } from 'commander';
import { DEFAULT_TIMEOUTS, QUIT_POINTS, type ProbeResult, type ProbeSpec, type QuitPoint, type Timeouts } from '../model.js';
import { probe, validateSpec, AbortError, ProbeEnvError, ProbeInputError, type ProbeOptions } from '../probe/index.js';
import { composedMessage, fileMessage, MessageError, parseHeaderArg, type MessageSource } from '../probe/message.js';
import type { CaptureSession } from '../probe/capture.js';
import { stallWindowConflicts } from '../timeouts.js';
import { formatDuration } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { classifyTargets, messageFileIdentifies } from '../probe/guards.js'; // real-target safety rules (issue 9)
import { addressArg, collect, dnsServerArg, durationArg, hostArg, hostPortArg, intArg, ipArg, portArg, sizeArg, tlsArg } from './options.js';
import { liveProbePrinter, renderProbeTail } from './probe-render.js';
import { forTerminalDeep } from '../text.js';
import type { ArrivalSpec } from '../model.js';
import type { ArrivalWatcher } from '../arrival/watcher.js';
import { acceptedAtOf } from '../arrival/record.js';
import { arrivalOutcomeLine } from './probe-render.js';

export interface ProbeFlags {
  host?: { host: string; port?: number };
  port?: number;
  mx?: string;
  /** `-4` / `-6`. */
  4?: boolean;
  6?: boolean;
  dnsServer?: string[];
  fallback?: 'mta' | 'none';
  from: string;
  to?: string[];
  size: number;
  message?: string;
  attach?: Array<{ path: string; contentType?: string }>;
  header?: Array<[string, string]>;
  body?: string;
  quitAfter?: QuitPoint;
  tls: ProbeSpec['target']['tls'];
  insecure?: boolean;
  servername?: string;
  localAddress?: string;
  proxy?: string;
  relay?: { host: string; port: number };
  authUser?: string;
  authPassEnv?: string;
  authMethod?: 'PLAIN' | 'LOGIN';
  ehlo?: string;
  seed?: number;
  pathName: string;
  stall: number;
  /** `--no-reply DURATION` (commander names a `--no-…` option by what follows `no-`). */
  reply: number | boolean;
  timeoutConnect: number;
  timeoutCommand: number;
  timeoutData: number;
  timeoutBody: number;
  timeoutDataAck: number;
  transcript?: boolean;
  capture?: string;
  json?: boolean;
  force?: boolean;
  imap?: string;
  imapPassEnv?: string;
  imapFolder?: string[];
  imapWithin: number;
  /** `--no-imap-delete`. */
  imapDelete: boolean;
}

/** A duration flag whose help shows its default as a person types it (`10s`, `5m`), never as milliseconds. */
function durationOption(flags: string, what: string, defaultMs: number): Option {
  return new Option(flags, what).argParser(durationArg).default(defaultMs, formatDuration(defaultMs));
}

/** `--attach FILE` or `--attach FILE:TYPE/SUBTYPE` (the content type; detected from the file name otherwise). */
function attachArg(v: string, prev: Array<{ path: string; contentType?: string }> | undefined) {
  const m = /^(.+):([\w.+-]+\/[\w.+-]+)$/.exec(v);
  return [...(prev ?? []), m ? { path: m[1]!, contentType: m[2]! } : { path: v }];
}

function headerArg(v: string, prev: Array<[string, string]> | undefined): Array<[string, string]> {
  try {
    return [...(prev ?? []), parseHeaderArg(v)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** Flag names of the deadlines the stall window is checked against (src/timeouts.ts: the watched stages). */
const DEADLINE_FLAGS: Record<string, string> = {
  command: '--timeout-command',
  data: '--timeout-data',
  body: '--timeout-body',
  dataAck: '--timeout-data-ack',
};

const HELP_AFTER = `
Durations take a unit: 500ms, 10s, 2m, 1h; a bare number is seconds (--stall 10 is 10s), as in profiles.
Sizes: 512, 64KiB, 1MiB (powers of 1024), 1.5MB (powers of 1000).

Examples:
  mxprobe probe --host mx.example.net --from probe@example.org --to postmaster@example.net --size 1MiB
  mxprobe probe --mx example.net --from a@example.org --to b@example.net --size 4MiB --local-address 192.0.2.10
  mxprobe probe --host 127.0.0.1 --port 2525 --tls none --from a@x.test --to b@x.test --size 64KiB --json
  mxprobe probe --host mx.example.net --from a@example.org --to b@example.net -v --quit-after rcpt
  mxprobe probe --host mx.example.net --from a@example.org --to b@example.net \\
      --attach report.pdf --header 'Subject: quarterly' --body 'see attached' --size 2MiB

Each stage line is printed when the stage ends, the outcome line last. --transcript (-v) shows the SMTP
conversation as it happens (-> sent, <- received, ** events, with the time since the start), AUTH masked and
the message elided to its first and last lines; with --json it is the result's "transcript" field instead.
Ctrl-C ends the probe at once, prints what was measured (outcome "aborted") and exits 130.

Messages: generated (default: exact --size, shaped like mail with an attachment); --message FILE (sent as it
is, dot-stuffed, LF → CRLF; its size is the file's, so --size is refused); or composed with --attach, --header
and --body (nodemailer's MailComposer), padded to --size with a text part, or as large as it comes out when
--size is not given. The result records the exact size and the bytes on the wire (field "message").

Real servers (anything but loopback 127.0.0.0/8, ::1 and benchmark 198.18.0.0/15 addresses): the certificate
is verified (--insecure to skip), a probe larger than the SIZE the server advertises in EHLO is not sent (QUIT
instead of MAIL: rejected at mail, error ESIZE; --force sends it), and a --message file must carry an
Auto-Submitted: or X-Mxprobe: header (--force to skip). Generated and composed probes always carry both headers.

Did it arrive: --imap imaps://user@host --imap-pass-env VAR logs in before the probe is sent (a refused login is
exit 3, nothing sent), then looks for the accepted probe by its X-Mxprobe header in --imap-folder (INBOX, Junk)
for up to --imap-within, checks it is whole (size, seed), prints the folder and the time to the mailbox, and
deletes it (--no-imap-delete keeps it). Not found, or not intact, is exit 1.

Exit codes: 0 delivered (or quit as --quit-after asked), 1 any other outcome, 2 bad usage or input (incl. an
unresolvable host), 3 environment error (the source address cannot be bound, the IMAP login refused), 130 interrupted.
Only probe servers you are allowed to send mail to.`;

export function register(program: Command): void {
  program
    .command('probe')
    .summary('one fully instrumented SMTP transaction (like swaks, with stage timing and stall detection)')
    .description(
      'Send one probe message of an exact size to an SMTP target over an egress path, time every stage\n' +
        '(dns, connect, tls, greeting, ehlo, starttls, auth, mail, rcpt, data, body, dataAck, quit), and end it\n' +
        'as "stalled" within the stall window if the connection stops making progress.',
    )
    .option('--host <host[:port]>', 'SMTP server: a name or an IP, with the port if you like (mx.example.net:587, [2001:db8::1]:25)', hostArg)
    .option('--port <port>', 'TCP port (default 25; 465 with --tls implicit)', portArg)
    .option('--mx <domain>', 'resolve the MX records of this domain and deliver as an MTA does: each MX in preference order, each of its addresses')
    .option('-4', 'connect over IPv4 only')
    .option('-6', 'connect over IPv6 only')
    .option('--dns-server <ip[:port]>', 'resolve MX records and addresses with this DNS server (repeatable) instead of the system resolver', collect(dnsServerArg))
    .addOption(
      new Option('--fallback <mode>', 'mta: on a refused connection, a 4xx greeting or a 421 before MAIL try the next address / MX (default with --mx); none: stop at the first (default with --host)').choices(['mta', 'none']),
    )
    .requiredOption('--from <address>', 'envelope sender (MAIL FROM); "" for the null sender', addressArg)
    .option('--to <address>', 'recipient (RCPT TO); repeat for several', collect(addressArg.bind(null)))
    .addOption(new Option('--size <size>', 'exact message size on the wire: 512, 64KiB, 1MiB, 1.5MB').argParser(sizeArg).default(1024, '1KiB'))
    .option('--message <file.eml>', 'send this message instead of a generated one (dot-stuffed, LF→CRLF)')
    .option('--attach <file[:type]>', 'compose a message with this attachment (repeatable; content type from the name, or after a colon)', attachArg)
    .option('--header <"Name: value">', 'compose a message with this header (repeatable; Subject, From, To replace ours)', headerArg)
    .option('--body <text|@file>', 'compose a message with this text body (@file reads it from a file)')
    .addOption(new Option('--quit-after <stage>', 'say QUIT after this stage instead of sending the message').choices(QUIT_POINTS))
    .addOption(
      new Option('--tls <mode>', 'none | starttls (opportunistic) | require-starttls | implicit (port 465)')
        .argParser(tlsArg)
        .default('starttls'),
    )
    .option('--insecure', 'do not verify the server certificate (verification is on by default)')
    .option('--servername <name>', 'name to verify the certificate against (default: the host or MX name)')
    .option('--local-address <ip>', 'bind this source address (selects the egress path with policy routing)', ipArg)
    .option('--proxy <url>', 'go through a proxy: socks5://[user:pass@]host:port, socks5h://…, http://host:port (CONNECT)')
    .option('--relay <host:port>', 'hand the message to this relay instead of the target', hostPortArg(25))
    .option('--auth-user <user>', 'AUTH user name')
    .option('--auth-pass-env <VAR>', 'name of the environment variable holding the AUTH secret (never printed)')
    .addOption(new Option('--auth-method <method>', 'AUTH mechanism (default: PLAIN if offered, else LOGIN)').choices(['PLAIN', 'LOGIN']))
    .option('--ehlo <name>', 'EHLO name (default: this host name)')
    .option('--seed <n>', 'seed of the generated message contents', intArg(0))
    .option('--path-name <name>', 'label of the egress path in the result', 'direct')
    .addOption(durationOption('--stall <duration>', 'stall window: the network moves nothing of what is outstanding for this long → stalled', DEFAULT_TIMEOUTS.stallMs))
    .addOption(durationOption('--no-reply <duration>', 'everything sent was acknowledged and no reply came for this long → stalled (no-reply)', DEFAULT_TIMEOUTS.noReplyMs))
    .addOption(durationOption('--timeout-connect <duration>', 'connect deadline', DEFAULT_TIMEOUTS.connectMs))
    .addOption(durationOption('--timeout-command <duration>', 'deadline of each command reply', DEFAULT_TIMEOUTS.commandMs))
    .addOption(durationOption('--timeout-data <duration>', 'DATA → 354 deadline', DEFAULT_TIMEOUTS.dataMs))
    .addOption(durationOption('--timeout-body <duration>', 'body transfer deadline', DEFAULT_TIMEOUTS.bodyMs))
    .addOption(durationOption('--timeout-data-ack <duration>', 'final reply deadline', DEFAULT_TIMEOUTS.dataAckMs))
    .option('-v, --transcript', 'show the SMTP conversation (with --json: record it in the result)')
    .option('--capture <dir>', 'write a pcap of a stalled connection into DIR (needs tcpdump and root/CAP_NET_RAW)')
    .option('--imap <url>', 'then look for the probe in this mailbox: imaps://user@host[:993] or imap://user@host[:143] (only mailboxes you own)')
    .option('--imap-pass-env <VAR>', 'name of the environment variable holding the IMAP password (never printed)')
    .option('--imap-folder <name>', 'folder to look in (repeatable; default INBOX and Junk)', collect((v: string) => v))
    .addOption(durationOption('--imap-within <duration>', 'how long after acceptance the probe may take to arrive', 300_000))
    .option('--no-imap-delete', 'leave the probe message in the mailbox (default: delete it once checked)')
    .option('--json', 'print the ProbeResult as JSON on stdout')
    .option('--force', 'real (non-loopback) servers: send even above the SIZE the server advertises, or a --message without a test header')
    .addHelpText('after', HELP_AFTER)
    .action(async (flags: ProbeFlags, cmd: Command) => {
      setExitCode(cmd, await runProbeCommand(flags, cmd.getOptionValueSource('size') === 'cli'));
    });
}

/** The Timeouts the flags give; refuses a stall window that does not fit below every deadline (the profile loader's rule). */
export function timeoutsFrom(f: ProbeFlags): Timeouts {
  const timeouts: Timeouts = {
    dnsMs: DEFAULT_TIMEOUTS.dnsMs,
    connectMs: f.timeoutConnect,
    commandMs: f.timeoutCommand,
    dataMs: f.timeoutData,
    bodyMs: f.timeoutBody,
    dataAckMs: f.timeoutDataAck,
    stallMs: f.stall,
    noReplyMs: typeof f.reply === 'number' ? f.reply : DEFAULT_TIMEOUTS.noReplyMs,
  };
  if (!(f.stall > 0)) throw new CliError('--stall must be greater than 0');
  if (!(timeouts.noReplyMs > 0)) throw new CliError('--no-reply must be greater than 0');
  const conflicts = stallWindowConflicts(timeouts);
  if (conflicts.length) {
    const named = conflicts.map((c) => `${DEADLINE_FLAGS[c.key]} is ${formatDuration(c.ms)}${c.key !== 'dns' && c.ms === DEFAULT_TIMEOUTS[c.field] ? ' (the default)' : ''}`);
    throw new CliError(`--stall ${formatDuration(f.stall)} must be shorter than every stage deadline, but ${named.join(', ')}: lower --stall or raise the deadline`);
  }
  return timeouts;
}

/** Which message the flags ask for; refuses combinations that would silently ignore one of them. */
function checkMessageFlags(f: ProbeFlags, sizeGiven: boolean): void {
  const composing = !!(f.attach?.length || f.header?.length || f.body !== undefined);
  if (f.message && sizeGiven) throw new CliError(`--size and --message cannot be combined: a --message file is sent as it is (its size is the file's)`);
  if (f.message && composing) throw new CliError('--message sends a file as it is: --attach, --header and --body compose a new message instead; give one or the other');
}

/**
 * 32 random bits, for a probe id or a seed. Math.random rather than node:crypto: they have to differ from probe to
 * probe, not to be secret, and loading node:crypto was 2.5 ms of a one-off probe's start-up (issue 16).
 */
function random32(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

function buildSpec(f: ProbeFlags): ProbeSpec {
  if (!f.host && !f.mx && !f.relay) throw new CliError('no target: give --host HOST or --mx DOMAIN');
  if (f.host && f.mx) throw new CliError('give either --host or --mx, not both');
  if (!f.to?.length) throw new CliError('no recipient: give --to ADDRESS (repeat it for several)');
  if (f.proxy && f.relay) throw new CliError('give either --proxy or --relay, not both');
  if ((f.authUser === undefined) !== (f.authPassEnv === undefined)) {
    throw new CliError('AUTH needs both --auth-user and --auth-pass-env (the NAME of the variable holding the secret)');
  }
  const timeouts = timeoutsFrom(f);
  if (f.port !== undefined && f.host?.port !== undefined && f.port !== f.host.port) {
    throw new CliError(`--port ${f.port} and the port in --host (${f.host.port}) differ: give one`);
  }
  if (f[4] && f[6]) throw new CliError('give -4 or -6, not both');
  const port = f.port ?? f.host?.port ?? (f.tls === 'implicit' ? 465 : 25);
  const spec: ProbeSpec = {
    probeId: `p-${random32().toString(16).padStart(8, '0')}`,
    target: f.mx ? { mx: f.mx, port, tls: f.tls } : { host: f.host?.host ?? f.relay!.host, port, tls: f.tls },
    path: { name: f.pathName },
    sizeBytes: f.size,
    seed: f.seed ?? random32(),
    envelope: { from: f.from, to: f.to },
    timeouts,
  };
  if (f[4] || f[6]) spec.target.family = f[4] ? 4 : 6;
  if (f.fallback) spec.target.fallback = f.fallback;
  if (f.dnsServer?.length) spec.dnsServers = f.dnsServer;
  if (f.localAddress) spec.path.localAddress = f.localAddress;
  if (f.proxy) spec.path.proxy = f.proxy;
  if (f.relay) spec.path.relay = { host: f.relay.host, port: f.relay.port, tls: f.tls };
  if (f.insecure) spec.insecure = true;
  if (f.servername) spec.servername = f.servername;
  if (f.ehlo) spec.ehloName = f.ehlo;
  if (f.message) spec.messageFile = f.message;
  if (f.capture) spec.captureDir = f.capture;
  if (f.force) spec.force = true; // real-target guard override (guards.ts)
  if (f.quitAfter) spec.quitAfter = f.quitAfter;
  if (f.transcript && f.json) spec.transcript = true;
  if (f.authUser !== undefined) {
    spec.auth = { user: f.authUser, passEnv: f.authPassEnv! };
    if (f.authMethod) spec.auth.method = f.authMethod;
  }
  return spec;
}

/** The message a file or the compose flags make, read before anything is sent (undefined: a generated one). */
async function messageFor(f: ProbeFlags, spec: ProbeSpec, sizeGiven: boolean): Promise<MessageSource | undefined> {
  try {
    if (f.message) return await fileMessage(f.message);
    if (!(f.attach?.length || f.header?.length || f.body !== undefined)) return undefined;
    let body = f.body;
    if (body?.startsWith('@')) {
      const { readFile } = await import('node:fs/promises');
      body = await readFile(body.slice(1), 'utf8').catch((e: NodeJS.ErrnoException) => {
        throw new MessageError(`cannot read --body file ${body!.slice(1)}: ${e.code ?? String(e)}`);
      });
    }
    return await composedMessage({
      probeId: spec.probeId,
      seed: spec.seed,
      from: spec.envelope.from,
      to: spec.envelope.to,
      ...(f.header ? { headers: f.header } : {}),
      ...(body !== undefined ? { body } : {}),
      ...(f.attach ? { attachments: f.attach } : {}),
      ...(sizeGiven ? { sizeBytes: f.size } : {}),
    });
  } catch (e) {
    if (e instanceof MessageError) throw new CliError(e.message, EXIT.USAGE);
    throw e;
  }
}

/** What can be refused before anything is sent: the spec, an unresolvable host, a replayed message without a test header. */
async function preflight(spec: ProbeSpec, message: MessageSource | undefined, force: boolean): Promise<void> {
  try {
    // the generator's minimum size does not apply to a file or composed message: it has its own size
    validateSpec(message ? { ...spec, messageFile: spec.messageFile ?? '(composed)' } : spec);
  } catch (e) {
    throw new CliError((e as Error).message, EXIT.USAGE);
  }
  // An unresolvable host is bad input (exit 2, nothing sent), not a measurement.
  const host = spec.path.relay?.host ?? spec.target.host;
  if (host && !net.isIP(host) && !spec.path.proxy) {
    try {
      await dns().promises.lookup(host);
    } catch (e) {
      throw new CliError(`cannot resolve host "${host}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`, EXIT.USAGE);
    }
  }
  // real-target safety (src/probe/guards.ts): a replayed message must say it is a test
  if (spec.messageFile && !force && (await classifyTargets([spec.target], [spec.path]))[0]!.real) {
    const ok = await messageFileIdentifies(spec.messageFile).catch(() => true); // unreadable: the engine reports it
    if (!ok) {
      throw new CliError(
        `--message ${spec.messageFile}: the target is a real server and the message has no Auto-Submitted: or X-Mxprobe: header; ` +
          'add "Auto-Submitted: auto-generated" (and e.g. "X-Mxprobe: test") to its headers so the receiver can tell it is a test, or use --force',
        EXIT.USAGE,
      );
    }
  }
}

/** Ctrl-C aborts the probe (its result is still printed); a second one ends the process at once. */
function abortOnSignal(): { signal: AbortSignal; release: () => void } {
  const ac = new AbortController();
  const onSignal = (): void => {
    if (ac.signal.aborted) process.exit(EXIT.INTERRUPTED);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: ac.signal,
    release: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

async function runProbeCommand(f: ProbeFlags, sizeGiven: boolean): Promise<number> {
  checkMessageFlags(f, sizeGiven);
  const spec = buildSpec(f);
  const message = await messageFor(f, spec, sizeGiven);
  if (message) spec.sizeBytes = message.sizeBytes;
  await preflight(spec, message, !!f.force);
  const arrival = await openArrivalFor(f);
  let capture: CaptureSession | undefined;
  if (spec.captureDir) {
    try {
      const { startCapture } = await import('../probe/capture.js');
      capture = await startCapture({ dir: spec.captureDir, filter: `tcp port ${spec.path.relay?.port ?? spec.target.port}` });
    } catch (e) {
      await arrival?.close();
      throw new CliError(`--capture: ${(e as Error).message}`, EXIT.ENV);
    }
  }
  const live = f.json ? undefined : liveProbePrinter(spec, { out: process.stdout, ticker: process.stderr.isTTY ? process.stderr : undefined, transcript: !!f.transcript });
  const stop = abortOnSignal();
  const opts: ProbeOptions = { signal: stop.signal, capture, ...live?.hooks };
  if (message) opts.message = message;
  let result: ProbeResult;
  try {
    result = await probe(spec, opts);
  } catch (e) {
    if (e instanceof AbortError && e.result) result = e.result;
    else {
      await arrival?.close();
      if (e instanceof ProbeInputError) throw new CliError(e.message, EXIT.USAGE);
      if (e instanceof ProbeEnvError) throw new CliError(e.message, EXIT.ENV);
      throw e;
    }
  } finally {
    stop.release();
    live?.stop();
    await capture?.stop();
  }
  if (!f.json) process.stdout.write(renderProbeTail(forTerminalDeep(result))); // reply texts are the server's: no control characters
  if (arrival) await lookForArrival(arrival, result, !f.json);
  if (f.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  const code = exitCodeOf(result, spec);
  return code === EXIT.OK && result.arrival && !(result.arrival.found && result.arrival.intact) ? EXIT.FINDINGS : code;
}

/** `--imap`: log in before anything is sent (bad URL or unset variable: exit 2; unreachable or refused: exit 3). */
async function openArrivalFor(f: ProbeFlags): Promise<ArrivalWatcher | undefined> {
  if (f.imap === undefined && f.imapPassEnv === undefined) return undefined;
  if (f.imap === undefined || f.imapPassEnv === undefined) throw new CliError('the arrival check needs both --imap URL and --imap-pass-env (the NAME of the variable holding the password)');
  const spec: ArrivalSpec = { imap: f.imap, passEnv: f.imapPassEnv, folders: f.imapFolder?.length ? f.imapFolder : ['INBOX', 'Junk'], withinMs: f.imapWithin, delete: f.imapDelete };
  const { ArrivalWatcher } = await import('../arrival/watcher.js');
  try {
    return await ArrivalWatcher.open(spec);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'EINPUT') throw new CliError(`--imap: ${(e as Error).message}`, EXIT.USAGE);
    if (code === 'EENV') throw new CliError(`--imap: ${(e as Error).message} (nothing sent)`, EXIT.ENV);
    throw e;
  }
}

/** Look for the accepted probe (only an accepted one), put what was found in `result.arrival`, tell it. */
async function lookForArrival(arrival: ArrivalWatcher, result: ProbeResult, tell: boolean): Promise<void> {
  try {
    if (result.outcome !== 'delivered') return;
    if (tell) process.stdout.write(`  arrival: looking in ${arrival.endpoint.host} …\n`);
    result.arrival = await arrival.expect({ probeId: result.probeId, sizeBytes: result.sizeBytes, acceptedAt: acceptedAtOf(result) });
    if (tell) process.stdout.write(`${arrivalOutcomeLine(forTerminalDeep(result.arrival))}\n`);
  } finally {
    await arrival.close();
  }
}

function exitCodeOf(result: ProbeResult, spec: ProbeSpec): number {
  if (result.outcome === 'aborted') return EXIT.INTERRUPTED;
  if (result.error?.code === 'EADDRNOTAVAIL') {
    process.stderr.write(`mxprobe: cannot bind source address ${spec.path.localAddress}: ${result.error.message}\n`);
    return EXIT.ENV;
  }
  if (result.outcome === 'dns-error') {
    process.stderr.write(`mxprobe: ${result.error?.message ?? 'DNS lookup failed'}\n`);
    return EXIT.USAGE;
  }
  return result.outcome === 'delivered' || result.outcome === 'quit-after' ? EXIT.OK : EXIT.FINDINGS;
}

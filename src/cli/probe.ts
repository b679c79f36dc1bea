import { randomBytes } from 'node:crypto';
import dns from 'node:dns';
import net from 'node:net';
import { Command, Option } from 'commander';
import { DEFAULT_TIMEOUTS, type ProbeResult, type ProbeSpec, type Stage, type Timeouts } from '../model.js';
import { probe, validateSpec, ProbeEnvError, ProbeInputError } from '../probe/index.js';
import { startCapture, type CaptureSession } from '../probe/capture.js';
import { formatMs, formatSize } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './main.js';
import { classifyTargets, messageFileIdentifies } from '../probe/guards.js'; // real-target safety rules (issue 9)
import { addressArg, collect, durationArg, hostPortArg, intArg, ipArg, portArg, sizeArg, tlsArg } from './options.js';
import { forTerminalDeep } from '../text.js';

interface ProbeFlags {
  host?: string;
  port?: number;
  mx?: string;
  from: string;
  to?: string[];
  size: number;
  message?: string;
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
  timeoutConnect: number;
  timeoutCommand: number;
  timeoutData: number;
  timeoutBody: number;
  timeoutDataAck: number;
  capture?: string;
  json?: boolean;
  force?: boolean;
}

export function register(program: Command): void {
  program
    .command('probe')
    .summary('one fully instrumented SMTP transaction (like swaks, with stage timing and stall detection)')
    .description(
      'Send one probe message of an exact size to an SMTP target over an egress path, time every stage\n' +
        '(dns, connect, tls, greeting, ehlo, starttls, auth, mail, rcpt, data, body, dataAck, quit), and end it\n' +
        'as "stalled" within the stall window if the connection stops making progress.',
    )
    .option('--host <host>', 'SMTP server (name or IP)')
    .option('--port <port>', 'TCP port (default 25; 465 with --tls implicit)', portArg)
    .option('--mx <domain>', 'resolve the MX records of this domain and use them in preference order')
    .requiredOption('--from <address>', 'envelope sender (MAIL FROM); "" for the null sender', addressArg)
    .option('--to <address>', 'recipient (RCPT TO); repeat for several', collect(addressArg.bind(null)))
    .option('--size <size>', 'exact message size on the wire: 512, 64KiB, 1MiB, 1.5MB', sizeArg, 1024)
    .option('--message <file.eml>', 'send this message instead of a generated one (dot-stuffed, LF→CRLF)')
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
    .option('--stall <duration>', 'stall window: no byte sent or received for this long ends the probe', durationArg, DEFAULT_TIMEOUTS.stallMs)
    .option('--timeout-connect <duration>', 'connect deadline', durationArg, DEFAULT_TIMEOUTS.connectMs)
    .option('--timeout-command <duration>', 'deadline of each command reply', durationArg, DEFAULT_TIMEOUTS.commandMs)
    .option('--timeout-data <duration>', 'DATA → 354 deadline', durationArg, DEFAULT_TIMEOUTS.dataMs)
    .option('--timeout-body <duration>', 'body transfer deadline', durationArg, DEFAULT_TIMEOUTS.bodyMs)
    .option('--timeout-data-ack <duration>', 'final reply deadline', durationArg, DEFAULT_TIMEOUTS.dataAckMs)
    .option('--capture <dir>', 'write a pcap of a stalled connection into DIR (needs tcpdump and root/CAP_NET_RAW)')
    .option('--json', 'print the ProbeResult as JSON on stdout')
    .option('--force', 'real (non-loopback) servers: send even above the SIZE the server advertises, or a --message without a test header')
    .addHelpText(
      'after',
      `
Examples:
  mxprobe probe --host mx.example.net --from probe@example.org --to postmaster@example.net --size 1MiB
  mxprobe probe --mx example.net --from a@example.org --to b@example.net --size 4MiB --local-address 192.0.2.10
  mxprobe probe --host 127.0.0.1 --port 2525 --tls none --from a@x.test --to b@x.test --size 64KiB --json

Real servers (anything but loopback 127.0.0.0/8, ::1 and benchmark 198.18.0.0/15 addresses): the certificate
is verified (--insecure to skip), a probe larger than the SIZE the server advertises in EHLO is not sent (QUIT
instead of MAIL: rejected at mail, error ESIZE; --force sends it), and a --message file must carry an
Auto-Submitted: or X-Mxprobe: header (--force to skip). Generated probes always carry both headers.

Exit codes: 0 delivered, 1 any other outcome, 2 bad usage or input (incl. an unresolvable host), 3 environment
error (the source address cannot be bound). Only probe servers you are allowed to send mail to.`,
    )
    .action(async (flags: ProbeFlags, cmd: Command) => {
      setExitCode(cmd, await runProbeCommand(flags));
    });
}

function buildSpec(f: ProbeFlags): ProbeSpec {
  if (!f.host && !f.mx && !f.relay) throw new CliError('no target: give --host HOST or --mx DOMAIN');
  if (f.host && f.mx) throw new CliError('give either --host or --mx, not both');
  if (!f.to?.length) throw new CliError('no recipient: give --to ADDRESS (repeat it for several)');
  if (f.proxy && f.relay) throw new CliError('give either --proxy or --relay, not both');
  if ((f.authUser === undefined) !== (f.authPassEnv === undefined)) {
    throw new CliError('AUTH needs both --auth-user and --auth-pass-env (the NAME of the variable holding the secret)');
  }
  const timeouts: Timeouts = {
    dnsMs: DEFAULT_TIMEOUTS.dnsMs,
    connectMs: f.timeoutConnect,
    commandMs: f.timeoutCommand,
    dataMs: f.timeoutData,
    bodyMs: f.timeoutBody,
    dataAckMs: f.timeoutDataAck,
    stallMs: f.stall,
    noReplyMs: DEFAULT_TIMEOUTS.noReplyMs,
  };
  if (!(f.stall > 0)) throw new CliError('--stall must be greater than 0');
  const port = f.port ?? (f.tls === 'implicit' ? 465 : 25);
  const spec: ProbeSpec = {
    probeId: `p-${randomBytes(4).toString('hex')}`,
    target: f.mx ? { mx: f.mx, port, tls: f.tls } : { host: f.host ?? f.relay!.host, port, tls: f.tls },
    path: { name: f.pathName },
    sizeBytes: f.size,
    seed: f.seed ?? randomBytes(4).readUInt32LE(0),
    envelope: { from: f.from, to: f.to },
    timeouts,
  };
  if (f.localAddress) spec.path.localAddress = f.localAddress;
  if (f.proxy) spec.path.proxy = f.proxy;
  if (f.relay) spec.path.relay = { host: f.relay.host, port: f.relay.port, tls: f.tls };
  if (f.insecure) spec.insecure = true;
  if (f.servername) spec.servername = f.servername;
  if (f.ehlo) spec.ehloName = f.ehlo;
  if (f.message) spec.messageFile = f.message;
  if (f.capture) spec.captureDir = f.capture;
  if (f.force) spec.force = true; // real-target guard override (guards.ts)
  if (f.authUser !== undefined) {
    spec.auth = { user: f.authUser, passEnv: f.authPassEnv! };
    if (f.authMethod) spec.auth.method = f.authMethod;
  }
  return spec;
}

async function runProbeCommand(f: ProbeFlags): Promise<number> {
  const spec = buildSpec(f);
  try {
    validateSpec(spec);
  } catch (e) {
    throw new CliError((e as Error).message, EXIT.USAGE);
  }
  // An unresolvable host is bad input (exit 2, nothing sent), not a measurement.
  const host = spec.path.relay?.host ?? spec.target.host;
  if (host && !net.isIP(host) && !spec.path.proxy) {
    try {
      await dns.promises.lookup(host);
    } catch (e) {
      throw new CliError(`cannot resolve host "${host}": ${(e as NodeJS.ErrnoException).code ?? String(e)}`, EXIT.USAGE);
    }
  }
  // real-target safety (src/probe/guards.ts): a replayed message must say it is a test
  if (spec.messageFile && !f.force && (await classifyTargets([spec.target], [spec.path]))[0]!.real) {
    const ok = await messageFileIdentifies(spec.messageFile).catch(() => true); // unreadable: the engine reports it
    if (!ok) {
      throw new CliError(
        `--message ${spec.messageFile}: the target is a real server and the message has no Auto-Submitted: or X-Mxprobe: header; ` +
          'add "Auto-Submitted: auto-generated" (and e.g. "X-Mxprobe: test") to its headers so the receiver can tell it is a test, or use --force',
        EXIT.USAGE,
      );
    }
  }
  let capture: CaptureSession | undefined;
  if (spec.captureDir) {
    try {
      capture = await startCapture({ dir: spec.captureDir, filter: `tcp port ${spec.path.relay?.port ?? spec.target.port}` });
    } catch (e) {
      throw new CliError(`--capture: ${(e as Error).message}`, EXIT.ENV);
    }
  }
  const live = !f.json && process.stderr.isTTY ? liveStage() : undefined;
  let result: ProbeResult;
  try {
    result = await probe(spec, { onStage: live?.onStage, capture });
  } catch (e) {
    if (e instanceof ProbeInputError) throw new CliError(e.message, EXIT.USAGE);
    if (e instanceof ProbeEnvError) throw new CliError(e.message, EXIT.ENV);
    throw e;
  } finally {
    live?.stop();
    await capture?.stop();
  }
  if (f.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else process.stdout.write(renderProbe(forTerminalDeep(result))); // reply texts are the server's: no control characters
  if (result.error?.code === 'EADDRNOTAVAIL') {
    process.stderr.write(`mxprobe: cannot bind source address ${spec.path.localAddress}: ${result.error.message}\n`);
    return EXIT.ENV;
  }
  if (result.outcome === 'dns-error') {
    process.stderr.write(`mxprobe: ${result.error?.message ?? 'DNS lookup failed'}\n`);
    return EXIT.USAGE;
  }
  return result.outcome === 'delivered' ? EXIT.OK : EXIT.FINDINGS;
}

/** A transient "stage… elapsed" line on a TTY so a stall is visible while it happens. */
function liveStage(): { onStage: (e: { stage: Stage; tMs: number }) => void; stop: () => void } {
  let stage = '';
  const t0 = performance.now();
  let since = t0;
  const draw = () => {
    process.stderr.write(`\r\x1b[K  … ${stage.padEnd(9)} ${formatMs(performance.now() - since)}`);
  };
  const timer = setInterval(draw, 200);
  timer.unref();
  return {
    onStage: (e) => {
      stage = e.stage;
      since = performance.now();
    },
    stop: () => {
      clearInterval(timer);
      process.stderr.write('\r\x1b[K');
    },
  };
}

const STAGE_ORDER: Stage[] = ['dns', 'connect', 'tls', 'greeting', 'ehlo', 'starttls', 'auth', 'mail', 'rcpt', 'data', 'body', 'dataAck', 'quit'];

/** Human rendering of one ProbeResult: a line per stage, then the outcome and the evidence. */
export function renderProbe(r: ProbeResult): string {
  const lines: string[] = [];
  const via = r.proxy ? ` via ${r.proxy}` : '';
  lines.push(`probe ${r.probeId} → ${r.target}${r.server && r.server !== r.target ? ` (${r.server})` : ''}  path ${r.path}${via}  size ${formatSize(r.sizeBytes)} (${r.sizeBytes.toLocaleString('en-US')} bytes)`);
  if (r.localAddress) lines.push(`  ${r.localAddress}:${r.localPort} → ${r.remoteAddress}:${r.remotePort}`);
  for (const s of STAGE_ORDER) {
    const ms = r.stages[s];
    if (ms === undefined) continue;
    let note = '';
    if (s === 'body' && r.bodyBytesWritten !== undefined) {
      note = `${r.bodyBytesWritten.toLocaleString('en-US')} bytes accepted by the kernel`;
      if (r.outcome === 'delivered' && ms > 0) note += `, ${((r.sizeBytes / ms) * 1000 / 1e6).toFixed(1)} MB/s`;
    }
    if ((s === 'tls' || s === 'starttls') && r.tls) note = `${r.tls.version} ${r.tls.cipher}${r.tls.authorized ? ', certificate verified' : r.tls.authorizationError ? `, NOT verified: ${r.tls.authorizationError}` : ''}`;
    const end = r.stage === s && r.outcome !== 'delivered' ? `  ✗ ${r.outcome}` : '';
    lines.push(`  ${s.padEnd(9)} ${formatMs(ms).padStart(9)}  ${note}${end}`);
  }
  if (r.reply) lines.push(`  last reply: ${r.reply.code}${r.reply.enhanced ? ` ${r.reply.enhanced}` : ''} ${r.reply.text.split('\n')[0]!.replace(/^\d\.\d+\.\d+\s*/, '')}`);
  if (r.outcome === 'delivered') {
    lines.push(`✓ delivered in ${formatMs(r.durationMs)}`);
  } else {
    lines.push(`✗ ${r.outcome} in ${r.stage ?? '?'} after ${formatMs(r.durationMs)}: ${r.error?.message ?? ''}${r.error?.lastCommand ? ` (last command: ${r.error.lastCommand})` : ''}`);
  }
  if (r.tcp) {
    const t = r.tcp;
    const parts: string[] = [];
    if (t.bytesAcked !== undefined) parts.push(`acked ${t.bytesAcked.toLocaleString('en-US')}`);
    if (t.bytesSent !== undefined) parts.push(`sent ${t.bytesSent.toLocaleString('en-US')}`);
    if (t.unacked !== undefined) parts.push(`unacked ${t.unacked}`);
    if (t.retrans !== undefined) parts.push(`retrans ${t.retrans}/${t.retransTotal ?? '?'}`);
    if (t.sndWnd !== undefined) parts.push(`snd_wnd ${t.sndWnd}`);
    if (t.rttMs !== undefined) parts.push(`rtt ${t.rttMs}ms`);
    if (t.pmtu !== undefined) parts.push(`pmtu ${t.pmtu}`);
    lines.push(`  tcp at ${t.at}: ${parts.join(', ')}`);
  } else if (r.tcpUnavailable && r.outcome !== 'delivered') {
    lines.push(`  tcp: unavailable (${r.tcpUnavailable})`);
  }
  if (r.capture) lines.push(`  capture: ${r.capture}`);
  if (r.captureError) lines.push(`  capture failed: ${r.captureError}`);
  return `${lines.join('\n')}\n`;
}

import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DELAY_STAGES,
  REPLY_STAGES,
  SinkStartError,
  startSink,
  type DelayStage,
  type ReplyStage,
  type SinkOptions,
  type SinkEvidenceGroup,
  type SinkRecord,
} from '../sink/index.js';
import { formatMs, formatSize, parseDuration } from '../units.js';
import { CliError, EXIT } from './exit.js';
import { setExitCode } from './program.js';
import { collect, durationArg, hostPortArg, intArg, sizeArg } from './options.js';
import { forTerminal, forTerminalDeep } from '../text.js';

interface SinkFlags {
  listen: { host: string; port: number };
  tlsCert?: string;
  tlsKey?: string;
  implicitTls?: boolean;
  sizeLimit?: number;
  record?: string;
  reply?: Array<{ stage: ReplyStage; code: number; text?: string }>;
  delay?: Array<{ stage: DelayStage; ms: number }>;
  authUser?: string;
  authPassEnv?: string;
  http?: { host: string; port: number };
  silentTimeout: number;
  name?: string;
  maxRecords?: number;
  json?: boolean;
}

function stageName<T extends string>(raw: string, stages: readonly T[], flag: string): T {
  const norm = raw.trim().toLowerCase().replace(/[-_]/g, '');
  const hit = stages.find((s) => s.toLowerCase() === norm) ?? (norm === 'helo' && stages.includes('ehlo' as T) ? ('ehlo' as T) : undefined);
  if (!hit) throw new InvalidArgumentError(`unknown stage "${raw}" for ${flag} (expected one of ${stages.join(', ')})`);
  return hit;
}

/** `rcpt=451`, `rcpt=451 try again later`, `dataAck=250 queued`. */
export function parseReplyFlag(v: string): { stage: ReplyStage; code: number; text?: string } {
  const m = /^\s*([A-Za-z_-]+)\s*=\s*(\d{3})(?:\s+(.*))?$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected STAGE=CODE[ TEXT], e.g. rcpt=451 or "dataAck=554 rejected by policy"; got "${v}"`);
  const stage = stageName(m[1]!, REPLY_STAGES, '--reply');
  const code = Number(m[2]);
  const ok = stage === 'dataAck' ? (code >= 200 && code < 300) || (code >= 400 && code < 600) : code >= 400 && code < 600;
  if (!ok) throw new InvalidArgumentError(`reply code for ${stage} must be ${stage === 'dataAck' ? '2xx, 4xx or 5xx' : '4xx or 5xx'}, got ${code}`);
  const text = m[3]?.trim();
  return text ? { stage, code, text } : { stage, code };
}

/** `mail=2s`, `greeting=500ms`. */
export function parseDelayFlag(v: string): { stage: DelayStage; ms: number } {
  const m = /^\s*([A-Za-z_-]+)\s*=\s*(.+)$/.exec(v);
  if (!m) throw new InvalidArgumentError(`expected STAGE=DURATION, e.g. mail=2s or greeting=500ms; got "${v}"`);
  const stage = stageName(m[1]!, DELAY_STAGES, '--delay');
  try {
    return { stage, ms: parseDuration(m[2]!) };
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function register(program: Command): void {
  program
    .command('sink')
    .summary('the receiving end: accept probe mail and record what arrived of each probe, and when')
    .description(
      'Run an SMTP server that accepts probe mail, never stores a body (it counts and hashes it), and records ' +
        'per probe (by its X-Mxprobe header) and per session: when each command arrived, how many message bytes ' +
        'came and when the last one did, whether the message arrived whole and matches its seed, and how it ' +
        'ended (completed, client-silent, reset, closed, rejected). This is the second capture at the far edge: ' +
        'join it with the sender\'s results using "mxprobe compare RESULTS.jsonl --sink FILE|URL".',
    )
    .addOption(
      new Option('--listen <host:port>', 'address to accept SMTP on (0.0.0.0:25 to receive from other hosts)')
        .argParser(hostPortArg(2525))
        .default({ host: '127.0.0.1', port: 2525 }, '127.0.0.1:2525'),
    )
    .option('--tls-cert <file>', 'PEM certificate: offer STARTTLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key for --tls-cert')
    .option('--implicit-tls', 'speak TLS from the first byte (port 465 style) instead of offering STARTTLS')
    .option('--size-limit <size>', 'advertise SIZE and refuse bigger messages with 552 after reading them (default: no limit)', sizeArg)
    .option('--record <file.jsonl>', 'append every record to this file (one JSON line each)')
    .option('--reply <stage=code[ text]>', 'force a reply at a stage, for testing clients; repeatable (stages below)', collect(parseReplyFlag))
    .option('--delay <stage=duration>', 'wait before replying at a stage; repeatable (stages below)', collect(parseDelayFlag))
    .option('--auth-user <user>', 'require AUTH PLAIN/LOGIN as this user (also without TLS)')
    .option('--auth-pass-env <VAR>', 'name of the environment variable holding the AUTH password')
    .option('--http <host:port>', 'serve the records over HTTP: GET /records (JSONL), GET /records/<probeId> (JSON)', hostPortArg())
    .addOption(
      new Option('--silent-timeout <duration>', 'disconnect a client that owes input and sends nothing this long (421, recorded client-silent)')
        .argParser(durationArg)
        .default(60_000, '60s'),
    )
    .option('--name <hostname>', 'host name in the greeting (default: this host name)')
    .option('--max-records <n>', 'records kept in memory for --http and the summary (the --record file keeps all)', intArg(1))
    .option('--json', 'print every record (probe, message, session) as one JSON line on stdout')
    .addHelpText(
      'after',
      `
Forced replies and delays (for testing how a client copes):
  --reply STAGE=CODE[ TEXT]   stages: ${REPLY_STAGES.join(', ')}
                              connect replaces the greeting, data replaces 354, dataAck is the reply after the
                              message (2xx allowed there, with your text); the others take 4xx/5xx
  --delay STAGE=DURATION      stages: ${DELAY_STAGES.join(', ')}
                              e.g. --reply rcpt=451 --reply "dataAck=554 rejected by policy" --delay mail=2s

Output: one line per message received, e.g.
  12:00:01 probe p-1a2b3c4d  1048576/1048576 bytes  verified  body 420ms  from 192.0.2.10:41234
  12:00:09 probe p-5e6f7a8b  61440/1048576 bytes  PARTIAL (client-silent)  last byte 300ms after DATA  from …
and a line for each session that ended without a message. With --json, every record as JSON instead.

The greeting is immediate: smtp-server's built-in 100 ms wait before the greeting (early-talker detection)
is removed, so the sender's greeting time is network time, not the sink's.

Examples:
  mxprobe sink --listen 0.0.0.0:2525 --record sink.jsonl --http 127.0.0.1:8025
  mxprobe sink --reply rcpt=451 --delay mail=2s           test how a client handles a slow, deferring server
  mxprobe sink --tls-cert cert.pem --tls-key key.pem --size-limit 50MiB
  mxprobe compare results.jsonl --sink sink.jsonl         join sender and receiver views

Runs until SIGINT/SIGTERM, then closes open sessions (recorded as "shutdown") and exits 0.
Exit codes: 0 stopped cleanly, 2 bad usage or input, 3 cannot listen (address in use, no permission) or
cannot write the record file.`,
    )
    .action(async (flags: SinkFlags, cmd: Command) => {
      setExitCode(cmd, await runSink(flags));
    });
}

function readPem(file: string, flag: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CliError(`${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT.USAGE);
  }
}

function buildOptions(f: SinkFlags): SinkOptions {
  const o: SinkOptions = { host: f.listen.host, port: f.listen.port, silentTimeoutMs: f.silentTimeout };
  if ((f.tlsCert === undefined) !== (f.tlsKey === undefined)) throw new CliError('TLS needs both --tls-cert and --tls-key');
  if (f.implicitTls && !f.tlsCert) throw new CliError('--implicit-tls needs --tls-cert and --tls-key');
  if (f.tlsCert && f.tlsKey) o.tls = { cert: readPem(f.tlsCert, '--tls-cert'), key: readPem(f.tlsKey, '--tls-key'), implicit: !!f.implicitTls };
  if (f.sizeLimit !== undefined) {
    if (f.sizeLimit <= 0) throw new CliError('--size-limit must be greater than 0');
    o.sizeLimitBytes = f.sizeLimit;
  }
  if (!(f.silentTimeout > 0)) throw new CliError('--silent-timeout must be greater than 0');
  if (f.record) o.record = f.record;
  if (f.reply?.length) {
    o.replies = {};
    for (const r of f.reply) o.replies[r.stage] = r.text ? { code: r.code, text: r.text } : { code: r.code };
  }
  if (f.delay?.length) {
    o.delaysMs = {};
    for (const d of f.delay) o.delaysMs[d.stage] = d.ms;
  }
  if ((f.authUser === undefined) !== (f.authPassEnv === undefined)) {
    throw new CliError('AUTH needs both --auth-user and --auth-pass-env (the NAME of the variable holding the password)');
  }
  if (f.authUser !== undefined) {
    const pass = process.env[f.authPassEnv!];
    if (pass === undefined) throw new CliError(`--auth-pass-env: the environment variable ${f.authPassEnv} is not set`);
    o.authUsers = { [f.authUser]: pass };
  }
  if (f.http) o.http = { host: f.http.host, port: f.http.port };
  if (f.name) o.name = f.name;
  if (f.maxRecords) o.maxRecords = f.maxRecords;
  return o;
}

function clock(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** One human line for a record, or undefined for records not worth a line (sessions that carried mail). */
export function renderSinkRecord(r: SinkRecord): string | undefined {
  const from = `from ${r.remoteAddress.includes(':') ? `[${r.remoteAddress}]` : r.remoteAddress}:${r.remotePort}`;
  const reply = r.reply && r.reply.code >= 400 ? `  → ${r.reply.code}` : '';
  if (r.kind === 'session') {
    if ((r.messages ?? 0) > 0) return undefined;
    const cmds = r.commands.map((c) => c.cmd).join(' ') || 'no commands';
    const err = r.reply ? `  last reply ${r.reply.code}` : '';
    return `session  ${from}  ${cmds}  ended ${r.ended}${err}  (no message)`;
  }
  const span = r.dataStartMs !== undefined && r.lastByteMs !== undefined ? r.lastByteMs - r.dataStartMs : undefined;
  if (r.kind === 'message') {
    const state = r.whole ? '' : `  PARTIAL (${r.ended})`;
    return `mail  ${r.bodyBytes} bytes (${formatSize(r.bodyBytes)}, no X-Mxprobe)${state}  ${from}${r.sha256 ? `  sha256 ${r.sha256.slice(0, 12)}…` : ''}${reply}`;
  }
  const size = `${r.bodyBytes}/${r.expectedBytes ?? '?'} bytes`;
  let state: string;
  if (!r.whole) state = `PARTIAL (${r.ended})${span !== undefined ? `  last byte ${formatMs(span)} after DATA` : '  nothing after DATA'}`;
  else if (r.verified === false) state = `ALTERED: does not match its seed${span !== undefined ? `  body ${formatMs(span)}` : ''}`;
  else state = `${r.verified ? 'verified' : 'whole'}${span !== undefined ? `  body ${formatMs(span)}` : ''}`;
  return `probe ${r.probeId}  ${size}  ${state}  ${from}${reply}`;
}

/**
 * The receiver's view per cell, for `compare --sink` and the demo: a heading and one line per cell with failed
 * probes, e.g. `via-lb → mx:25 1MiB: 12/12 stalled, receiver has 12 (61,440–65,536 bytes); e.g. p-1a2b: …`.
 */
export function renderSinkEvidence(groups: SinkEvidenceGroup[]): string[] {
  if (groups.length === 0) return [];
  const n = (v: number) => v.toLocaleString('en-US');
  const lines = ["What the receiver saw of the probes that did not deliver (sink records joined by probe id):"];
  for (const g of groups) {
    const bytes = g.bodyBytes ? (g.bodyBytes.min === g.bodyBytes.max ? ` (${n(g.bodyBytes.min)} bytes)` : ` (${n(g.bodyBytes.min)}–${n(g.bodyBytes.max)} bytes)`) : '';
    const seen = g.withRecord === 0 ? 'the receiver has no record of any (their headers never arrived)' : `the receiver has ${g.withRecord}${bytes}`;
    lines.push(`  ${g.path} → ${g.target} ${formatSize(g.sizeBytes)}: ${g.probes} ${g.outcome}, ${seen}`);
    if (g.example) lines.push(`    e.g. ${g.example.probeId}: ${g.example.text}`);
  }
  return lines;
}

async function runSink(f: SinkFlags): Promise<number> {
  const opts = buildOptions(f);
  let sink;
  try {
    sink = await startSink(opts);
  } catch (e) {
    if (e instanceof SinkStartError) throw new CliError(e.message, e.what === 'options' ? EXIT.USAGE : EXIT.ENV);
    throw e;
  }
  const counts = { probes: 0, verified: 0, partial: 0, altered: 0, messages: 0, sessions: 0 };
  sink.onRecord((r) => {
    if (r.kind === 'session') counts.sessions++;
    else if (r.kind === 'message') counts.messages++;
    else {
      counts.probes++;
      if (!r.whole) counts.partial++;
      else if (r.verified) counts.verified++;
      else if (r.verified === false) counts.altered++;
    }
    if (f.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
      return;
    }
    // header values and names come from any network client: no control character reaches the terminal
    const line = renderSinkRecord(forTerminalDeep(r));
    if (line) process.stdout.write(`${clock()} ${line}\n`);
  });
  sink.onError((e) => process.stderr.write(`mxprobe sink: warning: ${forTerminal(e.message)}\n`));

  const tlsNote = opts.tls ? (opts.tls.implicit ? ', implicit TLS' : ', STARTTLS offered') : '';
  const hostShown = sink.host.includes(':') ? `[${sink.host}]` : sink.host;
  const lines = [
    `mxprobe sink listening on ${hostShown}:${sink.port} (SMTP${tlsNote}${opts.sizeLimitBytes ? `, SIZE ${opts.sizeLimitBytes}` : ''}${opts.authUsers ? ', AUTH required' : ''})`,
    `  greeting: ${sink.greetingDelayMs === 0 ? "immediate (smtp-server's 100 ms early-talker wait removed)" : `after smtp-server's ${sink.greetingDelayMs} ms early-talker wait`}`,
  ];
  if (opts.record) lines.push(`  records appended to ${opts.record}`);
  if (sink.httpPort !== undefined) lines.push(`  records served at http://${opts.http!.host}:${sink.httpPort}/records`);
  if (opts.replies) lines.push(`  forced replies: ${Object.entries(opts.replies).map(([k, v]) => `${k}=${v!.code}`).join(', ')}`);
  if (opts.delaysMs) lines.push(`  delays: ${Object.entries(opts.delaysMs).map(([k, v]) => `${k}=${formatMs(v!)}`).join(', ')}`);
  lines.push('  Ctrl-C to stop');
  process.stderr.write(`${lines.join('\n')}\n`);

  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await sink.close();
  process.stderr.write(
    `mxprobe sink stopped: ${counts.probes} probe${counts.probes === 1 ? '' : 's'} (${counts.verified} verified, ${counts.partial} partial` +
      `${counts.altered ? `, ${counts.altered} altered` : ''}), ${counts.messages} other message${counts.messages === 1 ? '' : 's'}, ${counts.sessions} session${counts.sessions === 1 ? '' : 's'}\n`,
  );
  return EXIT.OK;
}

/**
 * The profile's shape as a zod schema: the single source for validation (types, required keys, unknown keys,
 * units) and for the JSON Schema editors use (`mxprobe schema`). Field semantics live in `fields.ts`;
 * cross-field rules (defaults that depend on other keys, unique names, stall < deadlines) in `load.ts`.
 */
import { ArrivalInputError, parseImapUrl } from '../arrival/url.js';
import * as z from 'zod';
import { STAGES, TLS_MODES } from '../model.js';
import { show } from './errors.js';
import { lineBreakIn } from '../text.js';
import {
  FieldError,
  parseHostPort,
  parseThreshold,
  toAddress,
  toBool,
  toDomain,
  toDurationMs,
  toEhlo,
  toEnvName,
  toHost,
  toHostPort,
  toDnsServer,
  toFamily,
  toInt,
  toIp,
  toPathName,
  toPort,
  toProxy,
  toRate,
  toSize,
  toText,
  toTls,
  MAX_SEED,
} from './fields.js';

/** Wrap a field parser as a zod transform: a thrown FieldError becomes an issue at this field. */
function conv<I, O>(fn: (v: I) => O) {
  return (v: I, ctx: z.core.$RefinementCtx<I>): O => {
    try {
      return fn(v);
    } catch (err) {
      if (err instanceof FieldError) {
        ctx.addIssue({ code: 'custom', message: err.message, input: v });
        return z.NEVER;
      }
      throw err;
    }
  };
}

const typeMsg = (what: string) => (iss: { input?: unknown }) =>
  iss.input === undefined ? `missing (expected ${what})` : `expected ${what}, got ${show(iss.input)}`;

/**
 * Every string of a profile: no CR, LF or NUL inside it (a value ending in a newline, as a YAML block scalar
 * gives, is trimmed). A line break in an EHLO name, an address or a user name would smuggle in SMTP commands.
 */
const str = (what: string) =>
  z.string({ error: typeMsg(what) }).check((ctx) => {
    const bad = lineBreakIn(ctx.value.trim());
    if (bad) ctx.issues.push({ code: 'custom', message: `holds a ${bad} character (expected ${what} on one line): refused, it would end an SMTP command line early`, input: ctx.value });
  });
/** Numbers may also arrive as strings: `port: '${MXPROBE_PORT:-2525}'`. */
const numLike = (what: string) => z.union([z.number(), z.string()], { error: typeMsg(what) });
const boolLike = (what: string) =>
  z.union([z.boolean(), z.string()], { error: typeMsg(what) }).transform(conv(toBool)).describe(what);

const tlsEnum = z.enum(TLS_MODES, {
  error: (iss) => {
    if (iss.input === undefined) return `missing (expected one of ${TLS_MODES.join(', ')})`;
    if (typeof iss.input !== 'string') return `expected one of ${TLS_MODES.join(', ')}, got ${show(iss.input)}`;
    try {
      toTls(iss.input);
      return `expected one of ${TLS_MODES.join(', ')} (lower case), got ${show(iss.input)}`;
    } catch (err) {
      return (err as Error).message;
    }
  },
});

const TLS_DESCRIPTION =
  'TLS mode: "none" (plain SMTP), "starttls" (upgrade when the server offers STARTTLS, else continue in clear), ' +
  '"require-starttls" (fail the probe without STARTTLS), "implicit" (TLS from the first byte, SMTPS, port 465).';

const Port = numLike('a TCP port number (1-65535)').transform(conv(toPort));

// -------------------------------------------------------------------------------------------------- targets

export const TargetSchema = z
  .strictObject({
    name: str('a label')
      .transform(conv((v: string) => toText(v, 'a label')))
      .optional()
      .describe('Label used in results, tables and findings. Default: "host:port", or "mx:domain".'),
    host: str('a host name or an IP address')
      .transform(conv(toHostPort))
      .optional()
      .describe('The SMTP server to probe: a host name or an IP address, optionally with the port (mx.example.net:587, [2001:db8::1]:25); give host or mx, not both.'),
    mx: str('a domain name')
      .transform(conv(toDomain))
      .optional()
      .describe('A mail domain: its MX records are resolved and used in preference order (give host or mx, not both).'),
    allMx: boolLike('true or false')
      .optional()
      .describe('With mx: probe every MX host instead of the best reachable one. Default false.'),
    port: Port.optional().describe('TCP port. Default 25, or 465 with tls: implicit. A numeric string is accepted (for ${VAR}).'),
    tls: tlsEnum.optional().describe(`${TLS_DESCRIPTION} Default: the top-level tls, itself "starttls".`),
    family: numLike('4 or 6')
      .transform(conv(toFamily))
      .optional()
      .describe('Connect over IPv4 (4) or IPv6 (6) only. Default: every address, IPv6 first.'),
    fallback: z
      .enum(['mta', 'none'], { error: typeMsg('"mta" or "none"') })
      .optional()
      .describe(
        'mta: when an address or MX host refuses, cannot be reached, answers the greeting with 4xx or says 421 before MAIL, ' +
          'try the next one, as an MTA does (every attempt is in the result); none: report the first failure. Default: mta for mx, none for host.',
      ),
  })
  .describe('An SMTP server to probe: {host, port?, tls?, name?} or {mx: domain, allMx?, port?, tls?, name?}.');

// ---------------------------------------------------------------------------------------------------- paths

const RelayObject = z
  .strictObject({
    host: str('a host name or an IP address').transform(conv(toHost)).describe('Relay host name or IP address.'),
    port: Port.optional().describe('Relay port. Default 25.'),
    tls: tlsEnum.optional().describe(`${TLS_DESCRIPTION} Default: the top-level tls, itself "starttls".`),
  })
  .describe('Relay as a map.');

const Relay = z
  .union([str('host:port').transform(conv(parseHostPort)), RelayObject], {
    error: typeMsg('a relay as "host:port" or {host, port, tls?}'),
  })
  .describe(
    'Hand the message to this SMTP relay instead of connecting to the target: "host:port" (port 25 when left out, ' +
      'TLS mode from the top-level tls) or {host, port, tls?}. Cannot be combined with proxy.',
  );

export const PathSchema = z
  .strictObject({
    name: str('a path name such as via-lb')
      .transform(conv(toPathName))
      .describe('Unique name of this egress path, letters, digits, ".", "_" and "-" (e.g. via-lb, direct).'),
    localAddress: str('an IP address')
      .transform(conv(toIp))
      .optional()
      .describe(
        'Bind this source IPv4/IPv6 address (it must be configured on this machine). With Linux policy routing ' +
          '(ip rule add from ADDRESS table N) the source address selects the egress, e.g. through a load balancer or around it.',
      ),
    proxy: str('a proxy URL')
      .transform(conv(toProxy))
      .optional()
      .describe(
        'Connect through a proxy: socks5://[user:pass@]host:port, socks5h://… (the proxy resolves names) or ' +
          'http://[user:pass@]host:port (HTTP CONNECT). Cannot be combined with relay.',
      ),
    relay: Relay.optional(),
  })
  .describe('A named egress route. None of localAddress/proxy/relay means "direct" (the default route).');

// ------------------------------------------------------------------------------------------- other sections

const SizeItem = numLike('a size such as 64KiB or 1MiB').transform(conv((v: number | string) => toSize(v)));
/** One size, or several in one string (`'${SIZES:-1KiB,64KiB}'`): always a list. */
const SizeScalar = numLike('a size such as 64KiB or 1MiB').transform(
  conv((v: number | string) => (typeof v === 'string' && v.includes(',') ? v.split(',').map((x) => toSize(x)) : [toSize(v)])),
);

const AddressItem = str('an address such as probe@example.com').transform(conv((v: string) => toAddress(v, false)));
/** One address, or several separated by commas in one string (`'${MXPROBE_TO}'`): always a list. */
const AddressScalar = str('an address such as probe@example.com').transform(
  conv((v: string) => (v.includes(',') ? v.split(',').map((x) => toAddress(x, false)) : [toAddress(v, false)])),
);

export const EnvelopeSchema = z
  .strictObject(
    {
    from: z
      .string({
        error: (iss) =>
          iss.input === null
            ? 'empty: write an address, or from: "<>" for the null sender'
            : typeMsg('an address such as probe@example.com, or "<>"')(iss),
      })
      .transform(conv((v: string) => toAddress(v, true)))
      .describe('MAIL FROM address. "<>" or "" is the null sender (as bounces use).'),
    to: z
      .union([AddressScalar, z.array(AddressItem).min(1)], { error: typeMsg('an address or a list of addresses') })
      .describe('RCPT TO address(es): a list, or one string (commas separate several). Use mailboxes you are allowed to send to.'),
    },
    { error: typeMsg('envelope: {from: probe@your.domain, to: [mailbox@target.domain]}') },
  )
  .describe('The SMTP envelope of every probe.');

export const AuthSchema = z
  .strictObject({
    user: str('a user name').transform(conv((v: string) => toText(v, 'a user name'))).describe('SMTP AUTH user name.'),
    passEnv: str('the name of an environment variable')
      .transform(conv(toEnvName))
      .describe(
        'The NAME of the environment variable that holds the password (e.g. SMTP_PASS). ' +
          'Passwords are never written in a profile.',
      ),
    method: z
      .enum(['PLAIN', 'LOGIN'], { error: typeMsg('PLAIN or LOGIN') })
      .optional()
      .describe('AUTH mechanism. Default: PLAIN when advertised, else LOGIN.'),
  })
  .describe('SMTP AUTH (after STARTTLS when used). The password is read from the environment variable named by passEnv.');

/** An IMAP URL that `parseImapUrl` accepts (the error says why not, never echoing a password). */
function toImapUrl(v: string): string {
  try {
    parseImapUrl(v);
  } catch (err) {
    if (err instanceof ArrivalInputError) throw new FieldError(err.message);
    throw err;
  }
  return v;
}

export const ArrivalSchema = z
  .strictObject({
    imap: str('an IMAP URL such as imaps://user@imap.example.net:993')
      .transform(conv(toImapUrl))
      .describe('The IMAP server and user of the test mailbox: imaps://user@host[:993] or imap://user@host[:143]. No password here.'),
    passEnv: str('the name of an environment variable')
      .transform(conv(toEnvName))
      .describe('The NAME of the environment variable that holds the IMAP password (e.g. IMAP_PASS).'),
    folders: z
      .array(str('a folder name').transform(conv((v: string) => toText(v, 'a folder name'))), { error: typeMsg('a list of folders') })
      .min(1, 'the list is empty (give at least one folder)')
      .optional()
      .describe('Folders to look in, in order. Default [INBOX, Junk].'),
    within: numLike('a duration such as 5m').transform(conv(toDurationMs)).optional().describe('How long after acceptance a probe may take to arrive. Default 5m.'),
    delete: boolLike('true or false').optional().describe('Delete each probe message once checked. Default true.'),
    poll: numLike('a duration such as 1s').transform(conv(toDurationMs)).optional().describe('How often the folders are searched. Default 1s.'),
  })
  .describe(
    'Did it arrive: after each accepted probe, look for it in this mailbox by IMAP (its X-Mxprobe header), check it is ' +
      'whole (size, seed) and in which folder. Only mailboxes you own.',
  );

const Duration = (what: string) =>
  numLike('a duration such as 500ms, 30s or 2m').transform(conv(toDurationMs)).optional().describe(what);

export const TimeoutsSchema = z
  .strictObject({
    dns: Duration('Deadline of the MX/address lookup. Default 30s.'),
    connect: Duration('Deadline of the TCP connect (and proxy handshake). Default 30s.'),
    command: Duration('Deadline of each command reply: greeting, EHLO, STARTTLS, TLS handshake, AUTH, MAIL, RCPT, QUIT. Default 5m.'),
    data: Duration('Deadline of DATA → 354. Default 2m.'),
    body: Duration('Deadline of the body: first body byte → last byte accepted by the kernel. Default 3m.'),
    dataAck: Duration('Deadline of final "." → final reply. Default 10m.'),
    stall: Duration(
      'Stall window: data outstanding and the network moving none of it (the kernel acknowledges nothing, no byte ' +
        'arrives) for this long ends the probe as "stalled" (no-ack or window-closed). Slow is not stalled: any ' +
        'acknowledged byte is progress. Must be shorter than the deadlines of the stages it watches (command, data, body, dataAck). Default 10s.',
    ),
    noReply: Duration(
      'No-reply window: everything sent was acknowledged and no reply byte came for this long ends the probe as ' +
        '"stalled" with stallKind no-reply (a slow server, or a device that took the data and went silent). ' +
        "Default 100s (Postfix's smtpd_proxy_timeout for content filters); a stage deadline that is shorter wins.",
    ),
  })
  .describe('Per-stage deadlines and the stall window, as durations (500ms, 30s, 2m; a bare number is seconds).');

const ThresholdItem = z
  .union([z.string(), z.record(z.string(), z.string())], {
    error: typeMsg('a threshold such as "body: p95 < 2s" or "stall_rate < 1%"'),
  })
  .transform(
    conv((v: string | Record<string, string>) => {
      if (typeof v === 'string') return parseThreshold(v);
      const keys = Object.keys(v);
      if (keys.length !== 1) throw new FieldError(`expected one threshold per list item, got a map with ${keys.length} keys`);
      return parseThreshold(`${keys[0]}: ${v[keys[0]!]}`);
    }),
  );

// ------------------------------------------------------------------------------------------------------ root

export const ProfileSchema = z
  .strictObject({
    name: str('a name for this profile')
      .transform(conv((v: string) => toText(v, 'a name for this profile')))
      .describe('Name of the profile (shown in reports and results).'),
    targets: z
      .array(TargetSchema, { error: typeMsg('a list of targets') })
      .min(1, 'the list is empty (give at least one target)')
      .describe('The SMTP servers to probe. Probe only servers you are allowed to send test mail to.'),
    tls: tlsEnum.optional().describe(`${TLS_DESCRIPTION} Default for every target and relay: "starttls".`),
    paths: z
      .array(PathSchema, { error: typeMsg('a list of paths') })
      .min(1, 'the list is empty (give at least one path, or leave paths out for one path named "direct")')
      .optional()
      .describe('Egress paths to compare. Default: one path named "direct" (the default route).'),
    sizes: z
      .union([SizeScalar, z.array(SizeItem).min(1, 'the list is empty (give at least one size)')], {
        error: typeMsg('a list of sizes such as [1KiB, 64KiB, 1MiB]'),
      })
      .optional()
      .describe(
        'Message sizes, exact bytes on the wire: 1KiB, 64KiB, 1MiB (powers of 1024), 1.5MB (of 1000), or a number of ' +
          'bytes; 1 byte to 1GiB. A list, or one string with commas ("1KiB,64KiB"). Sorted and de-duplicated. ' +
          'Default: [1KiB, 16KiB, 64KiB, 256KiB, 1MiB].',
      ),
    repeat: numLike('a whole number of probes')
      .transform(conv((v: number | string) => toInt(v, 'a whole number of probes', 1)))
      .optional()
      .describe('Probes per cell (path × target × size). Default 3.'),
    concurrency: numLike('a whole number of probes')
      .transform(conv((v: number | string) => toInt(v, 'a whole number of probes in flight', 1)))
      .optional()
      .describe('Probes in flight at once over the whole run. Default 4.'),
    rate: numLike('a rate such as 2/s or 30/m')
      .transform(conv(toRate))
      .optional()
      .describe('Max probe starts per target: 2/s, 30/m, 100/h (a number is per second). Default: unlimited.'),
    seed: numLike('a whole number')
      .transform(conv((v: number | string) => toInt(v, 'a whole number', 0, MAX_SEED)))
      .optional()
      .describe('Seed of the probe order shuffle and of the message contents. Default 1.'),
    envelope: EnvelopeSchema,
    auth: AuthSchema.optional(),
    arrival: ArrivalSchema.optional(),
    timeouts: TimeoutsSchema.optional(),
    insecure: boolLike('true or false')
      .optional()
      .describe('Skip TLS certificate verification (verification is on by default). Default false.'),
    ehlo: str('a host name')
      .transform(conv(toEhlo))
      .optional()
      .describe("EHLO name. Default: this machine's host name."),
    dns: z
      .strictObject({
        servers: z
          .array(str('a DNS server address').transform(conv(toDnsServer)), { error: typeMsg('a list of DNS server addresses') })
          .min(1, 'give at least one server')
          .describe('DNS servers (IP, IP:port or [IPv6]:port) for MX and address lookups instead of the system resolver.'),
      })
      .optional()
      .describe('Resolve MX records and host addresses with these DNS servers (split horizon, a lab resolver).'),
    tcpSnapshotMin: numLike('a size such as 64KiB')
      .transform(conv((v: number | string) => toSize(v, 0)))
      .optional()
      .describe("Take the kernel's TCP snapshot (ss -tin) at the end of probes of at least this size; always at a stall. Default 64KiB."),
    capture: str('a directory')
      .transform(conv((v: string) => toText(v, 'a directory')))
      .optional()
      .describe("Write a pcap of each stalled probe's connection into this directory (needs tcpdump and privileges)."),
    thresholds: z
      .array(ThresholdItem, { error: typeMsg('a list of thresholds') })
      .optional()
      .describe(
        `Pass/fail expectations, k6 style: "body: p95 < 2s", "dataAck: p99 <= 500ms", "total: p50 < 1s", ` +
          `"stall_rate < 1%", "success_rate >= 99%". Metrics: ${STAGES.join(', ')}, total (p50|p95|p99|avg|max, ` +
          'a time with a unit), stall_rate, success_rate (a percentage or a fraction).',
      ),
  })
  .describe('An mxprobe profile: which servers to probe, over which egress paths, with which message sizes.');

export type ProfileOutput = z.output<typeof ProfileSchema>;

/** Known keys per object, by path pattern (`targets[]`), for "did you mean" and "belongs under" hints. */
export const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(ProfileSchema.shape),
  'targets[]': Object.keys(TargetSchema.shape),
  'paths[]': Object.keys(PathSchema.shape),
  'paths[].relay': Object.keys(RelayObject.shape),
  envelope: Object.keys(EnvelopeSchema.shape),
  auth: Object.keys(AuthSchema.shape),
  arrival: Object.keys(ArrivalSchema.shape),
  timeouts: Object.keys(TimeoutsSchema.shape),
};

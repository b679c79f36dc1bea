/**
 * The vocabulary of DESIGN.md as types. Every module speaks these; nothing here does I/O.
 *
 * Conventions: units in names (`Ms`, `Bytes`); a stage that never ran is absent from `stages`, never 0;
 * wall-clock time appears once per probe (`startedAt`, ISO 8601), everything else is monotonic (`clockMs()`, src/clock.ts).
 */

export const STAGES = [
  'dns',
  'connect',
  'tls',
  'greeting',
  'ehlo',
  'starttls',
  'auth',
  'mail',
  'rcpt',
  'data',
  'body',
  'dataAck',
  'quit',
] as const;
export type Stage = (typeof STAGES)[number];

export const OUTCOMES = [
  'delivered',
  'rejected',
  'stalled',
  'timeout',
  'reset',
  'refused',
  'unreachable',
  'tls-error',
  'protocol-error',
  'dns-error',
  /** Ended by the caller (Ctrl-C, the caller's AbortSignal): what was measured until then. Never written by a run. */
  'aborted',
  /** Ended on purpose after the stage `quitAfter` names (`mxprobe probe --quit-after rcpt`), every stage so far accepted. */
  'quit-after',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** How TLS is used with a target. `starttls` is opportunistic; `require-starttls` fails without it. */
export const TLS_MODES = ['none', 'starttls', 'require-starttls', 'implicit'] as const;
export type TlsMode = (typeof TLS_MODES)[number];

/** An SMTP server: host+port, or a domain whose MX records are resolved. */
export interface TargetSpec {
  /** Label used in results, tables and findings; defaults to `host:port` or `mx:domain`. */
  name?: string;
  host?: string;
  /** Resolve MX records of this domain and use them in preference order. */
  mx?: string;
  port: number;
  tls: TlsMode;
  /** With `mx`: probe every MX host (the profile expands them); otherwise the best reachable one. */
  allMx?: boolean;
  /** Connect over this IP family only (`-4` / `-6`); default: every address, IPv6 first (RFC 6724 order). */
  family?: 4 | 6;
  /**
   * What to do when an endpoint fails before MAIL: `mta` tries the next address, then the next MX host, as an MTA
   * does (connection failure, a 4xx greeting, a 421 before MAIL); `none` reports the first failure. Default: `mta`
   * for an `mx` target, `none` for a `host`.
   */
  fallback?: 'mta' | 'none';
}

/** One connection to one address of one MX (or relay, or host): what it gave. */
export interface Attempt {
  /** The host name (MX exchange, relay or target host) this address belongs to. */
  server: string;
  address: string;
  port: number;
  /** `delivered` for the attempt that carried the message; else how this attempt ended. */
  outcome: Outcome;
  stage?: Stage;
  /** Time of this attempt, from its connect to its end. */
  ms: number;
  reply?: SmtpReply;
  error?: string;
}

/** The DNS records a probe used: the MX list in the order tried, and each host's addresses. */
export interface ResolvedRecords {
  mx?: Array<{ exchange: string; priority: number }>;
  /** host → addresses, in the order tried. */
  addresses?: Record<string, string[]>;
  /** The DNS servers asked (`--dns-server`), when not the system's. */
  servers?: string[];
}

/** A named egress route. At most one of `proxy` / `relay`; `localAddress` may combine with either. */
export interface PathSpec {
  name: string;
  /** Bind this source address (policy routing by source selects "via-lb" vs "direct" in practice). */
  localAddress?: string;
  /** `socks5://[user:pass@]host:port` or `http://[user:pass@]host:port` (CONNECT). */
  proxy?: string;
  /** Hand the message to this SMTP relay instead of the target. */
  relay?: { host: string; port: number; tls?: TlsMode };
}

export interface Envelope {
  from: string;
  to: string[];
}

export interface AuthSpec {
  user: string;
  /** Name of the environment variable holding the secret. The secret itself is never stored. */
  passEnv: string;
  /** Default: PLAIN when advertised, else LOGIN. */
  method?: 'PLAIN' | 'LOGIN';
}

/** Per-stage deadlines and the stall window, all in milliseconds. */
export interface Timeouts {
  dnsMs: number;
  connectMs: number;
  /** greeting, ehlo, starttls, tls handshake, auth, mail, rcpt, quit */
  commandMs: number;
  /** DATA → 354 */
  dataMs: number;
  /** first body byte → last byte accepted by the kernel */
  bodyMs: number;
  /** final `.` → final reply */
  dataAckMs: number;
  /**
   * Stall window: data is outstanding and the network moved none of it (the kernel's `bytes_acked` and
   * `bytes_received` frozen, no reply byte) for this long → `stalled` (`no-ack` or `window-closed`).
   */
  stallMs: number;
  /**
   * No-reply window: everything sent was acknowledged by the peer's TCP, and no reply byte came for this long →
   * `stalled` with `stallKind: 'no-reply'` (a slow server, or a TCP-terminating device that swallowed the data).
   * Longer than the stall window because a healthy server may think for a while (content filters: 10–60 s).
   */
  noReplyMs: number;
}

/** Defaults modelled on Postfix's smtp_*_timeout values, stall window 10 s. */
export const DEFAULT_TIMEOUTS: Timeouts = Object.freeze({
  dnsMs: 30_000,
  connectMs: 30_000,
  commandMs: 300_000,
  dataMs: 120_000,
  bodyMs: 180_000,
  dataAckMs: 600_000,
  stallMs: 10_000,
  // Postfix's smtpd_proxy_timeout (how long Postfix itself waits for a before-queue content filter): 100 s.
  noReplyMs: 100_000,
});

/** Everything one probe needs: one SMTP transaction for one (path, target, size). */
export interface ProbeSpec {
  probeId: string;
  runId?: string;
  target: TargetSpec;
  path: PathSpec;
  /** Exact message bytes on the wire (headers + body, CRLF, before dot-stuffing, without the final `.CRLF`). */
  sizeBytes: number;
  seed: number;
  envelope: Envelope;
  /** EHLO name; default: the machine's hostname. */
  ehloName?: string;
  /** Skip certificate verification (verification is on by default). */
  insecure?: boolean;
  /** SNI / certificate name; default: the target host (or MX host) when it is a name. */
  servername?: string;
  auth?: AuthSpec;
  timeouts: Timeouts;
  /** Send this .eml file instead of a generated message (dot-stuffed, bare LF normalised to CRLF). */
  messageFile?: string;
  /** Take a TCP snapshot at the end of probes of at least this size (always at a stall). Default 64 KiB. */
  tcpSnapshotMinBytes?: number;
  /** Write a pcap of a stalled probe's connection into this folder (needs tcpdump and privileges). */
  captureDir?: string;
  /** Call a stall early (after a third of the window) when the kernel shows retransmission backoff. Default true. */
  earlyStall?: boolean;
  /** Resolve MX records and addresses with these DNS servers (`IP` or `IP:port`) instead of the system's. */
  dnsServers?: string[];
  /** Send to a real (non-loopback) target even when the probe exceeds the SIZE it advertised (src/probe/guards.ts). */
  force?: boolean;
  /** Say QUIT after this point instead of going on (swaks' --quit-after): the outcome is then `quit-after`. */
  quitAfter?: QuitPoint;
  /** Record the SMTP conversation in `ProbeResult.transcript` (secrets masked, the message elided). */
  transcript?: boolean;
}

/** Where `quitAfter` can stop a probe: after that stage (`tls`: after STARTTLS or implicit TLS, where TLS would be). */
export const QUIT_POINTS = ['connect', 'greeting', 'ehlo', 'tls', 'auth', 'mail', 'rcpt'] as const;
export type QuitPoint = (typeof QUIT_POINTS)[number];

/** One line of the SMTP conversation: `>` sent, `<` received, `*` an event (TLS up, the message elided). */
export interface TranscriptLine {
  /** ms since the probe started. */
  tMs: number;
  dir: '>' | '<' | '*';
  text: string;
}

/** How the message of a probe was made, when it was not generated: its exact sizes on the wire. */
export interface MessageInfo {
  source: 'file' | 'composed';
  /** Bytes after dot-stuffing (what DATA carries before the final `.CRLF`); `sizeBytes` is before. */
  wireBytes: number;
  /** Composed messages padded to `--size`: the bytes of padding added. */
  paddingBytes?: number;
  /** Composed messages: the attachments, as sent. */
  attachments?: Array<{ filename: string; contentType: string; bytes: number }>;
}

export interface SmtpReply {
  code: number;
  /** RFC 3463 enhanced status code when present, e.g. `5.7.1`. */
  enhanced?: string;
  /** Reply text, lines joined with `\n`, without codes. */
  text: string;
}

export interface TlsInfo {
  version: string;
  cipher: string;
  authorized: boolean;
  authorizationError?: string;
  /** Certificate subject CN / first SAN when available. */
  peerName?: string;
}

/** The kernel's view of the probe's socket (Linux `ss -tin`). Absent fields were not reported. */
export interface TcpSnapshot {
  /**
   * When it was taken: by the watchdog while the application saw no progress (`watch`), at a stall or a deadline
   * (before the socket was destroyed), or at the end of the probe. On the sink's side: when it sent 354 (`data`),
   * when the message ended (`end`), when the client went silent (`silent`).
   */
  at: 'watch' | 'stall' | 'timeout' | 'end' | 'data' | 'silent';
  /** ms since the probe started (monotonic: clockMs). */
  tMs: number;
  state?: string;
  bytesSent?: number;
  bytesAcked?: number;
  bytesReceived?: number;
  bytesRetrans?: number;
  /** Current retransmission count of the unacknowledged head (`retrans:a/b` → a). */
  retrans?: number;
  /** Total retransmitted segments over the connection (`retrans:a/b` → b). */
  retransTotal?: number;
  unacked?: number;
  sndWnd?: number;
  rcvWnd?: number;
  wscale?: { snd: number; rcv: number };
  rttMs?: number;
  rttVarMs?: number;
  rtoMs?: number;
  mss?: number;
  pmtu?: number;
  cwnd?: number;
  /** Exponential RTO backoff count (`backoff:n`): > 0 while retransmissions go unanswered. */
  backoff?: number;
  /** ms since the last ACK arrived (`lastack`): "never an ACK" shows as a large value. */
  lastAckMs?: number;
  /** ms since the last segment with data arrived (`lastrcv`). */
  lastRecvMs?: number;
  /** ms since the last segment with data was sent (`lastsnd`). */
  lastSendMs?: number;
  /** Bytes in the send buffer not yet sent at all (`notsent`). */
  notSent?: number;
  /** ms the sender was limited by the peer's receive window (`rwnd_limited`): the closed-window family. */
  rwndLimitedMs?: number;
  /** The MSS this end advertised in its SYN (`advmss`). */
  advMss?: number;
  /** The peer's segment size as this end estimates it from what arrived (`rcvmss`). */
  rcvMss?: number;
  /** Options the handshake negotiated, as `ss` names them (`ts`, `sack`, `ecn`, `ecnseen`); window scaling is `wscale`. */
  options?: string[];
  /** Raw `ss` line for the connection, for the curious. */
  raw?: string;
}

export interface ProbeErrorInfo {
  /** Stable code: ETIMEDOUT, ESTALL, ECONNRESET, ECONNREFUSED, EUNREACHABLE, EADDRNOTAVAIL, ETLS, EPROTOCOL, EDNS, EREJECTED, EPROXY, ECLOSED, EMESSAGE, EABORTED, ESIZE */
  code: string;
  message: string;
  /** Last command sent (AUTH secrets masked). */
  lastCommand?: string;
}

export interface RecipientResult {
  address: string;
  code: number;
  enhanced?: string;
  text?: string;
}

/** What one probe measured. Plain data: the JSONL line written per probe. */
export interface ProbeResult {
  probeId: string;
  runId?: string;
  profileHash?: string;
  /** Which probe of the plan this is, `path|target|size|repeat`, set by the runner; `--resume` matches on it. */
  key?: string;
  /** Target label (TargetSpec.name or host:port / mx:domain). */
  target: string;
  /** Path name. */
  path: string;
  sizeBytes: number;
  seed: number;
  outcome: Outcome;
  /** Stage where the probe ended when not delivered. */
  stage?: Stage;
  error?: ProbeErrorInfo;
  /** Stage → duration in float ms. Stages that never ran are absent; a stage cut short has its partial time. */
  stages: Partial<Record<Stage, number>>;
  startedAt: string;
  durationMs: number;
  /** All bytes this probe handed to the kernel (commands + message). */
  bytesWritten: number;
  /** Message bytes (on the wire, after dot-stuffing) accepted by the kernel: the body offset reached. */
  bodyBytesWritten?: number;
  /** Bytes read from the server. */
  bytesRead: number;
  /** The last reply received (the final one for a delivered probe; the rejecting one for a rejection). */
  reply?: SmtpReply;
  recipients?: RecipientResult[];
  /** MX / relay host actually used (name), when it differs from the target label. */
  server?: string;
  localAddress?: string;
  localPort?: number;
  remoteAddress?: string;
  remotePort?: number;
  /** Proxy used (credentials stripped). */
  proxy?: string;
  tls?: TlsInfo;
  capabilities?: string[];
  tcp?: TcpSnapshot;
  /** Why `tcp` is absent when a snapshot was wanted. */
  tcpUnavailable?: string;
  /**
   * Host-wide context of a stall or timeout: how the sending host's kernel TCP counters (nstat names: `TcpExt.PAWSEstab`,
   * `TcpExt.TCPACKSkippedSeq`, `Tcp.InCsumErrors`, `TcpExt.TCPTimeouts`, …) rose between the connection and the end of
   * the probe. They count every connection of the host, not only this probe's (`scope: 'host'`); only rises are kept.
   */
  hostCounters?: { scope: 'host'; intervalMs: number; deltas: Record<string, number> };
  /** Path of the pcap of this probe's connection (with `captureDir`). */
  capture?: string;
  captureError?: string;
  /** Stall window and the deadline of the stage it ended in, for reading the result alone. */
  stallMs?: number;
  /** How a stall was called: the plain window, or earlier on kernel evidence of retransmission backoff. */
  stallBy?: 'window' | 'kernel';
  /** Every endpoint tried, in order, when the probe tried more than one (the last one's stages are `stages`). */
  attempts?: Attempt[];
  /** The DNS records the probe used (MX targets, names, `dnsServers`). */
  resolved?: ResolvedRecords;
  /** On a stalled probe: which of the three stalls it was (see StallKind). */
  stallKind?: StallKind;
  /**
   * What the watchdog counted as progress on a stalled or timed-out probe: `kernel` (bytes the peer's TCP
   * acknowledged, bytes received, read with ss) or `socket` (bytes handed to our own socket and reply bytes only:
   * the kernel could not be read, `tcpUnavailable` says why).
   */
  progressFrom?: 'kernel' | 'socket';
  /** Bytes the peer acknowledged per second over the last stage, on a probe that timed out while data still moved. */
  ackedBytesPerSec?: number;
  /** With outcome `quit-after`: the point the probe was asked to stop at. */
  quitAfter?: QuitPoint;
  /** A message read from a file or composed (attachments, headers): how it was sent. Absent for generated probes. */
  message?: MessageInfo;
  /** The SMTP conversation, when the spec asked for it (`transcript: true`). */
  transcript?: TranscriptLine[];
  /** Did it reach the mailbox (IMAP look-up, `arrival:`): joined from the run's arrival record by probe id. */
  arrival?: Arrival;
}

/**
 * The probe message in the recipient's mailbox, looked up by IMAP after the probe was accepted (DESIGN.md
 * "arrival"). Only accepted (delivered) probes are looked for.
 */
export interface Arrival {
  found: boolean;
  /** From the final 2xx reply to the look-up that found it (resolution: the poll interval). */
  latencyMs?: number;
  /** The folder it was found in (`INBOX`, `Junk`, …). */
  folder?: string;
  /** Size of the message as stored (RFC822.SIZE): the probe's size plus the headers added on the way. */
  sizeBytes?: number;
  /** The body matches the seed of its X-Mxprobe header (the sink's check, src/sink/verify.ts). */
  intact?: boolean;
  /** Why it was not found, or why it is not intact. */
  reason?: string;
  /** Deleted from the mailbox after the check. */
  deleted?: boolean;
}

/** Where and how to look for arrivals (profile `arrival:`, `mxprobe probe --imap`). */
export interface ArrivalSpec {
  /** `imaps://user@host:993` or `imap://user@host:143` (no password in the URL: it comes from `passEnv`). */
  imap: string;
  /** Name of the environment variable holding the IMAP password. The password itself is never stored. */
  passEnv: string;
  /** Folders searched, in order (default INBOX, Junk). */
  folders: string[];
  /** How long after acceptance a probe may take to arrive (default 5 min). */
  withinMs: number;
  /** Delete the probe message once checked (default true). */
  delete: boolean;
  /** How often the folders are searched (default 1 s). */
  pollMs?: number;
  /** Skip certificate verification of an imaps:// server. */
  insecure?: boolean;
}

/** The results-file line that carries an arrival, joined to the probe's own line by `probeId`. */
export interface ArrivalRecord {
  record: 'arrival';
  probeId: string;
  runId?: string;
  arrival: Arrival;
}

/**
 * Why a probe stalled, from the kernel's evidence (DESIGN.md "stall kind"):
 * - `no-ack`: data outstanding, the peer acknowledges nothing (lost on the way: incident 1);
 * - `window-closed`: the peer's window is zero or below one segment, nothing retransmitted (flow stopped: incident 2's family);
 * - `no-reply`: everything sent was acknowledged, no reply byte came (a slow server or a TCP-terminating device).
 */
export const STALL_KINDS = ['no-ack', 'window-closed', 'no-reply'] as const;
export type StallKind = (typeof STALL_KINDS)[number];

export type FindingKind =
  | 'size-threshold'
  | 'path-specific'
  | 'target-specific'
  | 'stall-offset'
  | 'pmtu-blackhole'
  | 'mechanism'
  | 'rejection'
  | 'slow'
  | 'timeout'
  | 'insufficient-data'
  /** Stalls spread over cells with no pattern by path, size or target. */
  | 'scattered-stalls'
  /** Every byte acknowledged and no reply, on every path to a target: a slow or silent server, not the network. */
  | 'no-reply'
  /** Probes that failed otherwise: refused, unreachable, reset, tls-error, protocol-error, dns-error. */
  | 'failure'
  /** A target whose first MX host (or address) keeps failing while a later one takes the mail. */
  | 'fallback'
  /** Stalls judged without the kernel's view (progress counted from our own socket): named as not evidence. */
  | 'kernel-unread'
  /** Two ends: the sender's and the receiver's kernels disagree on window scaling (the option removed or rewritten on the way). */
  | 'window-scale-rewrite'
  /** Two ends: the MSS an end sends with is below what the other advertised and what the MTU allows (the option rewritten). */
  | 'mss-clamp'
  /** Two ends: the sender saw more acknowledged than the receiver got (a TCP-terminating device). */
  | 'acked-not-received'
  /** Accepted probes that never reached the mailbox, arrived truncated, or landed in Junk (IMAP look-up). */
  | 'arrival';

/** A comparator statement with its evidence. */
export interface Finding {
  kind: FindingKind;
  /** True when the finding is about stalls (drives `compare`'s exit code). */
  stall: boolean;
  /** Higher ranks first. */
  score: number;
  path?: string;
  target?: string;
  sizeBytes?: number;
  /** One sentence a person can read. */
  statement: string;
  /** The numbers behind it. */
  evidence: Record<string, unknown>;
  pValue?: number;
}

/**
 * The arrival check: one IMAP connection per run (imapflow), polling the configured folders for the probes that were
 * accepted. Each poll asks every folder, with one SEARCH, for X-Mxprobe mail newer than what it already looked at
 * (UIDs only grow within a UIDVALIDITY), reads the X-Mxprobe header of those, and for a pending probe fetches the
 * message (bounded in bytes), verifies it (inspect.ts) and deletes it unless told not to. A probe not found within
 * `withinMs` of its acceptance is `found: false` with the reason.
 *
 * What comes from the server is untrusted: message bytes are only counted and hashed, the X-Mxprobe header is parsed
 * by the sink's parser, error texts are cut short and scrubbed of every form of the password before they reach a
 * reason. The password is read from the environment once and never kept in anything that is recorded.
 */
import { ImapFlow } from 'imapflow';
import type { Arrival, ArrivalSpec } from '../model.js';
import { findMxprobeHeader } from '../sink/verify.js';
import { forTerminal, scrubSecrets, secretForms } from '../text.js';
import { formatDuration } from '../units.js';
import { inspectArrived, type Sent } from './inspect.js';
import { ArrivalInputError, formatImapEndpoint, parseImapUrl, type ImapEndpoint } from './url.js';
import { clockMs } from '../clock.js';

/** The IMAP server cannot be used: unreachable, TLS failed, or the login was refused (exit 3). */
export class ArrivalEnvError extends Error {
  override name = 'ArrivalEnvError';
  readonly code = 'EENV';
}

/** A probe that was accepted and is looked for. `acceptedAt`: clockMs() of its final 2xx reply. */
export interface Expected extends Sent {
  acceptedAt: number;
}

/** Bytes of headers the way may add to a probe before the stored message is no longer read (it is then not intact). */
const ADDED_HEADERS_MAX = 256 * 1024;
const DEFAULT_POLL_MS = 1000;
const REASON_MAX = 300;

interface Pending {
  exp: Expected;
  resolve: (a: Arrival) => void;
}

/** Probe mail found in a folder. */
interface Hit {
  folder: string;
  uid: number;
  size: number;
  probeId: string;
}

/** Probe messages remembered before their probe is looked for (other runs' leftovers included). */
const UNCLAIMED_MAX = 10_000;

interface FolderState {
  uidValidity?: bigint;
  /** First UID not looked at yet. */
  next: number;
}

/** An error of the server or the socket as a short, single-line, secret-free text. */
function say(err: unknown, forms: readonly string[]): string {
  const e = err as { responseText?: string; code?: string; message?: string };
  const text = [e.responseText, e.code, e.message].filter((x): x is string => !!x)[0] ?? String(err);
  return forTerminal(scrubSecrets(text, forms), { oneLine: true }).slice(0, REASON_MAX);
}

/** Look-up result once a pending probe's message is found. */
async function check(client: ImapFlow, uid: number, size: number, exp: Expected, folder: string, del: boolean): Promise<Arrival> {
  const latencyMs = clockMs() - exp.acceptedAt;
  const maxLength = exp.sizeBytes + ADDED_HEADERS_MAX;
  const msg = size > maxLength ? undefined : await client.fetchOne(String(uid), { source: true }, { uid: true });
  const source = msg && msg.source ? msg.source : Buffer.alloc(0);
  const verdict = await inspectArrived(source, size, exp);
  const a: Arrival = { found: true, latencyMs, folder, sizeBytes: size, ...verdict };
  if (del) a.deleted = await client.messageDelete(String(uid), { uid: true });
  return a;
}

export class ArrivalWatcher {
  private readonly pending = new Map<string, Pending>();
  private readonly folders = new Map<string, FolderState>();
  private readonly unclaimed = new Map<string, Hit>();
  private loop: Promise<void> | undefined;
  private closed = false;
  private wake: (() => void) | undefined;
  private broken: string | undefined;

  private constructor(
    private readonly client: ImapFlow,
    private readonly spec: ArrivalSpec,
    readonly endpoint: ImapEndpoint,
    private readonly forms: readonly string[],
  ) {
    client.on('error', (err: unknown) => (this.broken ??= say(err, forms)));
    client.on('close', () => (this.broken ??= 'the IMAP server closed the connection'));
  }

  /**
   * Connect and log in before any probe is sent. Throws `ArrivalInputError` (bad URL, the password variable is not
   * set) or `ArrivalEnvError` (unreachable, TLS, login refused), never with the password in the message.
   */
  static async open(spec: ArrivalSpec, env: NodeJS.ProcessEnv = process.env): Promise<ArrivalWatcher> {
    const ep = parseImapUrl(spec.imap);
    const pass = env[spec.passEnv];
    if (pass === undefined) throw new ArrivalInputError(`IMAP password: environment variable ${spec.passEnv} is not set`);
    const forms = secretForms(pass, ep.user);
    const client = new ImapFlow({
      host: ep.host,
      port: ep.port,
      secure: ep.secure,
      auth: { user: ep.user, pass },
      logger: false,
      disableAutoIdle: true,
      connectionTimeout: 30_000,
      greetingTimeout: 16_000,
      socketTimeout: 300_000,
      ...(spec.insecure ? { tls: { rejectUnauthorized: false } } : {}),
    });
    client.on('error', () => undefined); // reported by connect()'s rejection
    try {
      await client.connect();
    } catch (err) {
      client.close();
      const where = formatImapEndpoint(ep);
      const e = err as { authenticationFailed?: boolean };
      if (e.authenticationFailed) {
        throw new ArrivalEnvError(`IMAP login to ${where} refused (${say(err, forms)}): check the password in $${spec.passEnv}`);
      }
      throw new ArrivalEnvError(`cannot use the IMAP server ${where}: ${say(err, forms)}`);
    }
    return new ArrivalWatcher(client, spec, ep, forms);
  }

  /** Look for an accepted probe; resolves when it is found, or `withinMs` after its acceptance without it. */
  expect(exp: Expected): Promise<Arrival> {
    if (this.closed) return Promise.resolve({ found: false, reason: 'the arrival check had already ended' });
    if (this.broken) return Promise.resolve({ found: false, reason: `not looked for: ${this.broken}` });
    const p = new Promise<Arrival>((resolve) => this.pending.set(exp.probeId, { exp, resolve }));
    this.loop ??= this.run().finally(() => (this.loop = undefined));
    this.wake?.();
    return p;
  }

  /** End the check: probes still looked for resolve as not found ("the run ended first"); log out. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.wake?.();
    await this.loop?.catch(() => undefined);
    this.settleAll('the run ended before it was found');
    try {
      if (!this.broken) await this.client.logout();
    } catch {
      /* the connection is going anyway */
    }
    this.client.close();
  }

  private settleAll(reason: string): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.resolve({ found: false, reason });
    }
  }

  private async run(): Promise<void> {
    while (this.pending.size > 0 && !this.closed) {
      try {
        for (const folder of this.spec.folders) await this.pollFolder(folder);
      } catch (err) {
        this.broken ??= say(err, this.forms);
      }
      if (this.broken) return this.settleAll(`the IMAP connection failed: ${this.broken}`);
      this.expire();
      if (this.pending.size > 0 && !this.closed) await this.sleep(this.spec.pollMs ?? DEFAULT_POLL_MS);
    }
  }

  private expire(): void {
    const now = clockMs();
    for (const [id, p] of this.pending) {
      if (now - p.exp.acceptedAt < this.spec.withinMs) continue;
      this.pending.delete(id);
      p.resolve({ found: false, reason: `not found in ${this.spec.folders.join(', ')} within ${formatDuration(this.spec.withinMs)}` });
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  /** One folder: new X-Mxprobe mail since the last look, matched to pending probes. */
  private async pollFolder(folder: string): Promise<void> {
    let lock;
    try {
      lock = await this.client.getMailboxLock(folder);
    } catch (err) {
      if (!this.client.usable) throw err;
      return; // no such folder on this server: nothing can arrive there
    }
    try {
      await this.client.noop();
      const seenBefore = [...this.unclaimed.values()].filter((h) => h.folder === folder);
      for (const hit of [...seenBefore, ...(await this.newProbeMail(folder))]) {
        const p = this.pending.get(hit.probeId);
        if (!p) {
          this.remember(hit);
          continue;
        }
        this.pending.delete(hit.probeId);
        this.unclaimed.delete(hit.probeId);
        p.resolve(await check(this.client, hit.uid, hit.size, p.exp, folder, this.spec.delete));
      }
    } finally {
      lock.release();
    }
  }

  /**
   * Probe mail seen before its probe was looked for (it arrived while the probe was still saying QUIT, or belongs to
   * another run): kept, bounded, so a later `expect` finds it without searching again.
   */
  private remember(hit: Hit): void {
    this.unclaimed.delete(hit.probeId);
    this.unclaimed.set(hit.probeId, hit);
    if (this.unclaimed.size > UNCLAIMED_MAX) this.unclaimed.delete(this.unclaimed.keys().next().value as string);
  }

  private async newProbeMail(folder: string): Promise<Hit[]> {
    const mb = this.client.mailbox;
    const st = this.folders.get(folder) ?? { next: 1 };
    if (mb && st.uidValidity !== undefined && mb.uidValidity !== st.uidValidity) st.next = 1;
    if (mb) st.uidValidity = mb.uidValidity;
    this.folders.set(folder, st);
    const found = await this.client.search({ uid: `${st.next}:*`, header: { 'x-mxprobe': 'probe=' } }, { uid: true });
    const uids = (found || []).filter((u) => u >= st.next);
    if (!uids.length) return [];
    const out: Hit[] = [];
    for await (const m of this.client.fetch(uids.join(','), { uid: true, size: true, headers: ['x-mxprobe'] }, { uid: true })) {
      const h = m.headers ? findMxprobeHeader(`${m.headers.toString('latin1').trimEnd()}\r\n`) : undefined;
      if (h) out.push({ folder, uid: m.uid, size: m.size ?? 0, probeId: h.probeId });
    }
    st.next = Math.max(st.next, ...uids) + 1;
    return out;
  }
}

/**
 * A real IMAP server and a real local delivery for arrival tests: Debian's Dovecot started with its own config in a
 * temp dir (passwd-file auth, Maildir, INBOX and Junk), on 127.0.0.1 and a free port, plus an SMTP front on
 * 127.0.0.1:0 that hands every accepted message to Dovecot's own LDA (`dovecot-lda`).
 *
 * Why dovecot-lda behind an smtp-server and not Postfix: the hop under test is the probe's, SMTP over loopback
 * from our engine, and the look-up by IMAP over its own connection; between the two, the delivery into the Maildir
 * is exactly what Postfix's `mailbox_command = /usr/lib/dovecot/dovecot-lda …` would run. A test-owned SMTP front
 * lets a test choose the folder per recipient (`-m Junk`, a spam filter's verdict) or drop a message after 250
 * (a loss after acceptance), without a Postfix queue, its daemons and its `postfix`/`postdrop` accounts.
 *
 * Both need root (dovecot drops to its own users; the LDA switches to the mail user): `dovecotAvailable()` says
 * why not, and the tests skip with that reason.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';

const DOVECOT = '/usr/sbin/dovecot';
const LDA = '/usr/lib/dovecot/dovecot-lda';

/** Undefined when Dovecot can run here; otherwise why not (the test prints it and skips). */
export function dovecotAvailable(): string | undefined {
  if (!existsSync(DOVECOT) || !existsSync(LDA)) return `dovecot-imapd not installed (${DOVECOT}, ${LDA}); apt-get install dovecot-imapd`;
  if (userInfo().uid !== 0) return 'dovecot needs root to start with its own users';
  const id = spawnSync('id', ['-u', 'dovecot'], { encoding: 'utf8' });
  if (id.status !== 0) return 'no dovecot system user';
  return undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

function config(dir: string, port: number, uid: number): string {
  return `
base_dir = ${dir}/run
state_dir = ${dir}/state
log_path = ${dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = ${uid}
mail_location = maildir:${dir}/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=${dir}/mail/%u
}
namespace inbox {
  inbox = yes
  mailbox Junk {
    special_use = \\Junk
    auto = create
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
`;
}

export interface Dovecot {
  port: number;
  user: string;
  conf: string;
  /** Deliver raw message bytes into `folder` of the user's Maildir with dovecot-lda. */
  deliver(message: Buffer, folder?: string): Promise<void>;
  /** Messages in a folder (files in its Maildir new/ and cur/). */
  count(folder?: string): number;
  stop(): Promise<void>;
}

function waitListening(port: number, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  return new Promise((resolve, reject) => {
    const tryOnce = (): void => {
      if (child.exitCode !== null) return reject(new Error(`dovecot exited ${child.exitCode}: ${existsSync(log) ? readFileSync(log, 'utf8') : ''}`));
      const s = net.connect(port, '127.0.0.1');
      s.once('data', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`dovecot did not listen on ${port}`));
        else setTimeout(tryOnce, 100);
      });
    };
    tryOnce();
  });
}

/** Start Dovecot for one user with `password`; stop() kills it and removes the temp dir. */
export async function startDovecot(user: string, password: string): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'mxprobe-dovecot-'));
  chmodSync(dir, 0o755);
  const uid = Number(spawnSync('id', ['-u', 'dovecot'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'dovecot'], { encoding: 'utf8' }).stdout.trim());
  mkdirSync(join(dir, 'mail'));
  chownSync(join(dir, 'mail'), uid, gid);
  writeFileSync(join(dir, 'passwd'), `${user}:{PLAIN}${password}::::::\n`, { mode: 0o644 });
  const port = await freePort();
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(conf, config(dir, port, uid));
  const child = spawn(DOVECOT, ['-F', '-c', conf], { stdio: 'ignore' });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitListening(port, child, join(dir, 'dovecot.log'));
  } catch (err) {
    await stop();
    throw err;
  }
  const folderDir = (folder: string): string => join(dir, 'mail', user, folder === 'INBOX' ? '' : `.${folder}`);
  return {
    port,
    user,
    conf,
    stop,
    count(folder = 'INBOX') {
      let n = 0;
      for (const sub of ['new', 'cur']) {
        const p = join(folderDir(folder), sub);
        if (existsSync(p)) n += spawnSync('ls', ['-1', p], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean).length;
      }
      return n;
    },
    deliver(message, folder = 'INBOX') {
      return new Promise((resolve, reject) => {
        const lda = spawn(LDA, ['-c', conf, '-d', user, '-m', folder], { stdio: ['pipe', 'ignore', 'pipe'] });
        let err = '';
        lda.stderr.on('data', (d) => (err += d));
        lda.once('error', reject);
        lda.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`dovecot-lda exited ${code}: ${err}`))));
        lda.stdin.end(message);
      });
    },
  };
}

/**
 * An SMTP front on 127.0.0.1:0 that delivers every accepted message with dovecot-lda: into the folder `route`
 * returns for the first recipient (`'INBOX'`, `'Junk'`), or nowhere when it returns undefined (accepted with 250,
 * then lost: what "never arrived" looks like from the sender).
 */
export async function startDeliveringSmtp(dovecot: Dovecot, route: (rcpt: string) => string | undefined) {
  const seen = { messages: 0 };
  const server = new SMTPServer({
    authOptional: true,
    disableReverseLookup: true,
    hideSTARTTLS: true,
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => {
        seen.messages++;
        const folder = route(session.envelope.rcptTo[0]?.address ?? '');
        if (folder === undefined) return cb(null, 'queued (and dropped)');
        dovecot.deliver(Buffer.concat(chunks), folder).then(
          () => cb(null, `delivered to ${folder}`),
          (err: Error) => cb(Object.assign(new Error(`451 ${err.message.split('\n')[0]}`), { responseCode: 451 })),
        );
      });
    },
  } as SMTPServerOptions);
  server.on('error', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.server.address() as net.AddressInfo).port,
    /** Messages received so far (delivered or not). */
    get messages() {
      return seen.messages;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

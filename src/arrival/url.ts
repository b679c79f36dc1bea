/**
 * The IMAP server of an arrival check as a URL: `imaps://user@host:993` (implicit TLS, default port 993) or
 * `imap://user@host:143` (plain, default 143). The password never goes in the URL: it comes from the environment
 * variable the profile or flag names (`passEnv`), so a URL is safe to print. Pure.
 */
import net from 'node:net';
import { lineBreakIn } from '../text.js';

export interface ImapEndpoint {
  secure: boolean;
  host: string;
  port: number;
  user: string;
}

/** A bad `arrival.imap` / `--imap` value, or a missing password variable: bad input (exit 2). */
export class ArrivalInputError extends Error {
  override name = 'ArrivalInputError';
  readonly code = 'EINPUT';
}

/** Parse an IMAP URL; throws `ArrivalInputError` saying what is wrong (never echoing a password). */
export function parseImapUrl(text: string): ImapEndpoint {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new ArrivalInputError('the IMAP URL does not parse: expected imaps://user@host[:993] or imap://user@host[:143]');
  }
  if (u.protocol !== 'imaps:' && u.protocol !== 'imap:') throw new ArrivalInputError(`the IMAP URL must start with imaps:// or imap://, not ${u.protocol}//`);
  if (u.password) throw new ArrivalInputError('the IMAP URL carries a password: remove it and name the environment variable that holds it (passEnv / --imap-pass-env)');
  const user = decodeURIComponent(u.username);
  if (!user) throw new ArrivalInputError('the IMAP URL has no user: imaps://user@host');
  const bad = lineBreakIn(user);
  if (bad) throw new ArrivalInputError(`the IMAP user contains a ${bad}`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (!host) throw new ArrivalInputError('the IMAP URL has no host');
  if ((u.pathname && u.pathname !== '/') || u.search || u.hash) throw new ArrivalInputError('the IMAP URL takes no path or query: give the folders separately');
  const secure = u.protocol === 'imaps:';
  return { secure, host, port: u.port ? Number(u.port) : secure ? 993 : 143, user };
}

/** `imaps://user@host:993`, built from the parsed parts (IPv6 in brackets). */
export function formatImapEndpoint(e: ImapEndpoint): string {
  return `${e.secure ? 'imaps' : 'imap'}://${encodeURIComponent(e.user)}@${net.isIPv6(e.host) ? `[${e.host}]` : e.host}:${e.port}`;
}

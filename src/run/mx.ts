/**
 * `allMx` targets: one target per MX host of the domain, resolved once at run start.
 */
import { promises as dnsPromises, type MxRecord } from 'node:dns';
import type { TargetSpec } from '../model.js';
import { targetLabel } from './expand.js';
import { RunError } from './errors.js';

export type ResolveMx = (domain: string) => Promise<MxRecord[]>;

/**
 * Replace every target with `mx` + `allMx` by one target per MX host (preference order, then name), named
 * `<label>/<mx host>`; other targets pass through unchanged (the probe engine resolves plain MX targets).
 * Throws `RunError` (`EDNS`) naming the domain when the lookup fails or yields no usable host.
 */
export async function expandMxTargets(targets: readonly TargetSpec[], resolveMx: ResolveMx = (d) => dnsPromises.resolveMx(d)): Promise<TargetSpec[]> {
  const out: TargetSpec[] = [];
  for (const t of targets) {
    if (!t.mx || !t.allMx) {
      out.push(t);
      continue;
    }
    const label = targetLabel(t);
    let records: MxRecord[];
    try {
      records = await resolveMx(t.mx);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const why =
        code === 'ENOTFOUND' || code === 'ENODATA'
          ? 'the domain has no MX records'
          : code === 'ETIMEOUT' || code === 'ECONNREFUSED'
            ? 'no answer from the DNS resolver'
            : String(code);
      throw new RunError('EDNS', `target ${label}: cannot list the MX hosts of ${t.mx} (allMx): ${why} (${code})`);
    }
    const hosts = records
      .filter((r) => r.exchange && r.exchange !== '.')
      .sort((a, b) => a.priority - b.priority || (a.exchange < b.exchange ? -1 : a.exchange > b.exchange ? 1 : 0))
      .map((r) => r.exchange.replace(/\.$/, ''));
    if (hosts.length === 0) {
      const nullMx = records.length > 0;
      throw new RunError(
        'EDNS',
        nullMx
          ? `target ${label}: ${t.mx} publishes a null MX (RFC 7505): it accepts no mail`
          : `target ${label}: ${t.mx} has no MX records (allMx)`,
      );
    }
    for (const host of [...new Set(hosts)]) {
      const { mx: _mx, allMx: _all, ...rest } = t;
      out.push({ ...rest, host, name: `${label}/${host}` });
    }
  }
  return out;
}

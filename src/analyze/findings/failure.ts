/** failure: probes that failed otherwise (refused, unreachable, reset, TLS, protocol, DNS): not stalls. */
import type { Finding, ProbeResult } from '../../model.js';
import { score } from '../ranking.js';
import { countBy, pushTo, sizeList, top } from '../text.js';
import type { Context } from './context.js';

const FAILURE_WORDS: Partial<Record<ProbeResult['outcome'], string>> = {
  reset: 'reset by the peer',
  refused: 'refused',
  unreachable: 'unreachable',
  'tls-error': 'failed in TLS',
  'protocol-error': 'answered with something that is not SMTP',
  'dns-error': 'failed to resolve',
};

function finding(ctx: Context, rs: ProbeResult[]): Finding {
  const r0 = rs[0]!;
  const sizes = [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b);
  const total = ctx.cells.filter((c) => c.path === r0.path && c.target === r0.target).reduce((s, c) => s + c.total, 0);
  const errs = countBy(rs, (r) => (r.error ? `${r.error.code}: ${r.error.message}` : undefined));
  const err = top(errs);
  const all = rs.length === total;
  const toT = ctx.targets.length > 1 ? ` to ${r0.target}` : '';
  return {
    kind: 'failure',
    stall: false,
    score: score('failure') + (all ? 2 : 0),
    path: r0.path,
    target: r0.target,
    sizeBytes: sizes[0],
    statement: `${rs.length}/${total} probes on ${r0.path}${toT} were ${FAILURE_WORDS[r0.outcome]}${r0.stage ? ` at ${r0.stage}` : ''}${all ? '' : ` (at ${sizeList(sizes)})`}${err ? ` — ${err.slice(0, 120)}` : ''}: not a stall${all ? ', and nothing was measured on this path' : ''}.`,
    evidence: { outcome: r0.outcome, stage: r0.stage, count: rs.length, total, sizes, errors: Object.fromEntries(errs) },
  };
}

export function failure(ctx: Context): Finding[] {
  const groups = new Map<string, ProbeResult[]>();
  for (const r of ctx.results) if (r.outcome in FAILURE_WORDS) pushTo(groups, `${r.path}\u0000${r.target}\u0000${r.outcome}\u0000${r.stage ?? ''}`, r);
  return [...groups.values()].map((rs) => finding(ctx, rs));
}

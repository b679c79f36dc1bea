/**
 * rejection: what a rejecting reply is — a size limit (552 / 5.3.4), greylisting or a temporary refusal, a policy
 * answer, or the receiver giving up waiting for the body (421 4.4.2 timeout: a stall seen from its side).
 */
import type { Finding, ProbeResult } from '../../model.js';
import { formatSize } from '../../units.js';
import { score } from '../ranking.js';
import { pushTo, sizeList } from '../text.js';
import type { Context } from './context.js';

const GREYLIST_RE = /grey|gray|try again later|temporar|deferr|postpone/i;
const SIZE_RE = /size|too (big|large)|exceed/i;

interface Group {
  r0: ProbeResult;
  rs: ProbeResult[];
  code: string;
  text: string;
  sizes: number[];
  paths: string[];
  /** Probes to the target at the rejected sizes. */
  there: number;
  evidence: Record<string, unknown>;
}

function isSize(g: Group): boolean {
  const { code, enhanced, text } = g.r0.reply!;
  return code === 552 || code === 523 || enhanced === '5.3.4' || enhanced === '5.2.3' || (code >= 500 && SIZE_RE.test(text));
}
function isGrey(g: Group): boolean {
  const { code, enhanced, text } = g.r0.reply!;
  return code >= 400 && code < 500 && (GREYLIST_RE.test(text) || enhanced === '4.7.1' || enhanced === '4.2.0' || code === 450 || code === 451);
}
/** The receiver gave up waiting for the data (incident 1: "421 4.4.2 timeout"). */
function isReceiverTimeout(g: Group): boolean {
  const { code, enhanced, text } = g.r0.reply!;
  const inBody = g.r0.stage === 'body' || g.r0.stage === 'dataAck';
  return inBody && code >= 400 && code < 500 && (enhanced === '4.4.2' || /time(d)?[ -]?out/i.test(text));
}

function receiverTimeout(ctx: Context, g: Group): Finding {
  const t = g.r0.target;
  const onPaths = ctx.cells.filter((c) => c.target === t && g.sizes.includes(c.sizeBytes) && g.paths.includes(c.path)).reduce((s, c) => s + c.total, 0);
  return {
    kind: 'rejection', stall: true, score: score('rejection') + 30, target: t,
    ...(g.paths.length === 1 ? { path: g.paths[0] } : {}),
    sizeBytes: g.sizes[0],
    statement: `${t} gave up waiting for the message body: ${g.code} "${g.text}" at ${g.r0.stage} to ${g.rs.length}/${onPaths} probes (${sizeList(g.sizes)}, path${g.paths.length > 1 ? 's' : ''} ${g.paths.join(', ')}): the data did not reach it — a stall seen from the receiver's side, not a policy answer.`,
    evidence: { ...g.evidence, reason: 'receiver-timeout' },
  };
}

function sizeLimit(ctx: Context, g: Group): Finding {
  const t = g.r0.target;
  const minRejected = g.sizes[0]!;
  const ok = ctx.cells.filter((c) => c.target === t && c.delivered > 0 && c.sizeBytes < minRejected).map((c) => c.sizeBytes);
  const largestOk = ok.length ? Math.max(...ok) : undefined;
  return {
    kind: 'rejection', stall: false, score: score('rejection') + 2, target: t, sizeBytes: minRejected,
    statement: `${t} refuses messages from ${formatSize(minRejected)} on with ${g.code} "${g.text}" (${g.rs.length}/${g.there} probes, ${g.r0.stage ?? 'unknown stage'}${largestOk !== undefined ? `; ${formatSize(largestOk)} accepted` : ''}): a size limit, not a stall.`,
    evidence: { ...g.evidence, reason: 'size-limit', largestAcceptedBytes: largestOk },
  };
}

function temporary(g: Group): Finding {
  const n = g.rs.length;
  return {
    kind: 'rejection', stall: false, score: score('rejection'), target: g.r0.target,
    statement: `${g.r0.target} answered ${g.code} "${g.text}" at ${g.r0.stage ?? 'an unknown stage'} to ${n} probe${n > 1 ? 's' : ''}: greylisting or a temporary refusal, not a network problem — retry later or allow-list the probe sender.`,
    evidence: { ...g.evidence, reason: 'temporary' },
  };
}

function policy(g: Group): Finding {
  const n = g.rs.length;
  const reply = g.r0.reply!;
  return {
    kind: 'rejection', stall: false, score: score('rejection') - 2, target: g.r0.target,
    statement: `${g.r0.target} rejected ${n} probe${n > 1 ? 's' : ''} with ${g.code} "${g.text}" at ${g.r0.stage ?? 'an unknown stage'}${g.paths.length > 1 ? ` (paths ${g.paths.join(', ')})` : ` (path ${g.paths[0]})`}: a policy answer from the server, not a stall.`,
    evidence: { ...g.evidence, reason: reply.code >= 500 ? 'permanent' : 'temporary' },
  };
}

function groupsOf(ctx: Context): Group[] {
  const m = new Map<string, ProbeResult[]>();
  for (const r of ctx.results) if (r.outcome === 'rejected' && r.reply) pushTo(m, `${r.target}\u0000${r.reply.code}\u0000${r.stage ?? ''}`, r);
  return [...m.values()].map((rs) => {
    const r0 = rs[0]!;
    const reply = r0.reply!;
    const sizes = [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b);
    const paths = [...new Set(rs.map((r) => r.path))].sort();
    const there = ctx.cells.filter((c) => c.target === r0.target && sizes.includes(c.sizeBytes)).reduce((s, c) => s + c.total, 0);
    return {
      r0, rs, sizes, paths, there,
      code: `${reply.code}${reply.enhanced ? ` ${reply.enhanced}` : ''}`,
      text: reply.text.split('\n')[0]!.slice(0, 80),
      evidence: { code: reply.code, enhanced: reply.enhanced, text: reply.text, stage: r0.stage, count: rs.length, total: there, sizes, paths },
    };
  });
}

export function rejection(ctx: Context): Finding[] {
  return groupsOf(ctx).map((g) => (isReceiverTimeout(g) ? receiverTimeout(ctx, g) : isSize(g) ? sizeLimit(ctx, g) : isGrey(g) ? temporary(g) : policy(g)));
}

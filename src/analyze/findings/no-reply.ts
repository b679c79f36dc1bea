/**
 * no-reply: every byte acknowledged and no reply, on every path to a target — the server is slow or silent, not
 * the network. After the body that is a slow server (a content filter thinking); at the greeting a silent server
 * (often one that expects implicit TLS). Stalls of this kind on one path while the others get replies are the
 * path-specific rule's (a TCP-terminating device on that path).
 */
import type { Finding, ProbeResult } from '../../model.js';
import { formatMs } from '../../units.js';
import { score } from '../ranking.js';
import { median } from '../stats.js';
import { joinAnd, pushTo, sizeList } from '../text.js';
import { type Context, cellOf } from './context.js';
import { pathsWord } from './target-specific.js';

type StageClass = 'greeting' | 'after-body' | string;

const classOf = (r: ProbeResult): StageClass => (r.stage === 'body' || r.stage === 'dataAck' ? 'after-body' : (r.stage ?? 'unknown'));

/** Implicit-TLS ports: a server there waits for a ClientHello and sends no plain greeting. */
const IMPLICIT_TLS_PORTS = new Set([465, 993, 995]);

function tlsHint(rs: readonly ProbeResult[], target: string): string {
  const port = rs.find((r) => r.remotePort !== undefined)?.remotePort ?? Number(/:(\d+)$/.exec(target)?.[1]);
  if (IMPLICIT_TLS_PORTS.has(port)) return `; port ${port}: the server may expect implicit TLS: --tls implicit`;
  // the engine's own look at the silent connection (a ClientHello answered) says so in the error
  return rs.some((r) => /implicit TLS/i.test(r.error?.message ?? '')) ? '; the server may expect implicit TLS: --tls implicit' : '';
}

/** p50 of the time probes to these cells waited for the final reply (delivered: the real time; silent: a lower bound). */
function waitAfterBody(ctx: Context, target: string, paths: string[], silent: ProbeResult[]): { p50Ms: number; lowerBound: boolean } | undefined {
  const rs = ctx.results.filter((r) => r.target === target && paths.includes(r.path) && typeof r.stages.dataAck === 'number');
  if (!rs.length) return undefined;
  const vals = rs.map((r) => r.stages.dataAck!);
  const p50Ms = median(vals);
  const cut = silent.filter((r) => (r.stages.dataAck ?? 0) <= p50Ms).length;
  return { p50Ms, lowerBound: cut * 2 >= rs.length || silent.length * 2 >= rs.length };
}

function statementFor(ctx: Context, target: string, cls: StageClass, rs: ProbeResult[], total: number, others: string[]): string {
  const paths = [...new Set(rs.map((r) => r.path))].sort();
  const count = `${rs.length}/${total} probes over ${pathsWord(paths)}`;
  const sizes = ctx.cells.length && new Set(ctx.cells.filter((c) => c.target === target).map((c) => c.sizeBytes)).size > new Set(rs.map((r) => r.sizeBytes)).size ? ` at ${sizeList(rs.map((r) => r.sizeBytes))}` : '';
  if (others.length) {
    return `Possibly one path: ${count} to ${target}${sizes} got every byte acknowledged and no reply while ${joinAnd(others)} got replies — too few probes to tell a device on ${joinAnd(paths)} that swallows the data from a slow server.`;
  }
  if (cls === 'greeting') return `Target ${target} accepts connections but sends no greeting (${count}): a silent server, not a network stall${tlsHint(rs, target)}.`;
  if (cls === 'after-body') {
    const w = waitAfterBody(ctx, target, paths, rs);
    const p50 = w ? ` (p50 ${w.lowerBound ? '≥ ' : ''}${formatMs(w.p50Ms)})` : '';
    return `Target ${target} is slow to answer after the body${p50}: ${count}${sizes} got every byte acknowledged and no final reply in the window: the server, not the network — a longer no-reply window (timeouts.noReply) lets them deliver.`;
  }
  return `Target ${target} stops answering at ${cls === 'data' ? 'DATA' : cls.toUpperCase()} (${count}${sizes}): every byte acknowledged, no reply: the server, not the network.`;
}

/** Other paths to the target that got replies at the sizes these probes went silent at. */
function replyingPaths(ctx: Context, target: string, rs: ProbeResult[]): string[] {
  const paths = new Set(rs.map((r) => r.path));
  const sizes = [...new Set(rs.map((r) => r.sizeBytes))];
  return ctx.paths.filter((q) => !paths.has(q) && sizes.some((s) => (cellOf(ctx, q, target, s)?.delivered ?? 0) > 0));
}

export function noReply(ctx: Context): Finding[] {
  const groups = new Map<string, ProbeResult[]>();
  for (const r of ctx.results) {
    if (ctx.kinds.get(r) !== 'no-reply' || ctx.pathTests.get(r.path)?.established) continue;
    pushTo(groups, `${r.target}\u0000${classOf(r)}`, r);
  }
  const out: Finding[] = [];
  for (const rs of groups.values()) {
    const target = rs[0]!.target;
    const cls = classOf(rs[0]!);
    const paths = [...new Set(rs.map((r) => r.path))].sort();
    const sizes = [...new Set(rs.map((r) => r.sizeBytes))].sort((a, b) => a - b);
    const total = ctx.cells.filter((c) => c.target === target && paths.includes(c.path) && sizes.includes(c.sizeBytes)).reduce((s, c) => s + c.total, 0);
    const others = replyingPaths(ctx, target, rs);
    out.push({
      kind: 'no-reply',
      stall: false,
      score: score('no-reply') + (others.length ? -10 : 0),
      target,
      ...(paths.length === 1 ? { path: paths[0] } : {}),
      sizeBytes: sizes[0],
      statement: statementFor(ctx, target, cls, rs, total, others),
      evidence: { stage: cls, count: rs.length, total, paths, sizes, replyingPaths: others },
    });
  }
  return out;
}

/**
 * The report's arrival section (IMAP arrival check): per size and path, how many accepted probes reached the
 * mailbox, how fast (median), how many were not intact and how many landed in Junk. Only when the results carry
 * arrivals. Every value escaped; classes only (the CSP allows no inline style). Pure.
 */
import type { ProbeResult } from '../model.js';
import { formatMs, formatSize } from '../units.js';
import { gridOf } from './heatmap.js';
import { esc, gkey, median, probesByCell } from './util.js';

const JUNK = /junk|spam|bulk/i;

/** `9/9 · p50 4.1s`, `0/9`, with `· 3 not intact` and `· 2 in Junk` when so; and the class of the cell. */
export function arrivalCellText(rs: readonly ProbeResult[]): { text: string; cls: 'ar-ok' | 'ar-warn' | 'ar-bad' } {
  const looked = rs.filter((r) => r.outcome === 'delivered' && r.arrival);
  const found = looked.filter((r) => r.arrival!.found);
  const bad = found.filter((r) => !r.arrival!.intact).length;
  const junk = found.filter((r) => JUNK.test(r.arrival!.folder ?? '')).length;
  const p50 = median(found.map((r) => r.arrival!.latencyMs).filter((x): x is number => typeof x === 'number' && Number.isFinite(x)));
  const parts = [`${found.length}/${looked.length}`];
  if (p50 !== undefined) parts.push(`p50 ${formatMs(p50)}`);
  if (bad) parts.push(`${bad} not intact`);
  if (junk) parts.push(`${junk} in Junk`);
  const cls = found.length < looked.length || bad ? 'ar-bad' : junk ? 'ar-warn' : 'ar-ok';
  return { text: parts.join(' · '), cls };
}

/** The section's body, or undefined when no result carries an arrival. */
export function renderArrival(results: readonly ProbeResult[]): string | undefined {
  const looked = results.filter((r) => r.outcome === 'delivered' && r.arrival);
  if (!looked.length) return undefined;
  const g = gridOf(looked);
  const byCell = probesByCell(looked);
  const head = `<tr><th class="corner">size \\ path</th>${g.cols.map((c) => `<th scope="col">${esc(g.targets.length > 1 ? `${c.path} → ${c.target}` : c.path)}</th>`).join('')}</tr>`;
  const rows = g.sizes.map((s) => {
    const tds = g.cols.map((col) => {
      const rs = byCell.get(gkey(col.target, col.path, s));
      if (!rs) return '<td class="ar-none">–</td>';
      const { text, cls } = arrivalCellText(rs);
      return `<td class="${cls}">${esc(text)}</td>`;
    });
    return `<tr><th scope="row" class="size">${esc(formatSize(s))}</th>${tds.join('')}</tr>`;
  });
  return `<table class="arrival" id="arrival-table"><thead>${head}</thead><tbody>${rows.join('\n')}</tbody></table>
<p class="note">Accepted probes found in the mailbox by IMAP / accepted probes looked for; p50 is the time from the
final 2xx reply to the look-up that found it (its resolution is the poll interval). "Not intact": the stored body
does not match the probe's seed (truncated or changed on the way).</p>`;
}

/** The section's style rules (added to the page's one style sheet, allowed by its hash). */
export const ARRIVAL_CSS = `
table.arrival { border-collapse:collapse; }
table.arrival td, table.arrival th { padding:4px 10px; border:1px solid #ddd; text-align:center; }
td.ar-ok { background:#bfe3c6; } td.ar-warn { background:#f1dfa8; } td.ar-bad { background:#f4b7b0; } td.ar-none { color:#999; }`;

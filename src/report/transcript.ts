/**
 * A probe's SMTP transcript in the HTML report: a closed <details> in the probe's row of the table, only for
 * probes whose result carries one (`transcript: true`). Self-contained: html.ts calls it for the probe-id cell.
 */
import type { ProbeResult } from '../model.js';
import { formatTranscript } from '../probe/transcript.js';
import { formatMs } from '../units.js';
import { esc } from './html.js'; // (html.ts imports this file: esc is only used at call time)


export function transcriptDetails(r: Pick<ProbeResult, 'transcript'>): string {
  if (!r.transcript?.length) return '';
  const text = formatTranscript(r.transcript, formatMs).map((l) => esc(l)).join('\n');
  return (
    `<details class="transcript"><summary>transcript (${r.transcript.length} lines)</summary>` +
    `<pre style="white-space:pre;font-size:11px;max-height:30em;overflow:auto;text-align:left">${text}</pre></details>`
  );
}

/**
 * The captured connections of a report's probes (`probe --capture DIR` / a profile's capture: the pcap path is in
 * each result's `capture`), read and turned into time-sequence graphs. The only I/O of the report besides writing
 * it; bounded in bytes per file and in files per report. A file that is gone or not a pcap is named, not fatal.
 */
import { readFile, stat } from 'node:fs/promises';
import type { ProbeResult } from '../model.js';
import { parsePcap } from './pcap.js';
import { type TimeSequence, renderTimeSequence, describeTimeSequence, timeSequence } from './tsg.js';
import { esc } from './util.js';

export interface CaptureGraph {
  probeId: string;
  path: string;
  sizeBytes: number;
  outcome: string;
  file: string;
  ts?: TimeSequence;
  /** Why there is no graph (file gone, too big, not a pcap, no TCP data). */
  error?: string;
}

/** Bytes read of one pcap at most (a 256-byte snaplen keeps a 16 MiB probe's capture under 8 MiB). */
export const MAX_CAPTURE_BYTES = 64 * 1024 * 1024;
/** Graphs in one report at most: the first probes with a capture, in results order. */
export const MAX_CAPTURE_GRAPHS = 24;

async function graphOf(r: ProbeResult & { capture: string }): Promise<CaptureGraph> {
  const g: CaptureGraph = { probeId: r.probeId, path: r.path, sizeBytes: r.sizeBytes, outcome: r.outcome, file: r.capture };
  try {
    const st = await stat(r.capture);
    if (st.size > MAX_CAPTURE_BYTES) return { ...g, error: `larger than ${MAX_CAPTURE_BYTES / 1024 / 1024} MiB, not read` };
    const ts = timeSequence(parsePcap(await readFile(r.capture)));
    return ts ? { ...g, ts } : { ...g, error: 'no TCP packets in it (not a classic pcap?)' };
  } catch (e) {
    return { ...g, error: (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'the file is gone' : `cannot read it: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
}

/** The graphs of the probes that have a capture (at most MAX_CAPTURE_GRAPHS). */
export async function loadCaptureGraphs(results: readonly ProbeResult[]): Promise<CaptureGraph[]> {
  const withCapture = results.filter((r): r is ProbeResult & { capture: string } => typeof r.capture === 'string' && r.capture.length > 0).slice(0, MAX_CAPTURE_GRAPHS);
  return Promise.all(withCapture.map(graphOf));
}

/** The report section's body: one graph per captured probe, with its legend and one line of facts. */
export function renderCaptureGraphs(gs: readonly CaptureGraph[], sizeText: (n: number) => string): string {
  const legend =
    '<p class="tsg-legend"><i class="l-seg"></i>data segment<i class="l-rtx"></i>retransmission<i class="l-ack"></i>ACK (what the receiver acknowledged)<i class="l-wnd"></i>window edge (ACK + window, as the sender scales it)</p>';
  return gs
    .map((g) => {
      const head = `<h3>${esc(g.path)} · ${esc(sizeText(g.sizeBytes))} · ${esc(g.outcome)} · <code>${esc(g.probeId)}</code></h3>`;
      if (!g.ts) return `<div class="tsg-probe">${head}<p class="muted">capture ${esc(g.file)}: ${esc(g.error ?? 'no graph')}</p></div>`;
      return `<div class="tsg-probe">${head}${renderTimeSequence(g.ts, g.probeId)}${legend}<p class="muted">${esc(describeTimeSequence(g.ts))} · ${esc(g.file)}</p></div>`;
    })
    .join('\n');
}

/** An arrival as a results-file line and as a sentence. Pure. */
import type { Arrival, ArrivalRecord, ProbeResult } from '../model.js';
import { formatMs, groupDigits } from '../units.js';
import { clockMs } from '../clock.js';

/** The line that joins `arrival` to its probe's own line by probe id. */
export function arrivalLine(r: Pick<ProbeResult, 'probeId' | 'runId'>, arrival: Arrival): ArrivalRecord {
  return { record: 'arrival', probeId: r.probeId, ...(r.runId ? { runId: r.runId } : {}), arrival };
}

/** clockMs() of a just-finished probe's final 2xx reply: its end, less the QUIT that followed. */
export function acceptedAtOf(r: Pick<ProbeResult, 'stages'>, now = clockMs()): number {
  return now - (r.stages.quit ?? 0);
}

/** "in INBOX 6.2s later, whole (1,048,576 bytes, seed verified)", "never arrived: …", "in Junk 2.1s later, truncated: …". */
export function describeArrival(a: Arrival): string {
  if (!a.found) return `not in the mailbox: ${a.reason ?? 'not found'}`;
  const when = a.latencyMs !== undefined ? ` ${formatMs(a.latencyMs)} after acceptance` : '';
  const what = a.intact ? `whole (${groupDigits(a.sizeBytes ?? 0)} bytes stored, seed verified)` : `NOT intact: ${a.reason ?? 'changed on the way'}`;
  return `in ${a.folder ?? '?'}${when}, ${what}${a.deleted ? '; deleted' : ''}`;
}

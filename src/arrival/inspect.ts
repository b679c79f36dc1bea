/**
 * Is the message that arrived the probe that was sent, whole? The sink's own check (src/sink/verify.ts): the body
 * (everything after the header block) must hash like the body the seed of its X-Mxprobe header gives. Headers added
 * on the way (Received:, Delivered-To:, a spam filter's X-Spam-*) do not count against it. Pure but for hashing.
 */
import type { Arrival } from '../model.js';
import { MessageInspector } from '../sink/verify.js';
import { groupDigits } from '../units.js';

/** What was sent, for the comparison. */
export interface Sent {
  probeId: string;
  sizeBytes: number;
}

/**
 * `intact` and, when not, `reason` for the stored message `source` (read whole, or cut at the read bound:
 * `storedBytes` is the server's RFC822.SIZE).
 */
export async function inspectArrived(source: Buffer, storedBytes: number, sent: Sent): Promise<Pick<Arrival, 'intact' | 'reason'>> {
  if (source.length < storedBytes) return { intact: false, reason: `stored message is ${groupDigits(storedBytes)} bytes, far more than the ${groupDigits(sent.sizeBytes)} sent: not read` };
  const ins = new MessageInspector();
  ins.push(source);
  const got = await ins.finish();
  if (!got.probe || got.probe.probeId !== sent.probeId) return { intact: false, reason: 'the X-Mxprobe header was changed on the way' };
  if (got.verified) return { intact: true };
  const body = got.bytes - (got.headerBytes ?? got.bytes);
  if (storedBytes < sent.sizeBytes) return { intact: false, reason: `truncated: ${groupDigits(storedBytes)} bytes stored of ${groupDigits(sent.sizeBytes)} sent` };
  return { intact: false, reason: `the body does not match seed ${got.probe.seed} (${groupDigits(body)} body bytes): changed on the way` };
}

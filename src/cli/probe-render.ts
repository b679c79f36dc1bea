/**
 * Terminal rendering of one probe: a head line, a line per stage as each ends, the transcript when asked for,
 * then the details and the outcome line last.
 */
import type { Arrival, ProbeResult, ProbeSpec, Stage, TranscriptLine } from '../model.js';
import { describeArrival } from '../arrival/record.js';
import { redactProxy, type ProbeOptions } from '../probe/index.js';
import { targetLabel } from '../probe/session.js';
import { formatTranscript } from '../probe/transcript.js';
import { formatMs, formatSize, groupDigits } from '../units.js';
import { clockMs } from '../clock.js';

interface Head { probeId: string; target: string; path: string; proxy?: string; sizeBytes: number }

export function headLine(h: Head): string {
  const via = h.proxy ? ` via ${h.proxy}` : '';
  return `probe ${h.probeId} → ${h.target}  path ${h.path}${via}  size ${formatSize(h.sizeBytes)} (${groupDigits(h.sizeBytes)} bytes)\n`;
}

export function stageLine(stage: Stage, ms: number): string {
  return `  ${stage.padEnd(9)} ${formatMs(ms).padStart(9)}\n`;
}

/** Everything after the stage lines: addresses, TLS, body, reply, TCP evidence, and the outcome line last. */
export function renderProbeTail(r: ProbeResult): string {
  const lines: string[] = [];
  if (r.localAddress) lines.push(`  ${r.localAddress}:${r.localPort} → ${r.remoteAddress}:${r.remotePort}${r.server && r.server !== r.target ? ` (${r.server})` : ''}`);
  if (r.tls) {
    const v = r.tls.authorized ? 'certificate verified' : r.tls.authorizationError ? `certificate NOT verified: ${r.tls.authorizationError}` : 'certificate not verified';
    lines.push(`  tls: ${r.tls.version} ${r.tls.cipher}, ${v}`);
  }
  if (r.message) {
    const att = r.message.attachments?.length ? `, ${r.message.attachments.map((a) => `${a.filename} (${a.contentType}, ${groupDigits(a.bytes)} bytes)`).join(', ')}` : '';
    const pad = r.message.paddingBytes ? `, padded by ${groupDigits(r.message.paddingBytes)} bytes` : '';
    lines.push(`  message: ${r.message.source}, ${groupDigits(r.sizeBytes)} bytes (${groupDigits(r.message.wireBytes)} on the wire)${pad}${att}`);
  }
  if (r.bodyBytesWritten !== undefined) {
    const ms = r.stages.body;
    const rate = r.outcome === 'delivered' && ms && ms > 0 ? `, ${((r.sizeBytes / ms) * 1000 / 1e6).toFixed(1)} MB/s` : '';
    lines.push(`  body: ${groupDigits(r.bodyBytesWritten)} bytes accepted by the kernel${rate}`);
  }
  if (r.reply) lines.push(`  last reply: ${r.reply.code}${r.reply.enhanced ? ` ${r.reply.enhanced}` : ''} ${r.reply.text.split('\n')[0]!.replace(/^\d\.\d+\.\d+\s*/, '')}`);
  lines.push(...tcpLines(r));
  lines.push(outcomeLine(r));
  return `${lines.join('\n')}\n`;
}

function tcpLines(r: ProbeResult): string[] {
  const lines: string[] = [];
  if (r.tcp) {
    const t = r.tcp;
    const parts: string[] = [];
    if (t.bytesAcked !== undefined) parts.push(`acked ${groupDigits(t.bytesAcked)}`);
    if (t.bytesSent !== undefined) parts.push(`sent ${groupDigits(t.bytesSent)}`);
    if (t.unacked !== undefined) parts.push(`unacked ${t.unacked}`);
    if (t.retrans !== undefined) parts.push(`retrans ${t.retrans}/${t.retransTotal ?? '?'}`);
    if (t.sndWnd !== undefined) parts.push(`snd_wnd ${t.sndWnd}`);
    if (t.rttMs !== undefined) parts.push(`rtt ${t.rttMs}ms`);
    if (t.pmtu !== undefined) parts.push(`pmtu ${t.pmtu}`);
    lines.push(`  tcp at ${t.at}: ${parts.join(', ')}`);
  } else if (r.tcpUnavailable && r.outcome !== 'delivered') {
    lines.push(`  tcp: unavailable (${r.tcpUnavailable})`);
  }
  if (r.hostCounters && r.outcome !== 'delivered') {
    const d = Object.entries(r.hostCounters.deltas).map(([k, v]) => `${k.replace(/^Tcp(Ext)?\./, '')} +${groupDigits(v)}`);
    lines.push(`  host-wide TCP counters over ${formatMs(r.hostCounters.intervalMs)} (every connection of this host, not only this probe): ${d.length ? d.join(', ') : 'no rise'}`);
  }
  if (r.capture) lines.push(`  capture: ${r.capture}`);
  if (r.captureError) lines.push(`  capture failed: ${r.captureError}`);
  return lines;
}

function outcomeLine(r: ProbeResult): string {
  if (r.outcome === 'delivered') return `✓ delivered in ${formatMs(r.durationMs)}`;
  if (r.outcome === 'quit-after') return `✓ quit after ${r.quitAfter} (--quit-after) in ${formatMs(r.durationMs)}: nothing was sent after it`;
  if (r.outcome === 'aborted') return `✗ aborted in ${r.stage ?? '?'} after ${formatMs(r.durationMs)} (interrupted): the stages above are what was measured`;
  const kind = r.stallKind ? ` (${r.stallKind})` : '';
  return `✗ ${r.outcome}${kind} in ${r.stage ?? '?'} after ${formatMs(r.durationMs)}: ${r.error?.message ?? ''}${r.error?.lastCommand ? ` (last command: ${r.error.lastCommand})` : ''}`;
}

type Writable = { write: (s: string) => unknown };

/**
 * Live output of a running probe: the head line at once, each stage line when its stage ends (and the transcript
 * lines as they happen) on `out`; on a TTY, a transient "… stage elapsed" ticker on `ticker` so a stall is
 * visible while it happens. The caller prints `renderProbeTail(result)` at the end.
 */
export function liveProbePrinter(spec: ProbeSpec, o: { out: Writable; ticker?: Writable; transcript: boolean }) {
  o.out.write(headLine({ probeId: spec.probeId, target: targetLabel(spec.target), path: spec.path.name, sizeBytes: spec.sizeBytes, ...(spec.path.proxy ? { proxy: redactProxy(spec.path.proxy) } : {}) }));
  let stage = '';
  let since = clockMs();
  const clear = () => o.ticker?.write('\r\x1b[K');
  const timer = o.ticker ? setInterval(() => o.ticker!.write(`\r\x1b[K  … ${stage.padEnd(9)} ${formatMs(clockMs() - since)}`), 200) : undefined;
  timer?.unref();
  const print = (s: string) => {
    clear();
    o.out.write(s);
  };
  const hooks: Pick<ProbeOptions, 'onStage' | 'onStageEnd' | 'onTranscript'> = {
    onStage: (e) => {
      stage = e.stage;
      since = clockMs();
    },
    onStageEnd: (e) => print(stageLine(e.stage, e.ms)),
  };
  if (o.transcript) hooks.onTranscript = (l: TranscriptLine) => print(`${formatTranscript([l], formatMs)[0]}\n`);
  return {
    hooks,
    stop: () => {
      if (timer) clearInterval(timer);
      clear();
    },
  };
}

/** `✓ arrived in INBOX 1.2s after acceptance, whole (…)`, `✗ not in the mailbox: …`, `~ arrived in Junk …`. */
export function arrivalOutcomeLine(a: Arrival): string {
  const mark = !a.found || !a.intact ? '✗' : a.folder && /junk|spam/i.test(a.folder) ? '~' : '✓';
  return `${mark} ${a.found ? 'arrived ' : ''}${describeArrival(a)}`;
}

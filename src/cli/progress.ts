/**
 * Progress of a run on stderr, as a subscriber of the runner's events.
 * - on a terminal: one bar redrawn in place at most ~10×/s:
 *     `[#########...........] 37/120  delivered 30  stalled 7  in flight 4  ETA 12s`
 * - otherwise (a log, a pipe): one plain line per finished probe:
 *     `probe 12/120 via-lb 64KiB stalled@body 1.52s`
 */
import type { Writable } from 'node:stream';
import type { Outcome, ProbeResult } from '../model.js';
import type { RunEmitter, RunEvents } from '../run/index.js';
import { formatMs, formatSize } from '../units.js';
import { clockMs } from '../clock.js';

export interface ProgressOptions {
  stream: Writable & { isTTY?: boolean; columns?: number };
  /** Draw a bar in place (default: the stream is a TTY). */
  tty?: boolean;
  /** Minimum time between redraws of the bar, ms (default 100). */
  redrawMs?: number;
}

export interface Progress {
  /** Print a line above the bar (the bar is redrawn below it). */
  line(text: string): void;
  /** Remove the bar and stop redrawing; listeners are removed. */
  stop(): void;
}

const ORDER: Outcome[] = ['delivered', 'stalled', 'timeout', 'reset', 'rejected', 'refused', 'unreachable', 'tls-error', 'protocol-error', 'dns-error'];

/** `stalled(no-ack)@body`, `rejected 550@rcpt`, `delivered`. */
export function outcomeLabel(r: ProbeResult): string {
  if (r.outcome === 'delivered') return 'delivered';
  const code = r.outcome === 'rejected' && r.reply?.code ? ` ${r.reply.code}` : '';
  const kind = r.outcome === 'stalled' && r.stallKind ? `(${r.stallKind})` : '';
  return `${r.outcome}${kind}${code}${r.stage ? `@${r.stage}` : ''}`;
}

/** `1m05s`, `12s`: an ETA. */
export function formatEta(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

/** The bar line, without cursor control. */
export function renderBar(p: { done: number; total: number; counts: Partial<Record<Outcome, number>>; inFlight: number; etaMs?: number; width?: number }): string {
  const w = Math.max(10, Math.min(30, p.width ?? 20));
  const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 1;
  const filled = Math.round(frac * w);
  const parts = [`[${'#'.repeat(filled)}${'.'.repeat(w - filled)}] ${p.done}/${p.total}`];
  for (const o of ORDER) {
    const n = p.counts[o] ?? 0;
    if (n > 0 || o === 'delivered') parts.push(`${o} ${n}`);
  }
  if (p.inFlight > 0) parts.push(`in flight ${p.inFlight}`);
  if (p.etaMs !== undefined) parts.push(`ETA ${formatEta(p.etaMs)}`);
  return parts.join('  ');
}

/** Subscribe a progress display to a run's events. */
export function attachProgress(emitter: RunEmitter, opts: ProgressOptions): Progress {
  const out = opts.stream;
  const tty = opts.tty ?? !!out.isTTY;
  const redrawMs = opts.redrawMs ?? 100;
  let total = 0;
  let done = 0;
  let sessionStartDone = 0;
  let t0 = clockMs();
  let manyTargets = false;
  let inFlight = 0;
  const counts: Partial<Record<Outcome, number>> = {};
  let shown = false;
  let lastDraw = 0;
  let pending: NodeJS.Timeout | undefined;
  let stopped = false;

  const write = (s: string): void => {
    out.write(s);
  };
  const clear = (): void => {
    if (tty && shown) write('\r\x1b[K');
    shown = false;
  };
  const draw = (): void => {
    if (stopped || !tty) return;
    lastDraw = clockMs();
    const doneHere = done - sessionStartDone;
    const left = total - done;
    const elapsed = clockMs() - t0;
    const etaMs = doneHere > 0 && left > 0 ? (elapsed / doneHere) * left : left === 0 ? 0 : undefined;
    let text = renderBar({ done, total, counts, inFlight, ...(etaMs === undefined ? {} : { etaMs }) });
    const cols = out.columns ?? 0;
    if (cols > 10 && text.length > cols - 1) text = text.slice(0, cols - 1);
    write(`\r\x1b[K${text}`);
    shown = true;
  };
  const schedule = (): void => {
    if (!tty || stopped || pending) return;
    const wait = Math.max(0, redrawMs - (clockMs() - lastDraw));
    pending = setTimeout(() => {
      pending = undefined;
      draw();
    }, wait);
    pending.unref?.();
  };
  // keep the ETA and a stalled-looking run alive on screen even when nothing finishes for a while
  const ticker = tty ? setInterval(schedule, 1000) : undefined;
  ticker?.unref?.();

  const line = (text: string): void => {
    clear();
    write(`${text}\n`);
    if (tty && !stopped && total > 0) draw();
  };

  const onStart = (e: RunEvents['run:start']): void => {
    total = e.total;
    done = e.skipped;
    sessionStartDone = e.skipped;
    manyTargets = e.targets.length > 1;
    t0 = clockMs();
    schedule();
  };
  const onProbeStart = (): void => {
    inFlight++;
    schedule();
  };
  const onEnd = (e: RunEvents['probe:end']): void => {
    inFlight = Math.max(0, inFlight - 1);
    done = e.done;
    counts[e.result.outcome] = (counts[e.result.outcome] ?? 0) + 1;
    if (tty) return schedule();
    const r = e.result;
    const target = manyTargets ? ` → ${r.target}` : '';
    write(`probe ${e.done}/${e.total} ${r.path}${target} ${formatSize(r.sizeBytes)} ${outcomeLabel(r)} ${formatMs(r.durationMs)}\n`);
  };
  const onDropped = (): void => {
    inFlight = Math.max(0, inFlight - 1);
    schedule();
  };
  const onWarning = (e: RunEvents['run:warning']): void => line(`warning: ${e.message}`);
  const onStopping = (e: RunEvents['run:stopping']): void => {
    const secs = e.graceMs % 1000 === 0 ? `${e.graceMs / 1000}s` : formatMs(e.graceMs);
    line(
      e.inFlight > 0
        ? `stopping: waiting up to ${secs} for ${e.inFlight} probe${e.inFlight === 1 ? '' : 's'} in flight (Ctrl-C again to abandon)`
        : 'stopping: no probe in flight',
    );
  };

  emitter.on('run:start', onStart);
  emitter.on('probe:start', onProbeStart);
  emitter.on('probe:end', onEnd);
  emitter.on('probe:dropped', onDropped);
  emitter.on('run:warning', onWarning);
  emitter.on('run:stopping', onStopping);
  emitter.on('run:arrivals', (e: RunEvents['run:arrivals']) =>
    line(`waiting for ${e.waiting} accepted probe${e.waiting === 1 ? '' : 's'} to arrive in the mailbox (at most arrival.within after each; Ctrl-C stops waiting)`),
  );

  return {
    line,
    stop() {
      if (stopped) return;
      if (pending) clearTimeout(pending);
      pending = undefined;
      if (ticker) clearInterval(ticker);
      if (tty && shown && total > 0) {
        // leave the final state on screen
        draw();
        write('\n');
        shown = false;
      }
      stopped = true;
      emitter.off('run:start', onStart);
      emitter.off('probe:start', onProbeStart);
      emitter.off('probe:end', onEnd);
      emitter.off('probe:dropped', onDropped);
      emitter.off('run:warning', onWarning);
      emitter.off('run:stopping', onStopping);
    },
  };
}

// Both cores (issue 19, point 2), as a bench: 1 KiB probes to Postfix's smtp-sink spread over worker threads,
// each worker running its share with p-limit; every result is posted to the main thread, which appends it to ONE
// JSONL file (ResultsWriter, in order of completion) and emits ONE event stream (a probe-end event per result).
// Compared in the same run, alternating, with the same probes in the main thread alone.
//
//   npm run build && node bench/workers.mjs            (WORKERS=2, COUNT=3000 per round; concurrency 10 and 50)
//
// On this 2-core machine smtp-sink runs on the same cores: when the receiver is the limit, a second prober thread
// only takes CPU from it.
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import pLimit from 'p-limit';
import { fmt, loadEngine, startSmtpSink } from './_util.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(here, '../dist');
const WORKERS = Number(process.env.WORKERS ?? 2);
const COUNT = Number(process.env.COUNT ?? 3000);

const engine = () => loadEngine(DIST, 'w');

/** Probes `ids` at `concurrency`, each result handed to `onResult` as it completes. */
async function runShare(port, ids, concurrency, onResult) {
  const one = await engine();
  const limit = pLimit(concurrency);
  await Promise.all(ids.map((i) => limit(async () => onResult(await one(port, i)))));
}

if (!isMainThread) {
  const { port, ids, concurrency } = workerData;
  await runShare(port, ids, concurrency, (r) => parentPort.postMessage(r));
  parentPort.postMessage(null);
} else {
  await main();
}

/** One round: `threads` = 0 runs in the main thread; else that many workers. Results → one file, one stream. */
async function round(port, file, threads, concurrency) {
  const { ResultsWriter } = await import(pathToFileURL(join(DIST, 'run/jsonl.js')).href);
  const writer = ResultsWriter.open(file);
  const events = new EventEmitter();
  let ended = 0;
  events.on('probe-end', () => ended++);
  const onResult = (r) => {
    writer.append(r);
    events.emit('probe-end', r);
  };
  const ids = Array.from({ length: COUNT }, (_, i) => i);
  const t0 = performance.now();
  if (threads === 0) await runShare(port, ids, concurrency, onResult);
  else {
    await Promise.all(
      Array.from({ length: threads }, (_, w) => {
        const share = ids.filter((i) => i % threads === w);
        const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { port, ids: share, concurrency: Math.ceil(concurrency / threads) } });
        return new Promise((res, rej) => {
          worker.on('message', (r) => (r === null ? res() : onResult(r)));
          worker.on('error', rej);
        });
      }),
    );
  }
  const perSec = COUNT / ((performance.now() - t0) / 1000);
  writer.close();
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  const delivered = lines.filter((l) => JSON.parse(l).outcome === 'delivered').length;
  return { perSec, lines: lines.length, delivered, ended };
}

async function main() {
  const sink = await startSmtpSink();
  if (!sink) {
    console.log('smtp-sink not installed (apt-get install postfix): skipped');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'workers-'));
  try {
    console.log(`1 KiB probes to smtp-sink, ${fmt(COUNT)} a round, sessions/s (median of 3 alternating rounds)`);
    for (const c of [10, 50]) {
      const one = [];
      const many = [];
      let check;
      for (let k = 0; k < 3; k++) {
        one.push((await round(sink.port, join(dir, `one-${c}-${k}.jsonl`), 0, c)).perSec);
        const r = await round(sink.port, join(dir, `w-${c}-${k}.jsonl`), WORKERS, c);
        many.push(r.perSec);
        check = r;
      }
      const med = (xs) => [...xs].sort((a, b) => a - b)[1];
      console.log(
        `  concurrency ${String(c).padEnd(3)} main thread ${fmt(med(one)).padStart(6)}/s   ${WORKERS} workers ${fmt(med(many)).padStart(6)}/s   ` +
          `${fmt(med(many) / med(one), 2)}×   (one file: ${check.lines} lines, ${check.delivered} delivered; one stream: ${check.ended} probe-end events)`,
      );
    }
  } finally {
    sink.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The two-ended view on a lab topology: a client sends a 1 MiB probe to the sink directly (control) and through
 * the lab's fault relay with `blackhole-after=64KiB` (incident 1: the load balancer that dropped DATA segments).
 * The sender sees a stall waiting for the final reply with every byte "written"; the sink saw exactly the bytes
 * the relay let through. The join says so, and `mxprobe compare --sink` prints it.
 */
import { runMain } from '../helpers/cli.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import type { ProbeResult } from '../../src/model.js';
import { describeSinkEvidence, joinSink, loadSinkRecords, sinkEvidenceByCell, startSink, type Sink, type SinkEvidenceGroup } from '../../src/sink/index.js';
import { openTransaction, probeMessage } from './sink-helpers.js';

const KiB = 1024;
const MiB = 1024 * 1024;

const cli = runMain;

/** What the sending side measured, shaped as the prober reports it (the engine is not under test here). */
function senderResult(over: Partial<ProbeResult> & { probeId: string; path: string }): ProbeResult {
  return {
    runId: 'run-join',
    target: 'sink',
    sizeBytes: MiB,
    seed: 0,
    outcome: 'delivered',
    stages: {},
    startedAt: new Date().toISOString(),
    durationMs: 100,
    bytesWritten: MiB + 60,
    bodyBytesWritten: MiB,
    bytesRead: 400,
    ...over,
  };
}

describe('sender/receiver join on a lab topology', () => {
  let dir: string;
  let sink: Sink;
  let relay: Relay;
  let recordFile: string;
  const results: ProbeResult[] = [];
  let commandBytes = 0;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxprobe-sink-join-'));
    recordFile = path.join(dir, 'sink.jsonl');
    sink = await startSink({ record: recordFile });
    relay = await startRelay({ targetHost: sink.host, targetPort: sink.port, clientToServer: parseFault('blackhole-after=64KiB') });

    for (let i = 0; i < 3; i++) {
      // control: straight to the sink
      const id = `p-direct-${i}`;
      const d = await openTransaction(sink.port);
      await d.streamMessage(probeMessage(id, MiB, 500 + i).chunks() as Iterable<Buffer>);
      await d.write(Buffer.from('.\r\n'));
      const reply = await d.reply();
      d.destroy();
      results.push(senderResult({ probeId: id, path: 'direct', seed: 500 + i, reply: { code: reply.code, text: 'OK' } }));

      // via the load balancer that drops DATA after 64 KiB
      const vid = `p-vialb-${i}`;
      const v = await openTransaction(relay.port);
      commandBytes = v.commandBytesWritten;
      const written = await v.streamMessage(probeMessage(vid, MiB, 600 + i).chunks() as Iterable<Buffer>);
      await v.write(Buffer.from('.\r\n'));
      // the final reply never comes: after the stall window the sender gives up (as the prober does)
      await expect(v.reply(1_500)).rejects.toThrow(/no reply within/);
      v.destroy();
      results.push(senderResult({ probeId: vid, path: 'via-lb', seed: 600 + i, outcome: 'stalled', stage: 'dataAck', bodyBytesWritten: written, durationMs: 1_600 }));
    }
    for (const r of results) expect(await sink.waitFor(r.probeId, 10_000)).toBeDefined();
  }, 120_000);

  afterAll(async () => {
    await relay?.close();
    await sink?.close();
    await rm(dir, { recursive: true, force: true });
  });

  test('the receiver saw exactly the bytes the relay let through; the join says where the loss is', () => {
    const joined = joinSink(results, sink.records());
    const expectedAtSink = 64 * KiB - commandBytes;
    for (const r of joined) {
      if (r.path === 'direct') {
        expect(r.sink).toMatchObject({ bodyBytes: MiB, whole: true, verified: true, ended: 'completed', replyCode: 250 });
        expect(describeSinkEvidence(r)).toBeUndefined();
      } else {
        expect(r.sink).toMatchObject({ bodyBytes: expectedAtSink, expectedBytes: MiB, whole: false });
        expect(r.sink!.lastByteAfterDataMs).toBeGreaterThanOrEqual(0);
        const text = describeSinkEvidence(r)!;
        expect(text).toMatch(
          new RegExp(`^the receiver got ${expectedAtSink.toLocaleString('en-US')} of 1,048,576 bytes; last byte \\d+(\\.\\d)? m?s after DATA \\(the sender had handed 1,048,576 to its kernel\\) → the loss is between the two ends, not in the receiver$`),
        );
      }
    }
    const groups = sinkEvidenceByCell(joined);
    expect(groups).toHaveLength(1);
    expect(groups[0]).toMatchObject({ path: 'via-lb', probes: 3, withRecord: 3, outcome: 'stalled', bodyBytes: { min: expectedAtSink, max: expectedAtSink } });
  });

  test('mxprobe compare --sink FILE and --sink URL print the receiver view and add it to the JSON', async () => {
    const resultsFile = path.join(dir, 'results.jsonl');
    await writeFile(resultsFile, results.map((r) => `${JSON.stringify(r)}\n`).join(''));
    // the record file has everything once the sink's writes are flushed: compare it with memory
    await new Promise((r) => setTimeout(r, 200));
    expect((await loadSinkRecords(recordFile)).length).toBe(sink.records().length);

    const human = await cli('compare', resultsFile, '--sink', recordFile, '--no-color');
    expect(human.stderr).toBe('');
    expect(human.stdout).toContain('What the receiver saw of the probes that did not deliver (sink records joined by probe id):');
    const n = (64 * KiB - commandBytes).toLocaleString('en-US');
    expect(human.stdout).toContain(`  via-lb → sink 1MiB: 3 stalled, the receiver has 3 (${n} bytes)`);
    expect(human.stdout).toMatch(new RegExp(`    e\\.g\\. p-vialb-\\d: the receiver got ${n} of 1,048,576 bytes`));

    const json = await cli('compare', resultsFile, '--sink', recordFile, '--json');
    const doc = JSON.parse(json.stdout) as { receiver?: SinkEvidenceGroup[] };
    expect(doc.receiver).toHaveLength(1);
    expect(doc.receiver![0]).toMatchObject({ path: 'via-lb', withRecord: 3 });

    // without --sink: no receiver section
    const plain = await cli('compare', resultsFile, '--json');
    expect('receiver' in (JSON.parse(plain.stdout) as object)).toBe(false);
  });

  test('compare --sink http://… joins records fetched from a running sink', async () => {
    const live = await startSink({ http: {} });
    try {
      const id = 'p-http-vialb';
      const v = await openTransaction(live.port);
      await v.streamMessage(probeMessage(id, MiB, 7).chunks() as Iterable<Buffer>, 20_000);
      await new Promise((r) => setTimeout(r, 150));
      v.destroy();
      await live.waitFor(id, 10_000);
      const resultsFile = path.join(dir, 'results-http.jsonl');
      await writeFile(resultsFile, `${JSON.stringify(senderResult({ probeId: id, path: 'via-lb', outcome: 'stalled', stage: 'body', bodyBytesWritten: 20_000 }))}\n`);
      const r = await cli('compare', resultsFile, '--sink', `http://127.0.0.1:${live.httpPort}`, '--no-color');
      expect(r.stdout).toContain(`e.g. ${id}: the receiver got 20,000 of 1,048,576 bytes`);
    } finally {
      await live.close();
    }
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { loadSinkRecords, parseSinkRecords, RecordStore, SinkRecordsError, type SinkRecord } from '../../src/sink/records.js';

function rec(i: number, over: Partial<SinkRecord> = {}): SinkRecord {
  return {
    kind: 'probe',
    probeId: `p-${i}`,
    sessionId: `s-${i}`,
    remoteAddress: '127.0.0.1',
    remotePort: 1000 + i,
    startedAt: '2025-01-01T00:00:00.000Z',
    commands: [],
    bodyBytes: i,
    whole: true,
    ended: 'completed',
    ...over,
  };
}

describe('RecordStore', () => {
  test('keeps the latest max records in order, and forgets evicted probe ids', () => {
    const s = new RecordStore(3);
    for (let i = 0; i < 5; i++) s.add(rec(i));
    expect(s.all().map((r) => r.probeId)).toEqual(['p-2', 'p-3', 'p-4']);
    expect(s.size).toBe(3);
    expect(s.byProbe('p-1')).toBeUndefined();
    expect(s.byProbe('p-4')?.bodyBytes).toBe(4);
  });

  test('a newer record for the same probe id survives the eviction of the older one', () => {
    const s = new RecordStore(2);
    s.add(rec(1));
    s.add(rec(1, { bodyBytes: 99 }));
    s.add(rec(2));
    expect(s.byProbe('p-1')?.bodyBytes).toBe(99);
  });

  test('session and message records are not indexed by probe id', () => {
    const s = new RecordStore(10);
    s.add(rec(1, { kind: 'session' }));
    expect(s.byProbe('p-1')).toBeUndefined();
  });

  test('waitFor: resolves on arrival, on timeout with undefined, and all waiters on release', async () => {
    const s = new RecordStore(10);
    const a = s.waitFor('p-1', 5_000);
    const b = s.waitFor('p-1', 5_000);
    s.add(rec(1));
    expect((await a)?.probeId).toBe('p-1');
    expect((await b)?.probeId).toBe('p-1');
    expect((await s.waitFor('p-1', 0))?.probeId).toBe('p-1');
    expect(await s.waitFor('p-2', 20)).toBeUndefined();
    const c = s.waitFor('p-3', 60_000);
    s.releaseWaiters();
    expect(await c).toBeUndefined();
  });

  test('subscribers see every record; a throwing subscriber does not break the store', () => {
    const s = new RecordStore(10);
    const seen: string[] = [];
    s.subscribe(() => {
      throw new Error('bug');
    });
    const off = s.subscribe((r) => seen.push(r.sessionId));
    s.add(rec(1));
    off();
    s.add(rec(2));
    expect(seen).toEqual(['s-1']);
    expect(s.size).toBe(2);
  });

  test('rejects a nonsensical cap', () => {
    expect(() => new RecordStore(0)).toThrow(/maxRecords/);
  });
});

describe('parseSinkRecords / loadSinkRecords', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'mxprobe-sink-records-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const lines = (rs: unknown[]) => rs.map((r) => `${JSON.stringify(r)}\n`).join('');

  test('round trip through a file, blank lines ignored, a truncated last line skipped', async () => {
    const f = path.join(dir, 'ok.jsonl');
    await writeFile(f, `${lines([rec(1), rec(2)])}\n{"kind":"probe","sessi`);
    expect(await loadSinkRecords(f)).toEqual([rec(1), rec(2)]);
    expect(parseSinkRecords(`${lines([rec(1)])}{"kind":`, 'x')).toEqual([rec(1)]);
  });

  test('a bad line in the middle names file:line', async () => {
    const f = path.join(dir, 'bad.jsonl');
    await writeFile(f, `${lines([rec(1)])}not json\n${lines([rec(2)])}`);
    await expect(loadSinkRecords(f)).rejects.toThrow(`${f}:2: not JSON`);
    expect(() => parseSinkRecords(`${lines([rec(1)])}not json\n${lines([rec(2)])}`, 'src')).toThrow('src:2: not JSON');
  });

  test('a probe result file passed as sink records gets a precise error', async () => {
    const f = path.join(dir, 'results.jsonl');
    await writeFile(f, lines([{ probeId: 'p-1', outcome: 'stalled', stages: {}, sizeBytes: 1 }]));
    const err = await loadSinkRecords(f).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SinkRecordsError);
    expect((err as SinkRecordsError).code).toBe('EINPUT');
    expect((err as Error).message).toContain(`${f}:1: this is a probe result (the sender's side), not a sink record`);
  });

  test('objects that are not records are refused', () => {
    expect(() => parseSinkRecords('{"kind":"nope","bodyBytes":1,"sessionId":"s"}\n', 'f')).toThrow('f:1: not a sink record ("kind" must be probe, message or session)');
    expect(() => parseSinkRecords('{"kind":"probe"}\n', 'f')).toThrow('missing "bodyBytes" or "sessionId"');
    expect(() => parseSinkRecords('[1]\n', 'f')).toThrow('expected a JSON object');
  });

  test('a missing file is a source error', async () => {
    const missing = await loadSinkRecords(path.join(dir, 'nope.jsonl')).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'ESOURCE' });
    expect((missing as Error).message).toContain('sink records file not found');
  });
});

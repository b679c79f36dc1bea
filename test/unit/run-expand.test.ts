import { describe, expect, it } from 'vitest';
import { expandMxTargets, expandPlan, newRunId, probeKey, probeSeed, RunError, targetLabel } from '../../src/run/index.js';
import { makePlan } from './run-fixtures.js';

const RUN = '20261123T181500Z-ab12';

describe('expandPlan', () => {
  it('makes one spec per (path, target, size, repeat)', () => {
    const plan = makePlan({
      targets: [
        { host: '127.0.0.1', port: 2525, tls: 'none' },
        { name: 'mx-b', host: '127.0.0.2', port: 25, tls: 'starttls' },
      ],
    });
    const specs = expandPlan(plan, { runId: RUN });
    expect(specs).toHaveLength(2 * 2 * 3 * 4);
    const keys = new Set(specs.map((s) => s.key));
    expect(keys.size).toBe(specs.length);
    for (const path of ['direct', 'via-lb'])
      for (const target of ['127.0.0.1:2525', 'mx-b'])
        for (const size of [1024, 4096, 65536])
          for (let r = 0; r < 4; r++) expect(keys.has(`${path}|${target}|${size}|${r}`)).toBe(true);
    // every spec carries what the engine needs from the plan
    for (const s of specs) {
      expect(s.runId).toBe(RUN);
      expect(s.envelope).toEqual(plan.envelope);
      expect(s.timeouts).toEqual(plan.timeouts);
      expect(s.order).toBe(specs.indexOf(s));
    }
  });

  it('gives stable, unique probe ids and seeds derived from the key, not the position', () => {
    const a = expandPlan(makePlan(), { runId: RUN });
    const b = expandPlan(makePlan({ seed: 7 }), { runId: RUN }); // other order
    expect(new Set(a.map((s) => s.probeId)).size).toBe(a.length);
    for (const s of a) {
      expect(s.probeId).toMatch(new RegExp(`^${RUN}-[0-9a-f]{10}$`));
      expect(probeKey(s)).toBe(s.key);
      const twin = b.find((x) => x.key === s.key)!;
      expect(twin.probeId).toBe(s.probeId);
      // the message seed depends on the plan seed and the key
      expect(s.seed).toBe(probeSeed(42, s.key));
      expect(twin.seed).toBe(probeSeed(7, s.key));
    }
    expect(new Set(a.map((s) => s.seed)).size).toBeGreaterThan(a.length - 2);
  });

  it('is deterministic for a seed, and differs between seeds', () => {
    const order = (seed: number) => expandPlan(makePlan({ seed }), { runId: RUN }).map((s) => s.key);
    expect(order(42)).toEqual(order(42));
    expect(order(42)).not.toEqual(order(43));
  });

  it('interleaves cells: each round holds every cell once, in shuffled order', () => {
    const plan = makePlan({ repeat: 5 });
    const specs = expandPlan(plan, { runId: RUN });
    const cells = 2 * 1 * 3;
    for (let round = 0; round < 5; round++) {
      const slice = specs.slice(round * cells, (round + 1) * cells);
      expect(new Set(slice.map((s) => `${s.path.name}|${s.sizeBytes}`)).size).toBe(cells);
      expect(slice.every((s) => s.repeat === round)).toBe(true);
    }
    // the first few probes already cover both paths, and the order is not the plain nested-loop order
    expect(new Set(specs.slice(0, 4).map((s) => s.path.name)).size).toBe(2);
    const rounds = Array.from({ length: 5 }, (_, r) => specs.slice(r * cells, (r + 1) * cells).map((s) => `${s.path.name}|${s.sizeBytes}`).join(','));
    expect(new Set(rounds).size).toBeGreaterThan(1);
  });

  it('copies optional plan settings onto every spec', () => {
    const specs = expandPlan(
      makePlan({ ehloName: 'probe.example', insecure: true, tcpSnapshotMinBytes: 1, auth: { user: 'u', passEnv: 'P' }, repeat: 1 }),
      { runId: RUN },
    );
    expect(specs[0]).toMatchObject({ ehloName: 'probe.example', insecure: true, tcpSnapshotMinBytes: 1, auth: { user: 'u', passEnv: 'P' } });
  });
});

describe('labels and run ids', () => {
  it('labels targets like the engine does', () => {
    expect(targetLabel({ host: 'mx.example', port: 25, tls: 'none' })).toBe('mx.example:25');
    expect(targetLabel({ mx: 'example.com', port: 25, tls: 'none' })).toBe('mx:example.com');
    expect(targetLabel({ name: 'gmail', mx: 'gmail.com', port: 25, tls: 'none' })).toBe('gmail');
  });

  it('makes sortable, filesystem-safe run ids', () => {
    const id = newRunId(new Date('2026-11-23T18:15:00.999Z'));
    expect(id).toMatch(/^20261123T181500Z-[0-9a-f]{4}$/);
    expect(newRunId(new Date('2026-11-23T18:15:01Z')) > id).toBe(true);
  });
});

describe('expandMxTargets', () => {
  it('expands allMx targets to one target per MX host, in preference order', async () => {
    const out = await expandMxTargets(
      [
        { mx: 'example.com', allMx: true, port: 25, tls: 'starttls' },
        { host: '127.0.0.1', port: 2525, tls: 'none' },
        { mx: 'other.example', port: 25, tls: 'none' },
      ],
      async () => [
        { exchange: 'mx2.example.com', priority: 20 },
        { exchange: 'mx1.example.com.', priority: 10 },
      ],
    );
    expect(out.map(targetLabel)).toEqual(['mx:example.com/mx1.example.com', 'mx:example.com/mx2.example.com', '127.0.0.1:2525', 'mx:other.example']);
    expect(out[0]).toEqual({ name: 'mx:example.com/mx1.example.com', host: 'mx1.example.com', port: 25, tls: 'starttls' });
  });

  it('says which domain failed to resolve, and recognises a null MX', async () => {
    const t = [{ name: 'prov', mx: 'nope.example', allMx: true, port: 25, tls: 'none' as const }];
    const nx = Object.assign(new Error('queryMx ENOTFOUND nope.example'), { code: 'ENOTFOUND' });
    await expect(expandMxTargets(t, async () => Promise.reject(nx))).rejects.toThrow(/target prov: cannot list the MX hosts of nope\.example.*no MX records/);
    await expect(expandMxTargets(t, async () => [{ exchange: '', priority: 0 }])).rejects.toThrow(/null MX/);
    await expect(expandMxTargets(t, async () => [])).rejects.toBeInstanceOf(RunError);
  });
});

import { describe, expect, it } from 'vitest';
import { evaluateThresholds } from '../../src/analyze/verify.js';
import { ServeMetrics } from '../../src/serve/metrics.js';
import { KiB, probe } from './fixtures.js';

describe('ServeMetrics: a gauge per threshold', () => {
  it('exports 1/0 per threshold and the measured value (seconds, or a fraction for rates), replaced on every window', async () => {
    const m = new ServeMetrics({ defaultMetrics: false });
    const rs = [10, 20, 30].map((ms) => ({ ...probe({ sizeBytes: 4 * KiB }), stages: { connect: 1, body: ms }, durationMs: ms + 1 }));
    m.setThresholds(evaluateThresholds(rs, [
      { source: 'body: p95 < 25ms', metric: 'body', stat: 'p95', op: '<', value: 25 },
      { source: 'stall_rate < 1%', metric: 'stall_rate', stat: 'rate', op: '<', value: 0.01 },
    ]));
    let text = await m.text();
    expect(text).toMatch(/^mxprobe_threshold_ok\{threshold="body: p95 < 25ms"\} 0$/m);
    expect(text).toMatch(/^mxprobe_threshold_ok\{threshold="stall_rate < 1%"\} 1$/m);
    expect(text).toMatch(/^mxprobe_threshold_value\{threshold="body: p95 < 25ms"\} 0\.029$/m);
    expect(text).toMatch(/^mxprobe_threshold_value\{threshold="stall_rate < 1%"\} 0$/m);
    m.setThresholds([]);
    text = await m.text();
    expect(text).not.toMatch(/^mxprobe_threshold_ok\{/m);
  });
});

describe('ServeMetrics: arrivals', () => {
  it('observes the time to the mailbox by folder, and 1/0 for found and intact per cell', async () => {
    const m = new ServeMetrics({ defaultMetrics: false });
    const r = { ...probe({ path: 'via-lb', target: 'mx', sizeBytes: 64 * KiB }) };
    m.observeArrival(r, { found: true, latencyMs: 4100, folder: 'Junk', intact: false, reason: 'truncated: 1 bytes stored of 65,536 sent' });
    let text = await m.text();
    expect(text).toMatch(/^mxprobe_arrival_seconds_bucket\{le="5",path="via-lb",target="mx",size="64KiB",folder="Junk"\} 1$/m);
    expect(text).toMatch(/^mxprobe_arrival_seconds_bucket\{le="2.5",path="via-lb",target="mx",size="64KiB",folder="Junk"\} 0$/m);
    expect(text).toMatch(/^mxprobe_arrival_found\{path="via-lb",target="mx",size="64KiB"\} 1$/m);
    expect(text).toMatch(/^mxprobe_arrival_intact\{path="via-lb",target="mx",size="64KiB"\} 0$/m);
    m.observeArrival(r, { found: false, reason: 'not found in INBOX within 5m' });
    text = await m.text();
    expect(text).toMatch(/^mxprobe_arrival_found\{path="via-lb",target="mx",size="64KiB"\} 0$/m);
    expect(text).toMatch(/^mxprobe_arrival_seconds_count\{path="via-lb",target="mx",size="64KiB",folder="Junk"\} 1$/m);
  });
});

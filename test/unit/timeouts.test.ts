import { describe, expect, test } from 'vitest';
import { DEFAULT_TIMEOUTS } from '../../src/model.js';
import { stallWindowConflicts } from '../../src/timeouts.js';
import { formatDuration, parseDuration } from '../../src/units.js';

describe('stallWindowConflicts (shared by profiles and probe flags)', () => {
  test('the defaults are consistent; a window equal to or above a deadline names each such deadline', () => {
    expect(stallWindowConflicts(DEFAULT_TIMEOUTS)).toEqual([]);
    // dns and connect are not watched (no connection to read yet): a 30 s window is fine beside their 30 s deadlines
    expect(stallWindowConflicts({ ...DEFAULT_TIMEOUTS, stallMs: 30_000 })).toEqual([]);
    expect(stallWindowConflicts({ ...DEFAULT_TIMEOUTS, stallMs: 120_000 }).map((c) => c.key)).toEqual(['data']);
    expect(stallWindowConflicts({ ...DEFAULT_TIMEOUTS, bodyMs: 5000, stallMs: 6000 })).toEqual([{ key: 'body', field: 'bodyMs', ms: 5000 }]);
  });
});

describe('formatDuration', () => {
  test('exact and in the largest whole unit, and parses back', () => {
    expect([1500, 10_000, 100_000, 120_000, 300_000, 3_600_000, 90_061].map(formatDuration)).toEqual(['1500ms', '10s', '100s', '2m', '5m', '1h', '90061ms']);
    for (const ms of [1, 999, 1000, 61_000, 7_200_000]) expect(parseDuration(formatDuration(ms))).toBe(ms);
  });
});

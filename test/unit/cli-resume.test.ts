import { describe, expect, test } from 'vitest';
import { resumeCommand } from '../../src/cli/run.js';
import { formatSizeExact, parseSize } from '../../src/units.js';

describe('resumeCommand', () => {
  test('no overrides: the profile and --resume FILE', () => {
    expect(resumeCommand('p.yaml', {}, 'results/r.jsonl')).toBe('mxprobe run p.yaml --resume results/r.jsonl');
  });

  test('every plan override, sizes exact, --force kept, odd names quoted for the shell', () => {
    const cmd = resumeCommand("my lab's.yaml", { repeat: 10, sizes: [1024, 65536, 1500, 3 * 1024 * 1024], paths: ['via-lb', 'direct'], seed: 7, concurrency: 2, force: true, json: true, quiet: true }, 'out dir/r.jsonl');
    expect(cmd).toBe("mxprobe run 'my lab'\\''s.yaml' --sizes 1KiB,64KiB,1500,3MiB --paths via-lb,direct --repeat 10 --seed 7 --concurrency 2 --force --resume 'out dir/r.jsonl'");
  });

  test('--workers is carried as given (a number, or auto: the same machine decides again)', () => {
    expect(resumeCommand('p.yaml', { concurrency: 20, workers: 2 }, 'r.jsonl')).toBe('mxprobe run p.yaml --concurrency 20 --workers 2 --resume r.jsonl');
    expect(resumeCommand('p.yaml', { workers: 'auto' }, 'r.jsonl')).toBe('mxprobe run p.yaml --workers auto --resume r.jsonl');
  });

  test('sizes written back parse to the same bytes', () => {
    for (const n of [1, 1000, 1023, 1024, 1536, 65536, 1048575, 1048576, 5 * 1024 ** 3]) expect(parseSize(formatSizeExact(n))).toBe(n);
  });
});

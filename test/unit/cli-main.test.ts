import { describe, expect, test } from 'vitest';
import { buildProgram, commandsFor } from '../../src/cli/main.js';

describe('commandsFor: which command modules a command line loads', () => {
  test('the named command only; none for a bare --version; all for help, nothing, or an unknown command', async () => {
    const all = (await buildProgram()).commands.map((c) => c.name());
    expect(commandsFor(['probe', '--host', 'h'])).toEqual(['probe']);
    expect(commandsFor(['run', 'p.yaml', '--resume', 'f'])).toEqual(['run']);
    expect(commandsFor(['--version'])).toEqual([]);
    for (const args of [[], ['--help'], ['help', 'probe'], ['porbe']]) expect(commandsFor(args).sort()).toEqual([...all].sort());
  });
});

/**
 * The run's arrival check: the plan's `arrival:` opened as one IMAP connection (src/arrival, loaded only when a plan
 * asks for it), its errors as the runner's (`EINPUT`: bad URL, password variable not set; `EENV`: the server cannot
 * be used, e.g. the login was refused — before any probe is sent).
 */
import type { Arrival, ArrivalSpec } from '../model.js';
import type { Expected } from '../arrival/watcher.js';
import { RunError } from './errors.js';

/** What the runner needs of an arrival check (`ArrivalWatcher` is one). */
export interface ArrivalCheck {
  expect(e: Expected): Promise<Arrival>;
  close(): Promise<void>;
}

export async function openArrival(spec: ArrivalSpec): Promise<ArrivalCheck> {
  const { ArrivalWatcher } = await import('../arrival/watcher.js');
  try {
    return await ArrivalWatcher.open(spec);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'EINPUT') throw new RunError('EINPUT', `nothing sent: arrival: ${(err as Error).message}`, { cause: err });
    if (code === 'EENV') throw new RunError('EENV', `nothing sent: arrival: ${(err as Error).message}`, { cause: err });
    throw err;
  }
}

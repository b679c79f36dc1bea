/** JSON Schema (draft-07, what editors support best) of the profile, generated from the zod schema. */
import * as z from 'zod';
import { ProfileSchema } from './schema.js';

const DEFAULTS: Record<string, unknown> = {
  tls: 'starttls',
  repeat: 3,
  concurrency: 4,
  seed: 1,
  insecure: false,
  tcpSnapshotMin: '64KiB',
  sizes: ['1KiB', '16KiB', '64KiB', '256KiB', '1MiB'],
  paths: [{ name: 'direct' }],
};

const TIMEOUT_DEFAULTS: Record<string, string> = {
  dns: '30s',
  connect: '30s',
  command: '5m',
  data: '2m',
  body: '3m',
  dataAck: '10m',
  stall: '10s',
  noReply: '100s',
};

type Obj = Record<string, unknown> & { properties?: Record<string, Obj> };

/**
 * The profile's JSON Schema, for editor completion and checking (VS Code YAML extension:
 * `# yaml-language-server: $schema=./mxprobe.schema.json` on the first line of a profile).
 * Strings may contain `${VAR}` / `${VAR:-default}`; numbers may be given as strings for that reason.
 */
export function profileJsonSchema(): object {
  const schema = z.toJSONSchema(ProfileSchema, { io: 'input', target: 'draft-7', unrepresentable: 'any' }) as Obj;
  const props = schema.properties ?? {};
  for (const [k, v] of Object.entries(DEFAULTS)) if (props[k]) props[k]!.default = v;
  const timeouts = props.timeouts?.properties ?? {};
  for (const [k, v] of Object.entries(TIMEOUT_DEFAULTS)) if (timeouts[k]) timeouts[k]!.default = v;
  return {
    $schema: schema.$schema,
    title: 'mxprobe profile',
    ...schema,
    // top-level `x-…` keys are free for YAML anchors (`x-common: &common …`) and notes
    patternProperties: { '^x-': {} },
  };
}

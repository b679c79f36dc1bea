/** YAML profile → validated Plan. */
export type { Plan, Threshold } from './plan.js';
export { ProfileError, formatIssue } from './errors.js';
export type { ProfileIssue } from './errors.js';
export {
  parseProfile,
  loadProfile,
  applyOverrides,
  computeProfileHash,
  DEFAULT_SIZES,
  DEFAULT_REPEAT,
  DEFAULT_CONCURRENCY,
  DEFAULT_SEED,
  SHIPPED_PROFILES_DIR,
  MAX_PROFILE_BYTES,
} from './load.js';
export type { LoadOptions, PlanOverrides } from './load.js';
export { profileJsonSchema } from './json-schema.js';
export { parseThreshold } from './fields.js';
export { interpolateString } from './interpolate.js';

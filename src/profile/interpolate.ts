/**
 * `${VAR}` / `${VAR:-default}` in profile string values, resolved from an env map.
 * `$${` writes a literal `${`. Keys are never interpolated; only string values are.
 */
import type { RawIssue } from './errors.js';

export type Env = Record<string, string | undefined>;

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Resolve one string; throws a message (string) when a variable is missing or the syntax is wrong. */
export function interpolateString(value: string, env: Env): string {
  if (!value.includes('$')) return value;
  let out = '';
  let i = 0;
  while (i < value.length) {
    const c = value[i]!;
    if (c === '$' && value[i + 1] === '$' && value[i + 2] === '{') {
      out += '${';
      i += 3;
      continue;
    }
    if (c === '$' && value[i + 1] === '{') {
      const end = value.indexOf('}', i + 2);
      if (end < 0) throw `unclosed "\${" in ${JSON.stringify(value)} (write \${NAME} or \${NAME:-default}; $\${ for a literal \${)`;
      const body = value.slice(i + 2, end);
      const sep = body.indexOf(':-');
      const name = sep < 0 ? body : body.slice(0, sep);
      if (!VAR_NAME.test(name)) {
        throw `"\${${body}}" is not a variable reference (expected \${NAME} or \${NAME:-default}, NAME of letters, digits and _)`;
      }
      const v = env[name];
      if (v !== undefined && !(sep >= 0 && v === '')) out += v;
      else if (sep >= 0) out += body.slice(sep + 2);
      else throw `environment variable ${name} is not set (set it, or give a default: \${${name}:-value})`;
      i = end + 1;
      continue;
    }
    out += c;
    i++;
  }
  return out;
}

/**
 * A copy of a parsed YAML value with every string interpolated. `skip(path)` leaves a value as is
 * (used for `auth.passEnv`, which names a variable and must never receive a secret's value).
 */
export function interpolate(
  value: unknown,
  env: Env,
  issues: RawIssue[],
  path: Array<string | number> = [],
): unknown {
  if (typeof value === 'string') {
    try {
      return interpolateString(value, env);
    } catch (msg) {
      issues.push({ path, message: String(msg) });
      return value;
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, issues, [...path, i]));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = path.length === 1 && path[0] === 'auth' && k === 'passEnv' ? v : interpolate(v, env, issues, [...path, k]);
    }
    return out;
  }
  return value;
}

// `node --import ./test/helpers/loaded-modules.mjs …`: prints `loaded <url>` on stderr for every file module the
// process resolves (ESM resolve hook), so a test can tell which modules a command loads.
import { register } from 'node:module';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('file:')) process.stderr.write('loaded ' + r.url + '\\n');
  return r;
}`),
);

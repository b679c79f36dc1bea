// `node --import ./test/helpers/loaded-modules.mjs …`: prints `loaded <url>` on stderr for every file module the
// process loads, so a test can tell which modules a command loads: ES modules as they are resolved (an ESM resolve
// hook), CommonJS ones (the bundled CLI's require() of a package, a package's own files) as they are loaded.
import { register } from 'node:module';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

register(
  'data:text/javascript,' +
    encodeURIComponent(`
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.startsWith('file:')) process.stderr.write('loaded ' + r.url + '\\n');
  return r;
}`),
);

// Module.prototype.load runs once per CommonJS file (the entry included), whoever required it
const Module = createRequire(import.meta.url)('node:module');
const load = Module.prototype.load;
Module.prototype.load = function (filename) {
  process.stderr.write(`loaded ${pathToFileURL(filename).href}\n`);
  return load.call(this, filename);
};

// and, at exit, `builtin <name>` for every Node builtin the process loaded (process.moduleLoadList), whoever loaded
// it: a lazily required builtin (commander's child_process, scripts/bundle.mjs) shows by its absence
process.on('exit', () => {
  const names = process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length));
  process.stderr.write(names.map((n) => `builtin ${n}\n`).join(''));
});

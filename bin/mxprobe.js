#!/usr/bin/env node
// The executable: runs the built CLI (scripts/bundle.mjs), nothing else: dist/bundle/probe.cjs for `mxprobe probe …`,
// dist/bundle/mxprobe.cjs for everything else.
//
// CommonJS (bin/package.json says so): an ES module entry costs Node its ESM loader before the first line runs.
// The bundle runs as a vm.Script with the V8 code cache the build made for it, so that a one-off `mxprobe probe`
// does not spend its start-up compiling our JavaScript (issue 16). A missing or rejected cache (another Node
// version, other V8 flags) only makes the start slower: V8 then compiles the source as usual.
//
// probe.cjs is the same CLI with `probe` alone in its command table (src/cli/probe-main.ts), about half the size:
// it runs exactly when the whole CLI would register `probe` alone (commandsFor in src/cli/main.ts: the first
// argument that does not start with '-' is `probe`), so output and exit codes are the same either way. Anything
// else (`mxprobe --help`, other commands, a misspelt `prob`) needs the other commands and runs mxprobe.cjs.
//
// MXPROBE_CODE_CACHE=write (the build) saves the cache after the command; =check tells on stderr whether V8 took it,
// and for which bundle. MXPROBE_BUNDLE=full runs mxprobe.cjs for a probe too (the build makes its cache so; tests).
'use strict';
const { readFileSync, renameSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { dirname, join } = require('node:path');
const { Script } = require('node:vm');

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  // the one command line that needs nothing else (main() answers it the same way)
  process.stdout.write(`${require('../package.json').version}\n`);
} else {
  run(args.find((a) => !a.startsWith('-')) === 'probe' && process.env.MXPROBE_BUNDLE !== 'full' ? 'probe' : 'mxprobe');
}

/** Run dist/bundle/<name>.cjs. */
function run(name) {
  const file = join(__dirname, '..', 'dist', 'bundle', `${name}.cjs`);
  const source = readFileSync(file, 'latin1'); // the bundle is ASCII (scripts/bundle.mjs): Latin-1 reads it faster than UTF-8
  // the cache belongs to this exact text (the build names it by a hash of the text)
  const cacheFile = join(dirname(file), `code-cache-${/^\/\/ mxprobe-bundle (\w+)/.exec(source)?.[1]}.bin`);
  const mode = process.env.MXPROBE_CODE_CACHE;
  let cachedData;
  if (mode !== 'write') {
    try {
      cachedData = readFileSync(cacheFile);
    } catch {
      // no cache: compiled as usual
    }
  }
  // CommonJS's own wrapper, on the first line so that line numbers in stacks are the file's
  // The script's name in stacks: fixed (one per bundle), not this file's path. With a code cache V8 keeps the name
  // the cache was made under (nodejs/node#38134), which would be the build machine's checkout; a fixed name reads
  // the same everywhere.
  // (__filename and __dirname below are the real ones: paths are computed from them.)
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, { filename: `mxprobe/dist/bundle/${name}.cjs`, cachedData });
  const mod = { exports: {} };
  script.runInThisContext().call(mod.exports, mod.exports, createRequire(file), mod, file, dirname(file));
  mod.exports.main(process.argv).then((code) => {
    process.exitCode = code;
    if (mode === 'write') {
      // a name of this process's own, then renamed: two writers at once each leave a whole file
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        writeFileSync(tmp, script.createCachedData());
        renameSync(tmp, cacheFile);
      } catch (err) {
        // the command's own exit code stands; without a cache the CLI only starts slower
        process.stderr.write(`mxprobe: code cache not written (${err.code ?? err.message}): ${cacheFile}\n`);
      }
    }
    if (mode === 'check') process.stderr.write(`code cache: ${!cachedData ? 'none' : script.cachedDataRejected ? 'rejected' : 'accepted'} (${name}.cjs)\n`);
  });
}

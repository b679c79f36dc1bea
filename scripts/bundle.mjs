// The CLI as two files (issue 16, start-up), after tsc (which still builds dist/ for the library and its types):
//
//   dist/bundle/mxprobe.cjs               src/cli/main.ts and everything it imports, commander included (esbuild)
//   dist/bundle/probe.cjs                 src/cli/probe-main.ts: the same CLI with `probe` alone, for `mxprobe probe`
//   dist/bundle/code-cache-<id>.bin       V8's code cache of each after one probe, for bin/mxprobe.js
//
// Why CommonJS, and why a code cache: most of a one-off probe's start-up was not Node but our own JavaScript
// being compiled — file by file through the ESM loader, then function by function as it first ran (the warm-up
// probe included). Node 20 can reuse compiled code only for a vm.Script (module.enableCompileCache is Node 22),
// and a vm.Script is CommonJS. So the bundle is CJS, bin/mxprobe.js runs it as a vm.Script, and the build makes
// the cache by running one probe against a listener of its own (bench/startup.mjs has the figures; README).
//
// Why a probe-only bundle: of the whole CLI's ~800 KiB about half is code `probe` never runs (run, analyze,
// report, serve, sink, lab…), which a one-off probe still read, and whose top level and cache it still loaded.
// bin/mxprobe.js runs probe.cjs exactly when main.ts would register `probe` alone, so the two give the same
// output; the whole CLI's cache is made by a probe too (MXPROBE_BUNDLE=full), as the engine it warms is also
// what run, verify, bisect and demo use.
//
// Kept outside the bundle: zod, yaml, prom-client, smtp-server, nodemailer, imapflow. They are required where
// the code first needs them (esbuild turns a lazily imported module into a lazy init, import() into require), so
// `mxprobe probe` still never loads them; bundled, they would only make the file, and its cache, bigger.
// No source map: it would be read only with --enable-source-maps, which costs start-up itself; names are not
// minified, so a stack still says which function, in a file that reads like the sources it was made from.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';
import { minimalSmtpSession } from '../dist/probe/warmup.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
// two levels below the package root, as every dist/<folder>/<file>.js is: the sources' '../../package.json' and
// '../../profiles/' (relative to import.meta.url) mean the same files from the bundle
const OUT_DIR = join(ROOT, 'dist', 'bundle');
const BUNDLES = [
  { name: 'mxprobe', entry: join(ROOT, 'src', 'cli', 'main.ts') },
  { name: 'probe', entry: join(ROOT, 'src', 'cli', 'probe-main.ts') },
];
const EXTERNAL = ['zod', 'yaml', 'prom-client', 'smtp-server', 'nodemailer', 'imapflow'];

/**
 * commander's lib/command.js requires node:child_process at its top, for executable subcommands (`.command(name,
 * description)` run as a separate program), which mxprobe has none of. Loading child_process costs every command
 * its module and what it loads in turn (internal/child_process, dgram, socket_list and four bindings: ~1.2 ms,
 * measured after net).
 * So commander gets, instead, a stand-in that requires the real module the first time commander touches it
 * (`childProcess.spawn` in _executeSubCommand), i.e. never in mxprobe. Any other importer gets the real one.
 */
const lazyChildProcessForCommander = {
  name: 'lazy-child-process-for-commander',
  setup(build) {
    build.onResolve({ filter: /^(node:)?child_process$/ }, (args) =>
      /[\\/]node_modules[\\/]commander[\\/]/.test(args.importer) ? { path: 'child_process', namespace: 'lazy-child-process' } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: 'lazy-child-process' }, () => ({
      loader: 'js',
      contents: `let real;
const get = () => (real ??= require('node:child_process'));
module.exports = new Proxy({}, {
  get: (_, key) => get()[key],
  has: (_, key) => key in get(),
  ownKeys: () => Reflect.ownKeys(get()),
  getOwnPropertyDescriptor: (_, key) => ({ ...Reflect.getOwnPropertyDescriptor(get(), key), configurable: true }),
});
`,
    }));
  },
};

/** One bundle's text (ASCII) and its id. */
async function bundle(entry) {
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    external: EXTERNAL,
    plugins: [lazyChildProcessForCommander],
    // import() inside a vm.Script needs a loader callback; require() does not, and every import() target here is
    // bundled, a node: builtin or an external package with a CommonJS entry
    supported: { 'dynamic-import': false },
    define: { 'import.meta.url': '__bundleUrl' },
    // strict, as the ES modules it is made from: the banner comes before esbuild's own "use strict", which is then
    // no longer a directive
    banner: { js: "'use strict';\nconst __bundleUrl = require('node:url').pathToFileURL(__filename).href;" },
    write: false,
    logLevel: 'warning',
  });
  // ASCII only, so that bin/mxprobe.js can read it as Latin-1 (half the time of UTF-8): esbuild escapes every other
  // character in code, and only comments kept their own; escaped there too (one UTF-16 unit at a time)
  const code = result.outputFiles[0].text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  // the id ties the code cache to this exact text: V8 itself checks only the source's length
  const id = createHash('sha256').update(code).digest('hex').slice(0, 16);
  if (!code.includes('lazy-child-process')) throw new Error(`${entry}: commander's child_process was not made lazy (did commander change?)`);
  return { code, id };
}

mkdirSync(OUT_DIR, { recursive: true });
const built = await Promise.all(BUNDLES.map(async (b) => ({ ...b, out: join(OUT_DIR, `${b.name}.cjs`), ...(await bundle(b.entry)) })));
for (const { out, code, id } of built) {
  // written whole, then renamed: a test process that runs the CLI meanwhile sees the old file or the new one
  writeFileSync(`${out}.${process.pid}.tmp`, `// mxprobe-bundle ${id} (scripts/bundle.mjs)\n${code}`);
  renameSync(`${out}.${process.pid}.tmp`, out);
}
const current = new Set(built.map((b) => `code-cache-${b.id}.bin`));
for (const f of readdirSync(OUT_DIR)) if (/^code-cache-\w+\.bin$/.test(f) && !current.has(f)) rmSync(join(OUT_DIR, f));

/**
 * One probe (1 KiB to a listener of this process) through bin/mxprobe.js with MXPROBE_CODE_CACHE=write, run by the
 * given bundle: bin/mxprobe.js then saves what V8 compiled while running it. A probe that fails here fails the
 * build: the bundle itself would not work.
 */
async function writeCodeCache(port, { name, id }) {
  const args = ['probe', '--host', '127.0.0.1', '--port', String(port), '--tls', 'none', '--from', 'a@mxprobe.test', '--to', 'b@mxprobe.test', '--size', '1KiB'];
  // without NODE_OPTIONS: V8 rejects a cache made under other V8 flags (--max-old-space-size…), and the user's
  // `mxprobe` runs without the build's flags
  const env = { ...process.env, MXPROBE_CODE_CACHE: 'write' };
  delete env.NODE_OPTIONS;
  // `mxprobe probe` runs probe.cjs; MXPROBE_BUNDLE=full makes it the whole CLI's (bin/mxprobe.js)
  delete env.MXPROBE_BUNDLE;
  if (name === 'mxprobe') env.MXPROBE_BUNDLE = 'full';
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'mxprobe.js'), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const status = await new Promise((resolve) => child.on('close', resolve));
  const made = readdirSync(OUT_DIR).find((f) => f === `code-cache-${id}.bin`);
  if (status !== 0 || !made) throw new Error(`making the code cache of ${name}.cjs failed (exit ${status}): ${stderr}`);
}

const server = net.createServer(minimalSmtpSession);
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
try {
  for (const b of built) await writeCodeCache(server.address().port, b);
} finally {
  server.close();
}
for (const { out, code, id } of built) console.log(`bundle: ${out.slice(ROOT.length + 1)} (${Math.round(code.length / 1024)} KiB), code cache ${id}`);

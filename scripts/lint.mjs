// Project lint: the layering rules of DESIGN.md that a type checker cannot see.
//   - src/ below cli/ never prints, never reads process.argv, never calls process.exit
//   - relative imports end in .js (NodeNext ESM)
// Exits 1 listing every violation as file:line.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const files = [];
(function walk(dir) {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith('.ts')) files.push(p);
  }
})(join(root, 'src'));

const problems = [];
for (const f of files) {
  const rel = relative(root, f);
  const inCli = rel.startsWith('src/cli/');
  const lines = readFileSync(f, 'utf8').split('\n');
  lines.forEach((line, i) => {
    const code = /^\s*(\*|\/\*)/.test(line) ? '' : line.replace(/\/\/.*$/, '');
    const at = `${rel}:${i + 1}`;
    if (!inCli) {
      if (/\bconsole\.(log|error|warn|info)\s*\(/.test(code)) problems.push(`${at}: prints (console.*) outside src/cli`);
      if (/process\.(stdout|stderr)\.write\s*\(/.test(code)) problems.push(`${at}: writes to stdout/stderr outside src/cli`);
      if (/process\.argv\b/.test(code)) problems.push(`${at}: reads process.argv outside src/cli`);
      if (/process\.exit\s*\(/.test(code)) problems.push(`${at}: calls process.exit outside src/cli`);
    }
    const m = /from\s+'(\.{1,2}\/[^']+)'/.exec(code);
    if (m && !m[1].endsWith('.js') && !m[1].endsWith('.json')) problems.push(`${at}: relative import without .js: ${m[1]}`);
  });
}
if (problems.length) {
  console.error(problems.join('\n'));
  console.error(`\n${problems.length} lint problem(s)`);
  process.exit(1);
}
console.log(`lint: ${files.length} files clean`);

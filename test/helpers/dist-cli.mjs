// The CLI straight from tsc's dist/ (one file per source module), as bin/mxprobe.js ran it before the bundle: for
// tests that look at which of our modules a command loads (test/integration/startup.test.ts).
import { main } from '../../dist/cli/main.js';
main(process.argv).then((code) => { process.exitCode = code; });

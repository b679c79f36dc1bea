/**
 * Did it reach the mailbox: the IMAP arrival check (DESIGN.md "arrival"). One connection per run; each accepted probe
 * is looked for by its X-Mxprobe header, verified like the sink verifies, and deleted unless told not to.
 */
export { ArrivalWatcher, ArrivalEnvError, type Expected } from './watcher.js';
export { ArrivalInputError, parseImapUrl, formatImapEndpoint, type ImapEndpoint } from './url.js';
export { inspectArrived, type Sent } from './inspect.js';
export { acceptedAtOf, arrivalLine, describeArrival } from './record.js';

/**
 * The receiving side: `startSink` (an SMTP server that records what arrived of each probe, never storing a
 * body), and the sender/receiver join used by `mxprobe compare --sink`.
 */
export { startSink, SinkStartError, REPLY_STAGES, DELAY_STAGES } from './server.js';
export type { Sink, SinkOptions, ReplyStage, DelayStage } from './server.js';
export { loadSinkRecords, parseSinkRecords, SinkRecordsError, DEFAULT_MAX_RECORDS } from './records.js';
export type { SinkRecord, SinkEnded } from './records.js';
export { joinSink, describeSinkEvidence, formatSeconds, sinkEvidenceByCell } from './join.js';
export type { SinkEvidence, SinkEvidenceGroup, WithSink } from './join.js';
export { MessageInspector, expectedBodySha256, findMxprobeHeader } from './verify.js';

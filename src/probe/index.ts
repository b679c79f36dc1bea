export { probe, validateSpec, AbortError, DEFAULT_TCP_SNAPSHOT_MIN_BYTES, type ProbeOptions } from './session.js';
export { ProbeError, ProbeInputError, ProbeEnvError, descriptorExhaustion, classify, toProbeError, inWords, type ProbeErrorCode, type ErrorContext } from './errors.js';
export { generatedMessage, fileMessage, composedMessage, parseHeaderArg, bodyChunks, layoutFromContentType, minMessageSize, parseMxprobeHeader, MessageError, type MessageSource, type MessageParams, type ComposeParams, type BodyLayout } from './message.js';
export { formatTranscript } from './transcript.js';
export { ReplyParser, formatReply } from './reply.js';
export { parseProxyUrl, redactProxy } from './egress.js';

export { probe, validateSpec, AbortError, DEFAULT_TCP_SNAPSHOT_MIN_BYTES, type ProbeOptions } from './session.js';
export { ProbeError, ProbeInputError, ProbeEnvError, descriptorExhaustion, classify, toProbeError, type ProbeErrorCode } from './errors.js';
export { generatedMessage, fileMessage, bodyChunks, layoutFromContentType, minMessageSize, parseMxprobeHeader, MessageError, type MessageSource, type MessageParams, type BodyLayout } from './message.js';
export { ReplyParser, formatReply } from './reply.js';
export { parseProxyUrl, redactProxy } from './egress.js';

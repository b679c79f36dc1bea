/**
 * Inspecting a received message without storing it: count the bytes, hash them, find the header block, read
 * the X-Mxprobe header, and verify the body against the seed it names.
 *
 * A probe body is a pure function of `(seed, bodyBytes, layout)` (`bodyChunks` in `src/probe/message.ts`), so
 * the sink checks it knowing nothing but the headers (X-Mxprobe gives the seed, Content-Type the layout): sha256
 * of the received body (everything after the first CRLFCRLF) must equal sha256 of
 * `bodyChunks(seed, receivedBodyBytes, layout)`. Verifying the body, not the whole message, keeps
 * the check valid when a relay on the way prepended headers (Received:, DKIM-Signature:): the body is intact,
 * only the message grew. Both hashes are computed incrementally; nothing holds a whole body. Memory per
 * message: two hash states plus the header block (at most HEADER_LIMIT_BYTES).
 */
import { createHash, type Hash } from 'node:crypto';
import { bodyChunks, layoutFromContentType, parseMxprobeHeader, type BodyLayout } from '../probe/message.js';

/** Header blocks longer than this are not searched for X-Mxprobe (the message is treated as non-probe mail). */
export const HEADER_LIMIT_BYTES = 64 * 1024;

const CRLFCRLF = Buffer.from('\r\n\r\n');

export interface ProbeHeader {
  probeId: string;
  sizeBytes: number;
  seed: number;
  /** Body layout, from the Content-Type header (multipart/mixed → 'multipart', otherwise 'text'). */
  layout: BodyLayout;
}

function headerValue(unfolded: string, name: string): string | undefined {
  const m = new RegExp(`(?:^|\\r\\n)${name}:[ \\t]*([^\\r\\n]*)\\r\\n`, 'i').exec(unfolded);
  return m ? m[1]! : undefined;
}

/**
 * Find `X-Mxprobe:` (and Content-Type, which selects the body layout) in a header block: folded lines joined,
 * names case-insensitive, first occurrence, only complete lines (ending in CRLF) count.
 */
export function findMxprobeHeader(headerText: string): ProbeHeader | undefined {
  const unfolded = headerText.replace(/\r\n[ \t]+/g, ' ');
  const v = headerValue(unfolded, 'x-mxprobe');
  const p = v === undefined ? undefined : parseMxprobeHeader(v);
  return p ? { ...p, layout: layoutFromContentType(headerValue(unfolded, 'content-type')) } : undefined;
}

export interface InspectionResult {
  /** Message bytes seen. */
  bytes: number;
  /** sha256 (hex) of all message bytes; absent when hashing stopped (over the size limit). */
  sha256?: string;
  /** Length of the header block including the blank line, when one was found. */
  headerBytes?: number;
  probe?: ProbeHeader;
  /** For a probe: whether the body matches its seed. Absent for non-probe mail. */
  verified?: boolean;
}

/** Incremental inspection of one message as it streams in. */
export class MessageInspector {
  bytes = 0;
  headerBytes: number | undefined;
  probe: ProbeHeader | undefined;
  private readonly msgHash: Hash = createHash('sha256');
  private bodyHash: Hash | undefined;
  /** Header bytes collected until the blank line; undefined once the header phase is over. */
  private head: Buffer | undefined = Buffer.alloc(0);
  private hashing = true;

  push(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (!this.hashing) return;
    this.msgHash.update(chunk);
    if (this.head === undefined) {
      this.bodyHash?.update(chunk);
      return;
    }
    const from = Math.max(0, this.head.length - 3);
    const head = this.head.length === 0 ? chunk : Buffer.concat([this.head, chunk]);
    const at = head.indexOf(CRLFCRLF, from);
    if (at >= 0) {
      this.headerBytes = at + 4;
      this.probe = findMxprobeHeader(head.subarray(0, at + 2).toString('latin1'));
      this.head = undefined;
      if (this.probe) {
        this.bodyHash = createHash('sha256');
        this.bodyHash.update(head.subarray(at + 4));
      }
    } else if (head.length > HEADER_LIMIT_BYTES) {
      this.head = undefined; // no header block within the limit: not a probe
    } else {
      // copy: `chunk` may be a slice of a buffer the stream reuses
      this.head = this.head.length === 0 ? Buffer.from(chunk) : head;
    }
  }

  /** Stop hashing (the message is over the size limit and will be refused): count only. */
  stopHashing(): void {
    this.hashing = false;
    this.head = undefined;
    this.bodyHash = undefined;
  }

  /**
   * The probe header from a header block that never completed (the connection was cut inside the headers):
   * X-Mxprobe may already have arrived whole.
   */
  partialProbe(): ProbeHeader | undefined {
    if (this.probe) return this.probe;
    if (this.head && this.head.length > 0) return findMxprobeHeader(this.head.toString('latin1'));
    return undefined;
  }

  /** Finish a message that arrived complete (the terminating `.` was seen). */
  async finish(): Promise<InspectionResult> {
    const out: InspectionResult = { bytes: this.bytes };
    if (!this.hashing) return out;
    out.sha256 = this.msgHash.digest('hex');
    if (this.headerBytes !== undefined) out.headerBytes = this.headerBytes;
    if (this.probe && this.bodyHash && this.headerBytes !== undefined) {
      out.probe = this.probe;
      const got = this.bodyHash.digest('hex');
      const want = await expectedBodySha256(this.probe.seed, this.bytes - this.headerBytes, this.probe.layout);
      out.verified = want !== undefined && got === want;
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Expected body hashes, cached by (seed, bodyBytes, layout): a run repeats sizes, and often seeds.

const EXPECTED_CACHE_MAX = 1024;
const expectedCache = new Map<string, Promise<string | undefined>>();
/** Hash this many bytes between yields to the event loop, so verifying 64 MiB does not freeze other sessions. */
const YIELD_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * sha256 (hex) of `bodyChunks(seed, bodyBytes, layout)`, or undefined when no probe body has that size (too
 * small). Computed incrementally, yielding to the event loop every 4 MiB; concurrent requests for the same key
 * share one computation.
 */
export function expectedBodySha256(seed: number, bodyBytes: number, layout: BodyLayout = 'multipart'): Promise<string | undefined> {
  const key = `${seed >>> 0}:${bodyBytes}:${layout}`;
  const hit = expectedCache.get(key);
  if (hit) {
    // LRU: move to the end
    expectedCache.delete(key);
    expectedCache.set(key, hit);
    return hit;
  }
  const p = computeExpected(seed, bodyBytes, layout);
  expectedCache.set(key, p);
  if (expectedCache.size > EXPECTED_CACHE_MAX) expectedCache.delete(expectedCache.keys().next().value as string);
  return p;
}

async function computeExpected(seed: number, bodyBytes: number, layout: BodyLayout): Promise<string | undefined> {
  if (!Number.isSafeInteger(bodyBytes) || bodyBytes < 0) return undefined;
  const h = createHash('sha256');
  let sinceYield = 0;
  try {
    for (const chunk of bodyChunks(seed, bodyBytes, layout)) {
      h.update(chunk);
      sinceYield += chunk.length;
      if (sinceYield >= YIELD_EVERY_BYTES) {
        sinceYield = 0;
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  } catch {
    return undefined; // no probe body of this size exists
  }
  return h.digest('hex');
}

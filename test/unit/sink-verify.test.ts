import { createHash } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { bodyChunks, generatedMessage, minMessageSize } from '../../src/probe/message.js';
import { expectedBodySha256, findMxprobeHeader, HEADER_LIMIT_BYTES, MessageInspector } from '../../src/sink/verify.js';

const KiB = 1024;
const from = 'a@mxprobe.test';
const to = ['b@mxprobe.test'];

function msg(probeId: string, sizeBytes: number, seed: number): Buffer {
  return Buffer.concat([...(generatedMessage({ probeId, sizeBytes, seed, from, to }).chunks() as Iterable<Buffer>)]);
}

function inspect(b: Buffer, step = b.length): MessageInspector {
  const m = new MessageInspector();
  for (let i = 0; i < b.length; i += step) m.push(b.subarray(i, i + step));
  return m;
}

describe('MessageInspector', () => {
  test('a probe verifies whatever the chunking, down to one byte at a time', async () => {
    const b = msg('p-1', 8 * KiB, 7);
    for (const step of [1, 3, 1000, b.length]) {
      const res = await inspect(b, step).finish();
      expect(res).toMatchObject({ bytes: 8 * KiB, probe: { probeId: 'p-1', sizeBytes: 8 * KiB, seed: 7, layout: 'multipart' }, verified: true });
      expect(res.sha256).toBe(createHash('sha256').update(b).digest('hex'));
      expect(res.headerBytes).toBe(b.indexOf('\r\n\r\n') + 4);
    }
  });

  test('the smallest probe (text/plain layout) verifies', async () => {
    const size = minMessageSize({ probeId: 'p-small', seed: 3, from, to });
    const res = await inspect(msg('p-small', size, 3)).finish();
    expect(res).toMatchObject({ bytes: size, verified: true, probe: { layout: 'text' } });
  });

  test('one flipped body byte fails verification; a flipped header byte does not touch the body check', async () => {
    const b = msg('p-2', 16 * KiB, 9);
    const body = Buffer.from(b);
    body[b.length - 500] ^= 0x01;
    expect((await inspect(body).finish()).verified).toBe(false);
    const head = Buffer.from(b);
    const at = head.indexOf('Subject: ') + 9;
    head[at] = head[at] === 0x6d ? 0x4d : 0x6d; // 'm' ↔ 'M'
    expect((await inspect(head).finish()).verified).toBe(true);
  });

  test('a truncated body (still terminated) fails verification', async () => {
    const b = msg('p-3', 16 * KiB, 9);
    expect((await inspect(b.subarray(0, b.length - 78)).finish()).verified).toBe(false);
  });

  test('non-probe mail: counted and hashed, no verification', async () => {
    const b = Buffer.from('Subject: hello\r\n\r\nbody\r\n');
    const res = await inspect(b).finish();
    expect(res).toEqual({ bytes: b.length, sha256: createHash('sha256').update(b).digest('hex'), headerBytes: 18 });
  });

  test('no blank line within the header limit: treated as non-probe, still counted', async () => {
    const b = Buffer.alloc(HEADER_LIMIT_BYTES + 10, 'x');
    const res = await inspect(b, 4096).finish();
    expect(res.bytes).toBe(b.length);
    expect(res.probe).toBeUndefined();
    expect(res.headerBytes).toBeUndefined();
  });

  test('partialProbe reads X-Mxprobe from an unfinished header block', () => {
    const b = msg('p-4', 4 * KiB, 2);
    const cutAfter = b.indexOf('\r\n', b.indexOf('X-Mxprobe:')) + 2;
    expect(inspect(b.subarray(0, cutAfter)).partialProbe()).toMatchObject({ probeId: 'p-4', sizeBytes: 4 * KiB, seed: 2 });
    // the header line itself cut short: not trusted
    expect(inspect(b.subarray(0, cutAfter - 3)).partialProbe()).toBeUndefined();
  });

  test('stopHashing: counts only', async () => {
    const m = new MessageInspector();
    m.push(msg('p-5', 4 * KiB, 2));
    m.stopHashing();
    m.push(Buffer.alloc(100));
    expect(await m.finish()).toEqual({ bytes: 4 * KiB + 100 });
  });
});

describe('findMxprobeHeader', () => {
  test('folded, case-insensitive, first occurrence; Content-Type selects the layout', () => {
    const h = 'Subject: x\r\nx-mxprobe: probe=p-9;\r\n size=1000; seed=5\r\nX-Mxprobe: probe=p-other; size=1; seed=1\r\nContent-Type: multipart/mixed;\r\n boundary="b"\r\n';
    expect(findMxprobeHeader(h)).toEqual({ probeId: 'p-9', sizeBytes: 1000, seed: 5, layout: 'multipart' });
    expect(findMxprobeHeader('X-Mxprobe: probe=p-1; size=9; seed=2\r\n')).toEqual({ probeId: 'p-1', sizeBytes: 9, seed: 2, layout: 'text' });
    expect(findMxprobeHeader('X-Mxprobe: garbage\r\n')).toBeUndefined();
    expect(findMxprobeHeader('X-Not-Mxprobe: probe=p-1; size=9; seed=2\r\n')).toBeUndefined();
  });
});

describe('expectedBodySha256', () => {
  test('equals the hash of bodyChunks; cached; undefined for impossible sizes', async () => {
    const h = createHash('sha256');
    for (const c of bodyChunks(77, 300 * KiB)) h.update(c);
    const want = h.digest('hex');
    expect(await expectedBodySha256(77, 300 * KiB)).toBe(want);
    const p1 = expectedBodySha256(77, 300 * KiB);
    expect(expectedBodySha256(77, 300 * KiB)).toBe(p1);
    expect(await expectedBodySha256(77, 10)).toBeUndefined();
    expect(await expectedBodySha256(77, -1)).toBeUndefined();
  });
});

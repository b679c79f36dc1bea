import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { composedMessage, MessageError, parseHeaderArg, type MessageSource } from '../../src/probe/message.js';

const dir = mkdtempSync(join(tmpdir(), 'mxprobe-compose-'));
const pdf = join(dir, 'report.pdf');
writeFileSync(pdf, Buffer.alloc(3000, 7));
const notes = join(dir, 'notes.txt');
writeFileSync(notes, '.a line starting with a dot\nsecond\n');

async function text(m: MessageSource): Promise<string> {
  let s = '';
  for await (const c of m.chunks()) s += c.toString('latin1');
  return s;
}

const base = { probeId: 'p-1234', seed: 7, from: 'a@x.test', to: ['b@x.test'], date: new Date('2026-01-02T03:04:05Z') };

describe('composedMessage', () => {
  test('attachments with their content types, headers replaced and added, the body, the test headers', async () => {
    const m = await composedMessage({ ...base, headers: [['Subject', 'quarterly'], ['X-Foo', 'bar']], body: 'hello there', attachments: [{ path: pdf }, { path: notes, contentType: 'text/x-notes' }] });
    const t = await text(m);
    expect(t).toMatch(/^Subject: quarterly\r$/m);
    expect(t).toMatch(/^X-Foo: bar\r$/m);
    expect(t).toMatch(/^Auto-Submitted: auto-generated\r$/m);
    expect(t).toContain(`X-Mxprobe: probe=p-1234; size=${m.sizeBytes}; composed`);
    expect(t).toContain('hello there');
    expect(t).toMatch(/Content-Type: application\/pdf; name=report\.pdf/);
    expect(t).toMatch(/Content-Type: text\/x-notes; name=notes\.txt/);
    expect(m.info).toEqual({ source: 'composed', wireBytes: m.wireBytes, attachments: [
      { filename: 'report.pdf', contentType: 'application/pdf', bytes: 3000 },
      { filename: 'notes.txt', contentType: 'text/x-notes', bytes: 35 },
    ] });
  });

  test('without --size: the size is what MailComposer made, stated in X-Mxprobe, and the wire carries it dot-stuffed', async () => {
    const m = await composedMessage({ ...base, body: '.starts with a dot\r\nand more' });
    const t = await text(m);
    expect(t.length).toBe(m.wireBytes);
    expect(m.wireBytes).toBe(m.sizeBytes + 1); // one line starts with '.'
    expect(t).toContain('\r\n..starts with a dot');
    expect(t).toContain(`size=${m.sizeBytes};`);
  });

  test.each([6000, 6001, 6077, 6078, 65536, 1048576])('padded to exactly --size %i bytes', async (size) => {
    const m = await composedMessage({ ...base, sizeBytes: size, attachments: [{ path: pdf }] });
    expect(m.sizeBytes).toBe(size);
    const t = await text(m);
    expect(t.length).toBe(m.wireBytes);
    expect(t.length).toBe(size); // nothing to dot-stuff
    expect(m.info?.paddingBytes).toBeGreaterThan(0);
    expect(t).toContain('mxprobe-padding.txt');
    expect(t.split('\r\n').every((l) => l.length <= 998)).toBe(true);
  });

  test('--size too small: an error naming the composed size; an unreadable attachment names the file', async () => {
    await expect(composedMessage({ ...base, sizeBytes: 500, attachments: [{ path: pdf }] })).rejects.toThrow(/composed message is \d+ bytes, more than --size 500/);
    await expect(composedMessage({ ...base, attachments: [{ path: join(dir, 'missing.bin') }] })).rejects.toThrow(/cannot read attachment .*missing\.bin: ENOENT/);
    await expect(composedMessage({ ...base, attachments: [{ path: join(dir, 'missing.bin') }] })).rejects.toBeInstanceOf(MessageError);
  });
});

describe('parseHeaderArg', () => {
  test('Name: value; refuses line breaks, our own headers and non-headers', () => {
    expect(parseHeaderArg('X-Foo: bar baz')).toEqual(['X-Foo', 'bar baz']);
    expect(parseHeaderArg('Subject:tight')).toEqual(['Subject', 'tight']);
    expect(() => parseHeaderArg('X-Foo: a\r\nBcc: evil@x')).toThrow(/line break/);
    expect(() => parseHeaderArg('X-Mxprobe: probe=x')).toThrow(/set by mxprobe/);
    expect(() => parseHeaderArg('no colon here')).toThrow(/not a header/);
  });
});

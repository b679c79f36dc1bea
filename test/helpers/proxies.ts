/** A SOCKS5 and an HTTP CONNECT proxy written for the tests (no dependency), on 127.0.0.1:0. */
import net from 'node:net';

function pipeBoth(a: net.Socket, b: net.Socket) {
  a.pipe(b);
  b.pipe(a);
  a.on('error', () => b.destroy());
  b.on('error', () => a.destroy());
  a.on('close', () => b.destroy());
  b.on('close', () => a.destroy());
}

export async function startSocks5(auth?: { user: string; pass: string }) {
  const seen: { host: string; port: number }[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    let state: 'hello' | 'auth' | 'req' = 'hello';
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (state === 'hello') {
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        const methods = [...buf.subarray(2, 2 + buf[1]!)];
        buf = buf.subarray(2 + buf[1]!);
        if (auth) {
          if (!methods.includes(2)) return c.end(Buffer.from([5, 0xff]));
          c.write(Buffer.from([5, 2]));
          state = 'auth';
        } else {
          c.write(Buffer.from([5, 0]));
          state = 'req';
        }
      }
      if (state === 'auth') {
        if (buf.length < 2) return;
        const ul = buf[1]!;
        if (buf.length < 3 + ul) return;
        const pl = buf[2 + ul]!;
        if (buf.length < 3 + ul + pl) return;
        const user = buf.subarray(2, 2 + ul).toString();
        const pass = buf.subarray(3 + ul, 3 + ul + pl).toString();
        buf = buf.subarray(3 + ul + pl);
        if (user !== auth!.user || pass !== auth!.pass) return c.end(Buffer.from([1, 1]));
        c.write(Buffer.from([1, 0]));
        state = 'req';
      }
      if (state === 'req') {
        if (buf.length < 5) return;
        const atyp = buf[3]!;
        const len = atyp === 1 ? 4 : atyp === 4 ? 16 : buf[4]! + 1;
        if (buf.length < 4 + len + 2) return;
        const host = atyp === 1 ? [...buf.subarray(4, 8)].join('.') : atyp === 3 ? buf.subarray(5, 5 + buf[4]!).toString() : '::1';
        const port = buf.readUInt16BE(4 + len);
        c.off('data', onData);
        seen.push({ host, port });
        const up = net.connect(port, host === 'localhost' ? '127.0.0.1' : host, () => {
          c.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]));
          pipeBoth(c, up);
        });
        up.on('error', () => {
          if (!c.destroyed) c.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0]));
        });
      }
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

export async function startHttpConnect() {
  const seen: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
    c.on('error', () => undefined);
    let head = '';
    const onData = (d: Buffer) => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      c.off('data', onData);
      const m = /^CONNECT ([^ ]+):(\d+) HTTP\/1\.1/.exec(head);
      if (!m) return c.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      seen.push(`${m[1]}:${m[2]}`);
      const up = net.connect(Number(m[2]), m[1]!, () => {
        c.write('HTTP/1.1 200 Connection established\r\n\r\n');
        pipeBoth(c, up);
      });
      up.on('error', () => { if (!c.destroyed) c.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'); });
    };
    c.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    seen,
    close: () => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }),
  };
}

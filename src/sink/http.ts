/**
 * A small read-only HTTP endpoint over a running sink's records, so `mxprobe compare --sink http://host:port`
 * can join them without a shared file.
 *
 *   GET /                   what this is (JSON)
 *   GET /records            all records in memory, JSONL (oldest first); ?kind=probe|message|session filters
 *   GET /records/<probeId>  the probe's record (JSON), 404 when the sink has none
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RecordStore, SinkRecord } from './records.js';

export interface HttpInfo {
  smtp: { host: string; port: number };
}

export async function startRecordsHttp(store: RecordStore, info: HttpInfo, host: string, port: number): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://sink');
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (status: number, v: unknown) => send(status, 'application/json; charset=utf-8', `${JSON.stringify(v)}\n`);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return json(405, { error: `method ${req.method} not allowed; this endpoint is read-only` });
    }
    if (url.pathname === '/') {
      return json(200, {
        service: 'mxprobe sink',
        smtp: info.smtp,
        records: store.size,
        endpoints: { '/records': 'all records in memory, JSONL (?kind=probe|message|session)', '/records/<probeId>': 'one probe record, JSON' },
      });
    }
    if (url.pathname === '/records' || url.pathname === '/records/') {
      const kind = url.searchParams.get('kind');
      if (kind !== null && kind !== 'probe' && kind !== 'message' && kind !== 'session') {
        return json(400, { error: `unknown kind "${kind}" (expected probe, message or session)` });
      }
      const rs: SinkRecord[] = store.all().filter((r) => kind === null || r.kind === kind);
      return send(200, 'application/x-ndjson; charset=utf-8', rs.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    const m = /^\/records\/(.+)$/.exec(url.pathname);
    if (m) {
      let id: string;
      try {
        id = decodeURIComponent(m[1]!);
      } catch {
        return json(400, { error: 'bad probe id encoding' });
      }
      const r = store.byProbe(id);
      return r ? json(200, r) : json(404, { error: `no record for probe ${id} (yet)` });
    }
    return json(404, { error: `no such endpoint ${url.pathname}; try /records or /records/<probeId>` });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

export function httpPort(server: http.Server): number {
  return (server.address() as AddressInfo).port;
}

/** The watchdog's readings of the kernel, as pure functions over snapshots (src/probe/evidence.ts, watchdog.ts). */
import { describe, expect, test } from 'vitest';
import type { TcpSnapshot } from '../../src/model.js';
import { awaitingNetwork, latestProgressAt, lossEvident, quietLimit, stallKindOf, windowClosed } from '../../src/probe/evidence.js';
import { nextLossLook, stallMessage, watchCadence } from '../../src/probe/watchdog.js';
import { ssArgsFor } from '../../src/probe/tcpinfo.js';

const snap = (over: Partial<TcpSnapshot>): TcpSnapshot => ({
  at: 'watch',
  tMs: 0,
  bytesSent: 1000,
  bytesAcked: 1001,
  bytesRetrans: 0,
  bytesReceived: 300,
  unacked: 0,
  retrans: 0,
  retransTotal: 0,
  backoff: 0,
  sndWnd: 65_536,
  mss: 1448,
  ...over,
});

describe('stall kinds', () => {
  test('everything acknowledged, nothing queued: no-reply', () => {
    expect(stallKindOf(snap({}), 0)).toBe('no-reply');
  });
  test('bytes still in our own stream make it a network wait, not no-reply', () => {
    expect(awaitingNetwork(snap({}), 1)).toBe(true);
    expect(stallKindOf(snap({}), 16_384)).toBe('no-ack');
  });
  test('unacked data with an open window: no-ack', () => {
    expect(stallKindOf(snap({ bytesSent: 200_000, bytesAcked: 65_000, unacked: 12, retrans: 3, retransTotal: 5, backoff: 3 }), 0)).toBe('no-ack');
  });
  test('a window below one segment, nothing retransmitted: window-closed (0, 64 and 1,174 bytes against 1,448)', () => {
    for (const w of [0, 64, 1174]) {
      expect(windowClosed(snap({ sndWnd: w }))).toBe(true);
      expect(stallKindOf(snap({ sndWnd: w, notSent: 3_000_000 }), 0)).toBe('window-closed');
    }
    expect(windowClosed(snap({ sndWnd: 1448 }))).toBe(false);
  });
  test('a shut window is window-closed even after earlier retransmissions (the shut window explains the quiet)', () => {
    expect(stallKindOf(snap({ sndWnd: 0, notSent: 1_000_000, retransTotal: 4, retrans: 0, lastAckMs: 0 }), 0)).toBe('window-closed');
    // but data in flight that the kernel keeps retransmitting is lost, whatever the window said last
    expect(stallKindOf(snap({ sndWnd: 64, bytesSent: 5000, unacked: 1, retrans: 2 }), 0)).toBe('no-ack');
    expect(lossEvident(snap({ sndWnd: 30_000, mss: 65_483, bytesSent: 400_000, bytesAcked: 115_581, retransTotal: 1, backoff: 3, lastAckMs: 1500 }), 1000)).toBe(true);
    // an open window with data unacknowledged is the loss story
    expect(stallKindOf(snap({ sndWnd: 65_536, bytesSent: 5000, unacked: 3, retrans: 2 }), 0)).toBe('no-ack');
  });
  test('how long each quiet may last: a far end that answers but holds up gets the no-reply window', () => {
    const w = { stallMs: 10_000, noReplyMs: 100_000 };
    expect(quietLimit('no-ack', snap({ lastAckMs: 50 }), w)).toBe(10_000);
    expect(quietLimit('no-reply', snap({}), w)).toBe(100_000);
    // a slow reader keeps answering window probes: slow, not stalled
    expect(quietLimit('window-closed', snap({ sndWnd: 0, lastAckMs: 400 }), w)).toBe(100_000);
    // a shut window whose peer stopped answering: the path or the peer is gone
    expect(quietLimit('window-closed', snap({ sndWnd: 0, lastAckMs: 12_000 }), w)).toBe(10_000);
    expect(quietLimit('window-closed', snap({ sndWnd: 0 }), w)).toBe(10_000);
  });
  test('the MSS of the connection decides "one segment" (loopback: 65,483)', () => {
    expect(windowClosed(snap({ sndWnd: 30_000, mss: 65_483 }))).toBe(true);
  });
});

describe('loss beyond doubt (the early no-ack call)', () => {
  const lossy = snap({ bytesSent: 400_000, bytesAcked: 115_581, unacked: 9, retrans: 3, retransTotal: 4, backoff: 3, lastAckMs: 1500 });
  test('outstanding, retransmitting, backoff 3, no ACK for the quiet time: lost', () => {
    expect(lossEvident(lossy, 1000)).toBe(true);
  });
  test('a last ACK 36 ms ago is a moving transfer, however many retransmits it had', () => {
    expect(lossEvident({ ...lossy, lastAckMs: 36 }, 1000)).toBe(false);
  });
  test('backoff below 3 is what random loss looks like', () => {
    expect(lossEvident({ ...lossy, backoff: 2 }, 1000)).toBe(false);
  });
  test('zero-window probes raise backoff without loss: not lost', () => {
    expect(lossEvident(snap({ sndWnd: 0, notSent: 1_000_000, backoff: 5, retransTotal: 1, lastAckMs: 5000 }), 1000)).toBe(false);
  });
  test('nothing outstanding: nothing to lose', () => {
    expect(lossEvident(snap({ backoff: 4, retrans: 1, lastAckMs: 9000 }), 1000)).toBe(false);
  });
});

describe('the latest moment the network can have moved anything', () => {
  test('no earlier reading: the most recent ACK or data segment bounds it', () => {
    expect(latestProgressAt(snap({ lastAckMs: 300, lastRecvMs: 5000 }), 10_000)).toBe(9700);
    expect(latestProgressAt(snap({ lastAckMs: 4000, lastRecvMs: 200 }), 10_000)).toBe(9800);
  });
  test('counters unchanged since the previous reading: its bound holds, however recent the last ACK (window probes)', () => {
    const prev = { snapshot: snap({ bytesAcked: 5000 }), progressAt: 2000 };
    expect(latestProgressAt(snap({ bytesAcked: 5000, lastAckMs: 10, lastRecvMs: 10 }), 10_000, prev)).toBe(2000);
  });
  test('acknowledged bytes rose: progress came with the last ACK', () => {
    const prev = { snapshot: snap({ bytesAcked: 5000 }), progressAt: 2000 };
    expect(latestProgressAt(snap({ bytesAcked: 70_000, lastAckMs: 250, lastRecvMs: 9000 }), 10_000, prev)).toBe(9750);
  });
  test('received bytes rose (a TLS handshake trickling in): progress came with the last data segment', () => {
    const prev = { snapshot: snap({ bytesReceived: 300 }), progressAt: 1000 };
    expect(latestProgressAt(snap({ bytesReceived: 500, lastAckMs: 8000, lastRecvMs: 400 }), 10_000, prev)).toBe(9600);
  });
  test('unknown last-ACK times count as now: a stall can come later, never earlier', () => {
    expect(latestProgressAt({ at: 'watch', tMs: 0 }, 10_000)).toBe(10_000);
  });
});

describe('cadence and messages', () => {
  test('the kernel is first read after 1 s of quiet (a quarter of a short window), then every 0.5 s', () => {
    expect(watchCadence(10_000)).toEqual({ lookAfterMs: 1000, everyMs: 500 });
    expect(watchCadence(2000)).toEqual({ lookAfterMs: 500, everyMs: 250 });
  });
  test('a possibly lossy connection is looked at again just after its next RTO, or when the ACKs have been quiet 1 s', () => {
    expect(nextLossLook(snap({ backoff: 2, rtoMs: 800, lastSendMs: 600, lastAckMs: 1200 }), 1000, 500)).toBe(220);
    expect(nextLossLook(snap({ backoff: 3, rtoMs: 1600, lastSendMs: 10, lastAckMs: 900 }), 1000, 500)).toBe(120);
    expect(nextLossLook(snap({ backoff: 1, rtoMs: 3200, lastSendMs: 0, lastAckMs: 2000 }), 1000, 500)).toBe(500);
  });
  test('no greeting is a silent server, with the implicit-TLS hint on 465', () => {
    const m = stallMessage({ stage: 'greeting', kind: 'no-reply', by: 'window', idleMs: 100_000, snapshot: snap({ bytesReceived: 0 }), progressFrom: 'kernel' }, { tlsMode: 'none', port: 465 });
    expect(m).toMatch(/silent server, not a network stall/);
    expect(m).toMatch(/port 465 usually expects implicit TLS: try --tls implicit/);
  });
  test('a greeting begun and then silent is not "no greeting", and gets no TLS hint', () => {
    const m = stallMessage({ stage: 'greeting', kind: 'no-reply', by: 'window', idleMs: 5000, snapshot: snap({ bytesReceived: 10 }), progressFrom: 'kernel' }, { tlsMode: 'none', port: 465 });
    expect(m).toMatch(/began its greeting \(10 bytes\)/);
    expect(m).not.toMatch(/--tls implicit/);
  });
  test('window-closed says whether the peer still answers', () => {
    const alive = stallMessage({ stage: 'body', kind: 'window-closed', by: 'window', idleMs: 100_000, snapshot: snap({ sndWnd: 0, lastAckMs: 300 }), progressFrom: 'kernel' }, { tlsMode: 'none', port: 25 });
    expect(alive).toMatch(/its TCP still answers \(last ACK 0\.3 s ago\) but takes nothing/);
    const gone = stallMessage({ stage: 'body', kind: 'window-closed', by: 'window', idleMs: 10_000, snapshot: snap({ sndWnd: 0, lastAckMs: 12_000 }), progressFrom: 'kernel' }, { tlsMode: 'none', port: 25 });
    expect(gone).toMatch(/no ACK for 12\.0 s/);
  });
  test('window-closed names the window and the segment', () => {
    const m = stallMessage({ stage: 'body', kind: 'window-closed', by: 'window', idleMs: 10_000, snapshot: snap({ sndWnd: 64 }), progressFrom: 'kernel' }, { tlsMode: 'none', port: 25 });
    expect(m).toMatch(/window is 64 bytes, below one 1,448-byte segment/);
  });
  test('without the kernel the message says progress was counted from our own socket', () => {
    expect(stallMessage({ stage: 'body', by: 'window', idleMs: 10_000, progressFrom: 'socket' }, { tlsMode: 'none', port: 25 })).toMatch(/kernel could not be read/);
  });
});

describe('one ss for many sockets', () => {
  test('the filter ORs each socket\'s port pair', () => {
    const a = { localAddress: '127.0.0.1', localPort: 1111, remoteAddress: '127.0.0.1', remotePort: 25 };
    const b = { ...a, localPort: 2222 };
    expect(ssArgsFor([a, b])).toEqual(['-t', '-i', '-o', '-n', '-H', 'state', 'all', '(', 'sport', '=', ':1111', 'and', 'dport', '=', ':25', ')', 'or', '(', 'sport', '=', ':2222', 'and', 'dport', '=', ':25', ')']);
  });
});

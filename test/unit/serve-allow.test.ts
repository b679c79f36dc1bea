import { describe, expect, it } from 'vitest';
import { AllowPatternError, TargetAllowList, parseAllowPattern, parseProbeTarget } from '../../src/serve/allow.js';
import { probeBudgetMs } from '../../src/serve/probe-endpoint.js';

describe('/probe allow patterns', () => {
  const allow = TargetAllowList.parse(['mx1.example.net:25', '*.example.org', '10.0.0.0/8:25', '[2001:db8::/32]:587', '192.0.2.7', 'mx:example.com']);
  const ok = (t: string) => allow.allows(parseProbeTarget(t));

  it('matches names as names, suffixes below the domain, networks and ports', () => {
    expect(ok('mx1.example.net:25')).toBe(true);
    expect(ok('MX1.Example.NET.:25')).toBe(true);
    expect(ok('mx1.example.net:587')).toBe(false);
    expect(ok('a.b.example.org:2525')).toBe(true);
    expect(ok('example.org:25')).toBe(false);
    expect(ok('evil-example.org:25')).toBe(false);
    expect(ok('10.200.3.4:25')).toBe(true);
    expect(ok('10.200.3.4:26')).toBe(false);
    expect(ok('11.0.0.1:25')).toBe(false);
    expect(ok('[2001:db8::25]:587')).toBe(true);
    expect(ok('[2001:db9::25]:587')).toBe(false);
    expect(ok('192.0.2.7:2525')).toBe(true);
    expect(ok('mx:example.com')).toBe(true);
    expect(ok('mx:example.net')).toBe(false);
  });

  it('never resolves: a name is not matched by an address rule, nor an address by a name rule', () => {
    expect(TargetAllowList.parse(['127.0.0.0/8']).allows({ host: 'localhost', port: 25 })).toBe(false);
    expect(TargetAllowList.parse(['localhost']).allows({ host: '127.0.0.1', port: 25 })).toBe(false);
  });

  it('rejects patterns it does not understand, saying why', () => {
    expect(() => parseAllowPattern('10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => parseAllowPattern('host:99999')).toThrow(/not a port/);
    expect(() => parseAllowPattern('bad host')).toThrow(AllowPatternError);
    expect(() => parseAllowPattern('')).toThrow(/empty/);
    expect(TargetAllowList.parse(['*']).open).toBe(true);
    expect(TargetAllowList.parse(['*:25']).open).toBe(false);
  });

  it('parses /probe targets: host:port, [v6]:port, bare host (25), mx:domain', () => {
    expect(parseProbeTarget('mx1.example.net')).toEqual({ host: 'mx1.example.net', port: 25 });
    expect(parseProbeTarget('[::1]:2525')).toEqual({ host: '::1', port: 2525 });
    expect(parseProbeTarget('mx:example.com:587')).toEqual({ mx: 'example.com', port: 587 });
    expect(() => parseProbeTarget('a:b:c')).toThrow(/\[2001:db8::1\]:25/);
    expect(() => parseProbeTarget('host:0')).toThrow(/not a TCP port/);
  });
});

describe('/probe time budget', () => {
  it('takes timeout=, else the scrape timeout header minus 0.5 s, else the default; bounded', () => {
    expect(probeBudgetMs('45', undefined)).toBe(45_000);
    expect(probeBudgetMs('2m', '10')).toBe(120_000);
    expect(probeBudgetMs(undefined, '10')).toBe(9_500);
    expect(probeBudgetMs(undefined, undefined)).toBe(60_000);
    expect(probeBudgetMs('1h', undefined)).toBe(600_000);
    expect(probeBudgetMs(undefined, '0.2')).toBe(500);
    expect(() => probeBudgetMs(undefined, 'soon')).toThrow(/Scrape-Timeout/);
  });
});

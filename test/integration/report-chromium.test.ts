/**
 * The HTML report as a person sees it: `mxprobe run --report` against a real smtp-server and the lab relay
 * (dropping everything after 64 KiB), then the file opened in headless Chromium (Debian's /usr/bin/chromium,
 * through playwright-core): no console or page errors, nothing fetched from anywhere, the heatmap with one cell
 * per (path, size), the interactions working, and a screenshot written for a person to look at.
 */
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseFault, startRelay, type Relay } from '../../src/lab/relay.js';
import { ensureBuilt, runCli, type CliRun } from '../helpers/cli.js';
import { startSmtpServer } from '../helpers/servers.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`skipping the headless-browser report test: ${CHROMIUM} is not installed (apt-get install chromium)`);

const SIZES = ['1KiB', '16KiB', '128KiB', '512KiB'];
/** Root with tcpdump: the stalled probes are captured, and the report draws their time-sequence graphs. */
const TCPDUMP = ['/usr/bin/tcpdump', '/usr/sbin/tcpdump'].find((p) => existsSync(p));
const CAPTURE = !!TCPDUMP && process.getuid?.() === 0;
const PATHS = ['direct', 'via-lb'];

describe.skipIf(!haveChromium)('HTML report in headless Chromium', () => {
  let smtp: Awaited<ReturnType<typeof startSmtpServer>>;
  let relay: Relay;
  let dir: string;
  let report: string;
  let run: CliRun;

  beforeAll(async () => {
    ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'mxprobe-report-ui-'));
    smtp = await startSmtpServer();
    relay = await startRelay({ targetHost: '127.0.0.1', targetPort: smtp.port, clientToServer: parseFault('blackhole-after=64KiB') });
    const profile = join(dir, 'lab.yaml');
    writeFileSync(
      profile,
      `name: lab-lb-vs-direct
tls: none
targets:
  - {host: 127.0.0.1, port: ${smtp.port}, name: sink}
paths:
  - name: direct
  - name: via-lb
    relay: '127.0.0.1:${relay.port}'
sizes: [${SIZES.join(', ')}]
repeat: 3
concurrency: 4
envelope: {from: probe@mxprobe.test, to: sink@mxprobe.test}
timeouts: {connect: 5s, command: 10s, data: 10s, body: 10s, dataAck: 10s, stall: 1s, noReply: 1s}
${CAPTURE ? `capture: '${join(dir, 'cap')}'\n` : ''}`,
    );
    report = join(dir, 'out', 'report.html');
    run = await runCli(['run', profile, '--out', join(dir, 'lab.jsonl'), '--quiet', '--report', report]);
  });

  afterAll(async () => {
    await relay?.close();
    await smtp?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('run --report writes the report after the table', () => {
    // some probes stalled: exit 1, and the report is named on stderr
    expect(run.code, run.stderr).toBe(1);
    expect(run.stdout).toContain('results:');
    expect(run.stderr).toMatch(/report: .*report\.html \(\d/);
    expect(statSync(report).size).toBeGreaterThan(10_000);
  });

  it('renders without errors, fetches nothing, and shows the heatmap, the charts and the table', async () => {
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      const errors: string[] = [];
      const requests: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
      page.on('request', (r) => requests.push(r.url()));
      const url = pathToFileURL(report).href;
      await page.goto(url, { waitUntil: 'load' });

      // the verdict on top names the stalling path
      const verdict = await page.locator('#verdict .verdict-text').innerText();
      expect(verdict).toMatch(/via-lb/);
      expect(await page.locator('#verdict').getAttribute('class')).toContain('bad');

      // heatmap: one cell per (path, size), and via-lb stalls above 64 KiB
      const cells = page.locator('#heatmap [data-cell]');
      expect(await cells.count()).toBe(SIZES.length * PATHS.length);
      const rate = async (path: string, size: number): Promise<number> =>
        Number(await page.locator(`#heatmap [data-cell="${path}|sink|${size}"]`).getAttribute('data-stall-rate'));
      expect(await rate('via-lb', 512 * 1024)).toBe(1);
      expect(await rate('via-lb', 128 * 1024)).toBe(1);
      expect(await rate('via-lb', 1024)).toBe(0);
      expect(await rate('direct', 512 * 1024)).toBe(0);
      // the stalled cells are painted differently from the clean ones
      const bg = (sel: string) => page.locator(sel).evaluate((el) => getComputedStyle(el).backgroundColor);
      const lb512 = `#heatmap [data-cell="via-lb|sink|${512 * 1024}"]`;
      const direct512 = `#heatmap [data-cell="direct|sink|${512 * 1024}"]`;
      expect(await bg(lb512)).not.toBe(await bg(direct512));
      // each cell says delivered/total, as the terminal table does, and is coloured by what happened, as its legend says
      expect(await page.locator(`${lb512} .hm-main`).innerText()).toBe('0/3');
      expect(await page.locator(`${direct512} .hm-main`).innerText()).toBe('3/3');
      const what = (await page.locator(lb512).getAttribute('data-what'))!;
      expect(['no-ack', 'window-closed', 'no-reply', 'stalled']).toContain(what);
      expect(await page.locator(direct512).getAttribute('data-what')).toBe('delivered');
      // the hashed <style> applied (the CSP has no 'unsafe-inline'): the cell has its legend swatch's colour
      expect(await bg(lb512)).toBe(await bg(`#heatmap .legend .sw.w-${what}:not(.mixed)`));
      expect(await bg(direct512)).toBe(await bg('#heatmap .legend .sw.w-delivered'));
      // the second view colours by stall rate
      await page.locator('input[name="hmview"][value="rate"]').check();
      expect(await bg(lb512)).toBe('rgb(140, 10, 20)');
      expect(await page.locator('#heatmap .legend-rate').isVisible()).toBe(true);
      await page.locator('input[name="hmview"][value="what"]').check();
      expect(await page.locator('#heatmap .legend-rate').isVisible()).toBe(false);
      // the time axis: one dot per probe
      expect(await page.locator('#timeline circle.tl-pt').count()).toBe(SIZES.length * PATHS.length * 3);
      // run --report has the full reply texts, not only the codes
      const replies = await page.locator('#raw-table tbody tr[data-outcome="delivered"]').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).innerText));
      expect(replies.length).toBeGreaterThan(0);
      for (const t of replies) expect(t).toMatch(/250 [^\t\n]*[a-z]{2,}/i);

      // waterfall rows, the scatter of stall offsets, the raw table
      expect(await page.locator('[data-wf-cell]').count()).toBe(SIZES.length * PATHS.length);
      expect(await page.locator('svg.scatter circle[data-point]').count()).toBe(2 * 3);
      expect(await page.locator('#raw-table tbody tr').count()).toBe(SIZES.length * PATHS.length * 3);

      // clicking a heatmap cell filters the table to its probes
      await page.locator(`[data-cell="via-lb|sink|${512 * 1024}"]`).click();
      const visible = await page.locator('#raw-table tbody tr').evaluateAll((rows) => rows.filter((r) => (r as HTMLElement).style.display !== 'none').length);
      expect(visible).toBe(3);
      expect(await page.locator('#raw-count').innerText()).toBe('3 of 24 probes');
      // the waterfall switches to per-row scale
      await page.locator('input[name="wfscale"][value="row"]').check();
      expect(await page.locator('#waterfall').getAttribute('class')).toContain('per-row');
      await page.locator('input[name="wfscale"][value="shared"]').check();
      await page.locator('#raw-filter').fill('');
      await page.locator('#raw-filter').dispatchEvent('input');

      // a time-sequence graph per captured (stalled) probe, drawn with the hashed style sheet's colours
      if (CAPTURE) {
        const graphs = page.locator('#captures svg.tsg');
        expect(await graphs.count()).toBe(2 * 3);
        expect(await page.locator('#captures svg.tsg line.seg').count()).toBeGreaterThan(6);
        expect(await page.locator('#captures svg.tsg polyline.ack').first().evaluate((el) => getComputedStyle(el).stroke)).toBe('rgb(44, 160, 44)');
        expect(await page.locator('#captures .tsg-probe p.muted').first().innerText()).toMatch(/data segments, \d+ retransmitted, \d+ ACKs/);
      }

      const shot = join(dir, 'report.png');
      await page.screenshot({ path: shot, fullPage: true });
      expect(statSync(shot).size).toBeGreaterThan(20_000);
      // a copy for a person to look at after the test (the temp dir is removed)
      copyFileSync(shot, '/tmp/mxprobe-report.png');

      expect(errors).toEqual([]);
      // nothing but the file itself was requested
      expect(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:') && !u.startsWith('blob:'))).toEqual([]);
      expect(readFileSync(report, 'utf8')).not.toMatch(/https?:\/\//);
    } finally {
      await browser.close();
    }
  });
});

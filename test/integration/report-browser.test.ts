import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderReport } from '../../src/report/render';
import { writeReportFiles } from '../../src/report/write';
import { findChromium } from '../support/browser';
import { fixtureInput } from '../unit/report.test';

describe('report in a headless browser', function () {
  this.timeout(180_000);
  let chromium: string | undefined;
  let dir = '';
  let url = '';

  before(async function () {
    chromium = findChromium();
    if (!chromium) {
      console.log('    chromium is not installed (run scripts/install-chromium.sh as root); skipping');
      this.skip();
    }
    dir = await mkdtemp(path.join(os.tmpdir(), 'report-browser-'));
    await writeReportFiles(path.join(dir, 'report'), renderReport(fixtureInput()));
    url = pathToFileURL(path.join(dir, 'report', 'report.html')).href;
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function runChromium(args: string[]): ReturnType<typeof spawnSync> {
    const base = ['--headless=new', '--no-sandbox', '--disable-gpu', `--user-data-dir=${path.join(dir, 'profile')}`];
    const r = spawnSync(chromium ?? 'chromium', [...base, ...args, url], {
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.status, 0, `chromium exited ${r.status}: ${String(r.stderr).slice(-2000)}`);
    return r;
  }

  it('renders every chart with shapes and a size', () => {
    const dom = String(runChromium(['--dump-dom']).stdout);
    assert.match(dom, /<h1>Polyglot demo leaderboard<\/h1>/);
    const charts = [...dom.matchAll(/<svg\b([^>]*)>([\s\S]*?)<\/svg>/g)];
    assert.equal(charts.length, 7);
    for (const [, attrs = '', body = ''] of charts) {
      assert.match(attrs, /class="chart"/);
      const width = Number(/\swidth="([\d.]+)"/.exec(attrs)?.[1]);
      const height = Number(/\sheight="([\d.]+)"/.exec(attrs)?.[1]);
      assert.ok(width > 0 && height > 0, attrs);
      assert.ok((body.match(/<(rect|path|circle)\b/g) ?? []).length >= 3, attrs);
    }
  });

  it('takes a full-page screenshot', async () => {
    const png = path.join(process.env.REPORT_SCREENSHOT_DIR ?? dir, 'report.png');
    runChromium([`--screenshot=${png}`, '--window-size=1280,4000', '--hide-scrollbars']);
    const st = await stat(png);
    assert.ok(st.size > 10 * 1024, `screenshot is ${st.size} bytes`);
  });
});

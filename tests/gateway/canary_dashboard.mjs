// Browser side of tests/gateway/test_canary.py::test_dashboard_draws_the_canary_in_a_real_browser: headless
// Chromium (playwright-core) signs in to /admin and reads the registry section: the canary's arms, intervals,
// rule and verdict, and the versions table; a screenshot of the section goes to spec.shots.
// Usage: node canary_dashboard.mjs SPEC.json
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { chromium } = createRequire(spec.nodeModules + '/')('playwright-core');
fs.mkdirSync(spec.shots, { recursive: true });
const browser = await chromium.launch({ executablePath: spec.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const out = {};
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(spec.url + '/admin');
  await page.fill('input[name=name]', spec.admin);
  await page.fill('input[name=password]', spec.password);
  await page.click('#login');
  await page.waitForFunction(() => Number(document.body.dataset.loads || 0) >= 1, null, { timeout: 20000 });
  Object.assign(out, await page.evaluate(() => {
    const c = document.querySelector('[data-canary]');
    const arms = Object.fromEntries([...c.querySelectorAll('tr[data-arm]')].map((tr) => [tr.dataset.arm,
      Object.fromEntries([...tr.querySelectorAll('[data-col]')].map((td) => [td.dataset.col, td.textContent.trim()]))]));
    const versions = Object.fromEntries([...document.querySelectorAll('#versions-table tbody tr')].map((tr) =>
      [tr.dataset.ref, tr.querySelector('[data-col=state]').textContent.trim()]));
    return { canary: c.dataset.canary, team: c.dataset.team, heading: c.querySelector('h3').textContent,
      arms, verdict: c.querySelector('[data-col=verdict]').textContent.trim(), text: c.textContent, versions };
  }));
  await (await page.$('#registry')).screenshot({ path: path.join(spec.shots, 'registry.png') });
} finally {
  await browser.close();
  fs.writeFileSync(spec.result, JSON.stringify(out, null, 1));
}

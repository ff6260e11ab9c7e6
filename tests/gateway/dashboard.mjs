// Browser side of tests/gateway/test_dashboard.py: headless Chromium (playwright-core) signs in to /admin,
// reads the numbers the page shows, filters by team, revokes a token from the tokens table, and takes a
// screenshot of each step. Findings go to spec.result as JSON; the pytest side asserts on them.
// Usage: node dashboard.mjs SPEC.json
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const { chromium } = createRequire(spec.nodeModules + '/')('playwright-core');
fs.mkdirSync(spec.shots, { recursive: true });
const out = { steps: [] };
let n = 0;
const shot = async (page, name) => {
  n += 1;
  await page.screenshot({ path: path.join(spec.shots, `${String(n).padStart(2, '0')}-${name}.png`), fullPage: true });
  out.steps.push(name);
};
const loads = (page) => page.evaluate(() => Number(document.body.dataset.loads || 0));
async function waitLoads(page, atLeast) {
  await page.waitForFunction((k) => Number(document.body.dataset.loads || 0) >= k, atLeast, { timeout: 20000 });
}
const read = (page) => page.evaluate(() => {
  const metrics = {};
  document.querySelectorAll('[data-metric]').forEach((e) => { metrics[e.dataset.metric] = e.textContent.trim(); });
  const rows = (sel, key) => Object.fromEntries([...document.querySelectorAll(sel)].map((tr) => [tr.dataset[key],
    Object.fromEntries([...tr.querySelectorAll('[data-col]')].map((td) => [td.dataset.col, td.textContent.trim()]))]));
  const bars = [...document.querySelectorAll('#chart-users rect')].map((r) => Number(r.dataset.value));
  const kinds = Object.fromEntries([...document.querySelectorAll('#kinds-table td')].map((td) => [td.dataset.kind,
    td.textContent.trim()]));
  return { metrics, quality: rows('#quality-table tbody tr', 'adapter'), service: rows('#service-table tbody tr', 'upstream'),
    tokens: rows('#tokens-table tbody tr', 'tokenId'), usersPerDay: bars, kinds,
    audit: document.querySelectorAll('#audit-table tbody tr').length };
});

const browser = await chromium.launch({ executablePath: spec.chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(spec.url + '/admin');
  await shot(page, 'login');
  await page.fill('input[name=name]', spec.admin);
  await page.fill('input[name=password]', 'wrong password');
  await page.click('#login');
  out.wrongPassword = (await page.textContent('body')).includes('wrong user or password');
  await page.fill('input[name=name]', spec.admin);
  await page.fill('input[name=password]', spec.password);
  await page.click('#login');
  await waitLoads(page, 1);
  out.all = await read(page);
  await shot(page, 'dashboard-all');
  let k = await loads(page);
  await page.selectOption('#f-team', spec.team);
  await waitLoads(page, k + 1);
  out.team = await read(page);
  await shot(page, `dashboard-team-${spec.team}`);
  await page.click(`button[data-revoke="${spec.revokeId}"]`);
  await page.waitForFunction((id) => document.querySelector(`tr[data-token-id="${id}"] [data-col=state]`)
    ?.textContent === 'revoked', spec.revokeId, { timeout: 20000 });
  out.afterRevoke = await read(page);
  await shot(page, 'token-revoked');
} finally {
  await browser.close();
  fs.writeFileSync(spec.result, JSON.stringify(out, null, 1));
}

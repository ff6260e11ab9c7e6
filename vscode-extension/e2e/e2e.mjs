// Browser side of the inhouse VS Code end-to-end test (driven by tests/e2e/test_vscode.py).
// Opens code-server in Debian's Chromium with playwright-core, waits for the inhouse status bar item to say
// "ready", then per case: opens the file, puts the cursor, triggers an inline suggestion, waits for ghost
// text, accepts it with Tab, saves and waits for the file on disk to change. Then it toggles completions off
// and on by clicking the status bar item. Screenshots of every step go to spec.shots; the findings go to
// spec.result as JSON (the pytest side asserts on them and on the files on disk).
// Usage: node e2e.mjs SPEC.json
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const SHOTS = spec.shots;
fs.mkdirSync(SHOTS, { recursive: true });
const PROFILE = fs.mkdtempSync(path.join(spec.tmp || process.env.TMPDIR || '/tmp', 'chromium-profile-'));
// Chromium puts its SingletonSocket under $TMPDIR; a unix socket path must stay under 108 bytes, which a
// pytest tmp_path (pytest-of-root/pytest-121/test_vscode_..._0/tmp/...) can exceed: give it a short one.
const SOCKET_TMP = fs.mkdtempSync(process.platform === 'win32' ? path.join(PROFILE, 's-') : '/tmp/ih-chr-');
const GHOST_SEL = '.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text';
const STATUS_SEL = '.statusbar-item';

const t0 = Date.now();
const timings = {};
const mark = (k) => {
  timings[k] = Number(((Date.now() - t0) / 1000).toFixed(2));
  console.log(`[${timings[k]}s] ${k}`);
};
let shotNo = 0;
const shots = [];
async function shot(page, name) {
  shotNo += 1;
  const file = path.join(SHOTS, `${String(shotNo).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file });
  shots.push(file);
}

async function statusText(page) {
  return page.evaluate((sel) => {
    const items = [...document.querySelectorAll(sel)];
    const mine = items.find((e) => (e.textContent || '').includes('inhouse:'));
    return mine ? mine.textContent.replace(/\u00a0/g, ' ').trim() : null;
  }, STATUS_SEL);
}

async function waitStatus(page, re, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    last = await statusText(page);
    if (last !== null && re.test(last)) return last;
    await page.waitForTimeout(150);
  }
  throw new Error(`status bar never matched ${re} within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

async function clickStatus(page) {
  await page.locator(STATUS_SEL, { hasText: 'inhouse:' }).first().click();
}

async function openFile(page, file) {
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: file }).first();
  if (await row.isVisible().catch(() => false)) {
    await row.click();
  } else {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input[type=text]');
    await input.waitFor({ state: 'visible', timeout: 10000 });
    await input.fill(file);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: file }).first().waitFor({ timeout: 15000 });
    await page.keyboard.press('Enter');
  }
  await page.locator(`.tab.active[aria-label*="${file}"]`).first().waitFor({ timeout: 15000 });
  await page.locator('.editor-instance .monaco-editor .view-lines').first().waitFor({ timeout: 15000 });
}

async function focusEditor(page) {
  await page.locator('.editor-instance .monaco-editor .view-lines').first().click();
}

async function gotoLineCol(page, line, col) {
  await page.keyboard.press('Control+G');
  const input = page.locator('.quick-input-widget input[type=text]');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill(`:${line}:${col}`);
  await page.keyboard.press('Enter');
  await input.waitFor({ state: 'hidden', timeout: 10000 });
}

async function runCommand(page, label) {
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input[type=text]');
  await input.waitFor({ state: 'visible', timeout: 10000 });
  await input.fill('>' + label);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: label }).first().waitFor({ timeout: 10000 });
  await page.keyboard.press('Enter');
}

// Ghost text as VS Code renders it: `.ghost-text-decoration` spans on the cursor line (one span per syntax
// token), `.ghost-text` spans in the view zone below for the extra lines of a multi-line suggestion, grouped
// by their line element.
async function ghost(page) {
  return page.evaluate((sel) => {
    const clean = (s) => (s || '').replace(/\u00a0/g, ' ');
    const inline = [];
    const lineEls = [];
    const lineText = new Map();
    const html = [];
    for (const e of document.querySelectorAll(sel)) {
      html.push(e.outerHTML.slice(0, 200));
      if (e.classList.contains('ghost-text-decoration') || e.classList.contains('ghost-text-decoration-preview')) {
        inline.push(clean(e.textContent));
      } else {
        const lineEl = e.closest('.view-line') || e.parentElement;
        if (!lineText.has(lineEl)) {
          lineEls.push(lineEl);
          lineText.set(lineEl, '');
        }
        lineText.set(lineEl, lineText.get(lineEl) + clean(e.textContent));
      }
    }
    const out = { inline: inline.join(''), lines: lineEls.map((el) => lineText.get(el)), html };
    out.any = [out.inline, ...out.lines].some((t) => t.trim().length > 0);
    return out;
  }, GHOST_SEL);
}

async function waitGhost(page, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const g = await ghost(page);
    if (g.any) return g;
    await page.waitForTimeout(100);
  }
  return null;
}

async function triggerUntilGhost(page, totalMs) {
  const deadline = Date.now() + totalMs;
  let attempts = 0;
  while (Date.now() < deadline) {
    attempts += 1;
    // Alt+\ is bound to editor.action.inlineSuggest.trigger in the test's keybindings.json
    await page.keyboard.press('Alt+Backslash');
    let g = await waitGhost(page, 4000);
    if (!g && attempts % 2 === 0) {
      await runCommand(page, 'Trigger Inline Suggestion');
      g = await waitGhost(page, 4000);
    }
    if (g) return { ghost: g, attempts };
  }
  return { ghost: null, attempts };
}

// The file on disk once it differs from `before` and two reads 150 ms apart agree (a save truncates, then writes).
async function waitFileChange(file, before, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last = null;
  while (Date.now() < deadline) {
    const now = fs.readFileSync(file, 'utf8');
    if (now !== before && now === last) return now;
    last = now;
    await new Promise((r) => setTimeout(r, 150));
  }
  return fs.readFileSync(file, 'utf8');
}

const browser = await chromium.launchPersistentContext(PROFILE, {
  executablePath: spec.chromium || '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  env: { ...process.env, TMPDIR: SOCKET_TMP },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = browser.pages()[0] || (await browser.newPage());
const consoleErrors = [];
page.on('pageerror', (e) => consoleErrors.push('pageerror: ' + e.message));
const result = { ok: false, error: null, status: {}, cases: [], toggle: {}, partial: null, broken: null, timings, shots, consoleErrors };

try {
  mark('browser launched');
  await page.goto(spec.url, { waitUntil: 'domcontentloaded', timeout: 60000 });
  await page.locator('.monaco-workbench').waitFor({ timeout: 60000 });
  await page.locator('.explorer-folders-view .monaco-list-row', { hasText: spec.cases[0].file }).first().waitFor({ timeout: 60000 });
  mark('workbench ready');
  await shot(page, 'workbench');
  // readiness: the extension activated, started `inhouse lsp`, and the server is answering
  result.status.first = await waitStatus(page, /inhouse: /, 60000);
  result.status.ready = await waitStatus(page, /inhouse: ready/, spec.readyTimeoutMs || 90000);
  mark('status ready');
  await shot(page, 'status-ready');

  for (const c of spec.cases) {
    const r = { file: c.file, name: c.name };
    result.cases.push(r);
    const onDisk = path.join(spec.workspace, c.file);
    const before = fs.readFileSync(onDisk, 'utf8');
    await openFile(page, c.file);
    await focusEditor(page);
    await gotoLineCol(page, c.line, c.column);
    await page.waitForTimeout(300);
    mark(`${c.name}: opened`);
    await shot(page, `${c.name}-opened`);
    const { ghost: g, attempts } = await triggerUntilGhost(page, spec.ghostTimeoutMs || 45000);
    r.attempts = attempts;
    r.ghost = g;
    r.statusWithGhost = await statusText(page);
    mark(`${c.name}: ghost text`);
    await shot(page, `${c.name}-ghost-text`);
    if (!g) throw new Error(`no ghost text in ${c.file} at ${c.line}:${c.column} after ${attempts} triggers`);
    await page.keyboard.press('Tab');
    await page.waitForTimeout(400);
    r.ghostAfterTab = await ghost(page);
    await shot(page, `${c.name}-accepted`);
    await page.keyboard.press('Control+S');
    r.saved = await waitFileChange(onDisk, before, 10000);
    // the tab's dirty dot goes once VS Code has seen the save finish
    r.dirtyAfterSave = await page.locator('.tab.active.dirty').waitFor({ state: 'detached', timeout: 5000 })
      .then(() => 0, () => 1);
    mark(`${c.name}: accepted and saved`);
    await shot(page, `${c.name}-saved`);
  }

  // partial accept: Ctrl+Right takes the suggestion's next word only
  if (spec.partial) {
    const c = spec.partial;
    const onDisk = path.join(spec.workspace, c.file);
    const before = fs.readFileSync(onDisk, 'utf8');
    await openFile(page, c.file);
    await focusEditor(page);
    await gotoLineCol(page, c.line, c.column);
    const { ghost: g } = await triggerUntilGhost(page, spec.ghostTimeoutMs || 45000);
    if (!g) throw new Error(`no ghost text in ${c.file} for the partial accept`);
    await page.keyboard.press('Control+ArrowRight');
    await page.waitForTimeout(400);
    await shot(page, `${c.name}-word-accepted`);
    await page.keyboard.press('Escape');
    await page.keyboard.press('Control+S');
    result.partial = { ghost: g, saved: await waitFileChange(onDisk, before, 10000) };
    mark(`${c.name}: one word accepted and saved`);
  }

  // toggle: click the status bar item -> disabled (no ghost text on trigger) -> click again -> ready
  await clickStatus(page);
  result.toggle.off = await waitStatus(page, /inhouse: disabled/, 10000);
  await focusEditor(page);
  await page.keyboard.press('Control+End');
  await page.keyboard.press('Alt+Backslash');
  result.toggle.ghostWhileOff = await waitGhost(page, 2500);
  await shot(page, 'status-disabled');
  await clickStatus(page);
  result.toggle.on = await waitStatus(page, /inhouse: ready/, 10000);
  await shot(page, 'status-ready-again');
  mark('toggled off and on');

  // a wrong server command, typed into the Settings editor the way a user would: the extension restarts the
  // server, must show exactly one error notification with the fix, and the status bar must say so
  if (spec.brokenServerCommand) {
    await runCommand(page, 'Preferences: Open User Settings');
    await page.locator('.settings-editor').first().waitFor({ timeout: 15000 });
    await page.waitForTimeout(500);
    await page.keyboard.type('inhouse.server.command', { delay: 10 });
    const item = page.locator('.settings-editor .setting-item-contents', { hasText: 'Server: Command' }).first();
    const input = item.locator('input').filter({ visible: true }).first();
    await input.waitFor({ timeout: 15000 });
    await input.click();
    await input.fill(spec.brokenServerCommand);
    await page.keyboard.press('Tab');
    result.broken = { status: await waitStatus(page, /inhouse: server not running/, 30000) };
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'could not start' });
    await toast.first().waitFor({ timeout: 15000 });
    await page.waitForTimeout(1500); // give a second message the chance to appear
    result.broken.toasts = await page
      .locator('.notifications-toasts .notification-toast .notification-list-item-message')
      .allTextContents();
    await shot(page, 'server-cannot-start');
    mark('wrong server command reported');
  }
  result.ok = true;
} catch (e) {
  result.error = String(e && e.stack ? e.stack : e);
  console.error('ERROR', result.error);
  await shot(page, 'failure').catch(() => {});
} finally {
  mark('done');
  fs.writeFileSync(spec.result, JSON.stringify(result, null, 2));
  await browser.close().catch(() => {});
  fs.rmSync(PROFILE, { recursive: true, force: true });
  fs.rmSync(SOCKET_TMP, { recursive: true, force: true });
  process.exit(result.ok ? 0 : 1);
}

// System Health in a real browser: an admin switches the mode with a reason
// and back, sees SWITCH events arrive live, retries a dead job and reads its
// timeline. Screenshots of each screen go to docs/ui/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  FakeTelegram, SCREENSHOTS, UsherServer, launchBrowser, screenshot, uniqueEmail, waitForText,
} from './harness.js';

const LIVE_MS = 2000; // SPEC: new events within 2 s without a reload

let server;
let telegram;

// `usher mode set` while serve runs can fail at once with SQLite's "database
// is locked" (the CLI's transaction upgrades from a read to a write lock;
// reported in the closing note): tried up to three times.
function cliModeSet(mode, reason) {
  for (let tries = 1; ; tries += 1) {
    try {
      server.cli(['mode', 'set', mode, '--reason', reason]);
      return;
    } catch (e) {
      if (tries === 3 || !String(e.message).includes('database is locked')) throw e;
    }
  }
}
let browser;
let page;
let admin;
let sales;
let deadEmail;
let deadJob;

before(async () => {
  telegram = await new FakeTelegram().start();
  server = new UsherServer('admin', {
    TELEGRAM_BOT_TOKEN: '123:browser-test',
    TELEGRAM_ADMIN_CHAT_ID: '-100777',
    TELEGRAM_API_URL: telegram.url,
    ALERT_THROTTLE_MS: '1000',
  });
  admin = server.createToken('admin', 'alice');
  sales = server.createToken('sales_manager', 'sam');

  // A dead job: every attempt fails at the account step, one attempt allowed
  // (the fault injection of docs/configuration.md).
  await server.start({ JOB_MAX_ATTEMPTS: '1', USHER_FAULT_AFTER: 'account', USHER_FAULT_MODE: 'throw' });
  deadEmail = uniqueEmail('dana');
  const created = await server.request('POST', '/api/v1/users', {
    token: sales, body: { email: deadEmail, full_name: 'Dana Dead', product: 'Pro plan' },
  });
  assert.equal(created.status, 202, created.text);
  deadJob = created.json.job_id;
  await server.waitForJob(deadJob, 'dead', admin);
  await server.stop();

  // The same database without the fault: a retried job now succeeds.
  await server.start();
  // Some history for the screenshots.
  for (const name of ['Ada Lovelace', 'Grace Hopper']) {
    const r = await server.request('POST', '/api/v1/users', {
      token: sales, body: { email: uniqueEmail(name.split(' ')[0].toLowerCase()), full_name: name },
    });
    assert.equal(r.status, 202, r.text);
  }
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
});

after(async () => {
  await browser?.close();
  await server?.close();
  await telegram?.close();
});

test('an admin signs in and sees System Health', async () => {
  await page.goto(server.url);
  await page.getByLabel('API token').fill(admin);
  await screenshot(page, 'sign-in-desktop');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'System Health' }).waitFor();
  await waitForText(page.locator('#mode-name'), 'async_queue');
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.ok(!page.url().includes(admin), 'the token never appears in the URL');
  // The dead job is listed with a Retry button.
  await page.getByRole('row').filter({ hasText: deadEmail }).getByRole('button', { name: 'Retry' }).waitFor();
});

test('switching the mode asks for a reason and a confirmation, and the SWITCH event appears live', async () => {
  await page.getByRole('button', { name: 'Switch mode' }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  // Confirm without a reason is refused in the page.
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  await waitForText(page.locator('#switch-error'), 'reason');
  await dialog.getByLabel('Reason').fill('Redis failover drill');
  await screenshot(page, 'switch-mode-desktop');
  await dialog.getByRole('button', { name: 'Confirm' }).click();
  // The new state shows at once, and the SWITCH row within 2 s.
  await waitForText(page.locator('#mode-name'), 'sync_direct', LIVE_MS);
  const switchRows = page.getByRole('row').filter({ hasText: 'SWITCH' });
  await switchRows.filter({ hasText: 'from async_queue to sync_direct' }).first().waitFor({ timeout: LIVE_MS });
  await waitForText(page.locator('#mode-facts'), 'Redis failover drill');
  await waitForText(page.locator('#mode-facts'), 'alice');

  // Another admin switches back from the command line: the page shows it
  // within 2 s, without a reload.
  cliModeSet('async_queue', 'drill over (cli)');
  await switchRows.filter({ hasText: 'from sync_direct to async_queue' }).first().waitFor({ timeout: LIVE_MS });
  await waitForText(page.locator('#mode-name'), 'async_queue', LIVE_MS + 1000);

  // And once more from the page, then back again.
  await page.getByRole('button', { name: 'Switch mode' }).click();
  await page.getByLabel('Reason').fill('second drill');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitForText(page.locator('#mode-name'), 'sync_direct', LIVE_MS);
  await page.getByRole('button', { name: 'Switch mode' }).click();
  await page.getByLabel('Reason').fill('back to the queue');
  await page.getByRole('button', { name: 'Confirm' }).click();
  await waitForText(page.locator('#mode-name'), 'async_queue', LIVE_MS);
  const mode = await server.request('GET', '/api/v1/admin/system/mode', { token: admin });
  assert.equal(mode.json.mode, 'async_queue');
});

test('a dead job is retried from the page and its timeline tells the story', async () => {
  const row = page.locator('#dead-body tr').filter({ hasText: deadEmail });
  // The screen as an admin finds it: one dead job, the history so far.
  await waitForText(page.locator('#queue-counts .status-succeeded'), '2');
  await screenshot(page, 'system-health-desktop');
  await row.getByRole('button', { name: 'Retry' }).click();
  await waitForText(page.locator('#dead-status'), `Job ${deadJob}`);
  await row.waitFor({ state: 'detached' });
  await server.waitForJob(deadJob, 'succeeded', admin);

  await page.getByLabel('Find customer').fill(deadEmail);
  await page.getByLabel('Find customer').press('Enter');
  await page.getByRole('heading', { name: `Timeline of job ${deadJob}` }).waitFor();
  const list = page.locator('#timeline-list');
  await waitForText(list.locator('li'), 'Requested by sam');
  await waitForText(list.locator('li.kind-attempt'), 'dead');
  await waitForText(list.locator('li.kind-attempt'), 'succeeded');
  await waitForText(list.locator('li.kind-event'), 'ERROR');
  await waitForText(list.locator('li.kind-alert'), 'delivered');
  const kinds = await list.locator('li').evaluateAll((items) => items.map((i) => i.className));
  assert.ok(kinds[0].includes('kind-request'), 'the request comes first');
  await page.locator('#timeline-card').screenshot({ path: `${SCREENSHOTS}/timeline-desktop.png`, animations: 'disabled' });

  // By job id too.
  await page.getByLabel('Find customer').fill(String(deadJob));
  await page.getByLabel('Find customer').press('Enter');
  await page.getByRole('heading', { name: `Timeline of job ${deadJob}` }).waitFor();

  // The same timeline through the API.
  const api = await server.request('GET', `/api/v1/admin/jobs/${deadJob}/timeline`, { token: admin });
  assert.equal(api.status, 200);
  assert.deepEqual([...new Set(api.json.entries.map((e) => e.kind))].sort(),
    ['alert', 'attempt', 'event', 'request']);
});

test('System Health at 375 px', async () => {
  await page.getByRole('button', { name: 'Close' }).click();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.getByRole('heading', { name: 'System Health' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'nothing wider than the phone');
  await screenshot(page, 'system-health-mobile');
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('the health log filters by type and pages to older events', async () => {
  // More than a page (50) of SWITCH events, through the API.
  for (let i = 0; i < 50; i += 1) {
    const r = await server.request('PUT', '/api/v1/admin/system/mode', {
      token: admin, body: { mode: i % 2 === 0 ? 'sync_direct' : 'async_queue', reason: `paging ${i}` },
    });
    assert.equal(r.status, 200, r.text);
  }
  await page.getByLabel('Event type').selectOption('SWITCH');
  await page.locator('#log-body tr.type-ERROR').first().waitFor({ state: 'detached' });
  const rows = page.locator('#log-body tr');
  await page.getByRole('button', { name: 'Load older events' }).waitFor();
  const firstPage = await rows.count();
  assert.equal(firstPage, 50);
  await page.getByRole('button', { name: 'Load older events' }).click();
  await page.waitForFunction(() => document.querySelectorAll('#log-body tr').length > 50);
  const types = await page.locator('#log-body tr td:nth-child(2)').allTextContents();
  assert.ok(types.every((t) => t === 'SWITCH'), 'only SWITCH rows under the filter');
  await page.getByLabel('Event type').selectOption('ERROR');
  await page.locator('#log-body tr.type-ERROR').filter({ hasText: deadEmail }).waitFor();
  assert.equal(await page.locator('#log-body tr:not(.type-ERROR)').count(), 0);
  await page.getByLabel('Event type').selectOption('');
  await page.locator('#log-body tr.type-SWITCH').first().waitFor();
});

test('when usher stops answering the screen says its figures are stale, and recovers', async () => {
  const port = server.port;
  await server.stop();
  await waitForText(page.locator('#health-updated'), 'Not updated', 5000);
  // Back on the same address: the page goes on by itself.
  await server.start({ USHER_LISTEN: `127.0.0.1:${port}` });
  await page.locator('#health-updated:not(.stale)').waitFor({ timeout: 5000 });
  assert.match(await page.locator('#health-updated').textContent(), /^Updated /);
});

test('signing out forgets the token', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('API token').waitFor();
  const stored = await page.evaluate(() => JSON.stringify(sessionStorage));
  assert.ok(!stored.includes(admin), 'no token left in sessionStorage');
  await page.reload();
  await page.getByLabel('API token').waitFor();
  assert.equal(await page.getByRole('heading', { name: 'System Health' }).isVisible(), false);
});

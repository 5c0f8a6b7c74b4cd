// Account creation in a real browser, as a sales manager: field errors from
// the server next to their field, a queued request that turns succeeded,
// the duplicate message, one request however often the button is pressed,
// names shown as text, and no way into System Health.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { UsherServer, launchBrowser, screenshot, uniqueEmail, waitForText } from './harness.js';

let server;
let browser;
let page;
let admin;
let sales;

async function jobsFor(email) {
  const r = await server.request('GET', '/api/v1/admin/jobs?limit=500', { token: admin });
  return r.json.jobs.filter((j) => j.email === email);
}

async function fillForm(email, fullName, { phone = '', product = '' } = {}) {
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Full name').fill(fullName);
  await page.getByLabel('Phone').fill(phone);
  await page.getByLabel('Product').fill(product);
}

before(async () => {
  server = new UsherServer('sales');
  admin = server.createToken('admin', 'alice');
  sales = server.createToken('sales_manager', 'sam');
  await server.start();
  browser = await launchBrowser();
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('dialog', (d) => d.dismiss());
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('a sales manager signs in to Create account and is not offered System Health', async () => {
  await page.goto(server.url);
  await page.getByLabel('API token').fill(sales);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Create account' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'System Health' }).count(), 0);
  assert.equal(await page.getByRole('heading', { name: 'System Health' }).count(), 0);
  // Typing the address of the screen does not open it either.
  await page.goto(`${server.url}/#health`);
  await page.getByRole('heading', { name: 'Not available' }).waitFor();
  assert.equal(await page.getByRole('heading', { name: 'System Health' }).isVisible(), false);
  // And the API refuses the token.
  for (const path of ['/api/v1/admin/system/mode', '/api/v1/admin/health/logs', '/api/v1/admin/queue']) {
    const r = await server.request('GET', path, { token: sales });
    assert.equal(r.status, 403, path);
  }
  await page.getByRole('link', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Create account' }).waitFor();
});

test('the server names the bad field and the page shows the error next to it', async () => {
  await fillForm('not-an-email', 'Bob Buyer');
  await page.getByRole('button', { name: 'Create account' }).click();
  const email = page.getByLabel('Email');
  await page.locator('#create-email-error').filter({ hasText: /./ }).waitFor();
  assert.equal(await email.getAttribute('aria-invalid'), 'true');
  const describedBy = await email.getAttribute('aria-describedby');
  assert.equal(describedBy, 'create-email-error');
  assert.equal(await page.getByLabel('Full name').getAttribute('aria-invalid'), null);
  await screenshot(page, 'create-account-error-desktop');
  assert.equal((await jobsFor('not-an-email')).length, 0);
});

test('a created account shows its status and activation token once, then turns succeeded', async () => {
  const email = uniqueEmail('bob');
  const name = '<script>window.__pwned = 1</script> Bob <b>Buyer</b>';
  await fillForm(email, name, { phone: '+1 555 0100', product: 'Pro plan' });
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Request queued' }).waitFor();
  await waitForText(page.locator('#create-result-facts'), 'queued');
  const token = await page.getByLabel('Activation token').inputValue();
  assert.match(token, /^usher_a_/);
  await page.getByRole('button', { name: 'Copy' }).waitFor();
  // The name is shown as text, never run or parsed as markup.
  await page.getByText(name, { exact: true }).waitFor();
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.locator('main script, main b').count(), 0);
  // My recent requests: the row turns succeeded without a reload.
  const row = page.locator('#recent-body tr').filter({ hasText: email });
  await waitForText(row, 'succeeded', 15000);
  await screenshot(page, 'create-account-desktop');
  await page.setViewportSize({ width: 375, height: 812 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  assert.equal(overflow, false, 'nothing wider than the phone');
  await screenshot(page, 'create-account-mobile');
  await page.setViewportSize({ width: 1280, height: 900 });

  // The same buyer again: a plain duplicate message.
  await page.getByRole('button', { name: 'Create another' }).click();
  await fillForm(email.toUpperCase(), 'Bob Again');
  await page.getByRole('button', { name: 'Create account' }).click();
  await waitForText(page.locator('#create-status'), 'already has an account or a pending request');
  assert.equal(await page.getByLabel('Email').getAttribute('aria-invalid'), 'true');
  await screenshot(page, 'create-account-duplicate-desktop');
  assert.equal((await jobsFor(email)).length, 1);
});

test('a double click creates one request', async () => {
  const email = uniqueEmail('double');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Full name').fill('Double Click');
  await page.getByRole('button', { name: 'Create account' }).dblclick();
  await page.getByRole('heading', { name: 'Request queued' }).waitFor();
  assert.equal((await jobsFor(email)).length, 1);
  await page.getByRole('button', { name: 'Create another' }).click();
});

test('a retry after a network error sends the same request again, never a second one', async () => {
  const email = uniqueEmail('retry');
  const keys = [];
  // The first POST reaches usher, but its answer is lost on the way back.
  let lose = true;
  await page.route('**/api/v1/users', async (route) => {
    keys.push(route.request().headers()['idempotency-key']);
    if (lose) {
      lose = false;
      await route.fetch();
      await route.abort('connectionreset');
      return;
    }
    await route.continue();
  });
  await fillForm(email, 'Rita Retry');
  await page.getByRole('button', { name: 'Create account' }).click();
  await waitForText(page.locator('#create-status'), 'retry safely');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Request queued' }).waitFor();
  await page.unroute('**/api/v1/users');
  assert.equal(keys.length, 2);
  assert.ok(keys[0] && keys[0] === keys[1], 'the same Idempotency-Key both times');
  assert.equal((await jobsFor(email)).length, 1);
  // The replay carries no activation token: the page says it was shown already.
  await waitForText(page.locator('#create-result-facts'), 'already shown');
  await page.getByRole('button', { name: 'Create another' }).click();
});

test('the form works by keyboard alone', async () => {
  const email = uniqueEmail('keys');
  await page.getByLabel('Email').focus();
  await page.keyboard.type(email);
  await page.keyboard.press('Tab');
  await page.keyboard.type('Kim Keyboard');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Create account');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Request queued' }).waitFor();
  assert.equal((await jobsFor(email)).length, 1);
});

test('the creator may read the timeline of their own job, not of another', async () => {
  const own = (await jobsFor((await page.locator('#recent-body tr td:nth-child(2)').first().textContent())))[0];
  const mine = await server.request('GET', `/api/v1/admin/jobs/${own.id}/timeline`, { token: sales });
  assert.equal(mine.status, 200);
  const other = server.createToken('sales_manager', 'sue');
  const theirs = await server.request('GET', `/api/v1/admin/jobs/${own.id}/timeline`, { token: other });
  assert.equal(theirs.status, 403);
});

test('a lost activation link is resent from the form: a new token, the old one refused', async () => {
  const email = uniqueEmail('lost');
  const made = await server.request('POST', '/api/v1/users', { token: sales, body: { email, full_name: 'Lou Lost' } });
  assert.equal(made.status, 202);
  await server.waitForJob(made.json.job_id, 'succeeded', admin);
  const oldToken = made.json.activation_token;

  // Not an email, then nobody: told next to the field, nothing issued.
  await page.getByLabel('Customer', { exact: true }).fill('nobody');
  await page.getByRole('button', { name: 'Resend activation' }).click();
  await waitForText(page.locator('#resend-customer-error'), 'email');
  assert.equal(await page.getByLabel('Customer', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('Customer', { exact: true }).fill(uniqueEmail('nobody'));
  await page.getByRole('button', { name: 'Resend activation' }).click();
  await waitForText(page.locator('#resend-customer-error'), 'No account');

  await page.getByLabel('Customer', { exact: true }).fill(email.toUpperCase());
  await page.getByRole('button', { name: 'Resend activation' }).click();
  await waitForText(page.locator('#resend-status'), 'New activation token issued');
  assert.equal(await page.getByLabel('Customer', { exact: true }).getAttribute('aria-invalid'), null);
  const newToken = await page.getByLabel('New token', { exact: true }).inputValue();
  assert.match(newToken, /^usher_a_/);
  assert.notEqual(newToken, oldToken);
  await waitForText(page.locator('#resend-facts'), email);
  await screenshot(page, 'resend-activation-desktop');

  const old = await server.request('POST', '/api/v1/auth/activate', { body: { token: oldToken, password: 'a good password' } });
  assert.equal(old.status, 400);
  assert.equal(old.json.code, 'activation_token_invalid');
  const ok = await server.request('POST', '/api/v1/auth/activate', { body: { token: newToken, password: 'a good password' } });
  assert.equal(ok.status, 200);

  // Activated: nothing to resend, and no token is issued.
  await page.getByRole('button', { name: 'Resend activation' }).click();
  await waitForText(page.locator('#resend-status'), 'already activated');
  assert.equal(await page.locator('#resend-result').isHidden(), true);
  const tokens = await server.request('GET', `/api/v1/users?email=${encodeURIComponent(email)}`, { token: sales });
  assert.equal(tokens.json.invitation, 'activated');
});

test('the sign-in screen at 375 px', async () => {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.setViewportSize({ width: 375, height: 812 });
  await page.getByLabel('API token').waitFor();
  await screenshot(page, 'sign-in-mobile');
});

// The web admin in headless Chromium against a real pbxd (started by run_web_admin_test.sh):
// log in as admin, create an extension and a user, check CSRF and role refusals, visit the
// extension user portal, log out. Saves a screenshot of each page into OUT_DIR.
// Then, on a pair node that does not serve, the read-only status page that points to the VIP.
//   node web_admin_test.mjs URL ADMIN_PASSWORD OUT_DIR NOT_SERVING_URL
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';

const [url, adminPassword, outDir, notServingUrl] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const shots = [];

async function shot(page, name) {
  const file = path.join(outDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function login(page, user, password) {
  await page.goto(url);
  await page.locator('#login-form').waitFor();
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('#login-form button[type=submit]');
  await page.locator('#logout').waitFor();
}

async function logout(page) {
  await page.click('#logout');
  await page.locator('#login-form').waitFor();
  // The session cookie is gone: the API no longer knows us.
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/me')).status), 401);
}

// A request from the page's own session, with or without the CSRF header.
function fetchFromPage(page, method, apiPath, body, withCsrf) {
  return page.evaluate(async ([m, p, b, csrf]) => {
    const headers = { 'Content-Type': 'application/json' };
    if (csrf) headers['X-CSRF-Token'] = document.cookie.match(/pbx_csrf=([^;]+)/)[1];
    const r = await fetch('/api/v1' + p, { method: m, headers, body: b && JSON.stringify(b) });
    return r.status;
  }, [method, apiPath, body, withCsrf]);
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  // Admin: dashboard, live from /api/v1/status.
  await page.goto(url);
  await page.locator('#login-form').waitFor();
  await shot(page, 'login');
  await login(page, 'admin', adminPassword);
  await page.locator('#node-status', { hasText: 'standalone' }).waitFor();
  await page.locator('#updated', { hasText: 'Updated' }).waitFor();
  await shot(page, 'dashboard');

  await page.click('nav a[href="#/cluster"]');
  await page.locator('#cluster', { hasText: 'runs alone' }).waitFor();
  await shot(page, 'cluster');

  // Create an extension and see it in the list.
  await page.click('nav a[href="#/extensions"]');
  await page.locator('#ext-create').waitFor();
  await page.fill('#ext-create input[name=number]', '2101');
  await page.fill('#ext-create input[name=name]', 'Browser Test');
  await page.fill('#ext-create input[name=password]', 'Brows3rPass');
  await page.check('#ext-create input[name=web_login]');
  await page.click('#ext-create button[type=submit]');
  await page.locator('tr[data-number="2101"]', { hasText: 'Browser Test' }).waitFor();
  await shot(page, 'extensions');

  // A state-changing request without the CSRF header is refused and changes nothing.
  assert.equal(await fetchFromPage(page, 'DELETE', '/extensions/2101', undefined, false), 403);
  assert.equal(await fetchFromPage(page, 'POST', '/extensions',
    { number: '2102', name: 'Forged', password: 'F0rgedPass' }, false), 403);
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/extensions/2102')).status), 404);
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/extensions/2101')).status), 200);

  // Create an operator.
  await page.click('nav a[href="#/users"]');
  await page.locator('#user-create').waitFor();
  await page.fill('#user-create input[name=name]', 'op1');
  await page.selectOption('#user-create select[name=role]', 'operator');
  await page.fill('#user-create input[name=password]', '0perator99');
  await page.click('#user-create button[type=submit]');
  await page.locator('tr[data-user="op1"]').waitFor();
  await shot(page, 'users');

  await page.click('nav a[href="#/settings"]');
  await page.locator('#settings-form').waitFor();
  await shot(page, 'settings');

  await page.click('nav a[href="#/audit"]');
  await page.locator('table', { hasText: 'user.create' }).waitFor();
  await page.locator('table', { hasText: 'extension.create' }).waitFor();
  await shot(page, 'audit');
  await logout(page);

  // The operator sees no admin pages, and the API refuses an admin-only change.
  await login(page, 'op1', '0perator99');
  assert.equal(await page.locator('nav a[href="#/users"]').count(), 0);
  await page.goto(url + '#/settings');
  await page.locator('#node-status').waitFor();  // sent back to the dashboard
  assert.equal(await fetchFromPage(page, 'PUT', '/settings', { sip_realm: 'hijacked' }, true), 403);
  assert.equal(await fetchFromPage(page, 'POST', '/users',
    { name: 'op2', role: 'admin', password: 'Escal4tion' }, true), 403);
  await page.locator('#updated', { hasText: 'Updated' }).waitFor();
  await shot(page, 'operator-dashboard');
  await logout(page);

  // The extension user portal: the extension logs in with its number and SIP password.
  await login(page, '2101', 'Brows3rPass');
  await page.locator('#portal-form').waitFor();
  await page.fill('#portal-form input[name=email]', 'browser@example.com');
  await page.click('#portal-form button[type=submit]');
  await page.locator('#portal-saved', { hasText: 'Saved' }).waitFor();
  assert.equal(await fetchFromPage(page, 'GET', '/extensions', undefined, false), 403);
  await shot(page, 'portal');
  await logout(page);

  // A node that does not serve offers no login, only where it stands and where the VIP is.
  await page.goto(notServingUrl);
  await page.locator('#standby', { hasText: 'isolated' }).waitFor();
  assert.equal(await page.locator('#vip-link').getAttribute('href'),
    `https://10.99.0.100:${new URL(notServingUrl).port}/`);
  assert.equal(await page.locator('#login-form').count(), 0);
  await shot(page, 'not-serving');

  assert.deepEqual(consoleErrors, []);
} finally {
  await browser.close();
}
for (const f of shots) console.log(`screenshot: ${f}`);
console.log(`web admin browser test: ${shots.length} pages checked`);

// The web admin in headless Chromium against a real pbxd (started by run_web_admin_test.sh):
// log in as admin, create an extension and see it registered when a baresip phone registers it,
// create a user, check CSRF and role refusals, visit the extension user portal, log out.
// Saves a screenshot of each page into OUT_DIR.
// Then, on a pair node that does not serve, the read-only status page that points to the VIP.
//   SIP_UA_TOOL=... SIP_PORT=... BARESIP_PORT=... node web_admin_test.mjs URL ADMIN_PASSWORD OUT_DIR NOT_SERVING_URL
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { screenshots, login as loginAt, downloadText } from './pages.mjs';

const [url, adminPassword, outDir, notServingUrl] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const { files: shots, shot } = screenshots(outDir);
const login = (page, user, password) => loginAt(page, url, user, password);
const uaTool = process.env.SIP_UA_TOOL;
const sipPort = process.env.SIP_PORT;
const phones = [];
const phoneDirs = [];

// A headless baresip phone (Debian baresip-core, no audio device) registers `user` from
// 127.0.0.1:BARESIP_PORT (and TLS on the port after it) and stays up until the test ends.
// It takes its interface address from `phone0`, which run_web_admin_test.sh creates.
async function registerPhone(user, password) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-baresip-'));
  phoneDirs.push(dir);
  await fs.writeFile(path.join(dir, 'config'), [
    `sip_listen 127.0.0.1:${process.env.BARESIP_PORT}`,
    'module_path /usr/lib/baresip/modules',
    'module g711.so',
    'module_tmp uuid.so',
    'module_tmp account.so',
    'module_app menu.so',
    '',
  ].join('\n'));
  await fs.writeFile(path.join(dir, 'accounts'),
    `<sip:${user}@127.0.0.1:${sipPort}>;auth_pass=${password};regint=300\n`);
  // Line-buffered: baresip's stdout is a pipe here, and the loop below reads its lines.
  const phone = spawn('stdbuf', ['-oL', 'baresip', '-n', 'phone0', '-f', dir],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  phones.push(phone);
  let out = '';
  phone.stdout.on('data', (d) => { out += d; });
  // baresip prints "<aor>: 200 OK" once its REGISTER is accepted.
  const deadline = Date.now() + 15000;
  while (!/\b200 OK\b/.test(out)) {
    if (phone.exitCode !== null) throw new Error(`baresip exited with ${phone.exitCode}:\n${out}`);
    if (Date.now() > deadline) throw new Error(`baresip did not register in 15 s:\n${out}`);
    await Promise.race([once(phone.stdout, 'data'), once(phone, 'exit'), sleep(500)]);
  }
}

// `n` REGISTERs with a wrong password from `ip`: their final statuses.
function failPasswords(ip, user, n) {
  return execFileSync(uaTool, ['attack', sipPort, ip, user, String(n)]).toString().trim().split('\n');
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
  await page.locator('tr[data-number="2101"] td.reg', { hasText: 'not registered' }).waitFor();

  // A SIP phone registers: the page shows it without a reload (its 2 s polling).
  await registerPhone('2101', 'Brows3rPass');
  await page.locator('tr[data-number="2101"] td.reg', { hasText: 'registered (1)' }).waitFor();
  await shot(page, 'extensions');

  // The dashboard lists it, with its user agent and, once the registrar asked, its qualify.
  await page.click('nav a[href="#/dashboard"]');
  await page.locator('#reg-count', { hasText: '1' }).waitFor();
  await page.locator('tr[data-reg="2101"]', { hasText: 'baresip' }).waitFor();
  await shot(page, 'dashboard-registrations');

  // Security: five wrong passwords from one source ban it; the page shows the ban live, and
  // "Lift" (after confirmation) removes it.
  await page.click('nav a[href="#/security"]');
  await page.locator('#bans', { hasText: 'No source is banned' }).waitFor();
  assert.deepEqual(failPasswords('127.0.0.5', '2101', 5), ['403', '403', '403', '403', '403']);
  await page.locator('tr[data-ban="127.0.0.5"]').waitFor();
  await shot(page, 'security-banned');
  await page.click('tr[data-ban="127.0.0.5"] button');
  await page.click('#confirm-ok');
  await page.locator('#bans', { hasText: 'No source is banned' }).waitFor();

  // A malformed allow-list entry is refused, naming the field, and changes nothing; a valid
  // list is saved.
  await page.fill('#security-form textarea[name=ip_allow]', '192.0.2.0/24\n10.0.0.300/8');
  await page.click('#security-form button[type=submit]');
  await page.locator('#security-form .error', { hasText: 'ip_allow "10.0.0.300/8" is not' }).waitFor();
  let settings = await page.evaluate(async () => (await fetch('/api/v1/settings')).json());
  assert.deepEqual(settings.ip_allow, []);
  await page.fill('#security-form textarea[name=ip_allow]', '192.0.2.0/24\n10.1.0.0/16');
  await page.fill('#security-form textarea[name=ip_deny]', '198.51.100.7');
  await page.fill('#security-form input[name=ban_hours]', '2');
  await page.click('#security-form button[type=submit]');
  await page.locator('#security-saved', { hasText: 'Saved' }).waitFor();
  settings = await page.evaluate(async () => (await fetch('/api/v1/settings')).json());
  assert.deepEqual(settings.ip_allow, ['192.0.2.0/24', '10.1.0.0/16']);
  assert.deepEqual(settings.ip_deny, ['198.51.100.7']);
  assert.equal(settings.ban_time, 7200);
  await shot(page, 'security');

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

  // Backup: download, then restore that file after a confirmation; a damaged file is refused.
  await page.click('nav a[href="#/backup"]');
  const backup = await downloadText(page, '#backup-download');
  assert.equal(JSON.parse(backup).format, 'pbx-config-backup');
  const damaged = backup.replace('"version":1', '"version":2');
  await page.setInputFiles('#restore-file', { name: 'damaged.json', mimeType: 'application/json', buffer: Buffer.from(damaged) });
  await page.click('#restore-form button[type=submit]');
  await page.click('#confirm-ok');
  await page.locator('p.error', { hasText: 'version is 2, but this node reads version 1' }).waitFor();
  await page.setInputFiles('#restore-file', { name: 'backup.json', mimeType: 'application/json', buffer: Buffer.from(backup) });
  await page.click('#restore-form button[type=submit]');
  await page.click('#confirm-ok');
  await page.locator('#restore-done', { hasText: 'Restored' }).waitFor();
  await shot(page, 'backup');

  await page.click('nav a[href="#/certificate"]');
  await page.locator('#cert-current', { hasText: 'self-signed' }).waitFor();
  await shot(page, 'certificate');
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
  // The operator sees the bans but not the admin's ban policy.
  await page.click('nav a[href="#/security"]');
  await page.locator('#bans', { hasText: 'No source is banned' }).waitFor();
  assert.equal(await page.locator('#security-form').count(), 0);
  await logout(page);

  // The extension user portal: the extension logs in with its number and SIP password.
  await login(page, '2101', 'Brows3rPass');
  await page.locator('#portal-form').waitFor();
  await page.fill('#portal-form input[name=email]', 'browser@example.com');
  await page.click('#portal-form button[type=submit]');
  await page.locator('#portal-saved', { hasText: 'Saved' }).waitFor();
  assert.equal(await fetchFromPage(page, 'GET', '/extensions', undefined, false), 403);
  await shot(page, 'portal');
  // Call forward always, set in the portal, is what the API then shows.
  await page.locator('#portal-forwarding input[name=always_number]').waitFor();
  await page.check('#portal-forwarding input[name=always_active]');
  await page.fill('#portal-forwarding input[name=always_number]', '2100');
  await page.click('#portal-forwarding button[type=submit]');
  await page.locator('#portal-forwarding-saved', { hasText: 'saved' }).waitFor();
  const fwd = await page.evaluate(async () => (await fetch('/api/v1/me/forwarding')).json());
  assert.deepEqual(fwd.always, { active: true, number: '2100' });
  await shot(page, 'portal-forwarding');
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
  for (const phone of phones) phone.kill('SIGTERM');
  for (const dir of phoneDirs) await fs.rm(dir, { recursive: true, force: true });
}
for (const f of shots) console.log(`screenshot: ${f}`);
console.log(`web admin browser test: ${shots.length} pages checked`);

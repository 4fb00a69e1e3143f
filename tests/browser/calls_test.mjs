// The calls, CDR, trunks and routes pages in headless Chromium against a real pbxd (started
// by run_calls_test.sh): create two extensions, call one from the other with sipp (the
// bench's scenarios: digest-authenticated INVITE, 200, ACK, a pause, BYE), see the call on
// the dashboard while it lasts, then its CDR on the CDR page, in the downloaded CSV (RFC 4180
// quoting of a name with a comma and quotes) and in the caller's portal call log. Then a
// trunk with a refusal shown at its field, an outbound route over it, the inbound pages.
// Saves a screenshot of each page into OUT_DIR.
//   SIP_PORT=... CALLEE_PORT=... WORK=... SIPP_SCENARIOS=... node calls_test.mjs URL ADMIN_PASSWORD OUT_DIR
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs/promises';
import path from 'node:path';
import { screenshots, login as loginAt, downloadText } from './pages.mjs';

const [url, adminPassword, outDir] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const { SIP_PORT: sipPort, CALLEE_PORT: calleePort, WORK: work, SIPP_SCENARIOS: scenarios } = process.env;
const { files: shots, shot } = screenshots(outDir);
const login = (page, user, password) => loginAt(page, url, user, password);
const children = [];
const CALLER = { number: '2201', name: 'Smith, "Al"', password: 'Ca11erPass' };
const CALLEE = { number: '2202', name: 'Bob', password: 'Ca11eePass' };

// sipp with `scenario` as the extension `who`; resolves with its exit code.
function sipp(scenario, who, name, args) {
  const inf = path.join(work, `${name}.csv`);
  return fs.writeFile(inf, `SEQUENTIAL\n${who.number};${who.password};[authentication username=${who.number} password=${who.password}]\n`)
    .then(() => {
      const p = spawn('sipp', [`127.0.0.1:${sipPort}`, '-sf', path.join(scenarios, scenario), '-inf', inf,
        '-i', '127.0.0.1', '-m', '1', '-nostdin', '-timeout', '20s', ...args],
      { cwd: work, stdio: ['ignore', 'ignore', 'pipe'] });
      children.push(p);
      let err = '';
      p.stderr.on('data', (d) => { err += d; });
      return { proc: p, done: once(p, 'exit').then(([code]) => ({ code, err })) };
    });
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
try {
  const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await login(page, 'admin', adminPassword);
  await page.locator('#calls', { hasText: 'No call in progress' }).waitFor();

  // The caller through the Extensions page; the callee, which sipp answers for, through
  // the API with no keep-alive OPTIONS (the sipp callee answers only the call).
  await page.click('nav a[href="#/extensions"]');
  await page.fill('#ext-create input[name=number]', CALLER.number);
  await page.fill('#ext-create input[name=name]', CALLER.name);
  await page.fill('#ext-create input[name=password]', CALLER.password);
  await page.check('#ext-create input[name=web_login]');
  await page.click('#ext-create button[type=submit]');
  await page.locator(`tr[data-number="${CALLER.number}"]`).waitFor();
  const created = await page.evaluate(async (x) => {
    const r = await fetch('/api/v1/extensions', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': document.cookie.match(/pbx_csrf=([^;]+)/)[1] },
      body: JSON.stringify({ number: x.number, name: x.name, password: x.password, qualify_interval: 0 }),
    });
    return r.status;
  }, CALLEE);
  assert.equal(created, 201);

  // The callee registers from its port, then answers there; the caller calls it and hangs
  // up after 4 s of talk.
  const reg = await sipp('reg_auth.xml', CALLEE, 'callee-reg', ['-p', calleePort]);
  const registered = await reg.done;
  assert.equal(registered.code, 0, `the callee did not register: ${registered.err}`);
  const uas = await sipp('call_uas.xml', CALLEE, 'callee', ['-p', calleePort]);
  const uac = await sipp('call_uac.xml', CALLER, 'caller', ['-s', CALLEE.number, '-d', '4000']);

  await page.click('nav a[href="#/dashboard"]');
  const live = page.locator('#calls tr[data-call]', { hasText: CALLEE.number });
  await live.filter({ hasText: 'talking' }).waitFor();
  assert.match(await live.innerText(), /2201 \(Smith, "Al"\)/);
  await shot(page, 'dashboard-call');
  const caller = await uac.done;
  assert.equal(caller.code, 0, `the caller's sipp failed: ${caller.err}`);
  assert.equal((await uas.done).code, 0, 'the callee\'s sipp failed');
  await page.locator('#calls', { hasText: 'No call in progress' }).waitFor();

  // The CDR page: today's calls by this caller.
  await page.click('nav a[href="#/cdr"]');
  await page.fill('#cdr-search input[name=caller]', CALLER.number);
  await page.click('#cdr-search button[type=submit]');
  const row = page.locator('#cdr-results tr[data-cdr]');
  await row.filter({ hasText: 'answered' }).waitFor();
  assert.equal(await row.count(), 1);
  assert.match(await row.innerText(), /2201 \(Smith, "Al"\)\s+2202\s+2202\s+internal\s+answered/);
  await shot(page, 'cdr');

  // The CSV of the same search.
  const csv = await downloadText(page, '#cdr-csv');
  const lines = csv.split('\r\n');
  assert.match(lines[0], /^id,start,answer,end,caller,caller_name,callee,final_callee,/);
  assert.equal(lines.length, 3, csv);  // header, the call, the empty string after the last CRLF
  assert.match(lines[1], /^\d+,[^,]+Z,[^,]+Z,[^,]+Z,2201,"Smith, ""Al""",2202,2202,\d+,\d+,,internal,answered,/);

  // A trunk: the refusal shows at the field the API names; then a peer trunk, live.
  await page.click('nav a[href="#/trunks"]');
  await page.fill('#trunk-form input[name=name]', 'carrier');
  await page.fill('#trunk-form input[name=host]', '127.0.0.1');
  await page.fill('#trunk-form input[name=port]', '9');
  await page.click('#trunk-form button[type=submit]');
  await page.locator('#trunk-form [data-field=username] .field-error', { hasText: 'needs a username' }).waitFor();
  await shot(page, 'trunks-refusal');
  await page.selectOption('#trunk-form select[name=mode]', 'peer');
  await page.click('#trunk-form button[type=submit]');
  await page.locator('tr[data-key="carrier"] .trunk-status').waitFor();
  await shot(page, 'trunks');

  // An outbound route over it: prefix 9 stripped, pattern, the trunk.
  await page.click('nav a[href="#/outbound"]');
  await page.fill('#outbound-form input[name=name]', 'national');
  await page.click('#outbound-form [data-rows=rules] > button');
  await page.fill('#outbound-form [data-rows=rules] input[name=prefix]', '9');
  await page.fill('#outbound-form [data-rows=rules] input[name=pattern]', '0XXXXXXXX.');
  await page.click('#outbound-form [data-rows=trunks] > button');
  await page.selectOption('#outbound-form [data-rows=trunks] select[name=trunk]', 'carrier');
  await page.click('#outbound-form button[type=submit]');
  await page.locator('tr[data-key="national"]', { hasText: 'carrier' }).waitFor();
  await shot(page, 'outbound-routes');
  await page.click('#tab-permissions');
  await page.locator('#permission-form').waitFor();
  await shot(page, 'outbound-permissions');

  // Inbound: the trunk's calls go to the callee; a blacklisted number.
  await page.click('nav a[href="#/inbound"]');
  await page.selectOption('#inbound-form select[name="destination.type"]', 'extension');
  await page.fill('#inbound-form input[name="destination.id"]', '2299');
  await page.click('#inbound-form button[type=submit]');
  await page.locator('#inbound-form [data-field=destination] .field-error').filter({ hasText: /./ }).waitFor();
  await page.fill('#inbound-form input[name="destination.id"]', CALLEE.number);
  await page.click('#inbound-form button[type=submit]');
  await page.locator('tr[data-key="carrier"]', { hasText: `extension ${CALLEE.number}` }).waitFor();
  await shot(page, 'inbound-routes');
  await page.click('#tab-timeconditions');
  await page.fill('#timecondition-form input[name=name]', 'office');
  await page.click('#timecondition-form [data-rows=working] > button');
  await page.fill('#timecondition-form [data-rows=working] input[name=days]', 'mon,tue,wed,thu,fri');
  await page.fill('#timecondition-form [data-rows=working] input[name=start]', '09:00');
  await page.fill('#timecondition-form [data-rows=working] input[name=end]', '18:00');
  await page.selectOption('#timecondition-form select[name="when_working.type"]', 'extension');
  await page.fill('#timecondition-form input[name="when_working.id"]', CALLEE.number);
  await page.selectOption('#timecondition-form select[name="when_closed.type"]', 'hangup');
  await page.click('#timecondition-form button[type=submit]');
  await page.locator('tr[data-key="office"]', { hasText: 'mon,tue,wed,thu,fri 09:00-18:00' }).waitFor();
  await shot(page, 'inbound-time-conditions');
  await page.click('#tab-blacklist');
  await page.fill('#blacklist-form input[name=number]', '0900123*');
  await page.click('#blacklist-form button[type=submit]');
  await page.locator('tr[data-key="0900123*"]', { hasText: 'admin' }).waitFor();
  await shot(page, 'inbound-blacklist');
  await page.click('#logout');
  await page.locator('#login-form').waitFor();

  // The caller's own call log in the portal.
  await login(page, CALLER.number, CALLER.password);
  await page.locator('#cdr-results tr[data-cdr]', { hasText: 'answered' }).waitFor();
  assert.equal(await page.locator('#cdr-search input[name=caller]').count(), 0);
  await shot(page, 'portal-calls');

  assert.deepEqual(consoleErrors, []);
} finally {
  await browser.close();
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
}
for (const f of shots) console.log(`screenshot: ${f}`);
console.log(`calls browser test: ${shots.length} pages checked`);

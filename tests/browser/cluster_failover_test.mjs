// The cluster page across a failover, in headless Chromium against a real pair (started by
// run_cluster_failover_test.sh): log in on the active and see the pair; kill -9 the active;
// open the other node's address and see it active, with a higher epoch and the failover
// under "last failover". Saves screenshots into OUT_DIR.
//   node cluster_failover_test.mjs ADMIN_PASSWORD OUT_DIR URL_A PID_A URL_B PID_B
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const [password, outDir, urlA, pidA, urlB, pidB] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';  // the nodes' self-signed certificates

// What a node says about itself without a login.
async function info(url) {
  try {
    return await (await fetch(`${url}/api/v1/web/info`)).json();
  } catch (e) {
    return null;
  }
}

// Waits until one node is active and the other standby; returns [active, standby].
async function waitForPair(nodes, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const roles = await Promise.all(nodes.map(async (n) => (await info(n.url))?.role));
    const a = roles.indexOf('active');
    if (a >= 0 && roles[1 - a] === 'standby') return [nodes[a], nodes[1 - a]];
    await sleep(200);
  }
  throw new Error('the pair did not form (one active, one standby)');
}

const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] });
try {
  const [active, standby] = await waitForPair(
    [{ url: urlA, pid: Number(pidA) }, { url: urlB, pid: Number(pidB) }], 30000);
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));

  async function loginAndOpenCluster(url) {
    await page.goto(url);
    await page.locator('#login-form').waitFor();
    await page.fill('input[name=username]', 'admin');
    await page.fill('input[name=password]', password);
    await page.click('#login-form button[type=submit]');
    await page.locator('#logout').waitFor();
    await page.click('nav a[href="#/cluster"]');
  }
  const epochOf = async () => Number(await page.locator('#this-epoch').textContent());

  await loginAndOpenCluster(active.url);
  await page.locator('#this-role', { hasText: 'active' }).waitFor();
  await page.locator('#peer-role', { hasText: 'standby' }).waitFor();
  const epochBefore = await epochOf();
  const lastBefore = (await page.locator('#last-failover').textContent()).trim();
  await page.screenshot({ path: path.join(outDir, 'cluster-before.png'), fullPage: true });

  process.kill(active.pid, 'SIGKILL');
  const killedAt = Date.now();

  // The other node takes over: its address now serves the admin, and its cluster page says
  // it is active, with a higher epoch and the failover. Cookies are per host, not per port,
  // so the browser still holds the session made on the old active; it is valid here too
  // (signed with the replicated token secret), as it is on the VIP after a failover.
  await page.goto(standby.url + '#/cluster');
  await page.locator('#logout').waitFor();
  await page.click('nav a[href="#/cluster"]');
  await page.locator('#this-role', { hasText: 'active' }).waitFor();
  await page.locator('#peer-role', { hasText: 'not heard' }).waitFor();
  assert.ok(await epochOf() > epochBefore, `epoch ${await epochOf()} after ${epochBefore}`);
  const last = await page.locator('#last-failover').textContent();
  assert.notEqual(last.trim(), 'none');
  assert.notEqual(last.trim(), lastBefore);
  console.log(`failover seen on the cluster page ${Date.now() - killedAt} ms after kill -9: ${last}`);
  await page.screenshot({ path: path.join(outDir, 'cluster-after-failover.png'), fullPage: true });
  assert.deepEqual(errors, []);
} finally {
  await browser.close();
}
console.log('cluster failover browser test: passed');

// The cluster page across a failover, in headless Chromium against a real pair (started by
// run_cluster_failover_test.sh): log in on the active and see the pair; kill -9 the active;
// open the other node's address and see it active, with a higher epoch and the failover
// under "last failover". Before the kill, a certificate uploaded on the active's certificate
// page is served at once by the standby's HTTPS (replicated; no failover or restart
// needed), and still after the failover. Saves screenshots into OUT_DIR.
//   node cluster_failover_test.mjs ADMIN_PASSWORD OUT_DIR URL_A PID_A URL_B PID_B
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
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

// The common name of the certificate the node at `url` presents to a new connection.
function servedName(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject.CN;
      s.end();
      resolve(cn);
    });
    s.on('error', reject);
  });
}

async function waitForServedName(url, name, ms) {
  const until = Date.now() + ms;
  let last = null;
  while (Date.now() < until) {
    last = await servedName(url).catch(() => null);
    if (last === name) return Date.now();
    await sleep(50);
  }
  throw new Error(`${url} serves ${last}, not ${name}`);
}

// A self-signed certificate and key (PEM files) for `name`, made by openssl.
async function makeCertificate(name) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'pbx-cert-'));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { dir, key, cert };
}

const uploadedName = 'pbx-uploaded.example.test';
const pem = await makeCertificate(uploadedName);
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
  // The certificate page of the active: upload; the standby serves it to new connections.
  assert.notEqual(await servedName(standby.url), uploadedName);
  await page.click('nav a[href="#/certificate"]');
  await page.setInputFiles('#cert-form input[name=key]', pem.key);
  await page.setInputFiles('#cert-form input[name=certificate]', pem.cert);
  const uploadedAt = Date.now();
  await page.click('#cert-form button[type=submit]');
  await page.locator('#cert-current', { hasText: uploadedName }).waitFor();
  await page.screenshot({ path: path.join(outDir, 'certificate-uploaded.png'), fullPage: true });
  assert.equal(await servedName(active.url), uploadedName);
  const seenAt = await waitForServedName(standby.url, uploadedName, 10000);
  console.log(`the standby served the uploaded certificate ${seenAt - uploadedAt} ms after the upload`);
  await page.click('nav a[href="#/cluster"]');
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
  assert.equal(await servedName(standby.url), uploadedName);
  assert.deepEqual(errors, []);
} finally {
  await browser.close();
  await fs.rm(pem.dir, { recursive: true, force: true });
}
console.log('cluster failover browser test: passed');

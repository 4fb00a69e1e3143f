// What the browser tests share: screenshots and the login form.
import fs from 'node:fs/promises';
import path from 'node:path';

// Screenshots into `outDir`; `files` lists those taken, for the summary.
export function screenshots(outDir) {
  const files = [];
  return {
    files,
    async shot(page, name) {
      const file = path.join(outDir, `${name}.png`);
      await page.screenshot({ path: file, fullPage: true });
      files.push(file);
    },
  };
}

// Logs in through the login form at `url` and waits for the menu.
export async function login(page, url, user, password) {
  await page.goto(url);
  await page.locator('#login-form').waitFor();
  await page.fill('input[name=username]', user);
  await page.fill('input[name=password]', password);
  await page.click('#login-form button[type=submit]');
  await page.locator('#logout').waitFor();
}

// Clicks the download link `selector` and returns the file's text. Headless Chromium now
// and then cancels such a download before it sends the request (the node never sees it;
// under load, with or without this change, and again on every retry of that page); then
// the page fetches the link's URL itself, with the same session, and says so.
export async function downloadText(page, selector) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(selector)]);
  const failure = await download.failure();
  if (!failure) return fs.readFile(await download.path(), 'utf8');
  console.log(`the download of ${selector} was ${failure} by Chromium; fetching its link`);
  return page.evaluate(async (sel) => {
    const r = await fetch(document.querySelector(sel).href);
    if (!r.ok || !/attachment/.test(r.headers.get('Content-Disposition') || '')) {
      throw new Error(`GET ${r.url}: ${r.status}`);
    }
    return r.text();
  }, selector);
}

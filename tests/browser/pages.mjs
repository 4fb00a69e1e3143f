// What the browser tests share: screenshots and the login form.
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

// The article's counter in a real browser: it counts across reloads, and the session
// cookie is HttpOnly (invisible to the page's scripts).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { WELCOME, bodyText, launchChromium, scenario, startTessera, tempDir } from '../lib/harness.mjs';

test('the counter counts across reloads and its cookie is HttpOnly', { timeout: 120_000 }, scenario(async (t) => {
  const server = await startTessera(t, tempDir(t, 'store'));
  const browser = await launchChromium(t);
  const page = await browser.newPage();

  const first = await page.goto(`${server.url}/`);
  assert.equal(first.status(), 200);
  assert.equal(await bodyText(page), WELCOME);
  for (const n of [2, 3, 4]) {
    await page.reload();
    assert.equal(await bodyText(page), `You have visited this page ${n} times.`);
  }

  const cookies = await browser.cookies(server.url);
  const sid = cookies.find((c) => c.name === 'connect.sid');
  assert.ok(sid, `the browser keeps the session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(sid.httpOnly, true);
  assert.equal(sid.sameSite, 'Lax');
  assert.equal(await page.evaluate(() => document.cookie), '', 'scripts cannot read it');

  // /logout ends it: the next visit starts again.
  await page.goto(`${server.url}/logout`);
  assert.equal(await bodyText(page), 'Logged out successfully!');
  await page.goto(`${server.url}/`);
  assert.equal(await bodyText(page), WELCOME);
}));

// The demo's account pages in a real browser: signing in with and without "remember me"
// across a browser restart, the list of one's sessions on two devices, signing one or all
// of them out, and the absolute timeout.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bodyText, launchChromium, scenario, signIn, startTessera, tempDir } from '../lib/harness.mjs';

const DAY = 24 * 60 * 60;

/** The session cookie the browser holds for `url`, if any. */
async function sessionCookie(browser, url) {
  return (await browser.cookies(url)).find((c) => c.name === 'connect.sid');
}

/** Who the account page says is signed in; null when it shows the sign-in form. */
async function signedInAs(page, base) {
  await page.goto(`${base}/account`);
  if (await page.locator('#login').count()) return null;
  return page.locator('#user-name').textContent();
}

for (const remember of [true, false]) {
  const what = remember ? 'with "remember me" survives' : 'without "remember me" ends with';
  test(`a sign-in ${what} a browser and server restart`, { timeout: 180_000 }, scenario(async (t) => {
    const server = await startTessera(t, tempDir(t, 'store'));
    const profile = tempDir(t, 'profile');

    let browser = await launchChromium(t, profile);
    let page = await browser.newPage();
    await signIn(page, server.url, 'ada', { remember });
    assert.match(await bodyText(page), remember ? /for 30 days on this device/ : /until you close the browser/);
    const cookie = await sessionCookie(browser, server.url);
    if (remember) {
      const days = (cookie.expires - Date.now() / 1000) / DAY;
      assert.ok(days > 29.9 && days <= 30, `a 30-day cookie, not ${days} days`);
    } else {
      assert.equal(cookie.expires, -1, 'a browser-session cookie');
    }
    await browser.close();

    await server.restart();
    browser = await launchChromium(t, profile);
    page = await browser.newPage();
    assert.equal(await signedInAs(page, server.url), remember ? 'ada' : null, await bodyText(page));
  }));
}

test('a bad user name is refused with a notice and no session change', { timeout: 120_000 }, scenario(async (t) => {
  const server = await startTessera(t, tempDir(t, 'store'));
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  await page.goto(`${server.url}/account`);
  await page.fill('#user', '   ');
  // The field is `required`; white space passes the browser's check but not the server's.
  await page.click('#login button[type="submit"]');
  await page.locator('.flash.error').waitFor();
  assert.match(await bodyText(page), /A user name is 1 to 64 characters/);
  assert.equal(await page.locator('#login').count(), 1);
  // Reloading the page after the redirect shows the notice no more and submits nothing.
  await page.reload();
  assert.equal(await page.locator('.flash').count(), 0);
}));

test('a user name with markup is shown as text', { timeout: 120_000 }, scenario(async (t) => {
  const server = await startTessera(t, tempDir(t, 'store'));
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  let alerted = false;
  page.on('dialog', async (dialog) => { alerted = true; await dialog.dismiss(); });
  const name = '<img src=x onerror=alert(1)>';
  await signIn(page, server.url, name);
  assert.equal(await page.locator('img').count(), 0);
  assert.equal(alerted, false);
}));

// The per-user session index of the demo (SessionConfig::index_by("user"),
// Session::user_sessions / revoke / revoke_all).
const INDEX = { timeout: 180_000 };

/** Two browsers (two profiles: two devices), both signed in as ada, `a` remembered. */
async function twoDevices(t) {
  const server = await startTessera(t, tempDir(t, 'store'));
  const a = await (await launchChromium(t)).newPage();
  const b = await (await launchChromium(t)).newPage();
  await signIn(a, server.url, 'ada', { remember: true });
  await signIn(b, server.url, 'ada');
  await a.goto(`${server.url}/account`);
  assert.equal(await a.locator('#sessions tbody tr').count(), 2, await bodyText(a));
  return { server, a, b };
}

test('two devices list two sessions, this one marked', INDEX, scenario(async (t) => {
  const { server, a } = await twoDevices(t);
  await a.goto(`${server.url}/account`);
  const rows = a.locator('#sessions tbody tr');
  assert.equal(await rows.count(), 2, await bodyText(a));
  assert.equal(await a.locator('#sessions tr.current').count(), 1);
  assert.match(await a.locator('#sessions tr.current').innerText(), /\(this one\)/);
  for (const row of await rows.all()) {
    assert.match(await row.locator('.device').innerText(), /HeadlessChrome/);
    assert.match(await row.locator('.created').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
    // Known for the remembered login (a) and the browser-session one (b) alike.
    assert.match(await row.locator('.last-active').innerText(), /^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/);
  }
}));

test('signing out the other device from the list ends only that session', INDEX, scenario(async (t) => {
  const { server, a, b } = await twoDevices(t);
  await a.goto(`${server.url}/account`);
  await a.click('#sessions tr:not(.current) button');
  await a.locator('.flash').waitFor();
  assert.equal(await a.locator('#sessions tbody tr').count(), 1, await bodyText(a));
  assert.equal(await signedInAs(b, server.url), null, 'the other device is signed out');
  assert.equal(await signedInAs(a, server.url), 'ada', 'this one is not');
}));

test('sign out everywhere ends the other device\'s session too', INDEX, scenario(async (t) => {
  const { server, a, b } = await twoDevices(t);
  await a.goto(`${server.url}/account`);
  await a.click('#everywhere button');
  await a.locator('.flash').waitFor();
  assert.equal(await signedInAs(b, server.url), null, 'the other device is signed out');
  assert.equal(await signedInAs(a, server.url), null, 'and this one');
}));

test('the absolute timeout ends a session while the user keeps clicking', INDEX, scenario(async (t) => {
  const server = await startTessera(t, tempDir(t, 'store'), ['--absolute-timeout', '4']);
  const page = await (await launchChromium(t)).newPage();
  await signIn(page, server.url, 'ada');
  const start = Date.now();
  // Active every half second: the idle timeout never runs out, the absolute one does.
  let user = 'ada';
  while (user === 'ada' && Date.now() - start < 15_000) {
    await page.waitForTimeout(500);
    user = await signedInAs(page, server.url);
  }
  const after = (Date.now() - start) / 1000;
  assert.equal(user, null, 'signed out within 15 s');
  assert.ok(after >= 3.5, `not before the timeout: ${after} s`);
}));

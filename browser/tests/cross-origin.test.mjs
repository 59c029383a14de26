// Cross-site request forgery against the demo: a page on another origin auto-submits a
// form to the demo's POST routes while the user is signed in there. The browser sends the
// user's cookie (127.0.0.1 on another port is the same *site*, so SameSite=Lax does not
// stop it), and the demo's cross-origin layer must refuse the request by its Fetch
// Metadata, leaving the user's session as it was.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { bodyText, launchChromium, otherOrigin, scenario, signIn, startTessera, tempDir } from '../lib/harness.mjs';

/** An attacker's page that posts `fields` to `action` as soon as it loads. */
function autoSubmit(action, fields) {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`)
    .join('');
  return `<!doctype html><title>Win a prize</title>
<form id="f" method="post" action="${action}">${inputs}</form>
<script>document.getElementById('f').submit();</script>`;
}

for (const [what, host] of [['same-site, other port', '127.0.0.1'], ['cross-site', 'localhost']]) {
  test(`a forged login from another origin (${what}) is refused and the user stays signed in`, { timeout: 120_000 }, scenario(async (t) => {
    const server = await startTessera(t, tempDir(t, 'store'));
    const browser = await launchChromium(t);
    const page = await browser.newPage();
    await signIn(page, server.url, 'ada');

    const evil = await otherOrigin(t, autoSubmit(`${server.url}/login`, { user: 'mallory' }), host);
    const refused = page.waitForResponse((r) => r.url() === `${server.url}/login`);
    await page.goto(evil);
    const response = await refused;
    assert.equal(response.status(), 403);
    await page.waitForURL(`${server.url}/login`);
    assert.equal(await bodyText(page), 'Forbidden: cross-origin request refused.');
    assert.match(server.log, /refused a cross-origin request/);
    assert.doesNotMatch(server.log, /connect\.sid=/, 'no cookie in the log');

    await page.goto(`${server.url}/account`);
    assert.equal(await page.locator('#user-name').textContent(), 'ada', await bodyText(page));
  }));
}

test('a forged sign-out from another origin is refused; the same form from the demo works', { timeout: 120_000 }, scenario(async (t) => {
  const server = await startTessera(t, tempDir(t, 'store'));
  const browser = await launchChromium(t);
  const page = await browser.newPage();
  await signIn(page, server.url, 'ada');
  // Counted views live in the same session: they must survive the forged request too.
  await page.goto(`${server.url}/`);
  await page.goto(`${server.url}/`);
  assert.equal(await bodyText(page), 'You have visited this page 2 times.');

  const evil = await otherOrigin(t, autoSubmit(`${server.url}/account/logout`, {}), 'localhost');
  const refused = page.waitForResponse((r) => r.url() === `${server.url}/account/logout`);
  await page.goto(evil);
  assert.equal((await refused).status(), 403);

  await page.goto(`${server.url}/`);
  assert.equal(await bodyText(page), 'You have visited this page 3 times.', 'the session is untouched');
  await page.goto(`${server.url}/account`);
  assert.equal(await page.locator('#user-name').textContent(), 'ada');

  // The demo's own sign-out button (same origin) does sign out.
  await page.click('tr.current button');
  await page.locator('.flash').waitFor();
  assert.match(await bodyText(page), /You are signed out on this device\./);
  assert.equal(await page.locator('#login').count(), 1, 'the sign-in form is back');
}));

for (const route of ['/logout-everywhere', '/account/revoke-all']) {
  test(`a forged "sign out everywhere" (${route}) from another site is refused and the user stays signed in`, { timeout: 120_000 }, scenario(async (t) => {
    const server = await startTessera(t, tempDir(t, 'store'));
    const browser = await launchChromium(t);
    const page = await browser.newPage();
    await signIn(page, server.url, 'ada');

    const evil = await otherOrigin(t, autoSubmit(`${server.url}${route}`, {}), 'localhost');
    const refused = page.waitForResponse((r) => r.url() === `${server.url}${route}`);
    await page.goto(evil);
    assert.equal((await refused).status(), 403);

    await page.goto(`${server.url}/account`);
    assert.equal(await page.locator('#user-name').textContent(), 'ada', await bodyText(page));
    assert.equal(await page.locator('tbody tr').count(), 1, 'the session is still listed');
  }));
}

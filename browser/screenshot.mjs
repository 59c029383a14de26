// Draws docs/account.png, the demo's account page shown in the README: "ada" signed in on
// two devices (two browser profiles), seen from the first, in headless Chromium against
// the real `tessera serve` binary. Not a test; run it again when the page changes:
//
//   cargo build -p tessera-cli && node browser/screenshot.mjs

import { join } from 'node:path';

import { launchChromium, root, signIn, startTessera, tempDir } from './lib/harness.mjs';

// The harness cleans up through node:test's `t.after`; a script runs the cleanups itself.
const cleanups = [];
const t = { name: 'screenshot', after: (fn) => cleanups.push(fn) };

try {
  const server = await startTessera(t, tempDir(t, 'store'));
  const phone = await launchChromium(t);
  const phonePage = await phone.newPage();
  await phonePage.setExtraHTTPHeaders({ 'User-Agent': 'Mozilla/5.0 (Android 15; Mobile; rv:146.0) Gecko/146.0 Firefox/146.0' });
  await signIn(phonePage, server.url, 'ada', { remember: true });
  const laptop = await launchChromium(t);
  const page = laptop.pages()[0] || (await laptop.newPage());
  await page.setViewportSize({ width: 900, height: 620 });
  await signIn(page, server.url, 'ada');
  const out = join(root, 'docs', 'account.png');
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup();
}

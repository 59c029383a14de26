// The browser tests' harness: starts the real `tessera serve` binary on a free port with
// a temporary SQLite store, launches the system's Chromium (headless, a fresh profile
// folder each time) through playwright-core, and saves a screenshot of every page open
// when a test fails.
//
// Environment:
//   TESSERA_BIN        the `tessera` binary (the Rust test that runs this suite sets it);
//                      default: ../target/debug/tessera
//   TESSERA_ARTIFACTS  where failure screenshots go; default: ../test-artifacts/browser
//   CHROMIUM           the browser; default: /usr/bin/chromium (Debian's `chromium` package)
//
// Nothing is skipped: a missing binary, browser or package fails the test, saying what to
// install.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, '..', '..');
export const artifacts = resolve(process.env.TESSERA_ARTIFACTS || join(root, 'test-artifacts', 'browser'));
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export const WELCOME = 'Welcome to the session demo! Visit again to see the view count increase.';

/** playwright-core's chromium, or an error saying how to install it. */
async function playwright() {
  try {
    return (await import('playwright-core')).chromium;
  } catch (error) {
    throw new Error(`playwright-core is not installed: run \`npm ci\` in browser/ (scripts/test does it) (${error.message})`);
  }
}

const cleanups = new WeakMap();
const failed = new WeakSet();
const shots = new WeakMap();

/**
 * Runs `fn` when `t` ends, after everything deferred later (last in, first out: a browser
 * closes before its profile folder is removed, a screenshot is taken before the browser
 * closes).
 */
export function defer(t, fn) {
  let stack = cleanups.get(t);
  if (!stack) {
    stack = [];
    cleanups.set(t, stack);
    t.after(async () => {
      while (stack.length > 0) {
        try {
          await stack.pop()();
        } catch (error) {
          console.error(`cleanup failed: ${error.stack}`);
        }
      }
    });
  }
  stack.push(fn);
}

/** A temporary folder removed when `t` ends. */
export function tempDir(t, prefix) {
  const dir = mkdtempSync(join(tmpdir(), `tessera-browser-${prefix}-`));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * Starts `tessera serve --port 0` on a SQLite store in `dir` and waits for its
 * "listening on http://ADDR" line. The server is stopped when `t` ends. `server.restart()`
 * stops it and starts it again on the same store and port.
 */
export async function startTessera(t, dir, extraArgs = []) {
  const bin = resolve(process.env.TESSERA_BIN || join(root, 'target', 'debug', 'tessera'));
  if (!existsSync(bin)) {
    throw new Error(`the tessera binary is missing at ${bin}: run \`cargo build -p tessera-cli\`, or set TESSERA_BIN`);
  }
  const server = {
    url: null,
    port: 0,
    log: '',
    child: null,
    async stop() {
      const child = this.child;
      this.child = null;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((done) => child.once('exit', done));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
    async restart() {
      await this.stop();
      await launch(this.port);
    },
  };
  const args = [
    'serve', '--store', `sqlite://${join(dir, 'sessions.db')}`,
    '--secret', 'browser tests: a secret of at least thirty-two bytes', ...extraArgs,
  ];
  async function launch(port) {
    const env = { ...process.env, RUST_LOG: 'info' };
    for (const name of ['PORT', 'HOST', 'SESSION_STORE', 'SESSION_SECRET', 'SESSION_SECRETS', 'SESSION_PREFIX', 'SESSION_TTL', 'COOKIE_MAX_AGE']) {
      delete env[name];
    }
    const child = spawn(bin, [...args, '--port', String(port)], { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
    server.child = child;
    const address = await new Promise((done, fail) => {
      const timer = setTimeout(() => fail(new Error(`tessera did not start listening within 30 s; its log:\n${server.log}`)), 30_000);
      child.once('exit', (code) => {
        clearTimeout(timer);
        fail(new Error(`tessera exited (${code}) before listening; its log:\n${server.log}`));
      });
      createInterface({ input: child.stderr }).on('line', (line) => {
        server.log += `${line}\n`;
        const found = line.match(/listening on http:\/\/(\S+)/);
        if (found) {
          clearTimeout(timer);
          done(found[1]);
        }
      });
    });
    server.url = `http://${address}`;
    server.port = Number(address.split(':').pop());
  }
  defer(t, () => server.stop());
  await launch(0);
  return server;
}

/**
 * The system's Chromium with its own profile folder (`profileDir`, fresh if not given),
 * headless. Closed when `t` ends; a page still open when `t` fails is screenshotted first.
 * Close it earlier with `await browser.close()` (to restart the browser on the same
 * profile).
 */
export async function launchChromium(t, profileDir) {
  if (!existsSync(chromiumPath)) {
    throw new Error(`Chromium is missing at ${chromiumPath}: install Debian's package (\`apt-get install -y chromium\`; scripts/test does it), or set CHROMIUM`);
  }
  const chromium = await playwright();
  const profile = profileDir || tempDir(t, 'profile');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
    timeout: 60_000,
  });
  context.setDefaultTimeout(15_000);
  let closed = false;
  context.on('close', () => { closed = true; });
  defer(t, async () => {
    if (!closed) await context.close();
  });
  defer(t, () => screenshotIfFailed(t, closed ? [] : context.pages()));
  return context;
}

/** When `t` failed, a screenshot of each of `pages`, its path printed. */
async function screenshotIfFailed(t, pages) {
  if (!failed.has(t)) return;
  mkdirSync(artifacts, { recursive: true });
  const name = t.name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 80);
  for (const page of pages) {
    if (page.url() === 'about:blank') continue;
    shots.set(t, (shots.get(t) || 0) + 1);
    const path = join(artifacts, `${name}-${shots.get(t)}.png`);
    try {
      await page.screenshot({ path, fullPage: true });
      console.error(`screenshot of the failing page ${page.url()}: ${path}`);
    } catch (error) {
      console.error(`could not screenshot ${page.url()}: ${error.message}`);
    }
  }
}

/**
 * Runs `body(t)` as the test, marking `t` failed when it throws so that the browsers it
 * launched are screenshotted before they close.
 */
export function scenario(body) {
  return async (t) => {
    try {
      await body(t);
    } catch (error) {
      failed.add(t);
      throw error;
    }
  };
}

/**
 * A plain HTTP server on another origin (127.0.0.1 or `localhost`, another port) serving
 * `html` at `/`: the attacker's page. Closed when `t` ends.
 */
export async function otherOrigin(t, html, host = '127.0.0.1') {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((done) => server.listen(0, '127.0.0.1', done));
  // Chromium keeps (pre)connected sockets open: close them, or close() waits for them.
  defer(t, () => new Promise((done) => {
    server.close(done);
    server.closeAllConnections();
  }));
  return `http://${host}:${server.address().port}/`;
}

/** The visible text of the page's body, trimmed. */
export async function bodyText(page) {
  return (await page.locator('body').innerText()).trim();
}

/** Signs in through the account page's form. */
export async function signIn(page, base, user, { remember = false } = {}) {
  await page.goto(`${base}/account`);
  await page.fill('#user', user);
  if (remember) await page.check('input[name="remember"]');
  await page.click('#login button[type="submit"]');
  // The flash appears only on the page the form's 303 leads to.
  await page.locator('.flash').first().waitFor();
  const name = await page.locator('#user-name').textContent({ timeout: 1000 }).catch(() => null);
  if (name !== user) {
    throw new Error(`signing in as ${user} did not work; the page says: ${await bodyText(page)}`);
  }
}

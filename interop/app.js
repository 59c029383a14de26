// The Node peer of Tessera's interop tests: the article's express-session + connect-redis
// app ("Using RedisStore in nodejs / expressjs"), configured like it, with a few extra
// routes the tests need. Tessera (`tessera serve --store redis://…`) and this app share one
// Redis and one secret list; a browser must be able to move between them freely.
//
// With STORE=pg or STORE=mysql it runs the same app on connect-pg-simple 10 or
// express-mysql-session 3 instead, sharing a SQL table with `tessera serve --store
// postgres://…` or `--store mysql://…`.
//
// Environment (the same names `tessera serve` reads, where they exist):
//   STORE           redis (default) | pg (connect-pg-simple 10) | mysql (express-mysql-session 3)
//   CLIENT          ioredis (default: connect-redis 8.1.0 + ioredis, the article's stack)
//                   | node-redis (connect-redis 9 + node-redis 5); STORE=redis only
//   REDIS_URL       redis://127.0.0.1:6379 by default; or REDIS_HOST / REDIS_PORT
//   DATABASE_URL    STORE=pg: postgres://user:password@host:port/db (connect-pg-simple's
//                   conString); STORE=mysql: mysql://user:password@host:port/db
//   SESSION_TABLE   the table (connect-pg-simple `tableName`, default session;
//                   express-mysql-session `schema.tableName`, default sessions)
//   SESSION_SCHEMA  STORE=pg: connect-pg-simple `schemaName` (default: search_path)
//   CREATE_TABLE    1 (default): create the table when missing (createTableIfMissing,
//                   createDatabaseTable); 0: expect it to exist
//   SESSION_SECRET  required; comma-separated, the first signs (express `secret: [...]`)
//   SESSION_PREFIX  key prefix, default 'myapp:session:'
//   SESSION_TTL     the store's TTL in seconds for sessions without a cookie expiry
//                   (connect-redis and connect-pg-simple `ttl`, express-mysql-session
//                   `expiration`), default 3600
//   COOKIE_MAX_AGE  cookie maxAge in SECONDS, default 86400 (one day); 0 = browser session
//   COOKIE_NAME     default connect.sid
//   COOKIE_SAME_SITE  lax | strict | none; unset or empty: no sameSite (express's default)
//   HOST, PORT      default 127.0.0.1 and 3000; PORT=0 picks a free port
//
// Once the store is connected (and its table there) and the server listens, it prints exactly one line on stdout:
//   listening on http://127.0.0.1:PORT
//
// Routes:
//   GET /          the article's view counter (same texts)
//   GET /logout    the article's logout (req.session.destroy)
//   GET /views     read-only: the view count, or 0 (never modifies the session)
//   GET /session   JSON.stringify(req.session): what express would store (read-only)
//   GET /set-json  stores KINDS (every kind of JSON value) under `kinds`
//   GET /set-lone-surrogate  stores half a surrogate pair under `truncated`
//   GET /id        req.sessionID (read-only)
//   GET /set?key=K&value=V  stores the string V under K (a Node app writing its own key)
'use strict';

const express = require('express');
const session = require('express-session');

const env = process.env;

const STORE = env.STORE || 'redis';
const CLIENT = env.CLIENT || 'ioredis';
const DATABASE_URL = env.DATABASE_URL || '';
const CREATE_TABLE = env.CREATE_TABLE !== '0';
const REDIS_URL =
  env.REDIS_URL || `redis://${env.REDIS_HOST || '127.0.0.1'}:${env.REDIS_PORT || '6379'}`;
const SECRETS = (env.SESSION_SECRET || '')
  .split(',')
  .map((s) => s.trim())
  .filter((s) => s.length > 0);
const PREFIX = env.SESSION_PREFIX === undefined ? 'myapp:session:' : env.SESSION_PREFIX;
const TTL = env.SESSION_TTL === undefined ? 3600 : Number(env.SESSION_TTL);
const MAX_AGE_S = env.COOKIE_MAX_AGE === undefined ? 86400 : Number(env.COOKIE_MAX_AGE);
const COOKIE_NAME = env.COOKIE_NAME || 'connect.sid';
const SAME_SITE = env.COOKIE_SAME_SITE || '';
const HOST = env.HOST || '127.0.0.1';
const PORT = env.PORT === undefined ? 3000 : Number(env.PORT);

// Every kind of JSON value, as an application might put in a session. The tests check that
// it survives a write by Tessera byte for byte: key order (including JavaScript's
// integer-keys-first order), number text (1e+21, 5e-324, 0.30000000000000004), and
// strings that need escaping or that JSON.stringify leaves raw (U+2028, emoji, DEL).
const KINDS = {
  ascii: 'plain text',
  unicode: 'héllo wörld — 日本語 — Ελληνικά — עברית',
  emoji: '😀👍🏽🇫🇷 family: 👨‍👩‍👧',
  separators: 'line\u2028paragraph\u2029end',
  escapes: 'quote " backslash \\ slash / tab \t newline \n cr \r nul \u0000 bell \u0007 esc \u001b del \u007f',
  empty: '',
  zero: 0,
  integer: 42,
  negative: -17,
  maxSafe: 9007199254740991,
  minSafe: -9007199254740991,
  large: 1e20,
  veryLarge: 1e21,
  float: 3.141592653589793,
  inexact: 0.1 + 0.2,
  negativeFloat: -0.5,
  small: 1e-7,
  tiny: 5e-324,
  huge: 1.7976931348623157e308,
  yes: true,
  no: false,
  nothing: null,
  emptyArray: [],
  emptyObject: {},
  array: [1, 'two', 3.5, null, true, false, [[]], { inner: 'object' }],
  nested: { a: { b: { c: [1, { d: 'deep', e: [null, { f: 1e21 }] }] } } },
  order: { zebra: 1, apple: 2, mango: 3, 10: 'ten', 2: 'two' },
  'key with spaces, ünïcödé and 🔑': 'value',
};

function log(...args) {
  console.error(new Date().toISOString(), ...args);
}

async function redisStore() {
  if (CLIENT === 'ioredis') {
    // The article's stack: ioredis with connect-redis 8.1.0 (connect-redis 9 dropped
    // ioredis: with it every save fails with `ERR syntax error`).
    const Redis = require('ioredis');
    const { RedisStore } = require('connect-redis');
    const client = new Redis(REDIS_URL, { lazyConnect: true });
    client.on('error', (err) => log('Redis Client Error', err.message));
    await client.connect();
    return { client, store: new RedisStore({ client, prefix: PREFIX, ttl: TTL }) };
  }
  if (CLIENT === 'node-redis') {
    const { createClient } = require('redis');
    const { RedisStore } = require('connect-redis-9');
    const client = createClient({ url: REDIS_URL });
    client.on('error', (err) => log('Redis Client Error', err.message));
    await client.connect();
    return { client, store: new RedisStore({ client, prefix: PREFIX, ttl: TTL }) };
  }
  throw new Error(`CLIENT=${CLIENT}: use ioredis or node-redis`);
}

// connect-pg-simple 10 with its own pg pool, configured as its README shows.
async function pgStore() {
  if (!DATABASE_URL) throw new Error('STORE=pg needs DATABASE_URL');
  const PGStore = require('connect-pg-simple')(session);
  const options = {
    conString: DATABASE_URL,
    tableName: env.SESSION_TABLE || 'session',
    createTableIfMissing: CREATE_TABLE,
    ttl: TTL,
    errorLog: (...args) => log(...args),
  };
  if (env.SESSION_SCHEMA) options.schemaName = env.SESSION_SCHEMA;
  const store = new PGStore(options);
  // The table is created (and the database reached) on the first query: run one now, so
  // a bad URL or table fails the start instead of the first request.
  await new Promise((resolve, reject) =>
    store.query(`SELECT 1 FROM ${store.quotedTable()} LIMIT 1`, [], (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  return { store, close: () => store.close() };
}

// express-mysql-session 3 with its own mysql2 pool.
async function mysqlStore() {
  if (!DATABASE_URL) throw new Error('STORE=mysql needs DATABASE_URL');
  const MySQLStore = require('express-mysql-session')(session);
  const url = new URL(DATABASE_URL);
  const store = new MySQLStore({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.replace(/^\//, '')),
    createDatabaseTable: CREATE_TABLE,
    expiration: TTL * 1000,
    schema: { tableName: env.SESSION_TABLE || 'sessions' },
  });
  await store.onReady();
  return { store, close: () => store.close() };
}

async function makeStore() {
  if (STORE === 'redis') {
    const { client, store } = await redisStore();
    return { store, close: () => client.quit() };
  }
  if (STORE === 'pg') return pgStore();
  if (STORE === 'mysql') return mysqlStore();
  throw new Error(`STORE=${STORE}: use redis, pg or mysql`);
}

async function main() {
  if (SECRETS.length === 0) {
    throw new Error('SESSION_SECRET is not set: give one secret, or several comma-separated');
  }
  const { store, close } = await makeStore();

  const cookie = {
    secure: env.NODE_ENV === 'production',
    httpOnly: true,
  };
  // Only set maxAge when there is one: `maxAge: undefined` would make express store a
  // cookie member without `originalMaxAge` and `expires` instead of with nulls.
  if (MAX_AGE_S > 0) {
    cookie.maxAge = MAX_AGE_S * 1000;
  }
  // Likewise only when asked for: the article's app sets no sameSite.
  if (SAME_SITE) {
    cookie.sameSite = SAME_SITE;
  }

  const app = express();
  app.use(
    session({
      store,
      name: COOKIE_NAME,
      secret: SECRETS,
      resave: false,
      saveUninitialized: false,
      cookie,
    }),
  );

  app.get('/', (req, res) => {
    if (req.session.views) {
      req.session.views++;
      res.send(`You have visited this page ${req.session.views} times.`);
    } else {
      req.session.views = 1;
      res.send('Welcome to the session demo! Visit again to see the view count increase.');
    }
  });

  app.get('/logout', (req, res) => {
    req.session.destroy((err) => {
      if (err) {
        return res.status(500).send('Could not log out.');
      }
      res.send('Logged out successfully!');
    });
  });

  app.get('/views', (req, res) => {
    res.type('text/plain').send(String(req.session.views || 0));
  });

  app.get('/session', (req, res) => {
    res.type('application/json').send(JSON.stringify(req.session));
  });

  app.get('/set-json', (req, res) => {
    req.session.kinds = KINDS;
    res.type('application/json').send(JSON.stringify(KINDS));
  });

  // A string JavaScript allows and JSON.stringify escapes, but that is not Unicode: half
  // of a surrogate pair (what `'😀'.slice(0, 1)` gives when an app truncates text).
  app.get('/set-lone-surrogate', (req, res) => {
    req.session.truncated = '😀'.slice(0, 1);
    res.type('application/json').send(JSON.stringify(req.session.truncated));
  });

  app.get('/set', (req, res) => {
    const { key, value } = req.query;
    if (typeof key !== 'string' || typeof value !== 'string' || key === 'cookie') {
      return res.status(400).send('key and value, please');
    }
    req.session[key] = value;
    res.type('text/plain').send('set');
  });

  app.get('/id', (req, res) => {
    res.type('text/plain').send(req.sessionID);
  });

  const server = app.listen(PORT, HOST, (err) => {
    if (err) {
      log('cannot listen:', err.message);
      process.exit(1);
    }
    const { address, port } = server.address();
    const host = address.includes(':') ? `[${address}]` : address;
    process.stdout.write(`listening on http://${host}:${port}\n`);
  });

  const stop = () => {
    server.close();
    Promise.resolve()
      .then(close)
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  log('interop app failed to start:', err && err.stack ? err.stack : err);
  process.exit(1);
});

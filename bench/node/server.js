// The Node peer of bench/run: express 5 + express-session + connect-redis 8.1 + ioredis
// (or, with STORE=pg|mysql, connect-pg-simple 10 or express-mysql-session 3), configured
// as their READMEs recommend (resave and saveUninitialized off, one client or pool per
// process, the stores' defaults: connect-redis's prefix `sess:` and TTL from the cookie,
// connect-pg-simple's table `session`, express-mysql-session's `sessions`), and run
// as Express's production guide recommends: NODE_ENV=production and one clustered worker
// per core (WORKERS, default os.availableParallelism()). `secure` is off because the
// benchmark speaks plain HTTP on loopback (the same for every server).
//
//   PORT (or --port N)  port on 127.0.0.1 (default 3000)
//   STORE               redis (default) | pg | mysql
//   REDIS_URL           default redis://127.0.0.1:6379
//   DATABASE_URL        STORE=pg: postgres://user@host:port/db; STORE=mysql: mysql://user@host:port/db
//   WORKERS             worker processes (default: one per core; 0 = no cluster)
//
// Routes: /counter (read + write), /read (read only), /untouched (never touches
// req.session; express-session still loads and touches it: that is how it works).
'use strict';

const cluster = require('node:cluster');
const os = require('node:os');

const argPort = process.argv.indexOf('--port');
const PORT = Number(argPort > 0 ? process.argv[argPort + 1] : process.env.PORT || 3000);
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const STORE = process.env.STORE || 'redis';
const DATABASE_URL = process.env.DATABASE_URL;
const WORKERS =
  process.env.WORKERS === undefined ? os.availableParallelism() : Number(process.env.WORKERS);
const SECRET = 'bench-secret-bench-secret-bench-secret-bench-secret-bench-secret!';
const MAX_AGE_MS = 24 * 60 * 60 * 1000;

if (WORKERS > 0 && cluster.isPrimary) {
  for (let i = 0; i < WORKERS; i++) cluster.fork();
  let ready = 0;
  cluster.on('message', (_worker, msg) => {
    if (msg === 'listening' && ++ready === WORKERS) {
      process.stdout.write(`express (${WORKERS} workers) listening on http://127.0.0.1:${PORT}\n`);
    }
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) {
      console.error(`worker ${worker.process.pid} died (${signal || code})`);
      process.exit(1);
    }
  });
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers)) w.kill('SIGTERM');
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  worker().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

// The store and how to close it, for STORE.
async function makeStore(session) {
  if (STORE === 'redis') {
    const Redis = require('ioredis');
    const { RedisStore } = require('connect-redis');
    const client = new Redis(REDIS_URL, { lazyConnect: true });
    client.on('error', (err) => console.error('Redis Client Error', err.message));
    await client.connect();
    return { store: new RedisStore({ client }), close: () => client.quit() };
  }
  if (!DATABASE_URL) throw new Error(`STORE=${STORE} needs DATABASE_URL`);
  if (STORE === 'pg') {
    const PGStore = require('connect-pg-simple')(session);
    const store = new PGStore({ conString: DATABASE_URL, createTableIfMissing: true });
    // The table is created on the first query: run one before listening.
    await new Promise((resolve, reject) =>
      store.query(`SELECT 1 FROM ${store.quotedTable()} LIMIT 1`, [], (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    return { store, close: () => store.close() };
  }
  if (STORE === 'mysql') {
    const MySQLStore = require('express-mysql-session')(session);
    const url = new URL(DATABASE_URL);
    const store = new MySQLStore({
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.replace(/^\//, '')),
    });
    await store.onReady();
    return { store, close: () => store.close() };
  }
  throw new Error(`STORE=${STORE}: use redis, pg or mysql`);
}

async function worker() {
  const express = require('express');
  const session = require('express-session');
  const { store, close } = await makeStore(session);

  const app = express();
  app.use(
    session({
      store,
      secret: SECRET,
      resave: false,
      saveUninitialized: false,
      cookie: { secure: false, httpOnly: true, maxAge: MAX_AGE_MS },
    }),
  );
  app.get('/counter', (req, res) => {
    req.session.views = (req.session.views || 0) + 1;
    res.type('text/plain').send(`views ${req.session.views}`);
  });
  app.get('/read', (req, res) => {
    res.type('text/plain').send(`views ${req.session.views || 0}`);
  });
  app.get('/untouched', (_req, res) => {
    res.type('text/plain').send('ok');
  });

  const server = app.listen(PORT, '127.0.0.1', (err) => {
    if (err) {
      console.error('cannot listen:', err.message);
      process.exit(1);
    }
    if (process.send) process.send('listening');
    else process.stdout.write(`express listening on http://127.0.0.1:${PORT}\n`);
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

// The Node peer of bench/run: express 5 + express-session + connect-redis 8.1 + ioredis,
// configured as their READMEs recommend (resave and saveUninitialized off, one ioredis
// client per process, connect-redis defaults: prefix `sess:`, TTL from the cookie), and run
// as Express's production guide recommends: NODE_ENV=production and one clustered worker
// per core (WORKERS, default os.availableParallelism()). `secure` is off because the
// benchmark speaks plain HTTP on loopback (the same for every server).
//
//   PORT (or --port N)  port on 127.0.0.1 (default 3000)
//   REDIS_URL           default redis://127.0.0.1:6379
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

async function worker() {
  const express = require('express');
  const session = require('express-session');
  const Redis = require('ioredis');
  const { RedisStore } = require('connect-redis');

  const client = new Redis(REDIS_URL, { lazyConnect: true });
  client.on('error', (err) => console.error('Redis Client Error', err.message));
  await client.connect();

  const app = express();
  app.use(
    session({
      store: new RedisStore({ client }),
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
    Promise.resolve(client.quit())
      .catch(() => {})
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

#!/usr/bin/env python3
"""The measuring half of bench/run (bench/run builds, then runs this).

Each server under test runs pinned to one CPU (`taskset -c 0`), wrk and the data servers
(redis-server, PostgreSQL, MariaDB) to the other (`taskset -c 1`): a figure is what one
core of the server does, and wrk takes none of its cycles. For every workload and every
round, each server in turn: empty the store (Redis FLUSHALL, a new SQL database), start
the server on a free port, make its sessions (GET without a cookie, about 1,000 times,
keeping each Set-Cookie), warm up, snapshot Redis INFO commandstats and the processes' CPU
times, run wrk, snapshot again, read the server's peak RSS (VmHWM), stop it. Rounds
interleave the servers (A B C … A B C …) so drift over the run shows between rounds.

Workloads (WORKLOADS below): counter, read, untouched and sessions rotate over the pool
of sessions (a wrk Lua script reads the cookie file and hands them out round-robin per
thread); contention sends every request with one cookie and counts the increments kept;
login follows each response's Set-Cookie, so every request signs in again on a live
session. In full mode, callgrind then counts the instructions per request of each
Tessera route (the count after W + N requests minus the count after W, divided by N).

Writes RESULTS.md, results.json and chart.svg into --out (default bench/results/).
Standard library only.
"""

import argparse
import collections
import concurrent.futures
import datetime
import glob
import http.client
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
RELEASE = os.path.join(BENCH, "target", "release")
NODE = ["node", os.path.join(BENCH, "node", "server.js"), "--port", "{port}"]
TESSERA = f"{RELEASE}/bench-tessera"
# A cookie of the size of Tessera's, for the servers without sessions (ignored).
FAKE_COOKIE = "connect.sid=s%3A" + "A" * 32 + "." + "B" * 43

# name, path, load, pool_path, tessera_args, text. load: `pool` rotates over the sessions
# made from pool_path, `one` sends one cookie on every connection, `relogin` sends each
# connection's latest Set-Cookie back.
Workload = collections.namedtuple("Workload", "name path load pool_path tessera_args text")
WORKLOADS = [
    Workload("counter", "/counter", "pool", "/counter", [],
             "`/counter`: reads the session and writes it back (views + 1)"),
    Workload("read", "/read", "pool", "/counter", [], "`/read`: reads the session, never modifies it"),
    Workload("untouched", "/untouched", "pool", "/counter", [],
             "`/untouched`: behind the session layer, never touches the session"),
    Workload("contention", "/counter", "one", "/counter", [],
             "`/counter` with one session on every connection"),
    Workload("login", "/login", "relogin", "/counter", ["--index"],
             "`/login`: `regenerate`, then `insert(\"user\", …)` with `index_by(\"user\")`; each "
             "connection sends back the cookie of its last login, so every request signs a live "
             "session in again (the old record deleted, the new one written and indexed)"),
    Workload("sessions", "/sessions", "pool", "/login", ["--index"],
             "`/sessions`: `user_sessions()`, the signed-in user's sessions through the index "
             "(100 users, about 10 sessions each)"),
]
WORKLOAD_NAMES = [w.name for w in WORKLOADS]
MAIN = ("counter", "read", "untouched")
PEER = MAIN + ("contention",)
EVERY = tuple(WORKLOAD_NAMES)

# name, label, command (with {port}, {redis}, {tmp}, {database}), store, workloads, env
Server = collections.namedtuple("Server", "name label cmd store workloads env")
SERVERS = [
    Server("bare", "bare axum (no sessions)", [f"{RELEASE}/bench-bare", "--port", "{port}"],
           "none", EVERY, {}),
    # The second ceiling: how much of the gap to actix-session is actix-web itself.
    Server("actix-bare", "bare actix-web (no sessions)",
           [f"{RELEASE}/bench-actix-bare", "--port", "{port}"], "none", MAIN, {}),
    Server("tessera-memory", "Tessera + MemoryStore", [TESSERA, "memory", "--port", "{port}"],
           "memory", EVERY, {}),
    Server("tessera-sqlite", "Tessera + SqliteStore",
           [TESSERA, "sqlite", "--port", "{port}", "--sqlite", "{tmp}/sessions.db"], "sqlite", EVERY, {}),
    Server("tessera-sqlite-noguard", "Tessera + SqliteStore, guard off",
           [TESSERA, "sqlite", "--no-guard", "--port", "{port}", "--sqlite", "{tmp}/sessions.db"],
           "sqlite", ("counter", "contention"), {}),
    Server("tessera-redis", "Tessera + RedisStore",
           [TESSERA, "redis", "--port", "{port}", "--redis", "{redis}"], "redis", EVERY, {}),
    Server("tessera-redis-noguard", "Tessera + RedisStore, guard off",
           [TESSERA, "redis", "--no-guard", "--port", "{port}", "--redis", "{redis}"], "redis",
           ("counter", "contention"), {}),
    # actix-web's layout for axum (a current-thread runtime per core: one, pinned), beside
    # tokio's multi-threaded runtime (one worker, pinned).
    Server("tessera-redis-per-core", "Tessera + RedisStore, one runtime per core",
           [TESSERA, "redis", "--per-core", "--port", "{port}", "--redis", "{redis}"], "redis", MAIN, {}),
    Server("tessera-postgres", "Tessera + PostgresStore",
           [TESSERA, "postgres", "--port", "{port}", "--database", "{database}"], "postgres",
           ("counter", "read"), {}),
    Server("tessera-mysql", "Tessera + MySqlStore (MariaDB)",
           [TESSERA, "mysql", "--port", "{port}", "--database", "{database}"], "mysql",
           ("counter", "read"), {}),
    Server("tower-sessions", "axum + tower-sessions + redis-store (fred)",
           [f"{RELEASE}/bench-tower-sessions", "--port", "{port}", "--redis", "{redis}"], "redis", PEER, {}),
    Server("tower-sessions-per-core", "axum + tower-sessions + redis-store (fred), one runtime per core",
           [f"{RELEASE}/bench-tower-sessions", "--per-core", "--port", "{port}", "--redis", "{redis}"],
           "redis", MAIN, {}),
    Server("actix-session", "actix-web + actix-session + RedisSessionStore",
           [f"{RELEASE}/bench-actix", "--port", "{port}", "--redis", "{redis}"], "redis", PEER, {}),
    Server("express", "express + express-session + connect-redis 8.1 + ioredis", NODE, "redis", PEER,
           {"STORE": "redis"}),
    Server("express-pg", "express + express-session + connect-pg-simple 10", NODE, "postgres",
           ("counter", "read"), {"STORE": "pg"}),
    Server("express-mysql", "express + express-session + express-mysql-session 3 (MariaDB)", NODE,
           "mysql", ("counter", "read"), {"STORE": "mysql"}),
]
PEERS = ["tower-sessions", "tower-sessions-per-core", "actix-session", "express"]
# Commands the harness itself sends (never counted as the server's).
HARNESS_COMMANDS = {"info", "flushall", "scan", "memory", "strlen", "ping", "config", "dbsize"}
# The routes callgrind counts: (server, workload).
CALLGRIND = ([("bare", "counter")]
             + [(s, w) for s in ("tessera-memory", "tessera-sqlite", "tessera-redis")
                for w in ("counter", "read", "untouched", "login", "sessions")]
             + [("tessera-sqlite-noguard", "counter"), ("tessera-redis-noguard", "counter"),
                ("tessera-postgres", "counter"), ("tessera-mysql", "counter")])


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def pin(cpu):
    """The `taskset` prefix that runs a command on one CPU (none when pinning is off)."""
    return [] if cpu is None else ["taskset", "-c", str(cpu)]


def run(cmd, what, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed ({out.returncode}): {(out.stderr or out.stdout)[-800:]}")
    return out.stdout


# ---------------------------------------------------------------- data servers

class Redis:
    def __init__(self, port, workdir, cpu):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            pin(cpu) + ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(port, self.proc):
            raise SystemExit("redis-server did not start")
        self.cli("PING")

    def cli(self, *args):
        return run(["redis-cli", "-p", str(self.port), *args], "redis-cli").strip()

    def commandstats(self):
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m:
                stats[m.group(1)] = int(m.group(2))
        return stats

    def stop(self):
        stop_process(self.proc)


def postgres_bin():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


class Postgres:
    """A private PostgreSQL cluster on a free port (initdb in a temporary folder, as the
    `postgres` user when the harness is root: PostgreSQL refuses to run as root).
    Durability is off (fsync, full-page writes): the disk is not what is measured."""

    def __init__(self, cpu):
        self.bin = postgres_bin()
        self.dir = tempfile.mkdtemp(prefix="tessera-bench-pg-")
        self.user = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.user = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        data = os.path.join(self.dir, "data")
        run([f"{self.bin}/initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-locale",
             "--no-sync", "-D", data], "initdb", cwd=self.dir, **self.user)
        self.port = free_port()
        with open(os.path.join(self.dir, "postgres.log"), "w") as logf:
            self.proc = subprocess.Popen(
                pin(cpu) + [f"{self.bin}/postgres", "-D", data, "-p", str(self.port), "-k", self.dir,
                            "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                            "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
                            "-c", "max_connections=200"],
                cwd=self.dir, stdout=subprocess.DEVNULL, stderr=logf, **self.user)
        deadline = time.time() + 60
        while subprocess.run([f"{self.bin}/pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("postgres did not start: " + open(os.path.join(self.dir, "postgres.log")).read()[-800:])
            time.sleep(0.2)

    def psql(self, sql):
        return run([f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                    "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], "psql")

    def recreate(self):
        """A new, empty database `bench` (what FLUSHALL is for Redis); answers its URL."""
        self.psql("DROP DATABASE IF EXISTS bench WITH (FORCE)")
        self.psql("CREATE DATABASE bench")
        return f"postgres://postgres@127.0.0.1:{self.port}/bench"

    def version(self):
        return self.psql("SHOW server_version").strip()

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class MariaDb:
    """A private MariaDB server on a free port (`mariadb-install-db --no-defaults` in a
    temporary folder; `--no-defaults` keeps the system's configuration out). The redo log
    is written at each commit but not flushed (`innodb_flush_log_at_trx_commit=0`), as
    PostgreSQL runs without fsync. The redo log is 256 MiB (MariaDB's default is 96 MiB):
    with 8 MiB, thousands of updates a second filled it within a second, and InnoDB stalled
    every request while it flushed pages to make room (p99 at the 2 s store timeout)."""

    def __init__(self, cpu):
        self.dir = tempfile.mkdtemp(prefix="tessera-bench-mariadb-")
        os.mkdir(os.path.join(self.dir, "tmp"))
        user = pwd.getpwuid(os.geteuid()).pw_name
        common = [f"--datadir={self.dir}/data", f"--tmpdir={self.dir}/tmp", f"--user={user}"]
        run(["mariadb-install-db", "--no-defaults", *common, "--auth-root-authentication-method=normal",
             "--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=256M"],
            "mariadb-install-db", cwd=self.dir)
        self.port = free_port()
        self.socket = os.path.join(self.dir, "mariadb.sock")
        mariadbd = "/usr/sbin/mariadbd" if os.path.exists("/usr/sbin/mariadbd") else "mariadbd"
        self.proc = subprocess.Popen(
            pin(cpu) + [mariadbd, "--no-defaults", *common, f"--port={self.port}", "--bind-address=127.0.0.1",
                        f"--socket={self.socket}", f"--pid-file={self.dir}/mariadb.pid",
                        f"--log-error={self.dir}/mariadb.log", "--skip-name-resolve", "--skip-log-bin",
                        "--innodb-log-file-size=256M", "--innodb-buffer-pool-size=128M",
                        "--innodb-flush-log-at-trx-commit=0", "--max-connections=300"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while subprocess.run(["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-u", "root",
                              "--connect-timeout=2", "ping"], capture_output=True).returncode:
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("mariadbd did not start")
            time.sleep(0.2)

    def sql(self, text):
        return run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-u", "root", "-N", "-B",
                    "-e", text], "mariadb")

    def recreate(self):
        self.sql("DROP DATABASE IF EXISTS bench; CREATE DATABASE bench")
        return f"mysql://root@127.0.0.1:{self.port}/bench"

    def version(self):
        return "MariaDB " + self.sql("SELECT VERSION()").strip()

    def stop(self):
        stop_process(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Stores:
    """The data servers of one run (started when a selected server needs them)."""

    def __init__(self, needed, tmp, cpu):
        self.redis = Redis(free_port(), tmp, cpu)
        self.postgres = Postgres(cpu) if "postgres" in needed else None
        self.mysql = MariaDb(cpu) if "mysql" in needed else None

    def reset(self, store):
        """Empties what `store` keeps; answers the database URL for {database}."""
        self.redis.cli("FLUSHALL")
        if store == "postgres":
            return self.postgres.recreate()
        if store == "mysql":
            return self.mysql.recreate()
        return ""

    def proc(self, store):
        return {"redis": self.redis, "postgres": self.postgres, "mysql": self.mysql}.get(store)

    def stop(self):
        for s in (self.redis, self.postgres, self.mysql):
            if s is not None:
                s.stop()


# ---------------------------------------------------------------- processes

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every live descendant (node's cluster workers, PostgreSQL's backends)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def proc_cpu(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / CLK_TCK


def peak_rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def stop_process(proc, grace=5):
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------- HTTP

def get(port, path, cookie=None, conn=None):
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    set_cookies = resp.headers.get_all("Set-Cookie") or []
    if own:
        conn.close()
    return resp.status, body, set_cookies


def session_cookie(port):
    """A first GET /counter; answers the `name=value` pair to send back, checked to work."""
    status, body, set_cookies = get(port, "/counter")
    if status != 200 or not set_cookies:
        raise RuntimeError(f"first /counter: status {status}, Set-Cookie {set_cookies}, body {body!r}")
    cookie = set_cookies[0].split(";", 1)[0]
    status, body, _ = get(port, "/counter", cookie)
    if status != 200 or "2" not in body:
        raise RuntimeError(f"second /counter with the cookie: status {status}, body {body!r}")
    return cookie


def make_pool(port, path, n, jobs=4):
    """n new sessions: GET path without a cookie, n times over `jobs` keep-alive connections."""
    def batch(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        out = []
        for _ in range(count):
            status, body, set_cookies = get(port, path, conn=conn)
            if status != 200 or not set_cookies:
                raise RuntimeError(f"making a session with {path}: status {status}, body {body[:200]!r}")
            out.append(set_cookies[0].split(";", 1)[0])
        conn.close()
        return out
    with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
        parts = ex.map(batch, [n // jobs + (1 if i < n % jobs else 0) for i in range(jobs)])
        return [c for part in parts for c in part]


def views(body):
    m = re.search(r"views (\d+)", body)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- wrk

REPORT_LUA = r"""
done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""

# The cookie file (one `name=value` a line) is the script's first argument, wrk's thread
# count its second; each thread takes every threads-th cookie.
THREAD_SHARE_LUA = r"""
local threads_started = 0
function setup(thread)
  threads_started = threads_started + 1
  thread:set("tid", threads_started)
end
local function my_cookies(args)
  local threads, all, mine = tonumber(args[2]) or 1, {}, {}
  for line in io.lines(args[1]) do
    if #line > 0 then all[#all + 1] = line end
  end
  for k = 1, #all do
    if #all < threads or (k - 1) % threads == (tid or 1) - 1 then mine[#mine + 1] = all[k] end
  end
  return mine
end
"""

# Round-robin over the thread's share of the pool, requests formatted once.
POOL_LUA = THREAD_SHARE_LUA + r"""
local reqs, i = {}, 0
function init(args)
  for _, cookie in ipairs(my_cookies(args)) do
    reqs[#reqs + 1] = wrk.format(nil, nil, {Cookie = cookie})
  end
end
function request()
  i = i % #reqs + 1
  return reqs[i]
end
"""

# A stack of live cookies: each request takes one, each response's Set-Cookie goes back.
RELOGIN_LUA = THREAD_SHARE_LUA + r"""
local stack = {}
function init(args)
  stack = my_cookies(args)
end
function request()
  local cookie = table.remove(stack)
  if cookie then return wrk.format(nil, nil, {Cookie = cookie}) end
  return wrk.format(nil, nil, {})
end
function response(status, headers, body)
  local set = headers["set-cookie"] or headers["Set-Cookie"]
  if set then stack[#stack + 1] = set:match("^[^;]+") end
end
"""


def write_scripts(tmp):
    paths = {}
    for load, body in (("pool", POOL_LUA), ("relogin", RELOGIN_LUA), ("one", "")):
        paths[load] = os.path.join(tmp, f"{load}.lua")
        with open(paths[load], "w") as f:
            f.write(body + REPORT_LUA)
    return paths


def wrk(port, path, load, cookies_file, cookie, args, duration):
    cmd = pin(args.load_cpu) + [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--timeout", "5s",
        "--latency", "-s", args.scripts[load]]
    if load == "one":
        cmd += ["-H", f"Cookie: {cookie}", f"http://127.0.0.1:{port}{path}"]
    else:
        cmd += [f"http://127.0.0.1:{port}{path}", "--", cookies_file, str(args.threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON "):])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            # wrk's share of its CPU: near 1, wrk (not the server) set the pace.
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            result["wrk_cpu_share"] = cpu / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------- one measurement

def start_server(server, workload, stores, tmp, args, prefix=()):
    """Empties the store, starts the server (pinned) on a free port; answers (proc, port,
    workdir, errlog)."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=f"{server.name}-", dir=tmp)
    database = stores.reset(server.store)
    cmd = [part.format(port=port, redis=stores.redis.url, tmp=workdir, database=database)
           for part in server.cmd]
    if server.name.startswith("tessera-"):
        cmd += workload.tessera_args
    env = dict(os.environ, PORT=str(port), REDIS_URL=stores.redis.url, DATABASE_URL=database,
               NODE_ENV="production", **server.env)
    env.pop("RUST_LOG", None)
    errlog = open(os.path.join(workdir, "stderr.log"), "w+")
    # A process group of its own (to stop node's workers too), in the harness's session:
    # a new session would be a new scheduler autogroup, outside the priority set below.
    proc = subprocess.Popen(pin(args.server_cpu) + list(prefix) + cmd, env=env, cwd=workdir,
                            stdout=subprocess.DEVNULL, stderr=errlog, process_group=0)
    return proc, port, workdir, errlog


def stop_server(proc, errlog, grace=5):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    errlog.close()


def measure(server, workload, round_no, stores, args, tmp):
    proc, port, workdir, errlog = start_server(server, workload, stores, tmp, args)
    result = {"server": server.name, "workload": workload.name, "round": round_no}
    store = stores.proc(server.store)
    try:
        if not wait_port(port, proc):
            errlog.seek(0)
            raise RuntimeError(f"did not start: {errlog.read()[-800:]}")
        # node's cluster primary listens before every worker is ready: wait for them.
        if server.cmd[0] == "node":
            time.sleep(0.3)
        if server.store == "none":
            cookies = [FAKE_COOKIE]
        elif workload.pool_path == "/counter":
            cookies = [session_cookie(port)]
            if server.store == "redis" and workload.name == "counter":
                keys = [k for k in stores.redis.cli("--scan").splitlines() if k]
                if len(keys) == 1:
                    # The record of views=2 (two /counter requests): one data shape for all.
                    result["session_key"] = keys[0]
                    result["memory_usage"] = int(stores.redis.cli("MEMORY", "USAGE", keys[0], "SAMPLES", "0"))
                    result["value_bytes"] = int(stores.redis.cli("STRLEN", keys[0]))
            if workload.load != "one":
                cookies += make_pool(port, "/counter", args.pool - 1)
        else:
            cookies = make_pool(port, workload.pool_path, args.pool)
        cookies_file = os.path.join(workdir, "cookies.txt")
        with open(cookies_file, "w") as f:
            f.write("\n".join(cookies) + "\n")

        # Warm-up: a short wrk burst in full mode, a few sequential requests in quick mode.
        if args.warmup > 0:
            wrk(port, workload.path, workload.load, cookies_file, cookies[0], args, args.warmup)
        else:
            for k in range(50):
                get(port, workload.path, cookies[k % len(cookies)])
        start_views = None
        if workload.load == "one" and server.store != "none":
            start_views = views(get(port, "/read", cookies[0])[1])
        pids = descendants(proc.pid)
        store_pids = descendants(store.proc.pid) if store else []
        before_stats = stores.redis.commandstats()
        before_cpu, before_store_cpu = proc_cpu(pids), proc_cpu(store_pids)
        load_before = loadavg()
        w = wrk(port, workload.path, workload.load, cookies_file, cookies[0], args, args.duration)
        after_cpu, after_store_cpu = proc_cpu(pids), proc_cpu(store_pids)
        after_stats = stores.redis.commandstats()
        result.update(w)
        result["load"] = max(load_before, loadavg())
        requests = max(w["requests"], 1)
        per_cmd = {}
        for cmd_name, calls in after_stats.items():
            delta = calls - before_stats.get(cmd_name, 0)
            if delta > 0 and cmd_name not in HARNESS_COMMANDS:
                per_cmd[cmd_name] = delta / requests
        result["redis_cmds"] = per_cmd
        result["redis_per_req"] = sum(per_cmd.values())
        result["cpu_us_per_req"] = (after_cpu - before_cpu) * 1e6 / requests
        result["store_cpu_us_per_req"] = (after_store_cpu - before_store_cpu) * 1e6 / requests
        result["peak_rss_kib"] = peak_rss_kib(descendants(proc.pid))
        if workload.load == "one" and start_views is not None:
            # wrk counts status >= 400 as errors; the rest answered (2xx here).
            end_views = views(get(port, "/read", cookies[0])[1])
            result["answered_2xx"] = w["requests"] - w["status_errors"]
            result["non_2xx"] = w["status_errors"]
            result["kept"] = (end_views or 0) - start_views
        if workload.load != "relogin":
            # The session survived the run (the counter still counts).
            status, body, _ = get(port, "/read" if workload.pool_path == "/counter" else workload.path,
                                  cookies[0])
            result["after"] = f"{status} {body.strip()[:40]}"
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        result["error"] = str(e)[:500]
    finally:
        stop_server(proc, errlog)
    return result


# ---------------------------------------------------------------- callgrind

def callgrind_count(server, workload, count, stores, args, tmp):
    """Instructions (user space) of one server process under callgrind that answered
    `count` requests of the workload on one keep-alive connection after making its session."""
    out_file = os.path.join(tmp, f"cg.{server.name}.{workload.name}.{count}")
    prefix = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
    proc, port, _, errlog = start_server(server, workload, stores, tmp, args, prefix)
    try:
        if not wait_port(port, proc, timeout=120):
            errlog.seek(0)
            raise RuntimeError(f"did not start under valgrind: {errlog.read()[-500:]}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        cookie = None
        if server.store != "none":
            _, _, set_cookies = get(port, workload.pool_path, conn=conn)
            cookie = set_cookies[0].split(";", 1)[0] if set_cookies else None
        deadline = time.time() + args.callgrind_timeout
        for _ in range(count):
            status, body, set_cookies = get(port, workload.path, cookie, conn=conn)
            if status != 200:
                raise RuntimeError(f"{workload.path}: status {status} {body[:100]!r}")
            if workload.load == "relogin" and set_cookies:
                cookie = set_cookies[0].split(";", 1)[0]
            if time.time() > deadline:
                raise RuntimeError(f"over {args.callgrind_timeout} s")
        conn.close()
    finally:
        # valgrind does not pass SIGINT on to a tokio server parked in epoll; SIGTERM ends
        # it, and callgrind writes its counts on the way out.
        stop_server(proc, errlog, grace=60)
    with open(out_file) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def callgrind_all(servers, workloads, stores, args, tmp):
    by_name = {s.name: s for s in servers}
    by_workload = {w.name: w for w in workloads}
    out = []
    for name, wname in CALLGRIND:
        if name not in by_name or wname not in by_workload:
            continue
        server, workload = by_name[name], by_workload[wname]
        row = {"server": name, "workload": wname, "requests": args.callgrind}
        try:
            a = callgrind_count(server, workload, args.callgrind_warmup, stores, args, tmp)
            b = callgrind_count(server, workload, args.callgrind_warmup + args.callgrind, stores, args, tmp)
            row["instructions"] = (b - a) / args.callgrind
            log(f"callgrind {name:22} {wname:10} {row['instructions'] / 1000:.1f}k instructions/request")
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            row["error"] = str(e)[:300]
            log(f"callgrind {name} {wname}: ERROR {row['error']}")
        out.append(row)
    return out


def available(server):
    """Whether the server's program exists and knows its mode."""
    exe = server.cmd[0]
    if exe == "node":
        return shutil.which("node") is not None and os.path.isdir(os.path.join(BENCH, "node", "node_modules"))
    if not os.path.exists(exe):
        return False
    if server.name.startswith("tessera-"):
        try:
            out = subprocess.run([exe, "--supports", server.store], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            log(f"{exe} --supports {server.store} did not answer in 30 s")
            return False
        return out.returncode == 0
    return True


def data_servers_missing(store):
    """Why the data server of `store` cannot run here (None when it can)."""
    if store == "postgres" and not postgres_bin():
        return "no /usr/lib/postgresql/*/bin/initdb"
    if store == "mysql" and not shutil.which("mariadb-install-db"):
        return "no mariadb-install-db"
    return None


# ---------------------------------------------------------------- report

def siblings(cpu):
    """The CPUs that share a physical core with `cpu` (SMT), as the kernel lists them."""
    try:
        with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
            return f.read().strip()
    except OSError:
        return "?"


def machine(stores, args):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break

    def version(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"

    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 1024 / 1024),
        "kernel": platform.release(),
        "rustc": version(["rustc", "--version"]),
        "node": version(["node", "--version"]),
        "redis": version(["redis-server", "--version"]),
        "postgres": f"PostgreSQL {stores.postgres.version()}" if stores.postgres else None,
        "mariadb": stores.mysql.version() if stores.mysql else None,
        "wrk": version(["wrk", "--version"]).split(" [")[0],
        "valgrind": version(["valgrind", "--version"]),
        "server_cpu_siblings": siblings(args.server_cpu) if args.server_cpu is not None else None,
    }


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def summarize(results):
    """Per (workload, server): the mean of the rounds, the rounds, and each round's ratio
    to bare in the same round."""
    table = {}
    for r in results:
        table.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    summary = {}
    for workload, by_server in table.items():
        bare_by_round = {r["round"]: r["rps"] for r in by_server.get("bare", []) if "error" not in r}
        for server, runs in by_server.items():
            ok = [r for r in runs if "error" not in r]
            s = {"runs": runs, "ok": len(ok)}
            if ok:
                s["rps"] = statistics.mean(r["rps"] for r in ok)
                s["rounds_rps"] = [r["rps"] for r in ok]
                s["rounds_vs_bare"] = [r["rps"] / bare_by_round[r["round"]] for r in ok
                                       if r["round"] in bare_by_round]
                s["p50_us"] = statistics.median(r["p50_us"] for r in ok)
                s["p99_us"] = statistics.median(r["p99_us"] for r in ok)
                s["redis_per_req"] = statistics.mean(r["redis_per_req"] for r in ok)
                cmds = {}
                for r in ok:
                    for c, v in r["redis_cmds"].items():
                        cmds[c] = cmds.get(c, 0) + v / len(ok)
                s["redis_cmds"] = cmds
                s["cpu_us_per_req"] = statistics.mean(r["cpu_us_per_req"] for r in ok)
                s["store_cpu_us_per_req"] = statistics.mean(r.get("store_cpu_us_per_req", 0) for r in ok)
                s["peak_rss_kib"] = max(r["peak_rss_kib"] for r in ok)
                s["errors"] = sum(r["status_errors"] + r["timeouts"] + r["connect_errors"]
                                  + r["read_errors"] + r["write_errors"] for r in ok)
                s["requests"] = sum(r["requests"] for r in ok)
                if all("kept" in r for r in ok):
                    s["kept"] = sum(r["kept"] for r in ok)
                    s["answered_2xx"] = sum(r["answered_2xx"] for r in ok)
                    s["non_2xx"] = sum(r["non_2xx"] for r in ok)
                sizes = [r for r in ok if "memory_usage" in r]
                if sizes:
                    s["memory_usage"] = sizes[0]["memory_usage"]
                    s["value_bytes"] = sizes[0]["value_bytes"]
                s["load"] = max(r["load"] for r in ok)
                s["wrk_cpu_share"] = max(r.get("wrk_cpu_share", 0) for r in ok)
            summary.setdefault(workload, {})[server] = s
    return summary


def cmds_text(cmds):
    if not cmds:
        return "none"
    return ", ".join(f"{c.upper()} {v:.2f}" for c, v in sorted(cmds.items(), key=lambda kv: -kv[1]) if v >= 0.005) or "≈0"


def targets(summary):
    """The issue's targets, each as (target, figure, verdict)."""
    out = []

    def rps(w, s):
        return summary.get(w, {}).get(s, {}).get("rps")

    def ratio(text, num, den, goal, fmt="{:.2f}x"):
        if num and den:
            r = num / den
            out.append((text, fmt.format(r), "met" if r >= goal else "NOT met"))
        else:
            out.append((text, "n/a", "not measured"))

    for peer, goal in [("actix-session", 1.3), ("tower-sessions", 1.5), ("express", 4.0)]:
        ratio(f"counter on Redis ≥ {goal}x {peer}", rps("counter", "tessera-redis"), rps("counter", peer), goal)
    ratio("counter on Redis ≥ 0.5 of bare", rps("counter", "tessera-redis"), rps("counter", "bare"), 0.5)
    ratio("counter on MemoryStore ≥ 0.75 of bare", rps("counter", "tessera-memory"), rps("counter", "bare"), 0.75)
    for store in ["tessera-memory", "tessera-sqlite", "tessera-redis"]:
        ratio(f"untouched ({store}) ≥ 0.95 of bare", rps("untouched", store), rps("untouched", "bare"), 0.95)
    read = summary.get("read", {}).get("tessera-redis", {})
    if "redis_per_req" in read:
        v = read["redis_per_req"]
        out.append(("read on Redis: one Redis command per request", f"{v:.2f} ({cmds_text(read['redis_cmds'])})",
                    "met" if v <= 1.005 else "NOT met"))
    else:
        out.append(("read on Redis: one Redis command per request", "n/a", "not measured"))
    unt = summary.get("untouched", {}).get("tessera-redis", {})
    if "redis_per_req" in unt:
        v = unt["redis_per_req"]
        out.append(("untouched on Redis: no Redis command", f"{v:.3f}", "met" if v < 0.005 else "NOT met"))
    else:
        out.append(("untouched on Redis: no Redis command", "n/a", "not measured"))
    t = summary.get("counter", {}).get("tessera-redis", {}).get("memory_usage")
    e = summary.get("counter", {}).get("express", {}).get("memory_usage")
    if t and e:
        out.append(("bytes per session in Redis ≤ connect-redis's", f"{t} B vs {e} B", "met" if t <= e else "NOT met"))
    else:
        out.append(("bytes per session in Redis ≤ connect-redis's", "n/a", "not measured"))
    ratio("counter on PostgreSQL ahead of express-session (connect-pg-simple)",
          rps("counter", "tessera-postgres"), rps("counter", "express-pg"), 1.0)
    ratio("counter on MariaDB ahead of express-session (express-mysql-session)",
          rps("counter", "tessera-mysql"), rps("counter", "express-mysql"), 1.0)
    a, b = rps("counter", "tessera-redis"), rps("counter", "tessera-redis-noguard")
    if a and b:
        cost = 1 - a / b
        # Rounds interleave the two servers, so each round's pair met the same machine.
        on = {r["round"]: r["rps"] for r in summary["counter"]["tessera-redis"]["runs"] if "error" not in r}
        off = {r["round"]: r["rps"] for r in summary["counter"]["tessera-redis-noguard"]["runs"] if "error" not in r}
        paired = [1 - on[n] / off[n] for n in sorted(on) if n in off]
        rounds = " / ".join(f"{100 * c:.1f}%" for c in paired)
        out.append(("the guard costs ≤ 10% of counter req/s on Redis",
                    f"{100 * cost:.1f}% (each round: {rounds})",
                    "met" if cost <= 0.10 else "NOT met"))
    else:
        out.append(("the guard costs ≤ 10% of counter req/s on Redis", "n/a", "not measured"))
    for name in ["tessera-memory", "tessera-sqlite", "tessera-redis"]:
        s = summary.get("contention", {}).get(name, {})
        text = f"contention ({name}): every increment kept, no non-2xx"
        if "kept" in s:
            # Requests still in flight when wrk stops were served but not counted: kept
            # may exceed the answered count by up to the connections.
            met = s["kept"] >= s["answered_2xx"] and s["non_2xx"] == 0
            out.append((text, f"{s['kept']:,} kept of {s['answered_2xx']:,} answered, {s['non_2xx']} non-2xx",
                        "met" if met else "NOT met"))
        else:
            out.append((text, "n/a", "not measured"))
    return out


def workload_table(summary, workload, servers, bare):
    md = [f"## {workload.name}\n", workload.text + ".\n",
          "| server | req/s (rounds) | vs bare | p50 | p99 | Redis cmd/req | CPU/req | store CPU/req | peak RSS | errors |",
          "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for server in servers:
        s = summary[workload.name].get(server.name)
        if s is None:
            continue
        if not s["ok"]:
            err = s["runs"][0].get("error", "?").splitlines()[0][:120]
            md.append(f"| {server.label} | failed: {err} | | | | | | | | |")
            continue
        vs = f"{100 * s['rps'] / bare:.0f}%" if bare and server.name != "bare" else "—"
        redis_col = "—" if server.store != "redis" else f"{s['redis_per_req']:.2f} ({cmds_text(s['redis_cmds'])})"
        scpu = "—" if server.store in ("none", "memory", "sqlite") else f"{s['store_cpu_us_per_req']:.1f} µs"
        rounds = " / ".join(fmt_rps(x) for x in s["rounds_rps"])
        md.append(f"| {server.label} | **{fmt_rps(s['rps'])}** ({rounds}) | {vs} | {fmt_us(s['p50_us'])} | "
                  f"{fmt_us(s['p99_us'])} | {redis_col} | {s['cpu_us_per_req']:.1f} µs | {scpu} | "
                  f"{s['peak_rss_kib'] / 1024:.1f} MiB | {s['errors']} |")
    md.append("")
    return md


def write_report(data, out_dir, servers_all):
    results, args, info = data["results"], data["args"], data["machine"]
    summary = summarize(results)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    labels = {s.name: s.label for s in servers_all}
    servers = [s for s in servers_all if any(s.name in by for by in summary.values())]
    workloads = [w for w in WORKLOADS if w.name in summary]
    bare = {w: summary.get(w, {}).get("bare", {}).get("rps") for w in WORKLOAD_NAMES}
    quick = args.get("quick")
    minutes = (data["finished"] - data["started"]) / 60

    md = ["# Benchmark results\n",
          f"`bench/run{' --quick' if quick else ''}` ({'quick' if quick else 'full'} mode), {info['date']}, "
          f"{minutes:.1f} min.\n"]
    md.append(f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux {info['kernel']}. "
              f"Load average before/after runs: up to {max((r.get('load', 0) for r in results), default=0):.1f}.")
    md.append(f"- {info['rustc']}; Node {info['node']}; {info['redis']}"
              + "".join(f"; {info[k]}" for k in ("postgres", "mariadb") if info.get(k))
              + f"; {info['wrk']}; {info.get('valgrind', '')}.")
    if args.get("server_cpu") is not None:
        md.append(f"- **One core each.** Every server runs on CPU {args['server_cpu']} (`taskset -c "
                  f"{args['server_cpu']}`): tokio and actix-web start one worker, express one cluster "
                  f"worker, so a figure is what one core of the server does. wrk, redis-server, PostgreSQL "
                  f"and MariaDB run on CPU {args['load_cpu']}: the load generator takes none of the "
                  f"server's cycles, and every server meets the same data server.")
        sib = info.get("server_cpu_siblings")
        if sib and sib not in ("?", str(args["server_cpu"])):
            md.append(f"- **CPU {args['server_cpu']} shares its physical core with CPUs {sib} (SMT)**: "
                      f"the server and wrk then compete for one core's execution units.")
    else:
        md.append("- Not pinned (`--no-pin`): servers, wrk and the data servers share every CPU.")
    md.append(f"- wrk: {args['threads']} thread(s), {args['connections']} connections, {args['duration']} s per "
              f"run after {str(args['warmup']) + ' s of wrk warm-up' if args['warmup'] else '50 warm-up requests'}; "
              f"{args['rounds']} round(s), servers interleaved (A B C … A B C …); a fresh server process and an "
              f"empty store (Redis FLUSHALL, a new SQL database) for each run. Each run first makes "
              f"{args['pool']} sessions (GET without a cookie, keeping each Set-Cookie) and wrk rotates "
              f"over them (a Lua script, round-robin), except `contention` (one cookie) and `login` "
              f"(each connection sends back its latest cookie). Harness, servers and wrk at niceness "
              f"{args['nice']}.")
    md.append("- req/s: mean of the rounds (each round in brackets). vs bare: ÷ bare axum on the same "
              "route. p50/p99: median over rounds of wrk's percentiles. Redis cmd/req: INFO commandstats "
              "delta ÷ requests. CPU/req: the server's user+system CPU time ÷ requests; store CPU/req "
              "likewise for redis-server or the SQL server (all its processes). Peak RSS: VmHWM of the "
              "server (summed over express's processes).")
    busy = sorted({f"{r['workload']} {labels.get(r['server'], r['server'])}" for r in results
                   if r.get("wrk_cpu_share", 0) >= 0.9})
    md.append("- Redis cmd/req counts what Redis executes, the calls a script makes included: Tessera's "
              "guarded save is one `EVALSHA` (one round trip) whose script runs `GET` and `SET`. wrk's CPU: "
              "its share of its own core during each run; "
              + ("**at 90% or more in: " + "; ".join(busy) + "** (there wrk may have set the pace)."
                 if busy else "below 90% in every run (wrk did not set the pace)."))
    if quick:
        md.append("- Quick mode checks the harness (1 s runs, no wrk warm-up, a small pool, express with a "
                  "cold JIT): its numbers mean nothing. Quote the full mode.")
    if data.get("skipped"):
        md.append("- Not measured: " + "; ".join(f"{labels.get(n, n)} ({why})" for n, why in data["skipped"]) + ".")
    md.append("")

    md += ["## Summary\n",
           "req/s (share of bare) · Redis commands per request · bytes per session (`MEMORY USAGE`) · "
           "peak RSS over the runs.\n",
           "| server | /counter | /read | /untouched | Redis cmd/req (counter · read · untouched) | bytes/session | peak RSS |",
           "|---|---:|---:|---:|---|---:|---:|"]
    for server in servers:
        rows = [summary.get(w, {}).get(server.name) for w in MAIN]
        if not any(r and r.get("ok") for r in rows):
            continue
        cells, cmds, rss = [], [], 0
        for w, r in zip(MAIN, rows):
            if not r or not r.get("ok"):
                cells.append("—")
                cmds.append("—")
                continue
            share = f" ({100 * r['rps'] / bare[w]:.0f}%)" if bare.get(w) and server.name != "bare" else ""
            cells.append(f"{fmt_rps(r['rps'])}{share}")
            cmds.append(f"{r['redis_per_req']:.2f}")
            rss = max(rss, r["peak_rss_kib"])
        size = summary.get("counter", {}).get(server.name, {}).get("memory_usage")
        md.append(f"| {server.label} | " + " | ".join(cells) + " | "
                  + (" · ".join(cmds) if server.store == "redis" else "—") + " | "
                  + (f"{size} B" if size else "—") + f" | {rss / 1024:.1f} MiB |")
    md.append("")

    md.append("## Targets\n")
    md.append("Ratios, one core each, the guarded commit on (Tessera's default).\n")
    md.append("| target | measured | |")
    md.append("|---|---|---|")
    for text, value, verdict in targets(summary):
        md.append(f"| {text} | {value} | {verdict} |")
    md.append("")

    for workload in workloads:
        if workload.name == "contention":
            md += ["## contention\n", workload.text + ", so every connection writes the same record "
                   "at once. Kept: views at the end − views at the start of the measured run; "
                   "answered: responses below 400 (wrk counts the rest as errors). Requests in flight when "
                   "wrk stops were served but not counted, so kept may exceed answered by up to the "
                   "connections. Last writer wins loses increments; the guarded commit keeps them.\n",
                   "| server | req/s (rounds) | p99 | answered | increments kept | kept ÷ answered | non-2xx |",
                   "|---|---:|---:|---:|---:|---:|---:|"]
            for server in servers:
                s = summary["contention"].get(server.name)
                if s is None or server.store == "none":
                    continue
                if not s["ok"]:
                    md.append(f"| {server.label} | failed: {s['runs'][0].get('error', '?')[:120]} | | | | | |")
                    continue
                rounds = " / ".join(fmt_rps(x) for x in s["rounds_rps"])
                if "kept" in s:
                    share = f"{100 * s['kept'] / s['answered_2xx']:.1f}%" if s["answered_2xx"] else "—"
                    md.append(f"| {server.label} | **{fmt_rps(s['rps'])}** ({rounds}) | {fmt_us(s['p99_us'])} | "
                              f"{s['answered_2xx']:,} | {s['kept']:,} | {share} | {s['non_2xx']:,} |")
                else:
                    md.append(f"| {server.label} | **{fmt_rps(s['rps'])}** ({rounds}) | {fmt_us(s['p99_us'])} | | | | |")
            md.append("")
        else:
            md += workload_table(summary, workload, servers, bare[workload.name])

    # Ratios of every Tessera server to every peer, per workload.
    md.append("## Tessera ÷ peer (req/s ratios)\n")
    md.append("| workload | Tessera | " + " | ".join(f"÷ {p}" for p in PEERS) + " | ÷ bare |")
    md.append("|---|---|" + "---:|" * (len(PEERS) + 1))
    for workload in MAIN + ("contention",):
        for t in [s.name for s in servers if s.name.startswith("tessera-")]:
            ts = summary.get(workload, {}).get(t, {})
            if "rps" not in ts:
                continue
            cells = []
            for p in PEERS + ["bare"]:
                ps = summary.get(workload, {}).get(p, {})
                cells.append(f"{ts['rps'] / ps['rps']:.2f}x" if "rps" in ps else "—")
            md.append(f"| {workload} | {t} | " + " | ".join(cells) + " |")
    md.append("")
    pairs = [("tessera-redis", "tessera-redis-noguard", "guard on ÷ off, Redis"),
             ("tessera-sqlite", "tessera-sqlite-noguard", "guard on ÷ off, SQLite"),
             ("tessera-postgres", "express-pg", "Tessera ÷ express-session, PostgreSQL"),
             ("tessera-mysql", "express-mysql", "Tessera ÷ express-session, MariaDB")]
    lines = []
    for a, b, text in pairs:
        x, y = summary.get("counter", {}).get(a, {}), summary.get("counter", {}).get(b, {})
        if "rps" in x and "rps" in y:
            lines.append(f"| {text} | {fmt_rps(x['rps'])} | {fmt_rps(y['rps'])} | {x['rps'] / y['rps']:.2f}x |")
    if lines:
        md += ["Counter, side by side:\n", "| pair | req/s | req/s | ratio |", "|---|---:|---:|---:|", *lines, ""]
    gap = []
    for workload in MAIN:
        a = summary.get(workload, {}).get("actix-bare", {}).get("rps")
        b = summary.get(workload, {}).get("bare", {}).get("rps")
        if a and b:
            gap.append(f"{workload} {a / b:.2f}x")
    if gap:
        md.append("Framework gap without sessions, bare actix-web ÷ bare axum: " + " · ".join(gap) + ".\n")

    md.append("## Bytes per stored session (Redis)\n")
    md.append("The record of a session holding `views` = 2 (after two `/counter` requests): "
              "`MEMORY USAGE key SAMPLES 0` and the value's length (`STRLEN`).\n")
    md.append("| server | MEMORY USAGE | value bytes | key |")
    md.append("|---|---:|---:|---|")
    for server in servers:
        s = summary.get("counter", {}).get(server.name, {})
        if server.store == "redis" and "memory_usage" in s:
            key = next(r.get("session_key", "") for r in s["runs"] if "memory_usage" in r)
            shape = re.sub(r"[A-Za-z0-9_\-+/=]{16,}", "<id>", key)
            md.append(f"| {server.label} | {s['memory_usage']} B | {s['value_bytes']} B | `{shape}` ({len(key)} chars) |")
    md.append("")

    cg = data.get("callgrind") or []
    if cg:
        md.append("## Instructions per request (callgrind)\n")
        md.append(f"User-space instructions of the server under `valgrind --tool=callgrind`, one keep-alive "
                  f"connection: (count after {args['callgrind_warmup']} + {args['callgrind']} requests − "
                  f"count after {args['callgrind_warmup']}) ÷ {args['callgrind']}, so start-up and warm-up "
                  f"cancel out. Repeatable to a few tenths of a percent where req/s is not: the measure "
                  f"to judge a change with. Valgrind hides the CPU's SHA extensions, so the cookie's HMAC "
                  f"counts about 7k instructions more than it costs natively.\n")
        md.append("| server | " + " | ".join(f"/{w}" if w != "sessions" else "/sessions" for w in EVERY if w != "contention") + " |")
        md.append("|---|" + "---:|" * (len(EVERY) - 1))
        rows = {}
        for r in cg:
            rows.setdefault(r["server"], {})[r["workload"]] = (
                f"{r['instructions'] / 1000:.1f}k" if "instructions" in r else "failed")
        for name, cells in rows.items():
            md.append(f"| {labels.get(name, name)} | "
                      + " | ".join(cells.get(w, "—") for w in EVERY if w != "contention") + " |")
        md.append("")
    md.append("Chart: [chart.svg](chart.svg) (each server's share of bare per workload, each round a "
              "tick). Raw numbers of every run: `results.json`.\n")

    with open(os.path.join(out_dir, "RESULTS.md"), "w") as f:
        f.write("\n".join(md))
    subprocess.run([sys.executable, os.path.join(BENCH, "chart.py"),
                    os.path.join(out_dir, "results.json"), os.path.join(out_dir, "chart.svg")], check=False)


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="check the harness: 1 s runs, no wrk warm-up, 1 round, 200 sessions, "
                        "callgrind over 100 requests; a few minutes")
    p.add_argument("--duration", type=int, help="seconds per measured run (full: 10, quick: 1)")
    p.add_argument("--warmup", type=int, help="seconds of wrk warm-up (full: 2, quick: 0)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (full: 3, quick: 1)")
    p.add_argument("--pool", type=int, help="sessions per run that wrk rotates over (full: 1000, quick: 200)")
    p.add_argument("--threads", type=int, default=1, help="wrk threads (default 1: wrk has one core)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--callgrind", type=int,
                   help="requests callgrind counts per Tessera route (full: 2000, quick: 100; 0: skip)")
    p.add_argument("--callgrind-timeout", type=int, default=120,
                   help="seconds one callgrind run may take (default 120)")
    p.add_argument("--cpus", default="0,1", metavar="SERVER,LOAD",
                   help="the CPU of the server under test and the CPU of wrk and the data servers (default 0,1)")
    p.add_argument("--no-pin", action="store_true", help="do not pin anything to a CPU")
    p.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                   help="niceness for the harness, the data servers, the servers and wrk (default -10 as "
                        "root: other work on the machine disturbs the numbers less)")
    p.add_argument("--servers", help="comma-separated subset of: " + ",".join(s.name for s in SERVERS))
    p.add_argument("--workloads", help="comma-separated subset of: " + ",".join(WORKLOAD_NAMES))
    p.add_argument("--out", default=os.path.join(BENCH, "results"),
                   help="where RESULTS.md, results.json and chart.svg go (default bench/results)")
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="rewrite RESULTS.md and chart.svg (into --out) from a saved results.json, measuring nothing")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=BINARY",
                   help="also measure another build of bench-tessera (e.g. a library change) as "
                        "Tessera + RedisStore and + MemoryStore, labelled LABEL; repeatable")
    args = p.parse_args()
    for key, full, quick in [("duration", 10, 1), ("warmup", 2, 0), ("rounds", 3, 1), ("pool", 1000, 200),
                             ("callgrind", 2000, 100)]:
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    args.callgrind_warmup = max(args.callgrind // 10, 10)
    if args.no_pin:
        args.server_cpu = args.load_cpu = None
    else:
        args.server_cpu, args.load_cpu = (int(c) for c in args.cpus.split(","))

    for v in args.variant:
        label, _, binary = v.partition("=")
        binary = os.path.abspath(binary)
        for store in ["redis", "memory"]:
            base = next(s for s in SERVERS if s.name == f"tessera-{store}")
            SERVERS.insert(SERVERS.index(base) + 1, base._replace(
                name=f"{base.name}@{label}", label=f"{base.label} ({label})",
                cmd=[binary] + base.cmd[1:], workloads=MAIN))
    if args.report_only:
        with open(args.report_only) as f:
            data = json.load(f)
        if "pool" not in data.get("args", {}):
            raise SystemExit(f"{args.report_only} is from the harness before pinning and session pools: "
                             "its RESULTS.md is the report; re-run bench/run for a new one")
        known = {s.name for s in SERVERS}
        for name in sorted({r["server"] for r in data["results"]} - known):
            base_name, _, variant = name.partition("@")
            base = next((s for s in SERVERS if s.name == base_name), SERVERS[0])
            SERVERS.append(base._replace(name=name, label=f"{base.label} ({variant})"))
        write_report(data, args.out, SERVERS)
        return

    if args.nice:
        # Linux with autogroups schedules each session as one group, and niceness only
        # orders processes inside their group: set both.
        try:
            os.nice(args.nice)
            if os.path.exists("/proc/self/autogroup"):
                with open("/proc/self/autogroup", "w") as f:
                    f.write(str(args.nice))
        except OSError as e:
            log(f"cannot change niceness by {args.nice}: {e}; running at the current one")
            args.nice = 0
    # Stopped (SIGTERM, Ctrl-C): stop what was started, keep what was measured.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    names = {s.name for s in SERVERS}
    wanted = args.servers.split(",") if args.servers else [s.name for s in SERVERS]
    for w in wanted:
        if w not in names:
            raise SystemExit(f"unknown server {w}")
    wanted_workloads = args.workloads.split(",") if args.workloads else WORKLOAD_NAMES
    for w in wanted_workloads:
        if w not in WORKLOAD_NAMES:
            raise SystemExit(f"unknown workload {w}")
    workloads = [w for w in WORKLOADS if w.name in wanted_workloads]
    servers, skipped = [], []
    for s in SERVERS:
        if s.name not in wanted or not any(w.name in s.workloads for w in workloads):
            continue
        why = None if available(s) else "not available in this build"
        why = why or data_servers_missing(s.store)
        if why:
            skipped.append((s.name, why))
            log(f"skipping {s.name}: {why}")
        else:
            servers.append(s)

    tmp = tempfile.mkdtemp(prefix="tessera-bench-")
    args.scripts = write_scripts(tmp)
    stores = Stores({s.store for s in servers}, tmp, args.load_cpu)
    data = {"results": [], "callgrind": [], "skipped": skipped, "started": time.time()}
    try:
        data["machine"] = machine(stores, args)
        plan = [(w, r, s) for w in workloads for r in range(1, args.rounds + 1)
                for s in servers if w.name in s.workloads]
        for n, (workload, round_no, server) in enumerate(plan, 1):
            r = measure(server, workload, round_no, stores, args, tmp)
            data["results"].append(r)
            head = (f"[{n}/{len(plan)} {(time.time() - data['started']) / 60:4.1f} min] "
                    f"{workload.name:10} r{round_no} {server.name:23}")
            if "error" in r:
                log(f"{head} ERROR {r['error'][:200]}")
            else:
                extra = f"  kept {r['kept']}/{r['answered_2xx']} non-2xx {r['non_2xx']}" if "kept" in r else ""
                log(f"{head} {r['rps']:>9,.0f} req/s p99 {fmt_us(r['p99_us']):>9}  redis "
                    f"{r['redis_per_req']:.2f}/req  cpu {r['cpu_us_per_req']:.0f} µs/req  "
                    f"wrk {100 * r['wrk_cpu_share']:.0f}% cpu  load {r['load']:.1f}{extra}")
        if args.callgrind > 0:
            if shutil.which("valgrind"):
                data["callgrind"] = callgrind_all(servers, workloads, stores, args, tmp)
            else:
                log("no valgrind: instructions per request not counted")
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: writing what was measured so far")
    finally:
        stores.stop()
    data["finished"] = time.time()
    data["args"] = {k: v for k, v in vars(args).items() if k != "scripts"}
    data.setdefault("machine", {})
    write_report(data, args.out, SERVERS)
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {os.path.join(args.out, 'RESULTS.md')} and chart.svg in {(data['finished'] - data['started']):.0f} s")


if __name__ == "__main__":
    main()

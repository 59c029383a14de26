#!/usr/bin/env python3
"""The measuring half of bench/run (bench/run builds, then runs this).

For every workload (/counter, /read, /untouched) and every round, each server in turn:
FLUSHALL the shared Redis, start the server on a free port, take a session cookie from a
first GET /counter (views=1), check that the cookie works (views=2), warm up, snapshot
Redis INFO commandstats and the processes' CPU times, run wrk with that cookie, snapshot
again, read the server's peak RSS (VmHWM), stop it. Rounds interleave the servers
(A B C … A B C …) so drift over the run shows as a difference between rounds.

Writes bench/results/RESULTS.md, bench/results/results.json and bench/results/chart.svg.
Standard library only.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

BENCH = os.path.dirname(os.path.abspath(__file__))
RELEASE = os.path.join(BENCH, "target", "release")
RESULTS = os.path.join(BENCH, "results")
WORKLOADS = ["counter", "read", "untouched"]
WORKLOAD_TEXT = {
    "counter": "`/counter`: reads the session and writes it back (views + 1) on every request",
    "read": "`/read`: reads the session, never modifies it",
    "untouched": "`/untouched`: behind the session layer, never touches the session",
}

# name, label, command (with {port}, {redis}, {tmp}), store, group
SERVERS = [
    ("bare", "bare axum (no sessions)", [f"{RELEASE}/bench-bare", "--port", "{port}"], "none"),
    # The second ceiling: how much of the gap to actix-session is actix-web itself.
    ("actix-bare", "bare actix-web (no sessions)",
     [f"{RELEASE}/bench-actix-bare", "--port", "{port}"], "none"),
    ("tessera-memory", "Tessera + MemoryStore",
     [f"{RELEASE}/bench-tessera", "memory", "--port", "{port}"], "memory"),
    ("tessera-sqlite", "Tessera + SqliteStore",
     [f"{RELEASE}/bench-tessera", "sqlite", "--port", "{port}", "--sqlite", "{tmp}/sessions.db"],
     "sqlite"),
    ("tessera-redis", "Tessera + RedisStore",
     [f"{RELEASE}/bench-tessera", "redis", "--port", "{port}", "--redis", "{redis}"], "redis"),
    # The layout actix-web uses, for axum: one single-threaded runtime per core, each with
    # its own store connection (bench_common::serve_per_core). Tessera and tower-sessions
    # both, so each layout is compared with its like.
    ("tessera-redis-per-core", "Tessera + RedisStore, one runtime per core",
     [f"{RELEASE}/bench-tessera", "redis", "--per-core", "--port", "{port}", "--redis", "{redis}"],
     "redis"),
    ("tower-sessions", "axum + tower-sessions + redis-store (fred)",
     [f"{RELEASE}/bench-tower-sessions", "--port", "{port}", "--redis", "{redis}"], "redis"),
    ("tower-sessions-per-core", "axum + tower-sessions + redis-store (fred), one runtime per core",
     [f"{RELEASE}/bench-tower-sessions", "--per-core", "--port", "{port}", "--redis", "{redis}"],
     "redis"),
    ("actix-session", "actix-web + actix-session + RedisSessionStore",
     [f"{RELEASE}/bench-actix", "--port", "{port}", "--redis", "{redis}"], "redis"),
    ("express", "express + express-session + connect-redis 8.1 + ioredis",
     ["node", os.path.join(BENCH, "node", "server.js"), "--port", "{port}"], "redis"),
]
PEERS = ["tower-sessions", "tower-sessions-per-core", "actix-session", "express"]
# Commands the harness itself sends (never counted as the server's).
HARNESS_COMMANDS = {"info", "flushall", "scan", "memory", "strlen", "ping", "config", "dbsize"}


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


# ---------------------------------------------------------------- Redis

class Redis:
    def __init__(self, port, workdir):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir, "--logfile", os.path.join(workdir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port(port, self.proc):
            raise SystemExit("redis-server did not start")
        self.cli("PING")

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port), *args],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def commandstats(self):
        stats = {}
        for line in self.cli("INFO", "commandstats").splitlines():
            m = re.match(r"cmdstat_([^:]+):calls=(\d+)", line)
            if m:
                stats[m.group(1)] = int(m.group(2))
        return stats

    def cpu_seconds(self):
        return proc_cpu([self.proc.pid])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ---------------------------------------------------------------- processes

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every live descendant (node's cluster workers)."""
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


# ---------------------------------------------------------------- HTTP

def get(port, path, cookie=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Cookie": cookie} if cookie else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    set_cookies = resp.headers.get_all("Set-Cookie") or []
    conn.close()
    return resp.status, body, set_cookies


def session_cookie(port):
    """A first GET /counter; answers the `name=value` pair to send back."""
    status, body, set_cookies = get(port, "/counter")
    if status != 200 or not set_cookies:
        raise RuntimeError(f"first /counter: status {status}, Set-Cookie {set_cookies}, body {body!r}")
    cookie = set_cookies[0].split(";", 1)[0]
    status, body, _ = get(port, "/counter", cookie)
    if status != 200 or "2" not in body:
        raise RuntimeError(f"second /counter with the cookie: status {status}, body {body!r}")
    return cookie


# ---------------------------------------------------------------- wrk

WRK_SCRIPT = r"""
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


def wrk(port, path, cookie, args, duration):
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s",
           "--timeout", "5s", "--latency", "-s", args.wrk_script,
           "-H", f"Cookie: {cookie}", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result = json.loads(line[len("WRKJSON "):])
            result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no result: {out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------- one measurement

def measure(server, workload, round_no, redis, args, tmp):
    name, label, template, store = server
    port = free_port()
    workdir = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
    cmd = [part.format(port=port, redis=redis.url, tmp=workdir) for part in template]
    env = dict(os.environ, PORT=str(port), REDIS_URL=redis.url, NODE_ENV="production")
    env.pop("RUST_LOG", None)
    redis.cli("FLUSHALL")
    errlog = open(os.path.join(workdir, "stderr.log"), "w+")
    # A process group of its own (to stop node's workers too), in the harness's session:
    # a new session would be a new scheduler autogroup, outside the priority set below.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=errlog,
                            process_group=0)
    result = {"server": name, "workload": workload, "round": round_no}
    try:
        if not wait_port(port, proc):
            errlog.seek(0)
            raise RuntimeError(f"did not start: {errlog.read()[-800:]}")
        # node's cluster primary listens before every worker is ready: wait for them.
        if name == "express":
            time.sleep(0.3)
        if store == "none":
            # No session layer: send a cookie of the same size as Tessera's, ignored.
            cookie = "connect.sid=s%3A" + "A" * 32 + "." + "B" * 43
        else:
            cookie = session_cookie(port)
        if store == "redis":
            keys = [k for k in redis.cli("--scan").splitlines() if k]
            if len(keys) == 1:
                # The record after the first request (views=1), re-read after the second
                # (views=2): sizes of the same data shape.
                result["session_key"] = keys[0]
                result["memory_usage"] = int(redis.cli("MEMORY", "USAGE", keys[0], "SAMPLES", "0"))
                result["value_bytes"] = int(redis.cli("STRLEN", keys[0]))
        # Warm-up: a short wrk burst in full mode, a few sequential requests in quick mode.
        if args.warmup > 0:
            wrk(port, f"/{workload}", cookie, args, args.warmup)
        else:
            for _ in range(50):
                get(port, f"/{workload}", cookie)
        pids = descendants(proc.pid)
        before_stats = redis.commandstats()
        before_cpu = proc_cpu(pids)
        before_redis_cpu = redis.cpu_seconds()
        load_before = loadavg()
        w = wrk(port, f"/{workload}", cookie, args, args.duration)
        after_cpu = proc_cpu(pids)
        after_redis_cpu = redis.cpu_seconds()
        after_stats = redis.commandstats()
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
        result["redis_cpu_us_per_req"] = (after_redis_cpu - before_redis_cpu) * 1e6 / requests
        result["peak_rss_kib"] = peak_rss_kib(descendants(proc.pid))
        # The counter must still count: the session survived the run.
        status, body, _ = get(port, "/read", cookie)
        result["after"] = f"{status} {body.strip()[:40]}"
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        result["error"] = str(e)[:500]
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        errlog.close()
    return result


def available(server):
    """Whether the server's program exists and knows its mode (the Tessera stores that
    have not landed yet answer `unknown store`)."""
    name, _, template, store = server
    exe = template[0]
    if exe == "node":
        return shutil.which("node") is not None and os.path.isdir(os.path.join(BENCH, "node", "node_modules"))
    if not os.path.exists(exe):
        return False
    if name.startswith("tessera-"):
        try:
            out = subprocess.run([exe, "--supports", store], capture_output=True, text=True, timeout=30)
        except subprocess.TimeoutExpired:
            log(f"{exe} --supports {store} did not answer in 30 s")
            return False
        return out.returncode == 0
    return True


# ---------------------------------------------------------------- report

def machine():
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
        "wrk": version(["wrk", "--version"]).split(" [")[0],
    }


def fmt_rps(x):
    return f"{x:,.0f}"


def fmt_us(us):
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def summarize(results):
    """Per (workload, server): the mean of the rounds and the rounds themselves."""
    table = {}
    for r in results:
        table.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r)
    summary = {}
    for workload, by_server in table.items():
        for server, runs in by_server.items():
            ok = [r for r in runs if "error" not in r]
            s = {"runs": runs, "ok": len(ok)}
            if ok:
                s["rps"] = statistics.mean(r["rps"] for r in ok)
                s["rounds_rps"] = [r["rps"] for r in ok]
                s["p50_us"] = statistics.median(r["p50_us"] for r in ok)
                s["p99_us"] = statistics.median(r["p99_us"] for r in ok)
                s["redis_per_req"] = statistics.mean(r["redis_per_req"] for r in ok)
                cmds = {}
                for r in ok:
                    for c, v in r["redis_cmds"].items():
                        cmds[c] = cmds.get(c, 0) + v / len(ok)
                s["redis_cmds"] = cmds
                s["cpu_us_per_req"] = statistics.mean(r["cpu_us_per_req"] for r in ok)
                s["redis_cpu_us_per_req"] = statistics.mean(r["redis_cpu_us_per_req"] for r in ok)
                s["peak_rss_kib"] = max(r["peak_rss_kib"] for r in ok)
                s["errors"] = sum(r["status_errors"] + r["timeouts"] + r["connect_errors"]
                                  + r["read_errors"] + r["write_errors"] for r in ok)
                s["requests"] = sum(r["requests"] for r in ok)
                sizes = [r for r in ok if "memory_usage" in r]
                if sizes:
                    s["memory_usage"] = sizes[0]["memory_usage"]
                    s["value_bytes"] = sizes[0]["value_bytes"]
                s["load"] = max(r["load"] for r in ok)
            summary.setdefault(workload, {})[server] = s
    return summary


def targets(summary):
    out = []

    def rps(w, s):
        return summary.get(w, {}).get(s, {}).get("rps")

    def ratio_line(text, num, den, goal):
        if num and den:
            r = num / den
            out.append((text, f"{r:.2f}x", "met" if r >= goal else "NOT met"))
        else:
            out.append((text, "n/a", "not measured"))

    for peer, goal in [("tower-sessions", 1.5), ("actix-session", 1.3), ("express", 4.0)]:
        ratio_line(f"counter on Redis ≥ {goal}x {peer}", rps("counter", "tessera-redis"),
                   rps("counter", peer), goal)
    # The same targets with both axum servers in actix-web's layout (one runtime per core).
    for peer, goal in [("tower-sessions-per-core", 1.5), ("actix-session", 1.3)]:
        ratio_line(f"counter on Redis, one runtime per core ≥ {goal}x {peer}",
                   rps("counter", "tessera-redis-per-core"), rps("counter", peer), goal)
    read = summary.get("read", {}).get("tessera-redis", {})
    if "redis_per_req" in read:
        v = read["redis_per_req"]
        out.append(("read on Redis: 1 Redis command per request", f"{v:.2f} ({cmds_text(read['redis_cmds'])})",
                    "met" if v <= 1.05 else "NOT met"))
    else:
        out.append(("read on Redis: 1 Redis command per request", "n/a", "not measured"))
    unt = summary.get("untouched", {}).get("tessera-redis", {})
    if "redis_per_req" in unt:
        v = unt["redis_per_req"]
        out.append(("untouched on Redis: 0 Redis commands", f"{v:.3f}", "met" if v < 0.005 else "NOT met"))
    else:
        out.append(("untouched on Redis: 0 Redis commands", "n/a", "not measured"))
    for store in ["tessera-redis", "tessera-memory"]:
        a, b = rps("untouched", store), rps("untouched", "bare")
        if a and b:
            out.append((f"untouched ({store}) ≥ 90% of bare", f"{100 * a / b:.1f}%", "met" if a / b >= 0.9 else "NOT met"))
    a, b = rps("counter", "tessera-memory"), rps("counter", "bare")
    if a and b:
        out.append(("counter on MemoryStore ≥ 75% of bare", f"{100 * a / b:.1f}%", "met" if a / b >= 0.75 else "NOT met"))
    else:
        out.append(("counter on MemoryStore ≥ 75% of bare", "n/a", "not measured"))
    t = summary.get("counter", {}).get("tessera-redis", {}).get("memory_usage")
    e = summary.get("counter", {}).get("express", {}).get("memory_usage")
    if t and e:
        out.append(("bytes per session in Redis ≤ connect-redis's", f"{t} B vs {e} B", "met" if t <= e else "NOT met"))
    else:
        out.append(("bytes per session in Redis ≤ connect-redis's", "n/a", "not measured"))
    return out


def cmds_text(cmds):
    if not cmds:
        return "none"
    return ", ".join(f"{c.upper()} {v:.2f}" for c, v in sorted(cmds.items(), key=lambda kv: -kv[1]) if v >= 0.005) or "≈0"


def summary_table(summary, bare):
    """One row per server: req/s per workload (% of bare), Redis commands per request,
    bytes per stored session, peak RSS. The table the README quotes."""
    out = ["## Summary\n",
           "req/s (share of the bare route) · Redis commands per request · bytes per session "
           "(`MEMORY USAGE`) · peak RSS over the runs.\n",
           "| server | /counter | /read | /untouched | Redis cmd/req (counter · read · untouched) | bytes/session | peak RSS |",
           "|---|---:|---:|---:|---|---:|---:|"]
    for name, label, _, store in SERVERS:
        rows = [summary.get(w, {}).get(name) for w in WORKLOADS]
        if not any(r and r.get("ok") for r in rows):
            continue
        cells, cmds, rss = [], [], 0
        for w, r in zip(WORKLOADS, rows):
            if not r or not r.get("ok"):
                cells.append("—")
                cmds.append("—")
                continue
            share = f" ({100 * r['rps'] / bare[w]:.0f}%)" if bare.get(w) and name != "bare" else ""
            cells.append(f"{fmt_rps(r['rps'])}{share}")
            cmds.append(f"{r['redis_per_req']:.2f}")
            rss = max(rss, r["peak_rss_kib"])
        size = summary.get("counter", {}).get(name, {}).get("memory_usage")
        out.append(f"| {label} | " + " | ".join(cells) + " | "
                   + (" · ".join(cmds) if store == "redis" else "—") + " | "
                   + (f"{size} B" if size else "—") + f" | {rss / 1024:.1f} MiB |")
    out.append("")
    return out


def write_report(results, args, info, labels, skipped, started, finished):
    summary = summarize(results)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump({"machine": info, "args": vars(args), "results": results,
                   "skipped": [n for n, _ in skipped], "started": started, "finished": finished},
                  f, indent=1)

    md = []
    mode = "quick" if args.quick else "full"
    md.append("# Benchmark results\n")
    md.append(f"`bench/run{' --quick' if args.quick else ''}` ({mode} mode), {info['date']}.\n")
    md.append(f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Linux {info['kernel']}; "
              f"server, Redis and wrk share these CPUs (loopback only). Load average before/after runs: "
              f"up to {max((r.get('load', 0) for r in results), default=0):.1f}.")
    md.append(f"- {info['rustc']}; Node {info['node']}; {info['redis']}; {info['wrk']}.")
    md.append(f"- wrk: {args.threads} threads, {args.connections} connections, {args.duration} s per run "
              f"after {'a ' + str(args.warmup) + ' s wrk warm-up' if args.warmup else '50 warm-up requests'}, "
              f"every request with the same valid session cookie; {args.rounds} rounds, servers interleaved "
              f"(A B C … A B C …), a fresh server process and an empty Redis (FLUSHALL) for each run; "
              f"harness, Redis, servers and wrk at niceness {args.nice} (other work on the machine "
              f"competes less). "
              f"Run time {(finished - started) / 60:.1f} min.")
    md.append("- req/s: mean of the rounds (each round in brackets: drift shows there). p50/p99: median "
              "over rounds of wrk's latency percentiles. Redis cmd/req: INFO commandstats delta over the "
              "measured run ÷ requests wrk completed. CPU/req: server process(es) user+system CPU time "
              "÷ requests; Redis CPU/req likewise for redis-server. Peak RSS: VmHWM of the server "
              "(summed over express's cluster workers) at the end of the run.")
    if args.quick:
        md.append("- Quick mode checks the harness: 1 s runs without a wrk warm-up are noisy, and "
                  "express runs with a cold JIT (its numbers are low). Quote the full mode.")
    if skipped:
        md.append("- Not measured: " + "; ".join(f"{labels[n]} ({why})" for n, why in skipped) + ".")
    md.append("")

    bare = {w: summary.get(w, {}).get("bare", {}).get("rps") for w in WORKLOADS}
    md.extend(summary_table(summary, bare))
    for workload in WORKLOADS:
        if workload not in summary:
            continue
        md.append(f"## {workload}\n")
        md.append(WORKLOAD_TEXT[workload] + ".\n")
        md.append("| server | req/s (rounds) | vs bare | p50 | p99 | Redis cmd/req | CPU/req | Redis CPU/req | peak RSS | errors |")
        md.append("|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
        for name, label, _, store in SERVERS:
            s = summary[workload].get(name)
            if s is None:
                continue
            if not s["ok"]:
                err = s["runs"][0].get("error", "?").splitlines()[0][:120]
                md.append(f"| {label} | failed: {err} | | | | | | | | |")
                continue
            vs = f"{100 * s['rps'] / bare[workload]:.0f}%" if bare[workload] else "—"
            redis_col = "—" if store != "redis" else f"{s['redis_per_req']:.2f} ({cmds_text(s['redis_cmds'])})"
            rcpu = "—" if store != "redis" else f"{s['redis_cpu_us_per_req']:.1f} µs"
            rounds = " / ".join(fmt_rps(x) for x in s["rounds_rps"])
            md.append(f"| {label} | **{fmt_rps(s['rps'])}** ({rounds}) | {vs} | {fmt_us(s['p50_us'])} | "
                      f"{fmt_us(s['p99_us'])} | {redis_col} | {s['cpu_us_per_req']:.1f} µs | {rcpu} | "
                      f"{s['peak_rss_kib'] / 1024:.1f} MiB | {s['errors']} |")
        md.append("")

    # Ratios of every Tessera store to every peer, per workload.
    md.append("## Tessera ÷ peer (req/s ratios)\n")
    md.append("| workload | Tessera store | " + " | ".join(f"÷ {p}" for p in PEERS) + " | ÷ bare |")
    md.append("|---|---|" + "---:|" * (len(PEERS) + 1))
    tessera = [x[0] for x in SERVERS if x[0].startswith("tessera-")]
    for workload in WORKLOADS:
        for t in tessera:
            ts = summary.get(workload, {}).get(t, {})
            if "rps" not in ts:
                continue
            cells = []
            for p in PEERS + ["bare"]:
                ps = summary.get(workload, {}).get(p, {})
                cells.append(f"{ts['rps'] / ps['rps']:.2f}x" if "rps" in ps else "—")
            md.append(f"| {workload} | {t} | " + " | ".join(cells) + " |")
    md.append("")
    # The framework gap, no session layer on either side: bare actix-web ÷ bare axum.
    gap = []
    for workload in WORKLOADS:
        a = summary.get(workload, {}).get("actix-bare", {}).get("rps")
        b = summary.get(workload, {}).get("bare", {}).get("rps")
        if a and b:
            gap.append(f"{workload} {a / b:.2f}x")
    if gap:
        md.append("Framework gap without sessions, bare actix-web ÷ bare axum: " + " · ".join(gap) + ".\n")

    md.append("## Bytes per stored session (Redis)\n")
    md.append("The record of a session holding `views` = 2 (after two `/counter` requests): `MEMORY USAGE key SAMPLES 0` and the value's length (`STRLEN`).\n")
    md.append("| server | MEMORY USAGE | value bytes | key |")
    md.append("|---|---:|---:|---|")
    for name, label, _, store in SERVERS:
        s = summary.get("counter", {}).get(name, {})
        if store == "redis" and "memory_usage" in s:
            key = s["runs"][0].get("session_key", "")
            shape = re.sub(r"[A-Za-z0-9_\-+/=]{16,}", "<id>", key)
            md.append(f"| {label} | {s['memory_usage']} B | {s['value_bytes']} B | `{shape}` ({len(key)} chars) |")
    md.append("")

    md.append("## Targets (issue 7)\n")
    md.append("| target | measured | |")
    md.append("|---|---|---|")
    for text, value, verdict in targets(summary):
        md.append(f"| {text} | {value} | {verdict} |")
    md.append("")
    md.append("Chart: [chart.svg](chart.svg). Raw numbers of every run: `results.json`.\n")

    with open(os.path.join(RESULTS, "RESULTS.md"), "w") as f:
        f.write("\n".join(md))
    subprocess.run([sys.executable, os.path.join(BENCH, "chart.py"),
                    os.path.join(RESULTS, "results.json"), os.path.join(RESULTS, "chart.svg")], check=False)
    return summary


# ---------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 s runs, no wrk warm-up: about a minute")
    p.add_argument("--duration", type=int, help="seconds per measured run (full: 10, quick: 1)")
    p.add_argument("--warmup", type=int, help="seconds of wrk warm-up (full: 2, quick: 0)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    p.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                   help="niceness for the harness, Redis, the servers and wrk (default -10 as root: "
                        "other work on the machine disturbs the numbers less)")
    p.add_argument("--servers", help="comma-separated subset of: " + ",".join(s[0] for s in SERVERS))
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="rewrite RESULTS.md and chart.svg from a saved results.json, measuring nothing")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=BINARY",
                   help="also measure another build of bench-tessera (e.g. a library change) as "
                        "Tessera + RedisStore and + MemoryStore, labelled LABEL; repeatable")
    p.add_argument("--workloads", help="comma-separated subset of: " + ",".join(WORKLOADS))
    args = p.parse_args()
    if args.duration is None:
        args.duration = 1 if args.quick else 10
    if args.warmup is None:
        args.warmup = 0 if args.quick else 2

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
    for v in args.variant:
        label, _, binary = v.partition("=")
        binary = os.path.abspath(binary)
        for store in ["redis", "memory"]:
            name = f"tessera-{store}@{label}"
            cmd = [binary, store, "--port", "{port}", "--redis", "{redis}"]
            SERVERS.insert([x[0] for x in SERVERS].index(f"tessera-{store}") + 1,
                           (name, f"Tessera + {store.capitalize()}Store ({label})", cmd, store))
    labels = {s[0]: s[1] for s in SERVERS}
    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        for key, value in saved["args"].items():
            if key not in ("report_only", "variant"):
                setattr(args, key, value)
        results = saved["results"]
        for r in results:
            if r["server"] not in labels:
                base, _, variant = r["server"].partition("@")
                store = next((x[3] for x in SERVERS if x[0] == base), "redis")
                SERVERS.append((r["server"], f"{labels.get(base, base)} ({variant})", [], store))
                labels[r["server"]] = SERVERS[-1][1]
        seen = {r["server"] for r in results}
        skipped = [(n, "not available in this build") for n in saved.get("skipped", []) if n not in seen]
        write_report(results, args, saved["machine"], labels, skipped,
                     saved.get("started", 0), saved.get("finished", 0))
        return
    wanted = args.servers.split(",") if args.servers else [s[0] for s in SERVERS]
    for w in wanted:
        if w not in labels:
            raise SystemExit(f"unknown server {w}")
    workloads = args.workloads.split(",") if args.workloads else WORKLOADS
    servers, skipped = [], []
    for s in SERVERS:
        if s[0] not in wanted:
            continue
        if available(s):
            servers.append(s)
        else:
            skipped.append((s[0], "not available in this build"))
            log(f"skipping {s[0]}: not available")

    tmp = tempfile.mkdtemp(prefix="tessera-bench-")
    args.wrk_script = os.path.join(tmp, "report.lua")
    with open(args.wrk_script, "w") as f:
        f.write(WRK_SCRIPT)
    info = machine()
    redis = Redis(free_port(), tmp)
    results = []
    started = time.time()
    try:
        total = len(workloads) * args.rounds * len(servers)
        n = 0
        for workload in workloads:
            for round_no in range(1, args.rounds + 1):
                for server in servers:
                    n += 1
                    r = measure(server, workload, round_no, redis, args, tmp)
                    results.append(r)
                    if "error" in r:
                        log(f"[{n}/{total}] {workload:9} r{round_no} {server[0]:15} ERROR {r['error'][:200]}")
                    else:
                        log(f"[{n}/{total}] {workload:9} r{round_no} {server[0]:15} {r['rps']:>9,.0f} req/s "
                            f"p99 {fmt_us(r['p99_us']):>9}  redis {r['redis_per_req']:.2f}/req  "
                            f"cpu {r['cpu_us_per_req']:.0f} µs/req  load {r['load']:.1f}")
    except (KeyboardInterrupt, SystemExit):
        log("interrupted: writing what was measured so far")
    finally:
        redis.stop()
    finished = time.time()
    write_report(results, args, info, labels, skipped, started, finished)
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {os.path.relpath(os.path.join(RESULTS, 'RESULTS.md'))} and chart.svg "
        f"in {(finished - started):.0f} s")


if __name__ == "__main__":
    main()

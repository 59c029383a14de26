#!/usr/bin/env python3
"""Summarizes `perf script` output (read on stdin): the share of samples whose stack
contains a frame matching each bucket (inclusive), plus the top self-time functions.
Used by bench/profile/run; standard library only."""
import collections
import re
import sys

# Inclusive buckets: first match per bucket counts once per sample.
BUCKETS = [
    ("tessera: SessionService::call (whole layer incl. store awaits)", r"tessera::layer::.*SessionService.*call"),
    # finish() is inlined into the layer's future; its store calls still have frames.
    ("tessera: end of request (finish; the store's save/touch/destroy)", r"tessera::session::Session::(finish|persist)|Store>::(save|touch|destroy)"),
    ("tessera: ensure_loaded (load + decode)", r"tessera::session::Session::ensure_loaded"),
    ("tessera: Record::from_json (decode)", r"tessera::record::.*from_json|Record.*Deserialize"),
    ("tessera: Record::to_json (encode)", r"tessera::record::.*to_json|Record.*Serialize|CookieData.*Serialize"),
    ("tessera: signing (HMAC sign/unsign)", r"tessera::signing::"),
    ("tessera: cookie (parse / Set-Cookie)", r"tessera::cookie::"),
    ("tessera: session IDs (make, parse, compare, hash)", r"tessera::id::"),
    ("tessera: RedisStore", r"tessera::store::redis::"),
    ("tessera: MemoryStore", r"tessera::store::memory::"),
    ("tessera: SqliteStore", r"tessera::store::sqlite::"),
    ("time: formatting/parsing dates", r"^time::|<time::"),
    ("serde_json (all)", r"serde_json::"),
    ("redis-rs client (all)", r"^redis::|<redis::|redis::aio|redis::cmd|redis::parser"),
    ("hyper (HTTP/1)", r"hyper::proto|hyper::server"),
    # The timer wheel and sleeps only: `Timeout::poll` is left out, as it wraps (and
    # would count) the whole store call it bounds. hyper's header-read timer counts here.
    ("tokio timers (wheel, sleeps; not what a Timeout wraps)", r"tokio::runtime::time|tokio::time::sleep|Sleep as core::future"),
    ("malloc/free", r"^(malloc|free|cfree|_int_malloc|_int_free|realloc|_int_realloc|malloc_consolidate|__libc_malloc|__libc_free|__GI___libc_malloc|__GI___libc_free|tcache_get|unlink_chunk)"),
    ("kernel: network send/recv syscalls", r"(tcp_sendmsg|tcp_recvmsg|__sys_sendto|__sys_recvfrom|sock_write_iter|sock_read_iter|__x64_sys_write|__x64_sys_read|__x64_sys_writev)"),
    ("kernel: epoll/futex/scheduling", r"^(ep_poll|do_epoll_wait|futex_wait|futex_wake|do_futex|__schedule|schedule|finish_task_switch)"),
]


def main():
    samples = 0
    inclusive = collections.Counter()
    self_time = collections.Counter()
    stack = []

    def flush():
        nonlocal samples
        if not stack:
            return
        samples += 1
        seen = set()
        for name, pattern in BUCKETS:
            for frame in stack:
                if re.search(pattern, frame):
                    seen.add(name)
                    break
        for name in seen:
            inclusive[name] += 1
        self_time[stack[0]] += 1

    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            stack = []
            continue
        if line.startswith("\t") or line.startswith(" "):
            parts = line.strip().split(" ", 1)
            if len(parts) == 2:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].rsplit(" (", 1)[0])
                stack.append(sym)
    flush()
    print(f"samples: {samples}")
    print("\ninclusive share (a sample counts in every bucket whose frame is on its stack):")
    for name, _ in BUCKETS:
        if inclusive[name]:
            print(f"  {100 * inclusive[name] / samples:5.1f}%  {name}")
    print("\ntop self time:")
    for sym, n in self_time.most_common(25):
        short = re.sub(r"<[^<>]*>", "", re.sub(r"<[^<>]*>", "", sym))[:110]
        print(f"  {100 * n / samples:5.1f}%  {short}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Self time by crate from `perf script` output (stdin): each sample goes to the first
frame from the leaf that names a Rust path (crate::…), so malloc, memcpy and syscalls are
charged to the Rust code that called them; samples with no Rust frame (kernel softirq,
node, idle) go to their leaf symbol's library. Standard library only."""
import collections
import re
import sys


def short(s):
    for _ in range(5):
        s = re.sub(r"<[^<>]*>", "", s)
    return s


def crate_of(frame):
    s = short(frame).lstrip("<&*")
    s = re.sub(r"^(impl |dyn |mut )", "", s)
    m = re.match(r"([a-z_][a-z0-9_]*)::", s)
    if m:
        return m.group(1)
    return None


def main():
    stacks, cur = [], []
    for line in sys.stdin:
        if not line.strip():
            if cur:
                stacks.append(cur)
            cur = []
            continue
        if line[0] in "\t ":
            p = line.strip().split(" ", 1)
            if len(p) == 2:
                cur.append(re.sub(r"\+0x[0-9a-f]+$", "", p[1].rsplit(" (", 1)[0]))
    if cur:
        stacks.append(cur)
    n = len(stacks)
    crates = collections.Counter()
    funcs = collections.Counter()
    for s in stacks:
        owner = None
        for f in s:
            c = crate_of(f)
            if c and c not in ("core", "alloc", "std"):
                owner = (c, short(f)[:100])
                break
        if owner is None:
            owner = ("(no Rust frame) " + short(s[0])[:40], "")
        crates[owner[0]] += 1
        funcs[owner] += 1
    print(f"samples: {n}\n\nself time by crate (libc/kernel work charged to the Rust caller):")
    for c, k in crates.most_common(20):
        print(f"  {100 * k / n:5.1f}%  {c}")
    print("\ntop functions (same attribution):")
    for (c, f), k in funcs.most_common(30):
        print(f"  {100 * k / n:5.1f}%  {f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Draws bench/results/chart.svg from results.json: one panel per workload, one horizontal
bar per server, its req/s as a share of bare axum's on the same route (the mean of the
rounds; each round's own share, against bare in that round, as a tick), labelled with the
share and req/s. A panel without bare shows req/s against its fastest server instead.
Hand-written SVG, standard library only.

Usage: chart.py results.json chart.svg
"""

import json
import statistics
import sys
from html import escape

ORDER = ["bare", "actix-bare", "tessera-memory", "tessera-sqlite", "tessera-sqlite-noguard",
         "tessera-redis", "tessera-redis-noguard", "tessera-redis-per-core", "tower-sessions",
         "tower-sessions-per-core", "actix-session", "express", "tessera-postgres", "express-pg",
         "tessera-mysql", "express-mysql"]
LABELS = {
    "bare": "bare axum",
    "actix-bare": "bare actix-web",
    "tessera-memory": "Tessera · memory",
    "tessera-sqlite": "Tessera · SQLite",
    "tessera-sqlite-noguard": "Tessera · SQLite, guard off",
    "tessera-redis": "Tessera · Redis",
    "tessera-redis-noguard": "Tessera · Redis, guard off",
    "tessera-postgres": "Tessera · PostgreSQL",
    "tessera-mysql": "Tessera · MariaDB",
    "express-pg": "express-session · PostgreSQL",
    "express-mysql": "express-session · MariaDB",
    "tessera-redis-per-core": "Tessera · Redis, per core",
    "tower-sessions": "tower-sessions · Redis",
    "tower-sessions-per-core": "tower-sessions · Redis, per core",
    "actix-session": "actix-session · Redis",
    "express": "express-session · Redis",
}
COLORS = {
    "bare": "#b0b7c3",
    "actix-bare": "#c9b3ab",
    "tessera-memory": "#5b8def",
    "tessera-sqlite": "#3a6fd8",
    "tessera-sqlite-noguard": "#7fa3ea",
    "tessera-redis": "#1f4fb5",
    "tessera-redis-noguard": "#6f8fd0",
    "tessera-postgres": "#2d5fc4",
    "tessera-mysql": "#2d5fc4",
    "express-pg": "#a3b35a",
    "express-mysql": "#a3b35a",
    "tessera-redis-per-core": "#17398a",
    "tower-sessions": "#e0913a",
    "tower-sessions-per-core": "#b8701f",
    "actix-session": "#c9623f",
    "express": "#8a9a3b",
}
WORKLOADS = [("counter", "/counter — read + write every request"),
             ("read", "/read — read, never modify"),
             ("untouched", "/untouched — never touches the session"),
             ("contention", "contention — /counter, one session on every connection"),
             ("login", "/login — regenerate + the user stored, indexed"),
             ("sessions", "/sessions — the user's sessions, through the index")]


def label(s):
    base, _, variant = s.partition("@")
    return LABELS.get(base, base) + (f" ({variant})" if variant else "")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    runs = {}
    for r in data["results"]:
        if "error" not in r:
            runs.setdefault(r["workload"], {}).setdefault(r["server"], {})[r["round"]] = r["rps"]

    width, left, right = 900, 210, 170
    bar_h, gap, panel_gap, title_h = 18, 5, 30, 22
    plot_w = width - left - right
    y = 76
    parts = []
    for workload, title in WORKLOADS:
        present = runs.get(workload, {})
        servers = []
        for s in ORDER:
            servers += [x for x in present if x == s or x.startswith(s + "@")]
        if not servers:
            continue
        bare = present.get("bare", {})
        means = {s: statistics.mean(present[s].values()) for s in servers}
        if bare:
            # Each round's share of bare in that round; the bar is the share of the means.
            ticks = {s: [v / bare[k] for k, v in present[s].items() if k in bare] for s in servers}
            value = {s: means[s] / means["bare"] for s in servers}
        else:
            top = max(means.values())
            ticks = {s: [v / top for v in present[s].values()] for s in servers}
            value = {s: means[s] / top for s in servers}
        scale = max([1.0] + [max(t) for t in ticks.values() if t] + list(value.values()))
        parts.append(f'<text x="{left}" y="{y}" class="panel">{escape(title)}'
                     f'{"" if bare else " (req/s, no bare run)"}</text>')
        y += title_h - 6
        for s in servers:
            w = plot_w * value[s] / scale
            parts.append(f'<text x="{left - 8}" y="{y + bar_h - 5}" class="label" text-anchor="end">'
                         f'{escape(label(s))}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" stroke="none" '
                         f'fill="{COLORS.get(s.split("@")[0], "#888")}"><title>{escape(label(s))}: '
                         f'{means[s]:,.0f} req/s</title></rect>')
            for v in ticks[s]:
                x = left + plot_w * v / scale
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" '
                             f'class="tick"/>')
            text = (f"{100 * value[s]:.0f}% of bare · {means[s]:,.0f}/s" if bare and s != "bare"
                    else f"{means[s]:,.0f} req/s")
            label_x = left + plot_w * max(ticks[s] + [value[s]]) / scale + 6
            parts.append(f'<text x="{label_x:.1f}" y="{y + bar_h - 5}" class="value">{text}</text>')
            y += bar_h + gap
        y += panel_gap
    m = data.get("machine", {})
    a = data.get("args", {})
    height = y + 10
    pinned = "server on one core, wrk and stores on another" if a.get("server_cpu") is not None else "not pinned"
    header = (f"Share of bare axum's req/s on the same route, higher is better; each round a tick"
              f"{' — quick mode, numbers mean nothing' if a.get('quick') else ''}")
    header2 = (f"{escape(m.get('cpu', '?'))}, {pinned}; {m.get('date', '')}; wrk -c{a.get('connections')} "
               f"-d{a.get('duration')}s, {a.get('rounds')} round(s)")
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        "<style>.panel{font-size:14px;font-weight:600;fill:#222}.label{font-size:12px;fill:#333}"
        ".value{font-size:11px;fill:#333}.tick{stroke:#000;stroke-width:1;opacity:.55}"
        ".title{font-size:16px;font-weight:700;fill:#111}.sub{font-size:11px;fill:#555}</style>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        '<text x="16" y="22" class="title">Tessera vs peers: session middleware throughput</text>',
        f'<text x="16" y="40" class="sub">{header}</text>',
        f'<text x="16" y="54" class="sub">{header2}</text>',
        *parts,
        "</svg>",
    ]
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

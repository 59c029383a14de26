#!/usr/bin/env python3
"""Draws bench/results/chart.svg from results.json: one panel per workload, one horizontal
bar per server (mean req/s over the rounds, each round as a tick), labelled with req/s and
the share of the bare route. Hand-written SVG, standard library only.

Usage: chart.py results.json chart.svg
"""

import json
import statistics
import sys
from html import escape

ORDER = ["bare", "actix-bare", "tessera-memory", "tessera-sqlite", "tessera-redis",
         "tessera-redis-per-core", "tower-sessions", "tower-sessions-per-core", "actix-session",
         "express"]
LABELS = {
    "bare": "bare axum",
    "actix-bare": "bare actix-web",
    "tessera-memory": "Tessera · memory",
    "tessera-sqlite": "Tessera · SQLite",
    "tessera-redis": "Tessera · Redis",
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
    "tessera-redis": "#1f4fb5",
    "tessera-redis-per-core": "#17398a",
    "tower-sessions": "#e0913a",
    "tower-sessions-per-core": "#b8701f",
    "actix-session": "#c9623f",
    "express": "#8a9a3b",
}
WORKLOADS = [("counter", "/counter — read + write every request"),
             ("read", "/read — read, never modify"),
             ("untouched", "/untouched — never touches the session")]


def label(s):
    base, _, variant = s.partition("@")
    return LABELS.get(base, base) + (f" ({variant})" if variant else "")


def main():
    src, dst = sys.argv[1], sys.argv[2]
    with open(src) as f:
        data = json.load(f)
    rounds = {}
    for r in data["results"]:
        if "error" in r:
            continue
        rounds.setdefault(r["workload"], {}).setdefault(r["server"], []).append(r["rps"])

    width, left, right = 900, 190, 150
    bar_h, gap, panel_gap, title_h = 20, 6, 34, 22
    plot_w = width - left - right
    y = 56
    parts = []
    for workload, title in WORKLOADS:
        present = rounds.get(workload, {})
        servers = []
        for s in ORDER:
            servers += [x for x in present if x == s or x.startswith(s + "@")]
        if not servers:
            continue
        means = {s: statistics.mean(rounds[workload][s]) for s in servers}
        top = max(max(rounds[workload][s]) for s in servers)
        bare = means.get("bare")
        parts.append(f'<text x="{left}" y="{y}" class="panel">{escape(title)}</text>')
        y += title_h - 6
        for s in servers:
            w = plot_w * means[s] / top
            parts.append(f'<text x="{left - 8}" y="{y + bar_h - 6}" class="label" text-anchor="end">'
                         f'{escape(label(s))}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar_h}" rx="2" stroke="none" '
                         f'fill="{COLORS.get(s.split("@")[0], "#888")}"><title>{escape(label(s))}: '
                         f'{means[s]:,.0f} req/s</title></rect>')
            for v in rounds[workload][s]:
                x = left + plot_w * v / top
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" '
                             f'class="tick"/>')
            share = f"  ({100 * means[s] / bare:.0f}% of bare)" if bare and s != "bare" else ""
            label_x = left + plot_w * max(rounds[workload][s]) / top + 6
            parts.append(f'<text x="{max(left + w + 6, label_x):.1f}" y="{y + bar_h - 6}" class="value">'
                         f'{means[s]:,.0f}{share}</text>')
            y += bar_h + gap
        y += panel_gap
    m = data.get("machine", {})
    a = data.get("args", {})
    height = y + 10
    header = (f"Requests per second, higher is better — {m.get('nproc', '?')} CPUs ({escape(m.get('cpu', '?'))}), "
              f"{m.get('date', '')}; wrk -t{a.get('threads')} -c{a.get('connections')} -d{a.get('duration')}s, "
              f"{a.get('rounds')} rounds (ticks){' — quick mode' if a.get('quick') else ''}")
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="system-ui, -apple-system, Segoe UI, sans-serif">',
        "<style>.panel{font-size:14px;font-weight:600;fill:#222}.label{font-size:12px;fill:#333}"
        ".value{font-size:11px;fill:#333}.tick{stroke:#000;stroke-width:1;opacity:.55}"
        ".title{font-size:16px;font-weight:700;fill:#111}.sub{font-size:11px;fill:#555}</style>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        '<text x="16" y="22" class="title">Tessera vs peers: session middleware throughput</text>',
        f'<text x="16" y="40" class="sub">{header}</text>',
        *parts,
        "</svg>",
    ]
    with open(dst, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()

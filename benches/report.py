"""Reads one run of `cargo bench -p pyventus-benches --bench emit` (criterion's
estimates) and of benches/pyventus/run.sh (JSON lines), prints the table of medians and ratios
for docs/benchmarks.md, and writes the chart of cost per emission against the
number of subscribers as SVG.

Usage: python3 benches/report.py target/criterion target/pyventus.jsonl [--svg docs/benchmarks.svg]

Standard library only.
"""

import argparse
import json
import math
import os
import sys

# (ratio name, numerator, denominator, budget)
BUDGET = [
    ("inline/1 / direct_call/1", "emit/inline/1", "emit/direct_call/1", 10.0),
    ("inline/10 / direct_call/10", "emit/inline/10", "emit/direct_call/10", 2.5),
    ("inline_large_registry/1 / inline/1", "emit/inline_large_registry/1", "emit/inline/1", 1.1),
    ("declarative/1 / inline/1", "emit/declarative/1", "emit/inline/1", 1.1),
    ("named_key/1 / inline/1", "emit/named_key/1", "emit/inline/1", 1.3),
    ("tokio/1 / tokio_spawn_baseline/1", "emit/tokio/1", "emit/tokio_spawn_baseline/1", 1.5),
    ("executor/1 / thread_pool_baseline/1", "emit/executor/1", "emit/thread_pool_baseline/1", 2.0),
]

ORDER = [
    "emit/direct_call/1", "emit/direct_call/10", "emit/inline/1", "emit/inline/10",
    "emit/inline_large_registry/1", "emit/declarative/1", "emit/named/1", "emit/named_key/1",
    "emit/tokio_spawn_baseline/1", "emit/tokio/1", "emit/thread_pool_baseline/1", "emit/executor/1",
    "pyventus/1", "pyventus/10", "pyventus_large_registry/1",
]

SERIES = [("direct_call", "direct call", "#6b7280"), ("inline", "pyventus inline", "#2563eb"),
          ("tokio", "pyventus tokio", "#16a34a"), ("pyventus", "Pyventus (Python, AsyncIO)", "#dc2626")]


def criterion_medians(root):
    """{"group/function/parameter": median ns} for every benchmark under root."""
    medians = {}
    for dirpath, _dirs, files in os.walk(root):
        if "estimates.json" in files and os.path.basename(dirpath) == "new":
            bench = os.path.relpath(os.path.dirname(dirpath), root).replace(os.sep, "/")
            with open(os.path.join(dirpath, "estimates.json")) as f:
                medians[bench] = json.load(f)["median"]["point_estimate"]
    return medians


def pyventus_medians(path):
    medians = {}
    if path and os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    medians[row["id"]] = row["median_ns"]
    return medians


def fmt(ns):
    if ns >= 1_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns:.1f} ns"


def table(medians):
    lines = ["| benchmark | median per emission |", "| --- | ---: |"]
    for bench in ORDER:
        if bench in medians:
            lines.append(f"| `{bench}` | {fmt(medians[bench])} |")
    lines += ["", "| ratio (same run) | measured | budget | |", "| --- | ---: | ---: | --- |"]
    for name, num, den, budget in BUDGET:
        if num in medians and den in medians:
            ratio = medians[num] / medians[den]
            verdict = "within" if ratio <= budget else "**over**"
            lines.append(f"| {name} | {ratio:.2f}× | ≤ {budget:g}× | {verdict} |")
    if "pyventus/1" in medians and "emit/inline/1" in medians:
        lines.append(f"| Pyventus/1 / inline/1 | {medians['pyventus/1'] / medians['emit/inline/1']:,.0f}× | | |")
    return "\n".join(lines)


def svg(medians, width=800, height=440):
    """A log-log line chart: nanoseconds per emission against subscribers."""
    points = {}
    for key, _label, _color in SERIES:
        series = sorted(
            (int(bench.rsplit("/", 1)[1]), ns)
            for bench, ns in medians.items()
            if bench.startswith(f"scaling/{key}/")
        )
        if series:
            points[key] = series
    if not points:
        return None
    xs = [x for s in points.values() for x, _ in s]
    ys = [y for s in points.values() for _, y in s]
    x0, x1 = math.log10(min(xs)), math.log10(max(xs))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    left, right, top, bottom = 80, 250, 40, 60
    pw, ph = width - left - right, height - top - bottom

    def px(x):
        return left + (math.log10(x) - x0) / (x1 - x0 or 1) * pw

    def py(y):
        return top + ph - (math.log10(y) - y0) / (y1 - y0 or 1) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold">Cost per emission (median, log-log)</text>']
    for e in range(y0, y1 + 1):
        y = py(10 ** e)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{fmt(10 ** e)}</text>')
    for x in sorted(set(xs)):
        out.append(f'<line x1="{px(x):.1f}" y1="{top}" x2="{px(x):.1f}" y2="{top + ph}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{px(x):.1f}" y="{top + ph + 18}" text-anchor="middle">{x:,}</text>')
    out.append(f'<text x="{left + pw / 2}" y="{height - 16}" text-anchor="middle">subscribers</text>')
    for i, (key, label, color) in enumerate(SERIES):
        if key not in points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points[key])
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2.5"/>')
        for x, y in points[key]:
            out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{color}"/>')
        ly = top + 10 + i * 22
        out.append(f'<line x1="{left + pw + 16}" y1="{ly}" x2="{left + pw + 36}" y2="{ly}" stroke="{color}" stroke-width="2.5"/>')
        out.append(f'<text x="{left + pw + 42}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("criterion", help="criterion's output directory (target/criterion)")
    parser.add_argument("pyventus", nargs="?", help="benches/pyventus/run.sh's output (JSON lines)")
    parser.add_argument("--svg", help="where to write the chart")
    args = parser.parse_args()

    medians = criterion_medians(args.criterion)
    medians.update(pyventus_medians(args.pyventus))
    if not medians:
        sys.exit(f"no benchmark results under {args.criterion}: run `cargo bench -p pyventus-benches --bench emit` first")
    print(table(medians))
    if args.svg:
        chart = svg(medians)
        if chart:
            with open(args.svg, "w") as f:
                f.write(chart)
            print(f"\nchart written to {args.svg}", file=sys.stderr)


if __name__ == "__main__":
    main()

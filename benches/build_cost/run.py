"""The build-time cost of the declarative macros, and the cost of collecting
link-time handlers.

Generates two crates under target/build-cost/: one with 1,000 `#[on]` handlers
(over 10 event types), one with the same 1,000 functions without the attribute.
Builds their dependencies once, then times a clean build of each crate itself
(dev and release). The handlers crate's binary then times how long the global
linker takes to collect its 1,000 handlers on first use.

Usage: python3 benches/build_cost/run.py [--handlers N] [--runs R]
Standard library only; prints Markdown for docs/benchmarks.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORK = os.path.join(ROOT, "target", "build-cost")
EVENTS = 10


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def generate(name, n, declarative):
    crate = os.path.join(WORK, name)
    write(os.path.join(crate, "Cargo.toml"), f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
pyventus = {{ path = {json.dumps(ROOT)} }}

# A workspace of its own: it is generated inside this repository's target/.
[workspace]
""")
    lines = ["use std::hint::black_box;", "use pyventus::Event;", ""]
    if declarative:
        lines.insert(0, "use pyventus::on;")
    for e in range(EVENTS):
        lines.append(f"#[derive(Debug, Clone, Event)]\npub struct E{e} {{ pub value: u64 }}\n")
    for i in range(n):
        attr = f"#[on(E{i % EVENTS})]\n" if declarative else ""
        lines.append(f"{attr}pub fn handler_{i}(e: &E{i % EVENTS}) {{ black_box(e.value); }}\n")
    if declarative:
        lines.append(f"""fn main() {{
    let start = std::time::Instant::now();
    let linker = pyventus::EventLinker::global();
    let elapsed = start.elapsed();
    assert_eq!(linker.subscriber_count(), {n});
    println!("{{}}", elapsed.as_nanos());
}}""")
    else:
        calls = "\n".join(f"    handler_{i}(&E{i % EVENTS} {{ value: 1 }});" for i in range(n))
        lines.append(f"fn main() {{\n{calls}\n}}")
    write(os.path.join(crate, "src", "main.rs"), "\n".join(lines) + "\n")
    return crate


def cargo(args, crate):
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(WORK, "target"))
    return subprocess.run(["cargo", *args], cwd=crate, env=env, check=True, capture_output=True, text=True)


def clean_build_seconds(crate, name, release, runs):
    profile = ["--release"] if release else []
    cargo(["build", "--quiet", *profile], crate)  # dependencies, once
    times = []
    for _ in range(runs):
        cargo(["clean", "--quiet", "-p", name, *profile], crate)
        start = time.perf_counter()
        cargo(["build", "--quiet", *profile], crate)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handlers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.handlers

    crates = {
        "with_on": generate("build_cost_with_on", n, True),
        "plain": generate("build_cost_plain", n, False),
    }
    rows = []
    for release in (False, True):
        profile = "release" if release else "dev"
        seconds = {
            key: clean_build_seconds(crate, os.path.basename(crate), release, args.runs)
            for key, crate in crates.items()
        }
        rows.append((profile, seconds["plain"], seconds["with_on"]))

    collect = []
    for release in (False, True):
        profile = ["--release"] if release else []
        for _ in range(5):
            out = cargo(["run", "--quiet", *profile], crates["with_on"]).stdout
            collect.append((release, int(out.strip())))

    print(f"| {n} functions, clean build of the crate itself | plain functions | with `#[on]` | cost per handler |")
    print("| --- | ---: | ---: | ---: |")
    for profile, plain, with_on in rows:
        print(f"| {profile} | {plain:.2f} s | {with_on:.2f} s | {(with_on - plain) / n * 1000:.2f} ms |")
    for release in (False, True):
        median = statistics.median(ns for r, ns in collect if r == release)
        label = "release" if release else "dev"
        print(f"\nCollecting {n} link-time handlers on first use ({label}): {median / 1e6:.2f} ms "
              f"({median / n / 1000:.2f} µs per handler, median of 5 runs)")


if __name__ == "__main__":
    main()

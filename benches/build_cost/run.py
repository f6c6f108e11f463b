#!/usr/bin/env python3
"""The build-time cost of the declarative macros, against its floor, and the
cost of collecting link-time handlers.

Generates three crates under target/build-cost/, each of N functions over 10
event types (`#[derive(Event)]`):

- plain: the functions alone, each called from `main`;
- floor: the functions, plus one bare `inventory::submit!` each of a
  registration comparable to a handler's (its id, its event's name and its
  `fn` pointer), which `main` counts: the least any per-handler link-time
  registration through `inventory` costs;
- with_on: the functions under `#[on]`, which `main` collects.

The floor and `#[on]` crates' `main` both start the global linker, so that
what is compared is the registrations, not the runtime both link. Builds
their dependencies once, then times clean builds of each crate itself (dev and
release), the three crates interleaved in each round (the median of the
rounds is reported), and with `--instructions` also counts the instructions
of the rustc run compiling each crate (valgrind: unlike wall time, the count
does not move with the load of the machine). The `#[on]` crate's binary then
times how long the global linker takes to collect its handlers on first use.

Usage: python3 benches/build_cost/run.py [--handlers N] [--runs R] [--instructions]
Standard library only; prints Markdown for docs/benchmarks.md.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORK = os.path.join(ROOT, "target", "build-cost")
EVENTS = 10


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def manifest(name):
    return f"""[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
pyventus = {{ path = {json.dumps(ROOT)} }}

# A workspace of its own: it is generated inside this repository's target/.
[workspace]
"""


def generate(name, n, kind, events=EVENTS):
    """A crate of `n` functions over `events` event types: `kind` is "plain",
    "floor" or "on" (for compatibility, `True` is "on" and `False` "plain")."""
    kind = {True: "on", False: "plain"}.get(kind, kind)
    crate = os.path.join(WORK, name)
    write(os.path.join(crate, "Cargo.toml"), manifest(name))
    lines = ["use std::hint::black_box;", "use pyventus::Event;", ""]
    if kind == "on":
        lines.insert(0, "use pyventus::on;")
    for e in range(events):
        lines.append(f"#[derive(Debug, Clone, Event)]\npub struct E{e} {{ pub value: u64 }}\n")
    for i in range(n):
        attr = f"#[on(E{i % events})]\n" if kind == "on" else ""
        lines.append(f"{attr}pub fn handler_{i}(e: &E{i % events}) {{ black_box(e.value); }}\n")
        if kind == "floor":
            lines.append(f"""pyventus::__private::inventory::submit! {{
    Registered {{ id: "handler_{i}", event: E{i % events}::NAME, handler: &(handler_{i} as fn(&E{i % events})) }}
}}
""")
    if kind == "on":
        lines.append(f"""fn main() {{
    let start = std::time::Instant::now();
    let linker = pyventus::EventLinker::global();
    let elapsed = start.elapsed();
    assert_eq!(linker.subscriber_count(), {n});
    println!("{{}}", elapsed.as_nanos());
}}""")
    elif kind == "floor":
        lines.append(f"""/// What one handler registers, bare: its id, its event's name, its function.
pub struct Registered {{
    pub id: &'static str,
    pub event: &'static str,
    pub handler: &'static (dyn std::any::Any + Sync),
}}

pyventus::__private::inventory::collect!(Registered);

fn main() {{
    let linker = pyventus::EventLinker::global();
    assert_eq!(linker.subscriber_count(), 0);
    let registered = pyventus::__private::inventory::iter::<Registered>
        .into_iter()
        .filter(|r| !r.id.is_empty() && !r.event.is_empty() && r.handler.type_id() != std::any::TypeId::of::<()>())
        .count();
    assert_eq!(registered, {n});
}}""")
    else:
        calls = "\n".join(f"    handler_{i}(&E{i % events} {{ value: 1 }});" for i in range(n))
        lines.append(f"fn main() {{\n{calls}\n}}")
    write(os.path.join(crate, "src", "main.rs"), "\n".join(lines) + "\n")
    return crate


def target_dir():
    """One target directory for every generated crate (breakdown.py's too), so
    that the dependencies are built once."""
    return os.path.join(ROOT, "target", "build-cost", "target")


def cargo(args, crate, **env):
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir(), **env)
    return subprocess.run(["cargo", *args], cwd=crate, env=env, check=True, capture_output=True, text=True)


def clean_build_seconds(crate, release):
    """One clean build of the crate itself (its dependencies built)."""
    profile = ["--release"] if release else []
    cargo(["clean", "--quiet", "-p", os.path.basename(crate), *profile], crate)
    start = time.perf_counter()
    cargo(["build", "--quiet", *profile], crate)
    return time.perf_counter() - start


# --- Instructions, counted by valgrind.

def wrap(argv):
    """RUSTC_WRAPPER: counts the instructions of the rustc run compiling the crate
    under test, runs every other rustc as it is."""
    rustc, args = argv[0], argv[1:]
    crate = os.environ["BUILD_COST_CRATE"]
    if f"--crate-name {crate}" in " ".join(args):
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               "--cachegrind-out-file=/dev/null", f"--log-file={os.environ['BUILD_COST_LOG']}",
               rustc, *args]
        os.execvp("valgrind", cmd)
    os.execvp(rustc, [rustc, *args])


def ensure_valgrind():
    if shutil.which("valgrind"):
        return
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "valgrind"], check=False,
                       capture_output=True)
    if not shutil.which("valgrind"):
        sys.exit("valgrind is missing: install it (apt-get install valgrind) and run again")


def instructions(crate, release):
    """The instructions of the rustc run compiling the crate itself, clean."""
    profile = ["--release"] if release else []
    name = os.path.basename(crate)
    cargo(["build", "--quiet", *profile], crate)
    cargo(["clean", "--quiet", "-p", name, *profile], crate)
    log = os.path.join(WORK, f"valgrind-{name}-{'release' if release else 'dev'}.log")
    cargo(["build", "--quiet", *profile], crate, RUSTC_WRAPPER=os.path.abspath(__file__),
          BUILD_COST_CRATE=name, BUILD_COST_LOG=log)
    with open(log) as f:
        count = re.search(r"I\s+refs:\s+([\d,]+)", f.read()).group(1)
    return int(count.replace(",", ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handlers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--instructions", action="store_true",
                        help="also count rustc's instructions (valgrind; slow)")
    args = parser.parse_args()
    n = args.handlers
    if args.instructions:
        ensure_valgrind()

    crates = {
        "plain": generate("build_cost_plain", n, "plain"),
        "floor": generate("build_cost_floor", n, "floor"),
        "on": generate("build_cost_with_on", n, "on"),
    }
    rows = []
    counts = {}
    for release in (False, True):
        profile = ["--release"] if release else []
        for crate in crates.values():
            cargo(["build", "--quiet", *profile], crate)  # dependencies, once
        times = {key: [] for key in crates}
        for _ in range(args.runs):  # interleaved: each round builds the three
            for key, crate in crates.items():
                times[key].append(clean_build_seconds(crate, release))
        rows.append(("release" if release else "dev",
                     {key: statistics.median(t) for key, t in times.items()}))
        if args.instructions:
            counts["release" if release else "dev"] = {
                key: instructions(crate, release) for key, crate in crates.items()}

    collect = []
    for release in (False, True):
        profile = ["--release"] if release else []
        for _ in range(5):
            out = cargo(["run", "--quiet", *profile], crates["on"]).stdout
            collect.append((release, int(out.strip())))

    print(f"| {n} functions, clean build of the crate itself (median of {args.runs}) "
          "| plain functions | floor: + a bare `inventory::submit!` each | with `#[on]` "
          "| `#[on]` / floor |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for profile, s in rows:
        print(f"| {profile} | {s['plain']:.2f} s | {s['floor']:.2f} s | {s['on']:.2f} s "
              f"| {s['on'] / s['floor']:.2f}× |")
    if counts:
        print(f"\n| {n} functions, rustc instructions | plain functions | floor | with `#[on]` "
              "| `#[on]` / floor |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for profile, c in counts.items():
            print(f"| {profile} | {c['plain'] / 1e9:.2f} G | {c['floor'] / 1e9:.2f} G "
                  f"| {c['on'] / 1e9:.2f} G | {c['on'] / c['floor']:.2f}× |")
    for release in (False, True):
        median = statistics.median(ns for r, ns in collect if r == release)
        label = "release" if release else "dev"
        print(f"\nCollecting {n} link-time handlers on first use ({label}): {median / 1e6:.2f} ms "
              f"({median / n / 1000:.2f} µs per handler, median of 5 runs)")


if __name__ == "__main__":
    if os.environ.get("BUILD_COST_CRATE") and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        wrap(sys.argv[1:])
    else:
        main()

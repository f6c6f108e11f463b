#!/usr/bin/env python3
"""Where the build time of declarative handlers goes, in instructions rather than
seconds (valgrind counts the compiler's instructions; unlike wall time, the count
does not move with the load of the machine).

Compiles, each from clean with its dependencies prebuilt, crates of N functions
over 10 event types (N = 200 by default):

- plain: the functions alone, as in run.py;
- inventory: each function plus one bare `inventory::submit!` of a constant
  registration (the floor of any link-time registration through inventory);
- linkme: each function plus one element of a `linkme` distributed slice (the
  floor of a registration without a constructor per item, for comparison);
- on: each function under `#[on]`, as in run.py, at N and at 2N, which splits
  the cost into a part per handler and a part paid once (the adapters, compiled
  once per event type).

Usage: python3 benches/build_cost/breakdown.py [--handlers N] [--release]
Standard library only; installs valgrind with apt-get if it is missing (or says
how to). Prints Markdown for docs/benchmarks.md.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the crates run.py builds)

# Crates and builds of their own, beside run.py's.
run.WORK = os.path.join(run.WORK, "breakdown")
LOG = os.path.join(run.WORK, "valgrind.log")


def wrap(argv):
    """RUSTC_WRAPPER: counts the instructions of the rustc run compiling the crate
    under test, runs every other rustc as it is."""
    rustc, args = argv[0], argv[1:]
    crate = os.environ["BREAKDOWN_CRATE"]
    if f"--crate-name {crate}" in " ".join(args):
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               "--cachegrind-out-file=/dev/null", f"--log-file={LOG}", rustc, *args]
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


def inventory_only(n):
    """The plain crate, plus one bare registration per function."""
    crate = run.generate("build_cost_inventory", n, False)
    main = os.path.join(crate, "src", "main.rs")
    with open(main) as f:
        text = f.read()
    submits = "\n".join(
        f"""pyventus::__private::inventory::submit! {{
    pyventus::__private::Registration::DefaultFailure {{
        namespace: None, id: "handler_{i}", callback: ignore,
    }}
}}"""
        for i in range(n))
    text += f"\nfn ignore(_: &pyventus::__private::anyhow::Error) {{}}\n{submits}\n"
    with open(main, "w") as f:
        f.write(text)
    return crate


def linkme_only(n):
    """The plain crate, plus one bare element of a linkme distributed slice per
    function (a crate of its own's slice: what pyventus would declare)."""
    crate = run.generate("build_cost_linkme", n, False)
    with open(os.path.join(crate, "Cargo.toml")) as f:
        manifest = f.read()
    manifest = manifest.replace("[dependencies]\n", "[dependencies]\nlinkme = \"0.3\"\n")
    with open(os.path.join(crate, "Cargo.toml"), "w") as f:
        f.write(manifest)
    main = os.path.join(crate, "src", "main.rs")
    with open(main) as f:
        text = f.read()
    elements = "\n".join(
        f"""#[linkme::distributed_slice(REGISTRATIONS)]
static REGISTRATION_{i}: (&str, fn(&pyventus::__private::anyhow::Error)) = ("handler_{i}", ignore);"""
        for i in range(n))
    text += ("\nfn ignore(_: &pyventus::__private::anyhow::Error) {}\n"
             "#[linkme::distributed_slice]\n"
             "static REGISTRATIONS: [(&str, fn(&pyventus::__private::anyhow::Error))];\n"
             f"{elements}\n")
    with open(main, "w") as f:
        f.write(text)
    return crate


def instructions(crate, profile):
    name = os.path.basename(crate)
    env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(run.WORK, "target"))
    subprocess.run(["cargo", "build", "--quiet", *profile], cwd=crate, env=env, check=True)
    subprocess.run(["cargo", "clean", "--quiet", "-p", name, *profile], cwd=crate, env=env,
                   check=True)
    env.update(RUSTC_WRAPPER=os.path.abspath(__file__), BREAKDOWN_CRATE=name)
    subprocess.run(["cargo", "build", "--quiet", *profile], cwd=crate, env=env, check=True,
                   capture_output=True)
    with open(LOG) as f:
        count = re.search(r"I\s+refs:\s+([\d,]+)", f.read()).group(1)
    return int(count.replace(",", ""))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handlers", type=int, default=200)
    parser.add_argument("--release", action="store_true")
    args = parser.parse_args()
    n = args.handlers
    profile = ["--release"] if args.release else []
    ensure_valgrind()

    plain = instructions(run.generate("build_cost_plain", n, False), profile)
    inventory = instructions(inventory_only(n), profile)
    linkme = instructions(linkme_only(n), profile)
    on = instructions(run.generate("build_cost_with_on", n, True), profile)
    on_twice = instructions(run.generate("build_cost_with_on", 2 * n, True), profile)
    per_handler = (on_twice - on) / n
    once = on - plain - per_handler * n
    per_plain = plain / n
    per_inventory = (inventory - plain) / n
    per_linkme = (linkme - plain) / n

    g = 1e9
    label = "release" if args.release else "dev"
    print(f"| rustc instructions ({label}), clean build of the crate, {n} functions | total | per function |")
    print("| --- | ---: | ---: |")
    print(f"| plain functions | {plain / g:.2f} G | {per_plain / 1e6:.2f} M |")
    print(f"| + a bare `inventory::submit!` each | {inventory / g:.2f} G | +{per_inventory / 1e6:.2f} M |")
    print(f"| + a bare `linkme` slice element each (for comparison) | {linkme / g:.2f} G | "
          f"+{per_linkme / 1e6:.2f} M |")
    print(f"| with `#[on]` | {on / g:.2f} G | +{per_handler / 1e6:.2f} M per handler, "
          f"+{once / g:.2f} G once |")


if __name__ == "__main__":
    if os.environ.get("BREAKDOWN_CRATE") and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        wrap(sys.argv[1:])
    else:
        main()

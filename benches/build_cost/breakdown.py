#!/usr/bin/env python3
"""Where the build time of declarative handlers goes, in instructions rather than
seconds (valgrind counts the compiler's instructions; unlike wall time, the count
does not move with the load of the machine).

Compiles, each from clean with its dependencies prebuilt, crates of N functions
over 10 event types (N = 200 by default), as run.py generates them:

- plain: the functions alone;
- floor: each function plus one bare `inventory::submit!` (run.py's floor);
- linkme: each function plus one element of a `linkme` distributed slice (the
  floor of a registration without a constructor per item, for comparison);
- on: each function under `#[on]`, at N and at 2N (a part per handler and a
  part paid once), and at N over one event type (what each event type adds);
- expanded: what `#[on]` writes, written out (no proc macro runs), and the same
  without the hidden `Declared` alias each handler has (what it costs).

Then `#[derive(Event)]` against a hand-written `impl Event` (a name only): 20
event types and no function, each beside the same 20 types with neither.

Usage: python3 benches/build_cost/breakdown.py [--handlers N] [--release]
Standard library only; installs valgrind with apt-get if it is missing (or says
how to). Prints Markdown for docs/benchmarks.md.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (the crates run.py builds, and its valgrind wrapper)

# Crates of their own, beside run.py's (the same target directory).
run.WORK = os.path.join(run.WORK, "breakdown")
EVENTS = 20
P = "::pyventus::__private"


def edit(crate, text):
    run.write(os.path.join(crate, "src", "main.rs"), text)
    return crate


def linkme_only(n):
    """The plain crate, plus one bare element of a linkme distributed slice per
    function (a crate of its own's slice: what pyventus would declare)."""
    crate = run.generate("breakdown_linkme", n, "plain")
    with open(os.path.join(crate, "Cargo.toml")) as f:
        manifest = f.read()
    manifest = manifest.replace("[dependencies]\n", "[dependencies]\nlinkme = \"0.3\"\n")
    with open(os.path.join(crate, "Cargo.toml"), "w") as f:
        f.write(manifest)
    with open(os.path.join(crate, "src", "main.rs")) as f:
        text = f.read()
    elements = "\n".join(
        f"""#[linkme::distributed_slice(REGISTRATIONS)]
static REGISTRATION_{i}: (&str, fn(&pyventus::__private::anyhow::Error)) = ("handler_{i}", ignore);"""
        for i in range(n))
    text += ("\nfn ignore(_: &pyventus::__private::anyhow::Error) {}\n"
             "#[linkme::distributed_slice]\n"
             "static REGISTRATIONS: [(&str, fn(&pyventus::__private::anyhow::Error))];\n"
             f"{elements}\n")
    return edit(crate, text)


def expanded(n, info):
    """What `#[on(E)]` writes for `fn handler(e: &E)`, written out; without
    `info`, with no hidden `Declared` alias (what it costs)."""
    crate = run.generate(f"breakdown_expanded{'' if info else '_no_info'}", n, "on")
    lines = ["use std::hint::black_box;", "use pyventus::Event;", ""]
    for e in range(run.EVENTS):
        lines.append(f"#[derive(Debug, Clone, Event)]\npub struct E{e} {{ pub value: u64 }}\n")
    for i in range(n):
        event = f"E{i % run.EVENTS}"
        key = f"{0x9e3779b97f4a7c15 * (i + 1) % 2**64}u64"  # any key unique to the handler
        lines.append(f"pub fn handler_{i}(e: &{event}) {{ black_box(e.value); }}")
        if info:
            lines.append(f"""#[doc(hidden)]
#[allow(non_camel_case_types, dead_code, private_interfaces)]
pub type __pyventus_handler_handler_{i} = {P}::Declared<fn() -> (), {P}::Global, {key}>;""")
        lines.append(f"""{P}::inventory::submit! {{
    {P}::Registration::Handler {{
        namespace: ::core::option::Option::None,
        id: ::core::concat!(::core::module_path!(), "::handler_{i}"),
        key: {key},
        keys: <{event} as {P}::EventKeys>::ONE,
        once: false,
        blocking: false,
        needs: &[],
        callback: &{P}::UnitRefFn::new::<{event}>(handler_{i}),
        policy: ::core::option::Option::None,
    }}
}}
""")
    lines.append(f"""fn main() {{
    assert_eq!(pyventus::EventLinker::global().subscriber_count(), {n});
}}""")
    return edit(crate, "\n".join(lines) + "\n")


def events(kind):
    """20 event types and no function: derived (`derive`), with a hand-written
    `impl Event` (`hand`), or neither (`none`)."""
    crate = run.generate(f"breakdown_events_{kind}", 0, "plain", 0)
    lines = ["#![allow(unused_imports)]", "use pyventus::Event;", ""]
    for e in range(EVENTS):
        derive = "Debug, Clone, Event" if kind == "derive" else "Debug, Clone"
        lines.append(f"#[derive({derive})]\npub struct E{e} {{ pub value: u64 }}\n")
        if kind == "hand":
            lines.append(f"impl Event for E{e} {{\n    const NAME: &'static str = \"E{e}\";\n}}\n")
    names = ", ".join(f"E{e}::NAME" for e in range(EVENTS)) if kind != "none" else ""
    lines.append(f"fn main() {{\n    let names: &[&str] = &[{names}];\n"
                 "    println!(\"{}\", names.len());\n}")
    return edit(crate, "\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--handlers", type=int, default=200)
    parser.add_argument("--release", action="store_true")
    args = parser.parse_args()
    n = args.handlers
    release = args.release
    run.ensure_valgrind()

    def count(crate):
        return run.instructions(crate, release)

    plain = count(run.generate("breakdown_plain", n, "plain"))
    floor = count(run.generate("breakdown_floor", n, "floor"))
    linkme = count(linkme_only(n))
    on = count(run.generate("breakdown_with_on", n, "on"))
    on_twice = count(run.generate("breakdown_with_on_twice", 2 * n, "on"))
    on_one_event = count(run.generate("breakdown_with_on_one_event", n, "on", 1))
    floor_one_event = count(run.generate("breakdown_floor_one_event", n, "floor", 1))
    written = count(expanded(n, True))
    written_no_info = count(expanded(n, False))
    none, hand, derive = (count(events(kind)) for kind in ("none", "hand", "derive"))

    per_handler = (on_twice - on) / n
    per_type = (on - on_one_event) / (run.EVENTS - 1)
    per_type_floor = (floor - floor_one_event) / (run.EVENTS - 1)
    g, m = 1e9, 1e6
    label = "release" if release else "dev"
    print(f"| rustc instructions ({label}), clean build of the crate, {n} functions "
          "over 10 event types | total | per function |")
    print("| --- | ---: | ---: |")
    print(f"| plain functions | {plain / g:.2f} G | {plain / n / m:.2f} M |")
    print(f"| floor: + a bare `inventory::submit!` each | {floor / g:.2f} G "
          f"| +{(floor - plain) / n / m:.2f} M |")
    print(f"| + a bare `linkme` slice element each (for comparison) | {linkme / g:.2f} G "
          f"| +{(linkme - plain) / n / m:.2f} M |")
    print(f"| with `#[on]` | {on / g:.2f} G | {per_handler / m:.2f} M per handler "
          f"(at {n} to {2 * n}), `#[on]` / floor {on / floor:.2f}× |")
    print()
    print(f"| where `#[on]`'s cost over the floor goes ({label}, {n} handlers) | instructions |")
    print("| --- | ---: |")
    print(f"| the proc macro (`#[on]` against what it writes, written out) "
          f"| {(on - written) / n / m:.2f} M per handler |")
    print(f"| the hidden `Declared` alias `#[on_success]` finds a handler by "
          f"| {(written - written_no_info) / n / m:.2f} M per handler |")
    print(f"| the registration's data beyond the floor's, and what is compiled once "
          f"| {(written_no_info - floor) / g:.2f} G in all |")
    print(f"| each event type with handlers (its typed callback and lane), "
          f"beyond its `#[derive(Event)]` | {(per_type - per_type_floor) / m:.0f} M |")
    print()
    print(f"| rustc instructions ({label}), {EVENTS} event types, no function | total "
          "| per event type, beyond the bare types |")
    print("| --- | ---: | ---: |")
    print(f"| the types alone (`#[derive(Debug, Clone)]`) | {none / g:.3f} G | |")
    print(f"| with a hand-written `impl Event` | {hand / g:.3f} G "
          f"| {(hand - none) / EVENTS / m:.2f} M |")
    print(f"| with `#[derive(Event)]` | {derive / g:.3f} G | {(derive - none) / EVENTS / m:.2f} M |")


if __name__ == "__main__":
    if os.environ.get("BUILD_COST_CRATE") and len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        run.wrap(sys.argv[1:])
    else:
        main()

"""Times Pyventus's emit on the workloads of benches/emit.rs.

Each workload delivers one event to N synchronous subscribers that add the
event's value into a counter, through Pyventus's AsyncIO emitter called from
synchronous code (as in its hello world). Prints one JSON object per workload:
{"id": ..., "subscribers": N, "median_ns": ...}.

Usage: python bench.py [--seconds S]
"""

import argparse
import json
import statistics
import time

from pyventus.events import AsyncIOEventEmitter, EventLinker


def make_emitter(subscribers, other_events=0):
    class Linker(EventLinker):
        """A fresh registry per workload."""

    total = [0]

    def add(value):
        total[0] += value

    for _ in range(subscribers):
        Linker.subscribe("Measured", event_callback=add)
    for i in range(other_events):
        Linker.subscribe(f"other.{i}", event_callback=add)
    return AsyncIOEventEmitter(event_linker=Linker, debug=False), total


def time_emits(emitter, seconds):
    """Median nanoseconds per emission over rounds of ~50 ms."""
    rounds = []
    deadline = time.perf_counter() + seconds
    batch = 1
    while time.perf_counter() < deadline or len(rounds) < 5:
        start = time.perf_counter_ns()
        for _ in range(batch):
            emitter.emit("Measured", 1)
        elapsed = time.perf_counter_ns() - start
        rounds.append(elapsed / batch)
        if elapsed < 50_000_000:
            batch *= 2
    return statistics.median(rounds[len(rounds) // 4:])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="time per workload")
    args = parser.parse_args()

    workloads = [("pyventus/1", 1, 0), ("pyventus/10", 10, 0), ("pyventus_large_registry/1", 1, 10_000)]
    workloads += [(f"scaling/pyventus/{n}", n, 0) for n in (1, 10, 100, 1000)]
    for name, subscribers, others in workloads:
        emitter, total = make_emitter(subscribers, others)
        median = time_emits(emitter, args.seconds)
        assert total[0] > 0, "the subscribers did not run"
        print(json.dumps({"id": name, "subscribers": subscribers, "median_ns": median}), flush=True)


if __name__ == "__main__":
    main()

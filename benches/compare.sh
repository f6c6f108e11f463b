#!/usr/bin/env bash
# One command for the whole comparison: the Rust benchmarks (criterion), then
# Pyventus on the same workloads, then the table of medians and ratios and the
# chart (docs/benchmarks.svg).
#
#   bash benches/compare.sh            # everything
#   SKIP_PYVENTUS=1 bash benches/compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench -p pyventus-benches --bench emit
if [ -z "${SKIP_PYVENTUS:-}" ]; then
    bash benches/pyventus/run.sh > target/pyventus.jsonl
fi
python3 benches/report.py target/criterion target/pyventus.jsonl --svg docs/benchmarks.svg

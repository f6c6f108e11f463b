#!/usr/bin/env bash
# The PostgreSQL outbox beside hand-written sqlx floors (docs/benchmarks.md).
#
#   bash benches/postgres/run.sh      # needs PostgreSQL (PYVENTUS_POSTGRES_URL)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --quiet -p pyventus-benches --bench postgres_outbox --features postgres -- --measure

#!/usr/bin/env bash
# Throughput of pyventus over RabbitMQ beside a raw lapin publisher and consumer
# doing the same confirms and acks (the floor), in one run.
#
#   bash benches/amqp/run.sh        # needs RabbitMQ (PYVENTUS_AMQP_URL)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --quiet -p pyventus-benches --bench amqp_throughput --features amqp -- --measure

#!/usr/bin/env bash
# Throughput of pyventus over Redis Streams beside redis-benchmark's own XADD.
#
#   bash benches/redis/run.sh        # needs Redis (PYVENTUS_REDIS_URL) and redis-benchmark
set -euo pipefail
cd "$(dirname "$0")/../.."
url="${PYVENTUS_REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"

echo "| what | rate |"
echo "| --- | ---: |"
if command -v redis-benchmark >/dev/null; then
    for clients in 1 50; do
        rate=$(redis-benchmark -h "$host" -p "$port" -q -n 100000 -c "$clients" \
            XADD redis-benchmark:stream MAXLEN '~' 1000000 '*' field value \
            | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
        echo "| redis-benchmark XADD, $clients client(s) | $rate /s |"
    done
    redis-cli -h "$host" -p "$port" DEL redis-benchmark:stream >/dev/null
else
    echo "| redis-benchmark | not installed |"
fi
cargo bench --quiet --bench redis_throughput --features redis -- --measure

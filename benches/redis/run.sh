#!/usr/bin/env bash
# Throughput of pyventus over Redis Streams beside redis-benchmark's own XADD.
#
#   bash benches/redis/run.sh        # needs Redis (PYVENTUS_REDIS_URL) and redis-benchmark
set -euo pipefail
cd "$(dirname "$0")/../.."
url="${PYVENTUS_REDIS_URL:-redis://127.0.0.1:6379}"
hostport="${url#redis://}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"

# Redis's CPU time so far, in seconds.
redis_cpu() { redis-cli -h "$host" -p "$port" INFO cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { s += $2 } END { printf "%.6f", s }'; }

echo "| what | rate | pyventus CPU per entry | Redis CPU per entry |"
echo "| --- | ---: | ---: | ---: |"
if command -v redis-benchmark >/dev/null; then
    for clients in 1 50; do
        before=$(redis_cpu)
        rate=$(redis-benchmark -h "$host" -p "$port" -q -n 100000 -c "$clients" \
            XADD redis-benchmark:stream MAXLEN '~' 1000000 '*' field value \
            | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1)
        after=$(redis_cpu)
        per=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.1f", (a - b) * 1e6 / 100000 }')
        echo "| redis-benchmark XADD, $clients client(s) | $rate /s | | $per µs |"
    done
    redis-cli -h "$host" -p "$port" DEL redis-benchmark:stream >/dev/null
else
    echo "| redis-benchmark | not installed | | |"
fi
cargo bench --quiet -p pyventus-benches --bench redis_throughput --features redis -- --measure

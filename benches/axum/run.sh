#!/usr/bin/env bash
# Requests per second of an axum server with and without a pyventus emission per
# request, driven by wrk from a second process over loopback.
#
#   bash benches/axum/run.sh [seconds per route, default 10]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-10}"
port=38080

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
server=$(cargo bench -p pyventus-benches --bench axum_load --features axum --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "axum_load" and m.get("executable"):
        print(m["executable"])')
"$server" --serve "$port" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

echo "| route | requests/s | median latency |"
echo "| --- | ---: | ---: |"
for route in plain layered emit emit_attached; do
    wrk -t1 -c32 -d"${seconds}s" --latency "http://127.0.0.1:$port/$route" > "target/wrk-$route.txt"
    rps=$(awk '/Requests\/sec/ {print $2}' "target/wrk-$route.txt")
    p50=$(awk '$1 == "50%" {print $2}' "target/wrk-$route.txt")
    echo "| \`/$route\` | $rps | $p50 |"
done

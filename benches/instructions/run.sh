#!/usr/bin/env bash
# Instructions per emission, counted by valgrind (cachegrind) rather than timed:
# each scenario runs twice, LONG and SHORT emissions, and the difference over
# LONG - SHORT cancels setup and teardown. The counts do not move with the
# machine's load.
#
#   bash benches/instructions/run.sh            # every scenario
#   bash benches/instructions/run.sh inline_1   # some
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v valgrind >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        apt-get install -y -qq valgrind >/dev/null
    else
        echo "valgrind is missing: install it (apt-get install valgrind) and run again" >&2
        exit 1
    fi
fi

LONG=${LONG:-1200000}
SHORT=${SHORT:-200000}
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
    scenarios=(direct_1 direct_10 inline_1 inline_10 inline_40 inline_large_registry_1 inline_crowded_1 named_1 named_tick_1 named_string_1 named_key_1 named_shared_key_1 named_typed_key_1 declarative_1 runtime_same_fn_1 pool_1 pool_shared_1 executor_1 spawn_1 spawn_shared_1 tokio_1)
fi

cargo build --quiet --profile bench -p pyventus-benches --bench instructions
bin=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)

count() { # scenario n -> total instructions
    local out
    out=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$bin" "$1" "$2" 2>&1)
    echo "$out" | sed -n 's/.*I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}

printf '%-26s %12s\n' scenario "instr/emit"
for s in "${scenarios[@]}"; do
    long=$(count "$s" "$LONG")
    short=$(count "$s" "$SHORT")
    per=$(python3 -c "print(f'{($long - $short) / ($LONG - $SHORT):.1f}')")
    printf '%-26s %12s\n' "$s" "$per"
done

#!/usr/bin/env bash
# Run the whole test suite N times while two busy processes load the CPU, as CI's
# shared 2-core machine does; report how many runs passed. A flaky test is a broken one.
#
#   bash scripts/stress_tests.sh [RUNS] [PYTEST ARGS...]     # default 5 runs
#
# Exits 0 only if every run passed. Uses the project venv (bash scripts/setup.sh).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-5}"
shift || true

busy=()
cleanup() {
    for pid in "${busy[@]}"; do kill "$pid" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT INT TERM
for _ in 1 2; do
    .venv/bin/python -c 'while True: pass' &
    busy+=("$!")
done

passed=0
for run in $(seq 1 "$runs"); do
    log="$(mktemp -t stress-run-XXXX.log)"
    start=$SECONDS
    if .venv/bin/pytest -q -p no:cacheprovider "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "run $run/$runs: passed ($((SECONDS - start)) s): $(tail -1 "$log")"
    else
        echo "run $run/$runs: FAILED ($((SECONDS - start)) s), log: $log"
        grep -E '^(FAILED|ERROR) ' "$log" | sed 's/^/    /'
    fi
    echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
done
echo "$passed of $runs passed with two busy processes on the CPU"
[[ $passed -eq $runs ]]

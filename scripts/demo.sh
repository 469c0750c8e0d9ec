#!/usr/bin/env bash
# The main job on the embedded default, from a clean clone:
#   set up, start the sandbox API (demo token) on a free port and an embedded PostgreSQL
#   (from PyPI: no system package), run `meltano run tap-conversations target-postgres
#   dbt-postgres:build`, check every table against the sandbox's own truth, show what
#   landed and a few conversation metrics, and leave the database running with a query
#   you can paste.
#
#   bash scripts/demo.sh
#
# Environment: DEMO_CONVERSATIONS (default 120), DEMO_RATE_LIMIT (requests/minute the sandbox
# allows and the tap paces to; default 6000 so the demo takes seconds; a real token gets 60),
# SKIP_SETUP=1 to reuse an existing setup. The database lives in output/demo-postgres
# (re-created each time); the meltano run's whole output in output/demo-meltano.log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
CONVERSATIONS="${DEMO_CONVERSATIONS:-120}"
RATE_LIMIT="${DEMO_RATE_LIMIT:-6000}"
SEED=7
DATA_DIR="$ROOT/output/demo-postgres"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false

log() { printf '\n==> %s\n' "$*" >&2; }

if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
    bash scripts/setup.sh tap-conversations target-postgres dbt-postgres
fi
PY="$ROOT/.venv/bin/python"
MELTANO="${MELTANO_BIN:-$ROOT/.venv/meltano/bin/meltano}"

# --- the sandbox API, in the background ------------------------------------------------
workdir="$(mktemp -d)"
sandbox_pid=""
cleanup() {
    if [[ -n "$sandbox_pid" ]] && kill -0 "$sandbox_pid" 2>/dev/null; then
        kill "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
        echo "sandbox stopped" >&2
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the sandbox API ($CONVERSATIONS conversations, $RATE_LIMIT requests/minute)"
"$PY" -m tests.sandbox --port 0 --seed "$SEED" --conversations "$CONVERSATIONS" \
    --rate-limit "$RATE_LIMIT" --latency-ms 0 >"$workdir/sandbox.out" 2>"$workdir/sandbox.err" &
sandbox_pid=$!
first_line=""
for _ in $(seq 1 100); do
    first_line="$(head -n 1 "$workdir/sandbox.out" 2>/dev/null || true)"
    [[ -n "$first_line" ]] && break
    if ! kill -0 "$sandbox_pid" 2>/dev/null; then
        echo "demo.sh: the sandbox exited:" >&2
        cat "$workdir/sandbox.err" >&2
        exit 1
    fi
    sleep 0.1
done
# sandbox: http://127.0.0.1:PORT/api/v1 token=mt_...
if [[ ! "$first_line" =~ ^sandbox:\ (http://[^ ]+)\ token=([^ ]+)$ ]]; then
    echo "demo.sh: unexpected first line from the sandbox: '$first_line'" >&2
    cat "$workdir/sandbox.err" >&2
    exit 1
fi
api_url="${BASH_REMATCH[1]}"
api_token="${BASH_REMATCH[2]}"
echo "$first_line" >&2

# --- the embedded PostgreSQL ------------------------------------------------------------
log "starting an embedded PostgreSQL in ${DATA_DIR#"$ROOT"/}"
"$PY" scripts/demo_database.py stop "$DATA_DIR"
rm -rf "$DATA_DIR"
mkdir -p "$ROOT/output"
database_url="$("$PY" scripts/demo_database.py start "$DATA_DIR")"

# --- meltano run ------------------------------------------------------------------------
# The loader's and dbt's output is long (SQL, one line per dbt test): it goes to a log
# file, and the demo shows a summary of it (scripts/demo_log_summary.py).
run_log="$ROOT/output/demo-meltano.log"
log "meltano --environment demo run --full-refresh tap-conversations target-postgres dbt-postgres:build"
started=$SECONDS
run_status=0
TAP_CONVERSATIONS_API_URL="$api_url" \
TAP_CONVERSATIONS_API_TOKEN="$api_token" \
TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE="$RATE_LIMIT" \
TARGET_POSTGRES_SQLALCHEMY_URL="$database_url" \
DBT_POSTGRES_HOST="$DATA_DIR" DBT_POSTGRES_USER=postgres DBT_POSTGRES_DBNAME=postgres \
NO_COLOR=1 \
    "$MELTANO" --environment demo run --full-refresh \
    tap-conversations target-postgres dbt-postgres:build >"$run_log" 2>&1 || run_status=$?
run_seconds=$((SECONDS - started))
if [[ $run_status -ne 0 ]]; then
    echo "meltano run failed (exit $run_status) after ${run_seconds} s; its whole output: ${run_log#"$ROOT"/}" >&2
    "$PY" scripts/demo_log_summary.py "$run_log" --failed
    exit "$run_status"
fi
echo "meltano run: done in ${run_seconds} s; its whole output ($(wc -l <"$run_log") lines): ${run_log#"$ROOT"/}" >&2
"$PY" scripts/demo_log_summary.py "$run_log"

# --- what landed, against the sandbox's truth --------------------------------------------
log "what landed (the run took ${run_seconds} s)"
psql="$("$PY" scripts/demo_database.py psql)"
"$PY" scripts/demo_report.py --database-url "$database_url" --seed "$SEED" \
    --conversations "$CONVERSATIONS"

printf '\nThe database keeps running. What the models give (talk share per user, the longest\n' >&2
printf 'monologues, insights per day); paste it as is:\n\n' >&2
query_command="$psql -h $DATA_DIR -U postgres -d postgres"
while IFS= read -r query; do
    query_command+=" -c \"$query\""
done < <("$PY" scripts/demo_report.py --print-queries)
echo "  $query_command" >&2
bash -c "$query_command" >&2
printf "\nStop it: %s %s/scripts/demo_database.py stop %s\n" "$PY" "$ROOT" "$DATA_DIR" >&2

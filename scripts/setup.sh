#!/usr/bin/env bash
# Set up this project on a fresh machine (idempotent; safe to run again).
#
#   bash scripts/setup.sh                 # project venv + Meltano + every Meltano plugin
#   bash scripts/setup.sh PLUGIN...       # ... only these plugins
#
# What it makes:
#   .venv/          the project, editable, with the dev extras (pytest, ruff, mypy, psycopg, ...)
#   .venv/meltano/  Meltano itself (with psycopg for a PostgreSQL system DB), in its own venv
#                   (its pins, e.g. SQLAlchemy, differ from the tap's; Meltano runs the tap
#                   from its own plugin venv anyway)
#   .venv/dagster/  Dagster, for orchestrate/ (orchestrate/requirements.txt), in its own venv
#   .meltano/       the plugin venvs Meltano installs from meltano.yml (pinned pip_urls)
#
# Environment: PYTHON (default python3; Python >= 3.10) as a command (python3.12), a path
# (/usr/bin/python3.12) or a version (3.12, 3.12.1: a pyenv version, or pythonX.Y on PATH);
# MELTANO_VERSION (default 4.4.1).
# As root on Debian/Ubuntu it apt-installs python3 and python3-venv when they are missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"
PYTHON="${PYTHON:-python3}"
MELTANO_VERSION="${MELTANO_VERSION:-4.4.1}"
VENV="$ROOT/.venv"
MELTANO_VENV="$VENV/meltano"
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf '\n==> %s\n' "$*" >&2; }

apt_install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: missing $*; install it (Debian/Ubuntu: apt-get install -y $*) and re-run" >&2
        exit 1
    fi
    log "apt-get install $*"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- Python with venv ------------------------------------------------------------------
if [[ "$PYTHON" == python3 ]] && ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
fi
PYTHON="$(bash scripts/find_python.sh "$PYTHON")" || exit 1
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi

# --- the project venv ------------------------------------------------------------------
if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating $VENV with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
stamp="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.setup-stamp" 2>/dev/null || true)" != "$stamp" ]] || [[ ! -x "$VENV/bin/tap-conversations" ]]; then
    log "installing the project (editable) with the dev extras into .venv"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    echo "$stamp" >"$VENV/.setup-stamp"
else
    log "project venv up to date (.venv)"
fi

# --- Meltano, in its own venv ----------------------------------------------------------
# With its `postgres` extra (psycopg 3): the system database, and so the state, can live in
# PostgreSQL (MELTANO_DATABASE_URI=postgresql+psycopg://...), shared by stateless workers.
if [[ "$("$MELTANO_VENV/bin/meltano" --version 2>/dev/null || true)" != *"version $MELTANO_VERSION"* ]] ||
    ! "$MELTANO_VENV/bin/python" -c 'import psycopg' >/dev/null 2>&1; then
    log "installing meltano[postgres]==$MELTANO_VERSION into .venv/meltano"
    [[ -x "$MELTANO_VENV/bin/python" ]] || "$PYTHON" -m venv "$MELTANO_VENV"
    "$MELTANO_VENV/bin/python" -m pip install -q --upgrade pip
    "$MELTANO_VENV/bin/python" -m pip install -q "meltano[postgres]==$MELTANO_VERSION"
else
    log "meltano $MELTANO_VERSION present (.venv/meltano)"
fi

# --- Dagster (orchestrate/), in its own venv ---------------------------------------------
# The orchestrator's pins (grpcio, protobuf, alembic, structlog, ...) stay out of the tap's
# test environment, as Meltano's do; orchestrate/requirements.txt pins it.
DAGSTER_VENV="$VENV/dagster"
dagster_stamp="$(sha256sum orchestrate/requirements.txt | cut -d' ' -f1)"
if [[ "$(cat "$DAGSTER_VENV/.setup-stamp" 2>/dev/null || true)" != "$dagster_stamp" ]] ||
    ! "$DAGSTER_VENV/bin/python" -c 'import dagster' >/dev/null 2>&1; then
    log "installing Dagster (orchestrate/requirements.txt) into .venv/dagster"
    [[ -x "$DAGSTER_VENV/bin/python" ]] || "$PYTHON" -m venv "$DAGSTER_VENV"
    "$DAGSTER_VENV/bin/python" -m pip install -q --upgrade pip
    "$DAGSTER_VENV/bin/python" -m pip install -q -r orchestrate/requirements.txt
    echo "$dagster_stamp" >"$DAGSTER_VENV/.setup-stamp"
else
    log "Dagster present (.venv/dagster)"
fi

# --- Meltano plugins -------------------------------------------------------------------
plugins=("$@")
if [[ ${#plugins[@]} -eq 0 ]]; then
    plugins=(tap-conversations target-postgres dbt-postgres)
fi
log "meltano install ${plugins[*]}"
MELTANO_SEND_ANONYMOUS_USAGE_STATS=false "$MELTANO_VENV/bin/meltano" install "${plugins[@]}"

log "setup done: .venv (project), .venv/meltano/bin/meltano, .venv/dagster, plugins: ${plugins[*]}"

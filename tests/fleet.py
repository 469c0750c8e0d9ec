# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Shared parts of the many-accounts tests: real meltano, one PostgreSQL, a system DB on it.

One PostgreSQL server (the session's, tests/postgres.py) holds, for each module, both
the warehouse (a database ``fleet_N``, a schema per account) and Meltano's system
database (``meltano_system_N``), which is the state backend every project directory and
worker of the module shares
(``MELTANO_DATABASE_URI=postgresql+psycopg://...``; psycopg comes with
``meltano[postgres]``, which scripts/setup.sh installs).
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from tap_conversations.tap import TapConversations
from tests.helpers import MeltanoRunner, meltano_environ

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

REPO_ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = "dev"
SYSTEM_DB = "meltano_system"
DETAIL = "/conversations/{id}"
#: What a fresh clone holds: the tracked files, never venvs, plugin venvs or outputs.
UNTRACKED = (".git", ".venv", ".meltano", "output", "target", "__pycache__", "*.egg-info", ".env")


def state_id(suffix: str) -> str:
    """The state id of `meltano run --state-id-suffix=SUFFIX tap-conversations target-postgres`."""
    return f"{ENVIRONMENT}:tap-conversations-to-target-postgres:{suffix}"


@dataclass(kw_only=True)
class Fleet(MeltanoRunner):
    """Real meltano against one PostgreSQL: the warehouse and the shared state backend."""

    postgres: PostgresServer
    system_db: str = SYSTEM_DB

    @property
    def system_db_uri(self) -> str:
        """Meltano's system database (and state backend) on the shared PostgreSQL."""
        pg = self.postgres
        return f"postgresql+psycopg://{pg.user}@{pg.host}:{pg.port}/{self.system_db}"

    def environ(self, project: Path) -> dict[str, str]:
        """Any project directory, with the system database every directory shares."""
        return {
            **self.env,
            "MELTANO_PROJECT_ROOT": str(project),
            "MELTANO_DATABASE_URI": self.system_db_uri,
        }

    def target_env(self, schema: str) -> dict[str, str]:
        """target-postgres into the warehouse, in `schema`."""
        pg = self.postgres
        return {
            "TARGET_POSTGRES_HOST": pg.host,
            "TARGET_POSTGRES_PORT": str(pg.port),
            "TARGET_POSTGRES_USER": pg.user,
            "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
            "TARGET_POSTGRES_DATABASE": pg.dbname,
            "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
        }

    def state(self, state_id: str, project: Path = REPO_ROOT) -> dict[str, Any]:
        """The Singer state the shared backend holds for `state_id`, read by meltano."""
        stored = json.loads(self.run("state", "get", state_id, project=project).stdout)
        singer_state: dict[str, Any] = stored["singer_state"]
        return singer_state

    def stored_state(self, state_id: str) -> dict[str, Any] | None:
        """The Singer state in the system database's `state` table, read without meltano."""
        pg = self.postgres
        conninfo = f"host={pg.host} port={pg.port} user={pg.user} dbname={self.system_db}"
        with psycopg.connect(conninfo) as conn:
            row = conn.execute(
                "SELECT completed_state FROM state WHERE state_id = %s", (state_id,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        stored = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        singer_state: dict[str, Any] = stored["singer_state"]
        return singer_state

    def connect(self) -> psycopg.Connection[Any]:
        """A connection to the warehouse database."""
        return psycopg.connect(self.postgres.conninfo, autocommit=True)


def fresh_clone(destination: Path) -> Path:
    """The project's tracked files in `destination`, as `git clone` gives a new worker.

    Copied rather than cloned so that uncommitted work is what runs (a checkout with
    local changes, or a CI checkout without history); venvs, plugin venvs, Meltano's
    own `.meltano/` and outputs are left out, as they are out of git.
    """
    shutil.copytree(REPO_ROOT, destination, ignore=shutil.ignore_patterns(*UNTRACKED))
    assert not (destination / ".meltano").exists()
    return destination


@pytest.fixture(scope="module", name="fleet")
def fleet_fixture(postgres_server: PostgresServer, meltano_plugins: Path) -> Fleet:
    """Meltano with the plugins installed; the module's warehouse and system DB on PostgreSQL.

    Both are databases of the module's own on the session's server, so nothing one module
    stores (rows, states) is seen by another.
    """
    warehouse = postgres_server.database("fleet")
    system = postgres_server.database(SYSTEM_DB)
    env = {
        **meltano_environ(),
        "MELTANO_ENVIRONMENT": ENVIRONMENT,
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "NO_COLOR": "1",
    }
    return Fleet(exe=meltano_plugins, env=env, postgres=warehouse, system_db=system.dbname)


def schema_rows(conn: psycopg.Connection[Any], schema: str) -> dict[str, set[str]]:
    """Table -> the ids (or keys) of its live rows, in `schema`; {} when it does not exist."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,),
        ).fetchall()
    ]
    offline = TapConversations(config={"api_token": "mt_x", "api_url": "https://x.example/api/v1"})
    keys = {name: tuple(stream.primary_keys or ()) for name, stream in offline.streams.items()}
    rows: dict[str, set[str]] = {}
    for table in tables:
        key = " || '/' || ".join(f"{column}::text" for column in keys[table])
        found = conn.execute(
            f'SELECT ({key})::text FROM "{schema}"."{table}" WHERE _sdc_deleted_at IS NULL'  # noqa: S608 - names from the catalog
        ).fetchall()
        rows[table] = {value for (value,) in found}
    return rows


def tap_env(base_url: str, token: str) -> dict[str, str]:
    """One account's settings, as its run's environment gives them."""
    return {
        "TAP_CONVERSATIONS_API_URL": base_url,
        "TAP_CONVERSATIONS_API_TOKEN": token,
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
    }


def sync_summary(output: str) -> str | None:
    """The tap's closing `Sync done in ...` line in a run's output, if any."""
    found = re.search(r"Sync done in [^\n]*", output)
    return found.group(0) if found else None

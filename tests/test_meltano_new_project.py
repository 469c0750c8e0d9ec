# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""A brand-new Meltano project adds the tap from plugin/tap-conversations.yml alone.

What a user does, with the real `meltano` CLI (found as tests/test_e2e_meltano_postgres.py
finds it) in an empty temp dir:

    meltano init
    meltano add --plugin-type extractor tap-conversations --from-ref tap-conversations.yml
    meltano add --plugin-type loader target-postgres --from-ref target-postgres.yml
    meltano install
    meltano config set tap-conversations _select '["*.*", "!transcript_segments.*"]'
    meltano config set tap-conversations mediums '["call"]'
    meltano config set tap-conversations api_token <the sandbox's>
    meltano run tap-conversations target-postgres

The definition is the repository's file with one change, ``pip_url`` naming the release
wheel built from this checkout (the `wheel` fixture; the file names the PyPI package), so
the definition and the file a release publishes are tried together. target-postgres is
defined as the repository's meltano.yml defines it. The run goes against the sandbox into a real
PostgreSQL (tests/postgres.py), and the conversations that land are exactly the ones
the sandbox lists for the medium `call`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
import yaml

from tests.helpers import MELTANO_TIMEOUT_SECONDS, MeltanoRunner, meltano_environ, required_meltano

if TYPE_CHECKING:
    from tests.postgres import PostgresServer
    from tests.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
DEFINITION_FILE = ROOT / "plugin" / "tap-conversations.yml"
SCHEMA = "conversations_from_hub_definition"


class NewProject(MeltanoRunner):
    """A Meltano project made by `meltano init` in a temp dir, and the CLI to run in it."""

    def meltano_yml(self) -> dict[str, Any]:
        """The project's meltano.yml, parsed."""
        loaded: dict[str, Any] = yaml.safe_load((self.project / "meltano.yml").read_text())
        return loaded

    def plugin(self, kind: str, name: str) -> dict[str, Any]:
        """One plugin's entry in meltano.yml."""
        plugin: dict[str, Any] = next(
            p for p in self.meltano_yml()["plugins"][kind] if p["name"] == name
        )
        return plugin


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, wheel: Path) -> NewProject:
    """`meltano init`, then the tap and the loader added from definition files alone."""
    exe = required_meltano()
    base = tmp_path_factory.mktemp("new-meltano-project")
    env = {**meltano_environ(), "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false", "NO_COLOR": "1"}
    subprocess.run(  # noqa: S603 - the meltano CLI with fixed arguments
        [str(exe), "init", "project", "--no-usage-stats"],
        cwd=base,
        env=env,
        check=True,
        capture_output=True,
        timeout=MELTANO_TIMEOUT_SECONDS,
    )
    new = NewProject(exe=exe, env=env, project=base / "project", tail_lines=60)
    assert "plugins" not in new.meltano_yml(), "meltano init made a project with plugins"

    # The repository's file, installing the release wheel instead of PyPI's.
    definition = yaml.safe_load(DEFINITION_FILE.read_text(encoding="utf-8"))
    assert definition["pip_url"] == "tap-conversations"
    definition["pip_url"] = str(wheel)
    tap_file = base / "tap-conversations.yml"
    tap_file.write_text(yaml.safe_dump(definition, sort_keys=False, allow_unicode=True))
    repo_project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    target = next(p for p in repo_project["plugins"]["loaders"] if p["name"] == "target-postgres")
    target_file = base / "target-postgres.yml"
    target_file.write_text(yaml.safe_dump(target, sort_keys=False))

    # As the README says, with the file's local path for its URL.
    new.run("add", "--plugin-type", "extractor", "tap-conversations", "--from-ref", str(tap_file))
    new.run("add", "--plugin-type", "loader", "target-postgres", "--from-ref", str(target_file))
    new.run("install")
    return new


def _rows(conn: psycopg.Connection[Any], query: str) -> set[Any]:
    return {row[0] for row in conn.execute(query).fetchall()}


def _tables(conn: psycopg.Connection[Any]) -> set[str]:
    return _rows(
        conn,
        "SELECT table_name FROM information_schema.tables "  # noqa: S608 - a constant
        f"WHERE table_schema = '{SCHEMA}'",
    )


def test_added_from_the_definition_file_alone(project: NewProject, wheel: Path) -> None:
    """What the file gave the project: no Hub lookup, the three traps avoided."""
    tap = project.plugin("extractors", "tap-conversations")
    assert tap["pip_url"] == str(wheel)  # the release file, installed by `meltano install`
    installed = list(
        project.project.glob(
            ".meltano/extractors/tap-conversations/venv/lib/*/"
            "site-packages/tap_conversations-*.dist-info/RECORD"
        )
    )
    assert len(installed) == 1, installed
    assert "tap_conversations/tap.py" in installed[0].read_text(encoding="utf-8")
    definition = yaml.safe_load(DEFINITION_FILE.read_text(encoding="utf-8"))
    assert "variant" not in tap
    assert tap["namespace"] == definition["namespace"]
    assert "structured-logging" in tap["capabilities"]
    kinds = {s["name"]: s["kind"] for s in tap["settings"]}
    assert kinds == {s["name"]: s["kind"] for s in definition["settings"]}
    # Meltano keeps the fields it knows: `keywords` and the definition's `select` are not
    # carried into the project, hence the README's `config set ... _select` line.
    assert "keywords" not in tap
    assert "select" not in tap


def test_new_project_syncs_the_sandbox_into_postgres(
    project: NewProject, postgres: PostgresServer, sandbox: Sandbox
) -> None:
    project.run(
        "config", "set", "tap-conversations", "_select", '["*.*", "!transcript_segments.*"]'
    )
    project.run("config", "set", "tap-conversations", "mediums", '["call"]')
    project.run("config", "set", "tap-conversations", "api_token", sandbox.token)
    tap = project.plugin("extractors", "tap-conversations")
    assert tap["config"]["mediums"] == ["call"], "kind: array stores a list, not a string"
    assert tap["select"] == ["*.*", "!transcript_segments.*"]
    assert "api_token" not in tap["config"], "the token went into meltano.yml"
    assert sandbox.token in (project.project / ".env").read_text()

    run_env = {
        "TAP_CONVERSATIONS_API_URL": sandbox.base_url,
        "TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE": "100000",
        "TARGET_POSTGRES_HOST": postgres.host,
        "TARGET_POSTGRES_PORT": str(postgres.port),
        "TARGET_POSTGRES_USER": postgres.user,
        "TARGET_POSTGRES_PASSWORD": "trust-auth-ignores-it",
        "TARGET_POSTGRES_DATABASE": postgres.dbname,
        "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA": SCHEMA,
    }
    project.run("run", "tap-conversations", "target-postgres", extra_env=run_env)

    calls = {c["id"] for c in sandbox.listed_conversations(medium="call")}
    assert 0 < len(calls) < len(sandbox.listed_conversations())
    with_transcript = {c for c in calls if sandbox.transcript(c) is not None}
    assert with_transcript
    with psycopg.connect(postgres.conninfo) as conn:
        tables = _tables(conn)
        assert "transcript_segments" not in tables, "deselected by default"
        assert {"account", "conversations", "transcripts", "insights"} <= tables
        assert _rows(conn, f'SELECT id::text FROM {SCHEMA}."conversations"') == calls  # noqa: S608
        assert (
            _rows(conn, f'SELECT conversation_id::text FROM {SCHEMA}."transcripts"')  # noqa: S608
            == with_transcript
        )


def test_the_taps_errors_show_as_errors_in_meltano(project: NewProject, sandbox: Sandbox) -> None:
    """structured-logging: Meltano logs the tap's ERROR line at error, not info."""
    result = project.run(
        "--log-format",
        "json",
        "invoke",
        "tap-conversations",
        extra_env={
            "TAP_CONVERSATIONS_API_URL": sandbox.base_url,
            "TAP_CONVERSATIONS_API_TOKEN": "mt_wrong_token",
        },
        check=False,
    )
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    rejected = [e for e in events if "The API rejected the token" in str(e.get("event"))]
    # Meltano's discovery run meets the 401 first and logs it at warning; the sync's
    # line is the tap's ERROR.
    sync = [e for e in rejected if e.get("type") != "discovery"]
    assert sync, result.stderr[-3000:]
    assert {e["level"] for e in sync} == {"error"}, sync

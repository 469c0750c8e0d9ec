"""Lines that say what happened and what to do: each quoted here as the user reads it.

A token whose include_recordings setting is off (it has the scope), misspelled settings,
a start_date in the future.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.harness import catalog_selecting, tap_config
from tests.helpers import assert_no_traceback, run_cli
from tests.sandbox import ALL_SCOPES

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sandbox import Sandbox

RECORDINGS_FIX = (
    "turn on include_recordings for the token in the app under Settings → REST API "
    "(the recordings stream needs the scope and that setting)."
)


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "| WARNING" in line]


def test_connection_test_says_include_recordings_is_off_not_a_missing_scope(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    token = sandbox.add_token(scopes=ALL_SCOPES, include_recordings=False)
    result = run_cli(tmp_path, tap_config(sandbox, token=token), "--test")
    assert result.returncode == 0, result.stderr
    assert "Connection test passed" in result.stderr
    assert [line.split(" | ")[-1] for line in _warnings(result.stderr)] == [
        "Token has the 'recordings' scope, but its include_recordings setting is off: "
        + RECORDINGS_FIX
    ]
    assert "missing scope" not in result.stderr


def test_a_sync_says_include_recordings_is_off_once(sandbox: Sandbox, tmp_path: Path) -> None:
    token = sandbox.add_token(scopes=ALL_SCOPES, include_recordings=False)
    config = tap_config(sandbox, token=token)
    catalog = catalog_selecting(config, ["conversations", "recordings"])
    result = run_cli(tmp_path, config, catalog=catalog)
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    recordings = [line for line in _warnings(result.stderr) if "recordings" in line]
    assert len(recordings) == 1, recordings
    assert recordings[0].endswith(
        "The token has the 'recordings' scope, but its include_recordings setting is off "
        "(HTTP 403 recordings_disabled on GET /conversations/{id}/recording): "
        + RECORDINGS_FIX
        + " Skipping streams: recordings."
    )
    assert "lacks the 'recordings' scope" not in result.stderr
    assert result.records("recordings") == []
    assert len(result.records("conversations")) == len(sandbox.listed_conversations())


def test_discovery_says_include_recordings_is_off(sandbox: Sandbox, tmp_path: Path) -> None:
    token = sandbox.add_token(scopes=ALL_SCOPES, include_recordings=False)
    result = run_cli(tmp_path, tap_config(sandbox, token=token), "--discover")
    assert result.returncode == 0, result.stderr
    assert [line.split(" | ")[-1] for line in _warnings(result.stderr)] == [
        "Stream recordings not selected by default: token has the 'recordings' scope, but its "
        "include_recordings setting is off: " + RECORDINGS_FIX
    ]

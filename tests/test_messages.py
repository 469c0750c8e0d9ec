"""Lines that say what happened and what to do: each quoted here as the user reads it.

A token whose include_recordings setting is off (it has the scope), misspelled settings,
a start_date in the future.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from tap_conversations.errors import ConfigError
from tap_conversations.settings import PROPERTIES, Settings, unknown_settings
from tap_conversations.timestamps import format_timestamp
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


#: Misspelled settings beside ones the SDK, Meltano and the tap know.
MISSPELLED = {
    "medium": ["call"],
    "max_request_per_minute": 60,
    "stream_maps": {},
    "stream_map_config": {},
    "flattening_enabled": False,
    "flattening_max_depth": 1,
    "batch_config": None,
    "_select": ["conversations.*"],
}
UNKNOWN_LINES = [
    (
        "Setting 'max_request_per_minute' is unknown and ignored; did you mean "
        "max_requests_per_minute?"
    ),
    "Setting 'medium' is unknown and ignored; did you mean mediums?",
]


@pytest.mark.parametrize(
    "args", [(), ("--test",), ("--discover",)], ids=["sync", "test", "discover"]
)
def test_each_unknown_setting_gets_one_warning_with_the_closest_name(
    sandbox: Sandbox, tmp_path: Path, args: tuple[str, ...]
) -> None:
    config = {**tap_config(sandbox), **MISSPELLED}
    config.pop("batch_config")  # the SDK's schema wants an object there
    catalog = catalog_selecting(config, ["users"]) if not args else None
    result = run_cli(tmp_path, config, *args, catalog=catalog)
    assert result.returncode == 0, result.stderr
    unknown = [line.split(" | ")[-1] for line in _warnings(result.stderr) if "unknown" in line]
    assert unknown == UNKNOWN_LINES


def test_an_unknown_setting_without_a_close_name_points_to_about() -> None:
    assert unknown_settings({"colour": "blue"}, PROPERTIES) == [
        "Setting 'colour' is unknown and ignored; tap-conversations --about lists the settings."
    ]


def test_a_misspelled_token_is_named_before_the_missing_token(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tap_config(sandbox)
    config["api_tokn"] = config.pop("api_token")
    result = run_cli(tmp_path, config, "--test")
    assert result.returncode == ConfigError.exit_code
    lines = [line.split(" | ")[-1] for line in result.stderr.splitlines() if " | " in line]
    assert "Setting 'api_tokn' is unknown and ignored; did you mean api_token?" in lines
    assert lines.index("Setting 'api_tokn' is unknown and ignored; did you mean api_token?") < min(
        i for i, line in enumerate(lines) if "Setting api_token is missing" in line
    )


@pytest.mark.parametrize("args", [(), ("--test",)], ids=["sync", "test"])
def test_a_start_date_in_the_future_is_an_error(
    sandbox: Sandbox, tmp_path: Path, args: tuple[str, ...]
) -> None:
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    start = format_timestamp(future.replace(microsecond=0))
    result = run_cli(tmp_path, tap_config(sandbox, start_date=start), *args)
    assert result.returncode == ConfigError.exit_code
    assert_no_traceback(result)
    assert len(result.error_lines) == 1, result.error_lines
    line = result.error_lines[0]
    assert f"Setting start_date {start} is in the future (now 20" in line
    assert line.endswith(
        "): a sync would fetch nothing until then. Set a date in the past, or remove start_date "
        "to sync the API's 30 days."
    )
    assert sandbox.counters.requests() == 0


@pytest.mark.parametrize("setting", ["mediums", "department_ids", "user_ids"])
def test_a_list_setting_written_as_text_says_kind_array(
    sandbox: Sandbox, tmp_path: Path, setting: str
) -> None:
    """What a Meltano project without `kind: array` passes for `config set ... '["call"]'`.

    Its config.json holds the text the user typed, which already is a JSON list; the line
    says where the text comes from instead of asking for the list the user wrote.
    """
    typed = '["call"]' if setting == "mediums" else '["7d3c8a5e-0f4b-4c61-9a8e-2b1d6e5f4a3c"]'
    result = run_cli(tmp_path, tap_config(sandbox, **{setting: typed}))
    assert result.returncode == ConfigError.exit_code
    assert_no_traceback(result)
    assert len(result.error_lines) == 1, result.error_lines
    assert result.error_lines[0].endswith(
        f"""Setting {setting} must be a list of strings like ["a", "b"], not '{typed}'. """
        "That is a list written as text, as Meltano passes it when the setting's definition "
        f"lacks `kind: array`: add `kind: array` to {setting} in meltano.yml, or add the tap "
        "from plugin/tap-conversations.yml, which has it."
    ), result.error_lines
    assert sandbox.counters.requests() == 0


def test_a_single_value_as_text_is_not_called_a_list() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_config(
            {"api_token": "mt_x", "api_url": "https://api.example.com/api/v1", "mediums": "call"}
        )
    assert str(caught.value) == (
        """Setting mediums must be a list of strings like ["a", "b"], not 'call'."""
    )

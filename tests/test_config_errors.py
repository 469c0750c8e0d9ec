"""Config errors through the real CLI: one clear line, non-zero exit, nothing requested.

Every case points `api_url` at a running sandbox (unless the URL itself is the error),
so "nothing requested" is measured, not assumed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.errors import ConfigError
from tap_conversations.settings import Settings
from tests.harness import tap_config
from tests.helpers import CliResult, assert_no_traceback, cli_env, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sandbox import Sandbox

REMOVE = object()
UUID = "7d3c8a5e-0f4b-4c61-9a8e-2b1d6e5f4a3c"

#: (id, changes to a valid config, the setting the error must name)
CASES: list[tuple[str, dict[str, Any], str]] = [
    ("missing_token", {"api_token": REMOVE}, "api_token"),
    ("empty_token", {"api_token": ""}, "api_token"),
    ("blank_token", {"api_token": "   "}, "api_token"),
    ("missing_url", {"api_url": REMOVE}, "api_url"),
    ("url_not_a_url", {"api_url": "not a url"}, "api_url"),
    ("url_ftp", {"api_url": "ftp://example.com/api/v1"}, "api_url"),
    ("url_no_host", {"api_url": "https:///api/v1"}, "api_url"),
    ("url_bad_ipv6", {"api_url": "https://[::1/api/v1"}, "api_url"),
    ("plain_http_remote", {"api_url": "http://api.example.com/api/v1"}, "api_url"),
    ("plain_http_private_ip", {"api_url": "http://10.0.0.5/api/v1"}, "api_url"),
    ("start_date_words", {"start_date": "yesterday"}, "start_date"),
    ("start_date_bad_month", {"start_date": "2026-13-01T00:00:00Z"}, "start_date"),
    ("rpm_zero", {"max_requests_per_minute": 0}, "max_requests_per_minute"),
    ("rpm_negative", {"max_requests_per_minute": -5}, "max_requests_per_minute"),
    ("rpm_words", {"max_requests_per_minute": "lots"}, "max_requests_per_minute"),
    ("parallel_1000", {"max_parallel_requests": 1000}, "max_parallel_requests"),
    ("parallel_zero", {"max_parallel_requests": 0}, "max_parallel_requests"),
    ("window_negative", {"late_data_window_hours": -1}, "late_data_window_hours"),
    ("window_too_long", {"late_data_window_hours": 100_000}, "late_data_window_hours"),
    ("timeout_zero", {"request_timeout_seconds": 0}, "request_timeout_seconds"),
    ("medium_unknown", {"mediums": ["call", "fax"]}, "mediums"),
    ("medium_not_a_list", {"mediums": 5}, "mediums"),
    ("department_not_uuid", {"department_ids": ["sales"]}, "department_ids"),
    ("user_not_uuid", {"user_ids": [UUID, "bob"]}, "user_ids"),
]


def _config(sandbox: Sandbox, changes: dict[str, Any]) -> dict[str, Any]:
    config = tap_config(sandbox)
    for key, value in changes.items():
        if value is REMOVE:
            config.pop(key, None)
        else:
            config[key] = value
    return config


def _naming_lines(result: CliResult, setting: str) -> list[str]:
    return [line for line in result.error_lines if setting in line]


@pytest.mark.parametrize(("changes", "setting"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_config_error_is_clear_and_nothing_is_requested(
    sandbox: Sandbox, tmp_path: Path, changes: dict[str, Any], setting: str
) -> None:
    result = run_cli(tmp_path, _config(sandbox, changes))
    assert result.returncode != 0
    assert_no_traceback(result)
    assert _naming_lines(result, setting), result.stderr
    assert result.stdout.strip() == ""  # no SCHEMA, RECORD or STATE
    assert sandbox.counters.requests() == 0


#: The cases the SDK's JSON-schema validation catches before the tap's own check, plus
#: one the tap catches (the control).
SCHEMA_CASES = [
    c
    for c in CASES
    if c[0] in {"missing_token", "missing_url", "rpm_words", "medium_not_a_list", "parallel_1000"}
]


@pytest.mark.parametrize(
    ("changes", "setting"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_config_error_is_exactly_one_line_in_the_taps_words(
    sandbox: Sandbox, tmp_path: Path, changes: dict[str, Any], setting: str
) -> None:
    """The issue asks for ONE clear line, the same shape whichever check finds it.

    Exit code 2 (`ConfigError.exit_code`) tells a scheduler "fix the config", not
    "retry later".
    """
    result = run_cli(tmp_path, _config(sandbox, changes))
    assert len(result.error_lines) == 1, result.error_lines
    assert f"Setting {setting} " in result.error_lines[0]
    assert result.returncode == ConfigError.exit_code


def test_missing_token_says_where_to_create_one(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tap_config(sandbox)
    del config["api_token"]
    result = run_cli(tmp_path, config)
    assert result.returncode != 0
    assert "Settings → REST API" in result.stderr, result.stderr


def test_token_from_the_environment_is_accepted(sandbox: Sandbox, tmp_path: Path) -> None:
    """`--config ENV`: what Meltano's env-based config looks like."""
    env = cli_env(
        TAP_CONVERSATIONS_API_TOKEN=sandbox.token,
        TAP_CONVERSATIONS_API_URL=sandbox.base_url,
        TAP_CONVERSATIONS_MAX_REQUESTS_PER_MINUTE="100000",
    )
    result = run_cli(tmp_path, None, "--config", "ENV", "--test", env=env)
    assert result.returncode == 0, result.stderr
    assert "Connection test passed" in result.stderr


def test_bad_setting_from_the_environment_is_named(sandbox: Sandbox, tmp_path: Path) -> None:
    env = cli_env(
        TAP_CONVERSATIONS_API_TOKEN=sandbox.token,
        TAP_CONVERSATIONS_API_URL=sandbox.base_url,
        TAP_CONVERSATIONS_MEDIUMS="call,fax",
    )
    result = run_cli(tmp_path, None, "--config", "ENV", env=env)
    assert result.returncode != 0
    assert_no_traceback(result)
    assert _naming_lines(result, "mediums"), result.stderr
    assert sandbox.counters.requests() == 0


def test_config_error_in_connection_test(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(tmp_path, _config(sandbox, {"start_date": "soon"}), "--test")
    assert result.returncode == ConfigError.exit_code
    assert_no_traceback(result)
    assert _naming_lines(result, "start_date")
    assert sandbox.counters.requests() == 0


def test_config_error_in_discovery_warns_and_sends_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """Discovery works offline: the catalog is written, the bad setting is named."""
    result = run_cli(tmp_path, _config(sandbox, {"max_parallel_requests": 1000}), "--discover")
    assert result.returncode == 0
    assert_no_traceback(result)
    assert '"tap_stream_id"' in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "| WARNING" in line]
    assert any("max_parallel_requests" in line for line in warnings), result.stderr
    assert sandbox.counters.requests() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/api/v1",
        "http://localhost/api/v1",
        "http://[::1]:9000/api/v1",
        "https://api.example.com/api/v1/",
    ],
)
def test_loopback_http_and_any_https_are_allowed(url: str) -> None:
    settings = Settings.from_config({"api_token": "mt_x", "api_url": url})
    assert settings.api_url == url.rstrip("/")


@pytest.mark.parametrize(("changes", "setting"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_settings_check_names_the_setting(changes: dict[str, Any], setting: str) -> None:
    """The tap's own check, without the SDK's JSON-schema validation in front of it."""
    config: dict[str, Any] = {"api_token": "mt_x", "api_url": "https://api.example.com/api/v1"}
    for key, value in changes.items():
        if value is REMOVE:
            config.pop(key, None)
        else:
            config[key] = value
    with pytest.raises(ConfigError) as caught:
        Settings.from_config(config)
    message = str(caught.value)
    assert message.startswith(f"Setting {setting} ")
    assert "\n" not in message


@pytest.mark.parametrize("suffix", ["", "/api/v2"])
def test_wrong_api_url_path_points_to_the_setting(
    sandbox: Sandbox, tmp_path: Path, suffix: str
) -> None:
    """A base URL without (or with the wrong) version path: every endpoint answers 404.

    "GET /me answered 404 (not found or not available yet)" sends the user looking for
    a missing resource; /me always exists, so its 404 means api_url is wrong.
    """
    config = tap_config(sandbox)
    config["api_url"] = sandbox.base_url.removesuffix("/api/v1") + suffix
    for args in ((), ("--test",)):
        result = run_cli(tmp_path, config, *args)
        assert result.returncode != 0
        assert_no_traceback(result)
        assert "api_url" in result.error_lines[-1], result.error_lines

"""Logs a person reads: no METRIC flood by default, one line per event, a closing summary."""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from tap_conversations.bookmarks import PROCESSING_ALLOWANCE
from tap_conversations.timestamps import parse_timestamp
from tests.harness import catalog_selecting, tap_config
from tests.helpers import cli_env, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sandbox import Sandbox

STREAMS = ["conversations", "transcripts", "insights", "summaries"]
SUMMARY = re.compile(
    r"Sync done in \d+ s: (?P<conversations>\d+) conversations; records: (?P<records>.*); "
    r"(?P<requests>\d+) requests; quota used: (?P<quota>\d+) conversations; "
    r"(?P<pending>\d+) still processing\.$"
)


def sync(sandbox: Sandbox, tmp_path: Path, **settings: Any) -> tuple[int, str]:
    config = tap_config(sandbox, **settings)
    result = run_cli(tmp_path, config, catalog=catalog_selecting(config, STREAMS))
    return result.returncode, result.stderr


def test_a_sync_logs_no_metric_lines_and_ends_with_one_summary(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    returncode, stderr = sync(sandbox, tmp_path)
    assert returncode == 0
    lines = stderr.splitlines()
    assert not [line for line in lines if "METRIC" in line]
    assert not [line for line in lines if "Beginning sync of 'transcripts'" in line]
    summaries = [m for m in (SUMMARY.search(line) for line in lines) if m]
    assert len(summaries) == 1
    summary = summaries[0]
    ids = [c["id"] for c in sandbox.listed_conversations()]
    assert int(summary["conversations"]) == len(ids)
    assert summary["records"] == (
        f"conversations {len(ids)}, "
        f"insights {sum(len(sandbox.insights(c)) for c in ids)}, "
        f"summaries {sum(1 for c in ids if sandbox.summary(c) is not None)}, "
        f"transcripts {sum(1 for c in ids if sandbox.transcript(c) is not None)}"
    )
    assert int(summary["requests"]) == sandbox.counters.requests()
    assert int(summary["quota"]) == sandbox.counters.quota_used()
    # Without a summary and younger than the processing allowance: still pending.
    allowance_start = dt.datetime.now(dt.timezone.utc) - PROCESSING_ALLOWANCE
    assert int(summary["pending"]) == sum(
        1
        for c in sandbox.listed_conversations()
        if sandbox.summary(c["id"]) is None and parse_timestamp(c["date"]) > allowance_start
    )
    assert lines[-1].endswith(summary.group(0))


def test_log_metrics_brings_the_sdks_metric_lines_back(sandbox: Sandbox, tmp_path: Path) -> None:
    returncode, stderr = sync(sandbox, tmp_path, log_metrics=True)
    assert returncode == 0
    assert '"metric":"record_count"' in stderr


def test_discover_with_an_api_url_without_the_version_path_warns(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = tap_config(sandbox)
    config["api_url"] = sandbox.base_url.removesuffix("/api/v1")
    result = run_cli(tmp_path, config, "--discover")
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "Could not check" in line]
    assert len(warnings) == 1
    assert "does not point at the API" in warnings[0]
    assert "ending in /api/v1" in warnings[0]


def test_help_describes_test_as_this_tap_does_it(tmp_path: Path) -> None:
    result = run_cli(tmp_path, None, "--help", env=cli_env())
    assert result.returncode == 0
    assert "report the scopes it lacks" in " ".join(result.stdout.split())
    assert "sync a single record for each stream" not in result.stdout


#: The SDK's lines a sync no longer shows at INFO (sdk_internals.SDK_NOISE).
NOISE = (
    "Skipping parse of env var settings",
    "as child stream to",
    "An unhandled error occurred while syncing",
    "Starting incremental sync of",
)


def _loggers(stderr: str) -> set[str]:
    return {line.split(" | ")[2].strip() for line in stderr.splitlines() if line.count(" | ") >= 3}


def test_a_sync_logs_under_one_name_without_the_sdks_noise(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    returncode, stderr = sync(sandbox, tmp_path)
    assert returncode == 0
    assert not [line for line in stderr.splitlines() if any(n in line for n in NOISE)]
    loggers = _loggers(stderr)
    assert "tap_conversations" in loggers
    assert {name.split(".")[0] for name in loggers} == {"tap_conversations"}, loggers


def test_at_debug_the_sdks_lines_are_there_as_debug(sandbox: Sandbox, tmp_path: Path) -> None:
    config = tap_config(sandbox)
    result = run_cli(
        tmp_path,
        config,
        catalog=catalog_selecting(config, STREAMS),
        env=cli_env(TAP_CONVERSATIONS_LOGLEVEL="DEBUG"),
    )
    assert result.returncode == 0
    shown = [line for line in result.stderr.splitlines() if any(n in line for n in NOISE)]
    assert len(shown) == 7, shown  # env, five children, the conversations bookmark
    assert all("| DEBUG" in line for line in shown), shown


def test_an_error_is_not_preceded_by_the_sdks_generic_line(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    returncode, stderr = sync(sandbox, tmp_path, api_token="mt_not_a_token")  # noqa: S106
    assert returncode == 1
    lines = [line for line in stderr.splitlines() if " | " in line]
    assert "An unhandled error occurred" not in stderr
    assert [line.split(" | ")[1].strip() for line in lines].count("ERROR") == 1
    assert lines[-1].endswith(
        "The API rejected the token (HTTP 401 on GET /me): it is wrong, expired or revoked. "
        "Create or copy a token in the app under Settings → REST API and set api_token "
        "(TAP_CONVERSATIONS_API_TOKEN)."
    )
    assert lines[-1].split(" | ")[2].strip() == "tap_conversations"

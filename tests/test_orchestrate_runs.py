# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""orchestrate/meltano_runs.py without Dagster: the classifier and an account's environment.

The classifier reads the tap's lines in Meltano's output, so its patterns are checked
against the tap's own messages, made by the tap's code (its settings check, its error
classes, its summary line) or read from its source: a reworded message fails here, not
in a fleet that retries a 401 all night. Meltano prints a plugin's line inside its own
log line, which `in_meltano` imitates.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from orchestrate.meltano_runs import (
    PERMANENT_LINES,
    QUOTA_LINE,
    SCHEMA_VARIABLE,
    SUMMARY_LINE,
    TOKEN,
    AccountError,
    RunOutcome,
    Verdict,
    account_settings,
    meltano_command,
    run_account,
    run_environment,
    schema_for,
)
from tap_conversations.errors import (
    AuthenticationError,
    ConfigError,
    QuotaExceededError,
    StateError,
)
from tap_conversations.run_summary import RunSummary
from tap_conversations.settings import Settings

if TYPE_CHECKING:
    from tap_conversations.client import ClientStats

ROOT = Path(__file__).resolve().parent.parent
SETTINGS_SOURCE = ROOT / "tap_conversations" / "settings.py"
TAP = Path(sys.executable).with_name("tap-conversations")
TOKEN_VALUE = "mt_sandbox_demo_token"  # noqa: S105 - the sandbox's public demo token


def in_meltano(message: str, level: str = "error") -> str:
    """`message` as `meltano run` prints a plugin's line (its own fields after it)."""
    return (
        f"2026-11-27T12:03:35.195927Z [{level:<9}] {message} cmd_type=elb consumer=False "
        "job_name=dev:tap-conversations-to-target-postgres:acme name=tap-conversations "
        "producer=True run_id=0b6c2f2e stdio=stderr string_id=tap-conversations"
    )


def config_error(config: dict[str, Any]) -> str:
    """The tap's own message for a bad `config`."""
    base = {"api_token": TOKEN_VALUE, "api_url": "https://api.example.com/api/v1"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_config({**base, **config})
    return str(caught.value)


BAD_CONFIGS: dict[str, dict[str, Any]] = {
    "token missing": {"api_token": None},
    "token mis-pasted": {"api_token": "mt_abc def"},
    "url missing": {"api_url": None},
    "url whitespace": {"api_url": "https://api.example.com/api/v1 x"},
    "url not http": {"api_url": "ftp://api.example.com/api/v1"},
    "url credentials": {"api_url": "https://u:p@api.example.com/api/v1"},
    "url plain http": {"api_url": "http://api.example.com/api/v1"},
    "start_date": {"start_date": "yesterday"},
    "int": {"max_requests_per_minute": "fast"},
    "list": {"mediums": "call"},
    "uuids": {"user_ids": ["not-an-id"]},
    "mediums": {"mediums": ["fax"]},
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_every_settings_error_of_the_tap_is_permanent(case: str) -> None:
    message = config_error(BAD_CONFIGS[case])
    assert message.startswith("Setting "), message
    outcome = RunOutcome.from_output(1, in_meltano(message))
    assert outcome.verdict is Verdict.PERMANENT, message
    assert outcome.permanent_line is not None
    assert not outcome.verdict.retry_now


def test_every_settings_message_in_the_source_is_recognised() -> None:
    """Each `Setting <name> <verb>` the tap's source can say, seen by a pattern.

    The cases above make the messages; this catches one added without a case.
    """
    source = SETTINGS_SOURCE.read_text(encoding="utf-8")
    found = re.findall(r'"Setting (\{name\}|[a-z_]+) ([a-z]+)\b', source)
    assert len(found) >= 10, found
    for name, verb in found:
        line = in_meltano(f"Setting {'user_ids' if name == '{name}' else name} {verb} ...")
        assert any(p.search(line) for p in PERMANENT_LINES), f"not recognised: {name} {verb}"


def test_a_state_of_another_account_and_a_rejected_token_are_permanent() -> None:
    state = in_meltano(
        "The state was written for account 'a1…', but the token reads account 'b2…' "
        f"('Globex'): continuing from it would skip that account's conversations. "
        f"{StateError.FIX}"
    )
    assert RunOutcome.from_output(1, state).verdict is Verdict.PERMANENT
    rejected = in_meltano(str(AuthenticationError("/account")))
    assert RunOutcome.from_output(1, rejected).verdict is Verdict.PERMANENT


def test_the_quota_stop_is_a_success_and_a_later_failure_is_not_retried_now() -> None:
    # The tap's warning: the error's text, then what streams.py appends.
    warning = in_meltano(
        f"{QuotaExceededError(12 * 3600)} Stopped with 36 of 1034 conversations to fetch "
        "left; the state saved lets the next run resume there without fetching the others "
        "again. Other streams continue; the run exits 0.",
        level="warning",
    )
    stopped = RunOutcome.from_output(0, warning)
    assert stopped.verdict is Verdict.QUOTA
    assert stopped.verdict.succeeded
    assert stopped.quota_resets_in_hours == pytest.approx(12.0)
    failed = RunOutcome.from_output(1, warning + "\n" + in_meltano("Connection reset"))
    assert failed.verdict is Verdict.FAILED_AFTER_QUOTA
    assert not failed.verdict.retry_now
    # The quota answer without a Retry-After: seen, no reset time.
    bare = RunOutcome.from_output(0, in_meltano(str(QuotaExceededError(None)), "warning"))
    assert bare.verdict is Verdict.QUOTA
    assert bare.quota_resets_in_hours is None
    assert QUOTA_LINE.search(str(QuotaExceededError(60.0)))


def test_the_summary_line_is_the_taps_without_meltanos_fields() -> None:
    stats = cast("ClientStats", type("Stats", (), {"requests": 3054, "conversations_touched": 9}))
    summary = RunSummary(pending=0)
    for _ in range(9):
        summary.count("conversations")
    line = summary.line(stats)
    outcome = RunOutcome.from_output(0, in_meltano(line, "info"))
    assert outcome.summary == line
    assert SUMMARY_LINE.search(line)
    assert outcome.verdict is Verdict.DONE


def test_anything_else_is_transient() -> None:
    outcome = RunOutcome.from_output(1, in_meltano("Connection refused"))
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.verdict.retry_now
    assert RunOutcome.from_output(143, "").verdict is Verdict.TRANSIENT


def test_an_account_without_a_token_is_refused(tmp_path: Path) -> None:
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "TAP_CONVERSATIONS_MEDIUMS").write_text('["call"]\n')
    with pytest.raises(AccountError, match=f"no {TOKEN}"):
        account_settings(tmp_path, "acme")
    (tmp_path / "acme" / TOKEN).write_text("\n")  # an empty Secret key
    with pytest.raises(AccountError, match=f"no {TOKEN}"):
        account_settings(tmp_path, "acme")
    (tmp_path / "acme" / TOKEN).write_text(f"{TOKEN_VALUE}\n")
    assert account_settings(tmp_path, "acme") == {
        TOKEN: TOKEN_VALUE,
        "TAP_CONVERSATIONS_MEDIUMS": '["call"]',
    }


def test_the_workers_token_never_reaches_an_accounts_run() -> None:
    worker = {
        "PATH": "/usr/bin:/bin",
        TOKEN: "mt_the_workers_own_token",
        "TAP_CONVERSATIONS_API_URL": "https://api.example.com/api/v1",
        "MELTANO_RUN_FULL_REFRESH": "true",
        SCHEMA_VARIABLE: "public",
    }
    with_token = run_environment("acme", {TOKEN: "mt_acme"}, worker)
    assert with_token[TOKEN] == "mt_acme"
    assert with_token["TAP_CONVERSATIONS_API_URL"] == worker["TAP_CONVERSATIONS_API_URL"]
    assert with_token[SCHEMA_VARIABLE] == schema_for("acme") == "conversations_acme"
    assert "MELTANO_RUN_FULL_REFRESH" not in with_token
    without = run_environment("acme", {}, worker)
    assert TOKEN not in without
    assert "mt_the_workers_own_token" not in without.values()


def test_a_run_without_its_token_fails_permanently_in_the_real_tap(tmp_path: Path) -> None:
    """The real CLI, given what an account without a token would get: no worker token.

    (`account_settings` refuses such an account first; this is the second line.)
    """
    if not TAP.is_file():
        pytest.fail(f"{TAP} missing: the project's venv has the tap's console script")
    worker = {"PATH": "/usr/bin:/bin", TOKEN: "mt_the_workers_own_token"}
    env = run_environment("acme", {"TAP_CONVERSATIONS_API_URL": "http://127.0.0.1:9/v1"}, worker)
    seen: list[str] = []
    outcome = run_account(
        [str(TAP), "--config", "ENV"], env, tmp_path, on_line=seen.append, timeout_seconds=60
    )
    assert outcome.returncode == 2, seen
    assert outcome.verdict is Verdict.PERMANENT
    assert outcome.permanent_line is not None
    assert "Setting api_token is missing" in outcome.permanent_line
    assert not any("mt_the_workers_own_token" in line for line in seen)


def test_the_command_is_one_definition_with_the_accounts_suffix() -> None:
    assert meltano_command("meltano", "acme") == [
        "meltano",
        "run",
        "--state-id-suffix=acme",
        "tap-conversations",
        "target-postgres",
    ]
    with pytest.raises(AccountError):
        meltano_command("meltano", "a-b")


#: PostgreSQL's default `max_connections`, less its default
#: `superuser_reserved_connections`: what normal roles may open.
POSTGRES_DEFAULT_CONNECTIONS = 100 - 3
#: Connections one account run holds (docs/SCALING.md): target-postgres's 12 and
#: Meltano's state 1.
CONNECTIONS_PER_RUN = 12 + 1


def test_the_run_limit_fits_postgresqls_default_connections() -> None:
    """Copied as it is, dagster.yaml must not start more runs than the warehouse accepts."""
    import yaml  # noqa: PLC0415  # only this test reads YAML

    orchestrate = Path(__file__).resolve().parent.parent / "orchestrate"
    instance = yaml.safe_load((orchestrate / "dagster.yaml").read_text(encoding="utf-8"))
    runs = instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert runs * CONNECTIONS_PER_RUN <= POSTGRES_DEFAULT_CONNECTIONS - 10  # Dagster, people
    readme = (orchestrate / "README.md").read_text(encoding="utf-8")
    assert f"run limits ({runs} at once" in readme

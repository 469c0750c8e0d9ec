# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""One account's `meltano run`: its settings, its command, and what its end means.

Standard library only, so that the orchestrator's venv (Dagster) and the project's
tests (without Dagster) share it. An account is a key (the Dagster partition, the
state id suffix and the schema's name) and a directory of settings:

    <accounts dir>/<key>/TAP_CONVERSATIONS_API_TOKEN      (required)
    <accounts dir>/<key>/TAP_CONVERSATIONS_API_URL        (optional: else the worker's)
    <accounts dir>/<key>/TAP_CONVERSATIONS_MEDIUMS        (optional filters, JSON arrays)

one file per variable, its content the value: what a Kubernetes Secret mounted as a
volume gives (its `..data` entries are skipped), and what a person writes by hand.
"""

from __future__ import annotations

import enum
import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

#: An account key: lower-case letters, digits and `_`, starting with a letter. It is
#: used unquoted as a PostgreSQL schema name (63 characters at most, with the prefix)
#: and as Meltano's state id suffix; `-` is refused so `a-b` and `a_b` cannot share a
#: schema.
ACCOUNT_KEY = re.compile(r"[a-z][a-z0-9_]{0,48}")
#: Each account's tables are in the schema `conversations_<key>`.
SCHEMA_PREFIX = "conversations_"
TOKEN = "TAP_CONVERSATIONS_API_TOKEN"  # noqa: S105 - a variable's name, not a secret
#: What an account's directory may set: the tap's settings, nothing else.
SETTING_NAME = re.compile(r"TAP_CONVERSATIONS_[A-Z0-9_]+")
#: The worker's variables an account run never inherits: the token (an account without
#: one must fail, not run with another's) and anything steering Meltano's run itself.
NEVER_INHERITED = (TOKEN,)
NEVER_INHERITED_PREFIXES = ("MELTANO_RUN_",)
SCHEMA_VARIABLE = "TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"

#: The tap's warning when the daily quota stopped it (it then exits 0 with its state).
QUOTA_LINE = re.compile(
    r"The token's daily conversation quota is used up(?: \(resets in (?P<hours>[0-9.]+) h\))?"
)
#: The tap's closing line (`Sync done in 95 s: 91 conversations; ...`).
SUMMARY_LINE = re.compile(r"Sync done in [^\n]*?(?=\s+cmd_type=|\s*$)")
#: Lines of the tap's errors that the same run would meet again: settings (exit 2),
#: a state it cannot use (exit 2), a rejected token (HTTP 401). Meltano ends with exit
#: 1 whatever the tap's code was, so the run is classified by its lines.
PERMANENT_LINES = (
    re.compile(r"\bSetting [a-z_]+ (is|looks|must|uses|has|holds|names|cannot|may)\b"),
    re.compile(r"Pass the state this tap wrote for this account"),
    re.compile(r"The API rejected the token \(HTTP 401"),
)
TAIL_LINES = 60


class AccountError(ValueError):
    """An account key or directory that cannot be run."""


def check_key(key: str) -> str:
    """`key` if it can name an account.

    Raises:
        AccountError: Not a valid key.
    """
    if not ACCOUNT_KEY.fullmatch(key):
        msg = (
            f"Account key {key!r} is not usable: use lower-case letters, digits and _ "
            "(starting with a letter, at most 49 characters); it names a PostgreSQL "
            "schema and a Meltano state id."
        )
        raise AccountError(msg)
    return key


def schema_for(key: str) -> str:
    """The PostgreSQL schema that holds `key`'s tables."""
    return SCHEMA_PREFIX + check_key(key)


def list_accounts(accounts_dir: Path) -> tuple[list[str], list[str]]:
    """(valid keys, refused names) of the account directories, sorted."""
    valid: list[str] = []
    refused: list[str] = []
    if not accounts_dir.is_dir():
        return valid, refused
    for entry in sorted(accounts_dir.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        (valid if ACCOUNT_KEY.fullmatch(entry.name) else refused).append(entry.name)
    return valid, refused


def account_settings(accounts_dir: Path, key: str) -> dict[str, str]:
    """The account's variables, read from its directory.

    Raises:
        AccountError: No directory, a file that is not a tap setting, or no token.
    """
    directory = accounts_dir / check_key(key)
    if not directory.is_dir():
        msg = f"Account {key}: no settings directory {directory}."
        raise AccountError(msg)
    settings: dict[str, str] = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # a mounted Secret's ..data links, editor files
        if not SETTING_NAME.fullmatch(path.name):
            msg = (
                f"Account {key}: {path.name} is not a tap setting (TAP_CONVERSATIONS_...); "
                "an account directory holds the tap's settings only."
            )
            raise AccountError(msg)
        settings[path.name] = path.read_text(encoding="utf-8").strip()
    if not settings.get(TOKEN):
        msg = f"Account {key}: no {TOKEN} in {directory}."
        raise AccountError(msg)
    return settings


def run_environment(
    key: str, settings: Mapping[str, str], worker_env: Mapping[str, str]
) -> dict[str, str]:
    """The run's environment: the worker's, minus any token, plus the account's.

    The worker's environment carries what all accounts share (the warehouse's
    TARGET_POSTGRES_*, MELTANO_DATABASE_URI for the shared state, a common
    TAP_CONVERSATIONS_API_URL); the account's directory overrides it; the schema is
    always the account's.
    """
    env = {
        name: value
        for name, value in worker_env.items()
        if name not in NEVER_INHERITED and not name.startswith(NEVER_INHERITED_PREFIXES)
    }
    env.update(settings)
    env[SCHEMA_VARIABLE] = schema_for(key)
    return env


def meltano_command(meltano: str, key: str, loader: str = "target-postgres") -> list[str]:
    """`meltano run --state-id-suffix=<key> tap-conversations <loader>`."""
    return [meltano, "run", f"--state-id-suffix={check_key(key)}", "tap-conversations", loader]


class Verdict(enum.Enum):
    """What a run's end means for the orchestrator."""

    #: Everything due was synced.
    DONE = "done"
    #: The daily quota stopped the tap, which saved its state and exited 0: a success;
    #: the next run after the quota's reset (UTC midnight) resumes there.
    QUOTA = "quota"
    #: Failed after the quota was spent: a retry now would stop at the quota again.
    FAILED_AFTER_QUOTA = "failed_after_quota"
    #: Failed in a way the same run meets again (settings, state, token): no retry.
    PERMANENT = "permanent"
    #: Anything else (network, a crash, SIGTERM): retried with backoff.
    TRANSIENT = "transient"

    @property
    def succeeded(self) -> bool:
        """Whether the run counts as done (its state and rows are saved)."""
        return self in {Verdict.DONE, Verdict.QUOTA}

    @property
    def retry_now(self) -> bool:
        """Whether retrying soon can help."""
        return self is Verdict.TRANSIENT


@dataclass
class RunOutcome:
    """What one `meltano run` ended with."""

    returncode: int
    seconds: float
    quota_seen: bool = False
    quota_resets_in_hours: float | None = None
    summary: str | None = None
    permanent_line: str | None = None
    tail: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        """Classify the end (see Verdict)."""
        if self.returncode == 0:
            return Verdict.QUOTA if self.quota_seen else Verdict.DONE
        if self.quota_seen:
            return Verdict.FAILED_AFTER_QUOTA
        if self.permanent_line is not None:
            return Verdict.PERMANENT
        return Verdict.TRANSIENT

    def observe(self, line: str) -> None:
        """Take in one line of the run's output."""
        self.tail.append(line)
        del self.tail[:-TAIL_LINES]
        quota = QUOTA_LINE.search(line)
        if quota is not None:
            self.quota_seen = True
            if quota.group("hours"):
                self.quota_resets_in_hours = float(quota.group("hours"))
        summary = SUMMARY_LINE.search(line)
        if summary is not None:
            self.summary = summary.group(0).strip()
        if self.permanent_line is None and any(p.search(line) for p in PERMANENT_LINES):
            self.permanent_line = line.strip()

    @classmethod
    def from_output(cls, returncode: int, output: str, seconds: float = 0.0) -> RunOutcome:
        """The outcome of a finished run's whole output (for tests and replays)."""
        outcome = cls(returncode=returncode, seconds=seconds)
        for line in output.splitlines():
            outcome.observe(line)
        return outcome


def run_account(
    command: list[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    on_line: Callable[[str], None] = lambda _line: None,
    timeout_seconds: float | None = None,
) -> RunOutcome:
    """Run `command`, passing each output line to `on_line`; classify its end.

    On timeout the run gets SIGTERM (Meltano passes it on; the tap saves its state and
    exits 143) and is classified as transient.
    """
    started = time.monotonic()
    outcome = RunOutcome(returncode=-1, seconds=0.0)
    process = subprocess.Popen(  # noqa: S603 - meltano with fixed arguments
        command,
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    timer = threading.Timer(timeout_seconds, process.terminate) if timeout_seconds else None
    if timer is not None:
        timer.start()
    try:
        assert process.stdout is not None  # noqa: S101 - Popen with stdout=PIPE
        for raw in process.stdout:
            line = raw.rstrip("\n")
            outcome.observe(line)
            on_line(line)
        outcome.returncode = process.wait()
    finally:
        if timer is not None:
            timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    outcome.seconds = time.monotonic() - started
    return outcome

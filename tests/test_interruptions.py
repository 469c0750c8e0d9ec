"""A sync killed at random points and resumed from its last STATE loses nothing.

The real CLI runs against a sandbox, paced so that a sync lasts a few seconds, and is
killed (SIGTERM or SIGKILL) at seeded points: after k STATE lines, after k records,
after k output lines of any kind, twice in a row. Kill points are counted in output
lines, never in seconds, so a busy machine moves them nowhere. Like a target, the test
keeps only what came before the last STATE line of a killed run (a target commits at
STATE), re-runs with that state, and checks that the union of what it kept equals the
sandbox's truth for conversations, transcripts and insights, exact ids.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from tests.harness import catalog_selecting, tap_config
from tests.helpers import TAP_EXE, cli_env

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.sandbox import Sandbox

STREAMS = ("conversations", "transcripts", "insights")
KEYS = {"conversations": "id", "transcripts": "conversation_id", "insights": "id"}
CONVERSATIONS = 100
#: ~85 requests at this pace: a sync of about 2.5 s.
PACE = 2000
SEED = 20261124


@dataclass
class Kill:
    """When to kill a run: after `states` STATE lines, `records` RECORD lines, `lines`
    output lines, or `bookmarks` STATE lines that hold the conversations bookmark."""

    sig: signal.Signals
    states: int | None = None
    records: int | None = None
    lines: int | None = None
    bookmarks: int | None = None

    def due(self, lines: list[str]) -> bool:
        """Whether the run has reached the kill point."""
        if self.lines is not None:
            return len(lines) >= self.lines
        if self.bookmarks is not None:
            return (
                sum(
                    1
                    for line in lines
                    if '"type":"STATE"' in line and '"replication_key_value"' in line
                )
                >= self.bookmarks
            )
        kind, wanted = ("STATE", self.states) if self.states is not None else ("RECORD", 0)
        if self.records is not None:
            wanted = self.records
        return sum(1 for line in lines if f'"type":"{kind}"' in line) >= (wanted or 0)


@dataclass
class Run:
    """One CLI run: the complete lines it printed, how it ended."""

    lines: list[str]
    returncode: int
    killed: bool
    seconds: float
    messages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for line in self.lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # the line a kill cut in half
            if isinstance(message, dict):
                self.messages.append(message)

    def committed(self) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """(records up to the last STATE, that STATE's value): what a target keeps."""
        last = max((i for i, m in enumerate(self.messages) if m["type"] == "STATE"), default=-1)
        kept = self.messages[: last + 1]
        records = [m for m in kept if m["type"] == "RECORD"]
        state = self.messages[last]["value"] if last >= 0 else None
        return records, state


def run_until(
    workdir: Path, config: dict[str, Any], state: dict[str, Any] | None, kill: Kill | None
) -> Run:
    """Run the CLI; kill it at `kill` (None: let it finish)."""
    (workdir / "config.json").write_text(json.dumps(config))
    (workdir / "catalog.json").write_text(json.dumps(catalog_selecting(config, STREAMS)))
    command = [TAP_EXE, "--config", "config.json", "--catalog", "catalog.json"]
    if state is not None:
        (workdir / "state.json").write_text(json.dumps(state))
        command += ["--state", "state.json"]
    lines: list[str] = []
    with (workdir / "stderr.txt").open("ab") as stderr:
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603  # our own executable
            command, cwd=workdir, stdout=subprocess.PIPE, stderr=stderr, env=cli_env()
        )
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            lines.extend(raw.decode("utf-8", errors="replace").rstrip("\n") for raw in stdout)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        killed = False
        while process.poll() is None:
            if kill is not None and kill.due(list(lines)):
                process.send_signal(kill.sig)
                killed = True
                break
            time.sleep(0.005)
        returncode = process.wait(timeout=120)
        reader.join(timeout=10)
    return Run(lines, returncode, killed, time.monotonic() - started)


def truth(sandbox: Sandbox) -> dict[str, set[str]]:
    ids = [c["id"] for c in sandbox.listed_conversations()]
    return {
        "conversations": set(ids),
        "transcripts": {c for c in ids if sandbox.transcript(c) is not None},
        "insights": {i["id"] for c in ids for i in sandbox.insights(c)},
    }


def kept_ids(records: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {stream: set() for stream in STREAMS}
    for message in records:
        stream = message["stream"]
        if stream in out:
            out[stream].add(message["record"][KEYS[stream]])
    return out


def _scenarios() -> list[tuple[str, list[Kill]]]:
    rng = random.Random(SEED)
    term, kill9 = signal.SIGTERM, signal.SIGKILL
    return [
        ("sigkill_after_first_state", [Kill(kill9, states=1)]),
        ("sigterm_after_random_state", [Kill(term, states=rng.randint(2, 3))]),
        ("sigkill_mid_chunk", [Kill(kill9, records=rng.randint(30, 45))]),
        ("sigterm_at_random_line", [Kill(term, lines=rng.randint(40, 160))]),
        (
            "killed_twice",
            [
                Kill(kill9, lines=rng.randint(20, 120)),
                Kill(term, states=rng.randint(1, 2)),
            ],
        ),
        ("sigkill_before_any_state", [Kill(kill9, records=3)]),
    ]


SCENARIOS = _scenarios()


@pytest.fixture(scope="module")
def paced_sandbox() -> Iterator[Sandbox]:
    from tests.sandbox import Sandbox  # noqa: PLC0415

    # One request per pace slot: the window never has room for a burst, the tap paces.
    with Sandbox(
        seed=5, conversations=CONVERSATIONS, rate_limit=1, rate_window_seconds=60 / PACE
    ) as sb:
        yield sb


@pytest.mark.parametrize(
    "kills", [kills for _, kills in SCENARIOS], ids=[name for name, _ in SCENARIOS]
)
def test_killed_sync_resumes_without_losing_anything(
    paced_sandbox: Sandbox, tmp_path: Path, kills: list[Kill]
) -> None:
    sb = paced_sandbox
    config = tap_config(sb, max_requests_per_minute=PACE)
    expected = truth(sb)
    assert all(expected.values()), "the sandbox holds data for every stream"

    kept: dict[str, set[str]] = {stream: set() for stream in STREAMS}
    state: dict[str, Any] | None = None
    for kill in kills:
        run = run_until(tmp_path, config, state, kill)
        assert run.killed, f"the run ended (rc {run.returncode}) before the kill point {kill}"
        # SIGTERM: the tap writes a last STATE and exits 128 + 15 (see test below).
        assert run.returncode in (128 + signal.SIGTERM, -signal.SIGTERM, -signal.SIGKILL), (
            run.returncode
        )
        records, last_state = run.committed()
        for stream, ids in kept_ids(records).items():
            kept[stream] |= ids
        state = last_state or state  # no STATE yet: run again from the previous one

    final = run_until(tmp_path, config, state, None)
    assert final.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    records, _ = final.committed()
    for stream, ids in kept_ids(records).items():
        kept[stream] |= ids

    for stream in STREAMS:
        missing = expected[stream] - kept[stream]
        extra = kept[stream] - expected[stream]
        assert not missing, f"{stream}: {len(missing)} lost across the interruption"
        assert not extra, f"{stream}: {len(extra)} records that are not in the sandbox"
    # The resumed run did not start over when the state held a conversations bookmark.
    if state is not None and "replication_key_value" in state["bookmarks"]["conversations"]:
        final_ids = kept_ids(records)["conversations"]
        assert len(final_ids) < len(expected["conversations"])


def test_state_after_a_kill_is_valid_json_the_tap_accepts(
    paced_sandbox: Sandbox, tmp_path: Path
) -> None:
    """The last STATE of a SIGKILLed run is complete and is accepted by `--state`.

    Killed once a STATE holding the conversations bookmark is out (the children's STATE
    lines of a chunk come before it), so what was committed is known, whatever the load.
    """
    config = tap_config(paced_sandbox, max_requests_per_minute=PACE)
    run = run_until(tmp_path, config, None, Kill(signal.SIGKILL, bookmarks=1))
    _, state = run.committed()
    assert state is not None
    bookmark = state["bookmarks"]["conversations"]
    assert bookmark["replication_key"] == "date"
    assert bookmark["replication_key_value"]
    again = run_until(tmp_path, config, state, Kill(signal.SIGKILL, records=1))
    assert again.killed
    first = again.messages[0]
    assert first["type"] == "STATE"
    assert (
        first["value"]["bookmarks"]["conversations"]["replication_key_value"]
        == (bookmark["replication_key_value"])
    )
    assert any(m["type"] == "RECORD" for m in again.messages)


def test_sigterm_ends_with_the_last_state_and_a_failing_exit_code(
    paced_sandbox: Sandbox, tmp_path: Path
) -> None:
    """A SIGTERMed sync (a scheduler's timeout) is not a success.

    The SDK's own handler writes a last STATE (good: the next run resumes there) and
    then exits 0, so a scheduler would record the interrupted sync as a complete one.
    The tap keeps the STATE and exits 128 + 15, as a shell would report it.
    """
    config = tap_config(paced_sandbox, max_requests_per_minute=PACE)
    run = run_until(tmp_path, config, None, Kill(signal.SIGTERM, states=3))
    assert run.killed
    assert run.messages[-1]["type"] == "STATE"
    assert run.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize(
    "bookmark",
    [
        {"replication_key": "date", "replication_key_value": "yesterday"},
        {"replication_key_value": "2026-01-01T00:00:00Z", "seen": ["0b7c2a4e1111"]},
        {"replication_key_value": "2026-01-01T00:00:00Z", "pending": {"x": "soon"}},
    ],
    ids=["bad_date", "seen_not_a_dict", "pending_bad_date"],
)
def test_unusable_state_is_one_clear_line(
    paced_sandbox: Sandbox, tmp_path: Path, bookmark: dict[str, Any]
) -> None:
    """A hand-edited or foreign state file: say which part is unusable, no traceback."""
    config = tap_config(paced_sandbox)
    state = {"bookmarks": {"conversations": bookmark}}
    run = run_until(tmp_path, config, state, None)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert run.returncode != 0
    assert "Traceback" not in stderr, stderr[-2000:]
    last_error = [line for line in stderr.splitlines() if "| ERROR" in line][-1]
    assert "state" in last_error.lower()

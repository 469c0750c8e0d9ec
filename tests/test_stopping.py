"""SIGTERM and SIGINT: the last line whole, the final STATE valid, the process gone at once.

The real CLI runs against the sandbox; the signal is sent at a point counted in output
(never after N seconds): in the middle of a 1,200-segment transcript record that the
tap is still writing (the pipe is full, so the write is blocked half-way), after the
first record while 32 fetches wait for the pace, or while the sandbox holds a request.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.termination import READER_GONE_EXIT
from tests.harness import catalog_selecting, tap_config
from tests.helpers import TAP_EXE, cli_env

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.sandbox import Sandbox

BIG_RECORD = b'{"type":"RECORD","stream":"transcripts"'
#: A transcript line of 1,200 segments is ~100 KiB, more than a pipe holds (64 KiB).
BIG_LINE_BYTES = 64 * 1024


class Run:
    """A CLI run whose stdout the test reads in chunks, so it can stop reading."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        streams: list[str],
        *,
        unbuffered: bool = True,
    ) -> None:
        (workdir / "config.json").write_text(json.dumps(config))
        (workdir / "catalog.json").write_text(json.dumps(catalog_selecting(config, streams)))
        self.stderr_path = workdir / "stderr.txt"
        self.out = b""
        with self.stderr_path.open("wb") as stderr:
            self.process = subprocess.Popen(  # noqa: S603  # our own executable
                [TAP_EXE, "--config", "config.json", "--catalog", "catalog.json"],
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=without_unbuffered(cli_env())
                if not unbuffered
                else cli_env(PYTHONUNBUFFERED="1"),
            )
        assert self.process.stdout is not None
        self._fd = self.process.stdout.fileno()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def read_until(self, done: Callable[[bytes], bool], chunk: int = 4096) -> None:
        """Read stdout in small chunks until `done(output so far)` or the end."""
        while not done(self.out):
            if not self._selector.select(timeout=60):
                pytest.fail("no output for 60 s")
            data = os.read(self._fd, chunk)
            if not data:
                return
            self.out += data

    def read_until_true(self, condition: Callable[[], bool]) -> None:
        """Keep reading stdout (so the tap never blocks on it) until `condition()` holds."""
        guard = time.monotonic() + 60  # a hang guard, not a timing assertion
        while not condition():
            if time.monotonic() > guard:
                pytest.fail("the condition did not hold within 60 s")
            if self._selector.select(timeout=0.05):
                data = os.read(self._fd, 1 << 16)
                if not data:
                    pytest.fail("the tap ended before the condition held")
                self.out += data

    def close_stdout(self) -> None:
        """Stop reading for good, as a target that died: the tap's writes now fail."""
        self._selector.unregister(self._fd)
        assert self.process.stdout is not None
        self.process.stdout.close()

    def finish(self) -> int:
        """Read to the end; the exit code (a hang guard, not a timing assertion)."""
        self.read_until(lambda _: False, chunk=1 << 16)
        return self.process.wait(timeout=60)

    @property
    def lines(self) -> list[bytes]:
        return self.out.split(b"\n")

    def stopped_by(self, sig: signal.Signals) -> list[dict[str, Any]]:
        """Read to the end and check the run ended as a signal ends it; its messages.

        Exit 128+signal, whole JSON lines only, a final STATE, and one log line.
        """
        assert self.finish() == 128 + sig
        lines = self.lines
        assert lines[-1] == b"", "the output ends with a whole line"
        messages = [json.loads(line) for line in lines[:-1]]  # every line is whole JSON
        assert messages[-1]["type"] == "STATE"
        assert self.stderr.count(f"Interrupted by signal {int(sig)};") == 1
        return messages

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")


def without_unbuffered(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "PYTHONUNBUFFERED"}


def inside_a_big_record(out: bytes) -> bool:
    """The output ends inside a transcript record already longer than a few chunks."""
    start = out.rfind(BIG_RECORD)
    return start >= 0 and b"\n" not in out[start:] and len(out) - start > 8192


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
@pytest.mark.parametrize(
    "unbuffered",
    [True, False],
    # Unbuffered (PYTHONUNBUFFERED=1, as container images set it), an interrupted write
    # returns short; buffered, Python finishes it. Both must end with whole lines.
    ids=["unbuffered-stdout", "buffered-stdout"],
)
def test_a_signal_during_a_large_record_never_cuts_a_line(
    sandbox: Sandbox, tmp_path: Path, sig: signal.Signals, *, unbuffered: bool
) -> None:
    run = Run(
        tmp_path, tap_config(sandbox), ["conversations", "transcripts"], unbuffered=unbuffered
    )
    run.read_until(inside_a_big_record)
    assert inside_a_big_record(run.out), "the sandbox's 1,200-segment transcript was written"
    # The tap is blocked half-way through writing that line: the pipe is full.
    run.process.send_signal(sig)

    messages = run.stopped_by(sig)
    big = [m for m in messages if m["type"] == "RECORD" and m["stream"] == "transcripts"]
    assert max(len(m["record"]["segments"]) for m in big) >= 1000
    assert "Gracefully shutting down" not in run.stderr
    assert "Traceback" not in run.stderr


def test_a_signal_with_fetches_queued_at_the_pace_ends_at_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.set_rate_limit(1, window_seconds=1.0)  # no room to burst on: the pace
    config = tap_config(sandbox, max_requests_per_minute=60, max_parallel_requests=32)
    run = Run(tmp_path, config, ["conversations"])
    # Three details answered: the pool's 32 threads are all waiting for the pace now
    # (waiting for the first chunk's RECORD lines took 25 s more at this pace).
    run.read_until_true(lambda: sandbox.counters.requests("/conversations/{id}") >= 3)
    sent_before = sandbox.counters.requests()
    run.process.send_signal(signal.SIGTERM)
    run.stopped_by(signal.SIGTERM)
    # 32 fetches were waiting for the pace (one a second). The old way out waited for
    # each in turn (about 32 s); now only the one already on the wire is answered, plus
    # one a second while the signal is on its way (a loaded machine may take 2 s).
    assert sandbox.counters.requests() - sent_before <= 3


def test_the_final_state_resumes_to_exactly_the_sandboxs_conversations(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    streams = ["conversations", "transcripts"]
    first = Run(tmp_path, tap_config(sandbox), streams)
    first.read_until(inside_a_big_record)
    first.process.send_signal(signal.SIGTERM)
    messages = first.stopped_by(signal.SIGTERM)
    state = messages[-1]["value"]
    committed = {
        m["record"]["id"]
        for m in messages
        if m["type"] == "RECORD" and m["stream"] == "conversations"
    }

    (tmp_path / "state.json").write_text(json.dumps(state))
    second = subprocess.run(  # noqa: S603
        [TAP_EXE, "--config", "config.json", "--catalog", "catalog.json", "--state", "state.json"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env=cli_env(),
        timeout=120,
    )
    assert second.returncode == 0, second.stderr[-2000:]
    resumed = {
        m["record"]["id"]
        for m in map(json.loads, second.stdout.splitlines())
        if m["type"] == "RECORD" and m["stream"] == "conversations"
    }
    assert committed | resumed == {c["id"] for c in sandbox.listed_conversations()}
    assert resumed != committed | resumed, "the second run resumed, it did not start over"


def test_a_request_on_the_wire_does_not_hold_the_exit(sandbox: Sandbox, tmp_path: Path) -> None:
    sandbox.set_rate_limit(1, window_seconds=1.0)  # no room to burst on: the pace
    config = tap_config(
        sandbox, max_requests_per_minute=60, max_parallel_requests=32, request_timeout_seconds=600
    )
    run = Run(tmp_path, config, ["conversations"])
    details = "/conversations/{id}"
    # The details are fetched by the fetch pool's worker threads, which the main
    # thread waits for. From the first one on, the sandbox holds each detail request
    # for 10 minutes.
    run.read_until_true(lambda: sandbox.counters.requests(details) >= 1)
    sandbox.faults.endpoints = {details}
    sandbox.faults.slow_rate, sandbox.faults.slow_seconds = 1.0, 600
    run.read_until_true(lambda: sandbox.counters.in_flight >= 1)
    run.process.send_signal(signal.SIGTERM)

    run.stopped_by(signal.SIGTERM)
    # Gone while the sandbox still holds the requests: the exit waited for no answer
    # (the old way out waited for each, up to request_timeout_seconds).
    assert sandbox.counters.in_flight >= 1


def test_a_signal_waiting_for_a_line_ends_the_run_when_the_reader_goes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # A stop often ends the target too: the line the signal waits for then never
    # completes, its write fails on the closed pipe, and the signal must still win
    # (not the write's error: exit 1, after the fetches already started).
    run = Run(tmp_path, tap_config(sandbox), ["conversations", "transcripts"])
    run.read_until(inside_a_big_record)
    run.process.send_signal(signal.SIGTERM)
    run.close_stdout()

    assert run.process.wait(timeout=60) == 128 + signal.SIGTERM  # a hang guard
    stderr = run.stderr
    assert stderr.count("Interrupted by signal 15;") == 1
    assert "the output was closed, so no final state was written" in stderr
    assert "unhandled error" not in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "unbuffered",
    [True, False],
    # Unbuffered, the write itself fails; buffered, the flush after it does.
    ids=["unbuffered-stdout", "buffered-stdout"],
)
def test_a_target_that_stops_reading_ends_the_run_with_one_line(
    sandbox: Sandbox, tmp_path: Path, *, unbuffered: bool
) -> None:
    # A crashed target: the reader closes its end after the first line, no signal. The
    # run cannot be over by then: the 1,200-segment transcript alone (~100 KiB) is more
    # than a pipe holds, so at least its write comes after the close and fails.
    run = Run(
        tmp_path, tap_config(sandbox), ["conversations", "transcripts"], unbuffered=unbuffered
    )
    run.read_until(lambda out: b"\n" in out)
    run.close_stdout()

    assert run.process.wait(timeout=60) == READER_GONE_EXIT  # a hang guard
    stderr = run.stderr
    errors = [line for line in stderr.splitlines() if "| ERROR" in line]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].endswith(
        "| The output's reader went away (broken pipe): the target stopped reading, so "
        "this run ends here. Check the target's log for why; the next run resumes from "
        "the last state the target committed."
    ), errors
    assert "unhandled error" not in stderr
    assert "Traceback" not in stderr
    assert "Exception ignored" not in stderr

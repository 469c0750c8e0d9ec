"""The ETA of the progress lines, against the time a whole sync really took, on a fake clock.

The pacer sleeps on a fake clock (real monotonic time, moved on at once to where each
sleep ends), so a sync at a real token's pace (60/min, some 4-5 minutes of pacing) runs in seconds,
on a busy machine too; the progress lines read the same clock. Every ETA printed after
the run's first minute must be within 25 % of the time that was really left until the
conversations were done: from the first list page on (while listing, the ETA counts the
pages left and the conversations still to list), with the pacer's burst at the start
(the sandbox answers X-RateLimit-Remaining, so the first minute's requests go at once).
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from tap_conversations import progress as progress_module
from tap_conversations import streams as streams_module
from tap_conversations import tap as tap_module
from tap_conversations.progress import ProgressReporter
from tap_conversations.rate_limit import RequestPacer
from tests.harness import run_sync, tap_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.sandbox import Sandbox

PACE = 60
#: An ETA may be off by this share of the time really left.
TOLERANCE = 0.25
#: ETAs printed earlier than this after the run's start are not held to the tolerance.
SETTLING_SECONDS = 60.0
#: ... and may be off by this much more: a line prints whole seconds (0.5 s of rounding),
#: and real time runs on the fake clock too. It matters only in a run's last seconds.
ROUNDING_SECONDS = 1.0


class FakeTime:
    """Real monotonic time, moved on at once to where each of the pacer's sleeps ends.

    Threads sleeping at the same time wake at their own deadlines, as on a real clock:
    a sleep moves the clock to its deadline (the time its thread last read, from which
    the pacer computed the wait, plus the wait), never further. Adding every sleep to
    the clock instead ran it ahead of the pace whenever waits overlapped, more often on
    a busy machine, and the time left after a line then looked shorter than its ETA.

    A line is computed and its time read while no other sleep can move the clock: a
    thread starved between the two (a busy machine) once let others move it two pace
    intervals on, and the line's time left then looked 6 s shorter than its ETA of 12 s.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        #: Held from moving the clock to the end of a line's tick: no other sleep moves
        #: the clock while a line is computed and its time read.
        self._moving = threading.Lock()
        self._last_read = threading.local()
        self.reporters: list[RecordingReporter] = []

    def clock(self) -> float:
        with self._lock:
            now = time.monotonic() + self._offset
        self._last_read.at = now
        return now

    def sleep(self, seconds: float) -> None:
        with self._moving:
            with self._lock:
                real = time.monotonic()
                read: float = getattr(self._last_read, "at", real + self._offset)
                self._offset = max(self._offset, read + max(0.0, seconds) - real)
            for reporter in self.reporters:
                reporter.tick()


class RecordingReporter(ProgressReporter):
    """A reporter ticked by the fake sleeps, remembering each line's time and ETA."""

    def __init__(self, fake: FakeTime, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, timer=False, **kwargs)
        self.fake = fake
        self.lines: list[tuple[float, str, float | None]] = []
        self.finished_at: float | None = None
        fake.reporters.append(self)

    def tick(self) -> str | None:
        line = super().tick()
        if line is not None:
            eta = re.search(r"ETA (\d+) s", line)
            if eta is None:
                # Only until a first page says how much there is to list.
                assert line.startswith("listing conversations since "), line
                assert line.endswith("; ETA once a page has listed some of the dates"), line
            self.lines.append((self.fake.clock(), line, float(eta.group(1)) if eta else None))
        return line

    def finish(self) -> None:
        self.finished_at = self.fake.clock()
        super().finish()


def _sync_on_fake_time(
    monkeypatch: pytest.MonkeyPatch, config: dict[str, Any], streams: list[str]
) -> tuple[float, RecordingReporter]:
    fake = FakeTime()
    monkeypatch.setattr(
        tap_module,
        "RequestPacer",
        # The burst within the window is the tap's (burst_in_flight): the sandbox's
        # window, real time, stays far from its limit, so the burst is the tap's own
        # bound, a minute's requests at once at the start.
        lambda rpm, **kwargs: RequestPacer(rpm, clock=fake.clock, sleep=fake.sleep, **kwargs),
    )
    monkeypatch.setattr(
        streams_module,
        "ProgressReporter",
        lambda *args, **kwargs: RecordingReporter(fake, *args, **kwargs),
    )
    started = fake.clock()
    run_sync(config, streams=streams)
    (reporter,) = fake.reporters
    return started, reporter


def _assert_etas_hold(started: float, reporter: RecordingReporter) -> list[str]:
    assert reporter.finished_at is not None
    checked = []
    for at, line, eta in reporter.lines:
        if at - started < SETTLING_SECONDS:
            continue
        assert eta is not None, f"no ETA after the first minute: {line}"
        really_left = reporter.finished_at - at
        assert abs(eta - really_left) <= TOLERANCE * really_left + ROUNDING_SECONDS, (
            f"ETA {eta:.0f} s, really {really_left:.1f} s left: {line}"
        )
        checked.append(line)
    return checked


@pytest.mark.parametrize(
    "streams",
    [
        ["conversations", "summaries", "recordings"],
        ["conversations", "transcripts", "insights"],
        ["recordings"],
    ],
    ids=["detail+summary+recording", "detail", "recording-only"],
)
def test_every_eta_after_the_first_minute_is_within_a_quarter(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, streams: list[str]
) -> None:
    config = tap_config(sandbox, max_requests_per_minute=PACE, max_parallel_requests=1)
    started, reporter = _sync_on_fake_time(monkeypatch, config, streams)
    checked = _assert_etas_hold(started, reporter)
    assert len(checked) >= 2, reporter.lines


def test_when_the_quota_ends_the_run_the_eta_says_so_and_holds(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    quota = 50
    sb = sandbox_factory(daily_quota=quota)
    config = tap_config(
        sb, max_requests_per_minute=PACE, max_parallel_requests=1, daily_conversation_quota=quota
    )
    started, reporter = _sync_on_fake_time(monkeypatch, config, ["conversations", "summaries"])
    checked = _assert_etas_hold(started, reporter)
    assert checked, reporter.lines
    for _, line, _ in reporter.lines:
        assert "when the daily quota stops the run: at most " in line, line
        assert f"conversations left fit in today's quota ({quota}); the next run after the " in line


def test_lines_come_by_the_clock_and_move_with_every_request(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not in jumps of a chunk: consecutive ETAs 15 s apart fall by about 15 s."""
    config = tap_config(sandbox, max_requests_per_minute=PACE, max_parallel_requests=1)
    _, reporter = _sync_on_fake_time(monkeypatch, config, ["conversations", "summaries"])
    times = [at for at, _, _ in reporter.lines]
    etas = [eta for _, _, eta in reporter.lines if eta is not None]
    assert len(times) >= 5
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    interval = progress_module.PROGRESS_INTERVAL_SECONDS
    assert all(interval - 1.5 <= gap <= interval + 1.5 for gap in gaps), gaps
    drops = [earlier - later for earlier, later in itertools.pairwise(etas)]
    assert all(10 <= drop <= 20 for drop in drops), etas


def test_while_listing_many_pages_after_a_burst_the_eta_holds_too(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first sync of 30 days listing some 40 pages, the first 20 requests at once.

    At 20/min the burst at the start spends the first minute's requests (the pacer's
    credit: X-RateLimit-Remaining, bounded by the tap's own limit) on list pages, and the
    pace resumes after the slots they took: the listing goes on past the first minute,
    and its lines must count the pages left and the conversations still to list, without
    promising the burst's speed for the rest.
    """
    pace, quota = 20, 100_000
    sb = sandbox_factory(conversations=1300, daily_quota=quota)
    config = tap_config(
        sb,
        max_requests_per_minute=pace,
        max_parallel_requests=4,
        daily_conversation_quota=quota,
    )
    started, reporter = _sync_on_fake_time(monkeypatch, config, ["conversations"])
    checked = _assert_etas_hold(started, reporter)
    assert sb.counters.requests(endpoint="/conversations") >= 35, "several pages listed"
    listing = [line for line in checked if line.startswith("listing conversations since ")]
    assert len(listing) >= 3, reporter.lines[:10]
    for line in listing:
        assert re.search(r"left: about \d+ pages, then about \d+ conversations", line), line
    assert len(checked) - len(listing) >= 100, "the fetch's lines are held to it too"


class ListingWatcher(ProgressReporter):
    """A reporter without a timer that keeps itself for the test to read."""

    made: ClassVar[list[ListingWatcher]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, timer=False, **kwargs)
        ListingWatcher.made.append(self)


@pytest.mark.parametrize(
    ("walk", "mediums"),
    [
        ("one walk", None),
        ("a walk per medium", ["call", "video"]),
        pytest.param("date slices", None, marks=pytest.mark.date_slicing),
    ],
)
def test_the_listing_tells_its_progress_every_date_once(
    sandbox_factory: Callable[..., Sandbox],
    monkeypatch: pytest.MonkeyPatch,
    walk: str,
    mediums: list[str] | None,
) -> None:
    """What the listing ETA stands on: the pages cover the dates once per walk, in all."""
    sb = sandbox_factory(conversations=400)
    config = tap_config(sb, max_requests_per_minute=6000, max_parallel_requests=8)
    if mediums:
        config["mediums"] = mediums
    if walk == "date slices":
        sb.faults.latency_ms = 60.0  # x 6000/min: the listing is cut into slices
    ListingWatcher.made.clear()
    monkeypatch.setattr(streams_module, "ProgressReporter", ListingWatcher)
    out = run_sync(config, streams=["conversations"])
    (reporter,) = ListingWatcher.made
    listing = reporter.listing
    assert listing.start is not None
    days = 30 * 24 * 3600
    assert listing.span == pytest.approx(days * len(mediums or [None]), abs=60)
    assert listing.covered == pytest.approx(listing.span, abs=60), walk
    assert listing.share_covered() == pytest.approx(1.0, abs=1e-3)
    fetched = len(out.ids("conversations"))
    # A slice's walk re-lists the item at its upper bound: at most one more per slice.
    assert fetched <= listing.listed <= fetched + 8
    assert listing.pages == sb.counters.requests(endpoint="/conversations")

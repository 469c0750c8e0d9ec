"""Unit tests of the HTTP economy's parts: RequestPacer, parse_retry_after, retry policy."""

from __future__ import annotations

import datetime as dt
import threading
import types
from email.utils import format_datetime
from typing import TYPE_CHECKING

import backoff
import pytest

from tap_conversations import client, rate_limit
from tap_conversations.client import ApiClient, parse_retry_after
from tap_conversations.errors import ApiResponseError
from tap_conversations.rate_limit import RequestPacer

if TYPE_CHECKING:
    from tests.sandbox import Sandbox


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def paced(requests_per_minute: int) -> tuple[RequestPacer, FakeClock]:
    clock = FakeClock()
    return RequestPacer(requests_per_minute, clock=clock, sleep=clock.sleep), clock


def acquire_times(pacer: RequestPacer, clock: FakeClock, count: int) -> list[float]:
    times = []
    for _ in range(count):
        pacer.acquire()
        times.append(clock.now)
    return times


# --- RequestPacer ---------------------------------------------------------------------


def test_slots_are_evenly_spaced_at_the_limit() -> None:
    pacer, clock = paced(600)
    step = pacer.interval
    assert 0.1 <= step <= 0.1 * 1.02, "the pace keeps at least 98% of the allowed rate"
    assert acquire_times(pacer, clock, 5) == pytest.approx(
        [0.0, step, 2 * step, 3 * step, 4 * step]
    )
    assert pacer.stats.requests == 5
    assert pacer.seconds_for(30) == pytest.approx(30 * step)


def test_idle_time_is_not_saved_up_for_a_burst() -> None:
    pacer, clock = paced(60)
    pacer.acquire()
    clock.now += 30.0  # idle for half a minute: no credit for a burst afterwards
    step = pacer.interval
    assert acquire_times(pacer, clock, 3) == pytest.approx([30.0, 30.0 + step, 30.0 + 2 * step])


def test_any_limit_plus_one_requests_span_more_than_the_window() -> None:
    """The server counts arrivals in a sliding window; exact spacing is not enough.

    Request k + limit must reach the server at least one window after request k.
    Slots spaced exactly `60 / limit` put it exactly one window later on the
    client, so any jitter on the way (the first request also opens the TCP
    connection) makes it arrive a hair early and meet a 429 with Retry-After 1 s
    (see test_rate_limit_economy.test_pacing_at_the_true_limit_meets_no_429).
    """
    for limit in (20, 60, 600, 3000):
        pacer, clock = paced(limit)
        times = acquire_times(pacer, clock, limit + 1)
        assert times[-1] - times[0] > 60.0 * 1.002, limit


class LateWakingClock(FakeClock):
    """Every sleep ends `late` seconds after it should; the sleep numbered `stall_at`,
    `stall` seconds after (a thread starved for a while)."""

    def __init__(self, late: float, stall_at: int = -1, stall: float = 0.0) -> None:
        super().__init__()
        self.late, self.stall_at, self.stall = late, stall_at, stall

    def sleep(self, seconds: float) -> None:
        extra = self.stall if len(self.sleeps) == self.stall_at else self.late
        super().sleep(seconds + extra)


def test_a_thread_waking_late_does_not_push_back_every_later_request() -> None:
    """0.08 ms late at every wake (an ordinary sleep's overshoot): the run keeps its slots."""
    clock = LateWakingClock(late=0.00008)
    pacer = RequestPacer(3000, clock=clock, sleep=clock.sleep)
    times = acquire_times(pacer, clock, 1000)
    # Releases an interval apart after each late one would end 999 x 0.08 ms = 80 ms late.
    assert times[-1] == pytest.approx(999 * pacer.interval, abs=0.0002)


def test_after_a_late_release_the_next_ones_catch_up_and_windows_keep_half_the_margin() -> None:
    """One wake 50 ms late (a starved thread): later releases catch up on the slots."""
    clock = LateWakingClock(late=0.0, stall_at=10, stall=0.05)
    limit = 600
    pacer = RequestPacer(limit, clock=clock, sleep=clock.sleep)
    times = acquire_times(pacer, clock, 3 * limit)
    spans = [later - earlier for earlier, later in zip(times, times[limit:], strict=False)]
    assert min(spans) >= 60.0 * (1 + rate_limit.RELEASE_MARGIN) - 1e-9
    # Back on the slots within the run, not 50 ms behind to the end.
    assert times[-1] == pytest.approx((3 * limit - 1) * pacer.interval, abs=1e-6)


def test_pause_holds_every_later_request() -> None:
    pacer, clock = paced(600)
    pacer.acquire()
    clock.now = 0.05
    pacer.pause(2.0)  # a Retry-After seen by any thread
    pacer.acquire()
    assert clock.now == pytest.approx(2.05)
    pacer.acquire()
    assert clock.now == pytest.approx(2.05 + pacer.interval)
    assert pacer.stats.paused_seconds == pytest.approx(2.0)


def test_a_shorter_pause_does_not_shorten_a_running_one() -> None:
    pacer, clock = paced(600)
    pacer.pause(3.0)
    pacer.pause(1.0)
    pacer.acquire()
    assert clock.now == pytest.approx(3.0)


def test_a_pause_arriving_while_a_caller_sleeps_voids_its_slot() -> None:
    clock = FakeClock()
    pacer: RequestPacer

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 1:
            # Another thread's 429 (Retry-After 1 s) arrives during this caller's wait.
            pacer.pause(1.0)

    pacer = RequestPacer(600, clock=clock, sleep=sleep)
    pacer.acquire()  # t = 0, no wait
    pacer.acquire()  # the next slot; the pause starting there voids it
    assert clock.now == pytest.approx(pacer.interval + 1.0)


class WindowServer:
    """A sliding-window limit on the fake clock: answers X-RateLimit-Remaining, or 429."""

    def __init__(self, clock: FakeClock, limit: int, window: float = 60.0) -> None:
        self.clock = clock
        self.limit = limit
        self.window = window
        self.hits: list[float] = []
        self.limited = 0

    def answer(self) -> int | None:
        """The remaining count after this request; None for a 429."""
        now = self.clock.now
        self.hits = [hit for hit in self.hits if hit > now - self.window]
        if len(self.hits) >= self.limit:
            self.limited += 1
            return None
        self.hits.append(now)
        return self.limit - len(self.hits)


def bursting(limit: int, in_flight: int = 4) -> tuple[RequestPacer, FakeClock]:
    clock = FakeClock()
    pacer = RequestPacer(limit, burst_in_flight=in_flight, clock=clock, sleep=clock.sleep)
    return pacer, clock


def test_without_the_header_a_bursting_pacer_paces_as_before() -> None:
    pacer, clock = bursting(600)
    for _ in range(5):
        pacer.answered(pacer.acquire(), None)
    assert clock.now == pytest.approx(4 * pacer.interval)
    assert pacer.stats.burst == 0


def test_what_the_window_has_left_is_spent_at_once_then_the_pace_resumes() -> None:
    """33 requests at 60/min (a sync of 10 conversations): seconds, not half a minute."""
    pacer, clock = bursting(60, in_flight=4)
    server = WindowServer(clock, limit=60)
    for _ in range(33):
        pacer.answered(pacer.acquire(), server.answer())
    assert clock.now == 0.0, "the first request alone, then the remainder at once"
    assert pacer.stats.burst == 32
    # The window's 60, less room for another process's 4 in flight, then the pace: the
    # burst took its slots of it, so the next request waits for the 57th slot.
    for _ in range(56 - 33):
        pacer.answered(pacer.acquire(), server.answer())
    assert clock.now == 0.0
    pacer.answered(pacer.acquire(), server.answer())
    assert clock.now == pytest.approx(56 * pacer.interval)
    for _ in range(10):
        pacer.answered(pacer.acquire(), server.answer())
    assert clock.now == pytest.approx(66 * pacer.interval), "paced: the burst was once"
    assert server.limited == 0


def test_bursts_never_put_more_than_the_limit_into_any_window() -> None:
    for limit in (20, 60, 600):
        pacer, clock = bursting(limit)
        server = WindowServer(clock, limit=limit)
        times = []
        for _ in range(4 * limit):
            ticket = pacer.acquire()
            times.append(clock.now)
            remaining = server.answer()
            pacer.answered(ticket, remaining)
            assert remaining is not None, f"429 at {limit}/min"
        spans = [later - earlier for earlier, later in zip(times, times[limit:], strict=False)]
        assert min(spans) >= 60.0, limit


def test_a_burst_keeps_at_most_burst_in_flight_requests_out() -> None:
    pacer, clock = bursting(6000, in_flight=3)
    pacer.answered(pacer.acquire(), 99)
    out = [pacer.acquire() for _ in range(3)]  # no answers yet: in flight
    assert clock.now == 0.0
    pacer.acquire()  # a fourth: no answer comes, so it waits for its slot of the pace
    assert clock.now == pytest.approx(4 * pacer.interval)
    assert pacer.stats.burst == 3
    assert len(out) == 3


def test_the_credit_counts_our_requests_in_flight_and_ignores_stale_answers() -> None:
    pacer, clock = bursting(6000, in_flight=4)
    pacer.answered(pacer.acquire(), 99)
    first, second, third = pacer.acquire(), pacer.acquire(), pacer.acquire()
    # The freshest word: 8 left; 2 of ours still out, and room kept for 4 of another
    # process: 2 more now.
    pacer.answered(third, 8)
    pacer.answered(first, 50)  # older than the third: changes nothing
    assert clock.now == 0.0
    pacer.acquire()
    pacer.acquire()
    assert clock.now == 0.0
    pacer.answered(second, 40)  # stale too
    pacer.acquire()
    assert clock.now > 0.0, "no credit left: the pace"
    assert pacer.stats.burst == 5


def test_a_429_ends_bursting_for_the_run() -> None:
    pacer, clock = bursting(60)
    pacer.answered(pacer.acquire(), 0)
    pacer.pause(1.0)  # the client's reaction to a 429 with Retry-After: 1
    pacer.answered(pacer.acquire(), 59)  # the server says there is room again
    assert clock.now == pytest.approx(pacer.interval)  # the pause (1 s) or the next slot
    pacer.acquire()
    assert clock.now == pytest.approx(2 * pacer.interval), "paced, not burst"
    assert pacer.stats.burst == 0


def test_pacer_refuses_a_zero_limit() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RequestPacer(0)


# --- Retry-After ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("3", 3.0), ("0", 0.0), ("1.5", 1.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_delta_seconds(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def test_parse_retry_after_http_date() -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=90)
    assert parse_retry_after(format_datetime(later, usegmt=True)) == pytest.approx(90, abs=2)
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    assert parse_retry_after(format_datetime(earlier, usegmt=True)) == 0.0


# --- retry policy -----------------------------------------------------------------------


def worst_case_waits() -> list[float]:
    """The largest wait before each retry of one request, from the client's constants."""
    return [
        min(client.TRANSIENT_BASE_SECONDS * 2**attempt, client.TRANSIENT_MAX_WAIT_SECONDS)
        for attempt in range(client.TRANSIENT_MAX_TRIES - 1)
    ]


def test_transient_retry_policy_is_seconds_not_minutes() -> None:
    waits = worst_case_waits()
    assert waits[0] <= 1.0, "the first retry of a blip comes within a second"
    assert max(waits) <= 10.0
    assert sum(waits) <= 20.0, "a request that never recovers gives up within 20 s of sleep"
    assert client.TRANSIENT_MAX_TRIES >= 4, "a few blips in a row are survived"


def recording_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff's sleeps instead of sleeping (only backoff's module is touched)."""
    sleeps: list[float] = []
    monkeypatch.setattr("backoff._sync.time", types.SimpleNamespace(sleep=sleeps.append))
    return sleeps


def api_client(sb: Sandbox, pacer: RequestPacer | None = None) -> ApiClient:
    return ApiClient(
        base_url=sb.base_url,
        token=sb.token,
        pacer=pacer or RequestPacer(100_000),
        timeout_seconds=5,
        max_connections=2,
        user_agent="test",
    )


def test_client_waits_follow_the_policy_then_give_up(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = recording_sleeps(monkeypatch)
    monkeypatch.setattr(backoff, "full_jitter", lambda value: value)  # the upper bounds
    sandbox.faults.error_rate = 1.0
    api = api_client(sandbox)
    try:
        with pytest.raises(ApiResponseError, match="still failing after"):
            api.get("/users")
    finally:
        api.close()
    assert sleeps == pytest.approx(worst_case_waits())
    assert sandbox.counters.requests(endpoint="/users") == client.TRANSIENT_MAX_TRIES
    assert api.stats.transient_failures == client.TRANSIENT_MAX_TRIES
    assert api.stats.retries == client.TRANSIENT_MAX_TRIES - 1


def test_client_waits_are_jittered_below_the_bounds(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = recording_sleeps(monkeypatch)
    sandbox.faults.error_every = 2  # every other request fails: one retry each
    api = api_client(sandbox)
    try:
        for _ in range(20):
            assert "users" in api.get("/users")
    finally:
        api.close()
    assert len(sleeps) == sandbox.counters.faults_injected["error_every"] == 19
    assert all(0.0 <= wait <= client.TRANSIENT_BASE_SECONDS for wait in sleeps)
    assert len(set(sleeps)) > 1, "full jitter: retries of many clients do not line up"


def test_client_honours_retry_after_through_the_pacer(sandbox: Sandbox) -> None:
    """Every 429 retried pauses the shared pacer for its Retry-After (1 s here)."""
    clock = FakeClock()
    pacer = RequestPacer(100_000, clock=clock, sleep=clock.sleep)
    sandbox.faults.rate_limited_rate = 1.0
    api = api_client(sandbox, pacer)
    try:
        with pytest.raises(ApiResponseError, match="lower max_requests_per_minute"):
            api.get("/users")
    finally:
        api.close()
    tries = client.RATE_LIMITED_MAX_TRIES
    assert sandbox.counters.requests(endpoint="/users", status=429) == tries
    assert pacer.stats.paused_seconds == pytest.approx((tries - 1) * 1.0)
    assert clock.sleeps == pytest.approx([1.0] * (tries - 1))
    assert api.stats.rate_limited == tries


def test_the_eta_after_a_burst_counts_the_slots_it_took() -> None:
    """After 56 requests at once, 10 more leave from the 57th slot on, not right away."""
    pacer, clock = bursting(60, in_flight=4)
    server = WindowServer(clock, limit=60)
    for _ in range(56):
        pacer.answered(pacer.acquire(), server.answer())
    assert clock.now == 0.0
    step = pacer.interval
    assert pacer.seconds_until_sent(10) == pytest.approx(65 * step)
    assert pacer.seconds_until_sent(10, 2 * step) == pytest.approx(56 * step + 9 * 2 * step)
    for _ in range(5):
        pacer.answered(pacer.acquire(), server.answer())
    assert pacer.seconds_until_sent(5) == pytest.approx(65 * step - clock.now)


class CountsOnEveryLock:
    """The client's lock, which notes what the client counts as asked (waiting + sent)
    each time a thread is about to take it: the moments another thread could read."""

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._real = threading.Lock()
        self._reading = False
        self.asked: list[int] = []

    def __enter__(self) -> None:
        if not self._reading:
            self._reading = True
            sent, waiting = self._api.requests_by_endpoint()
            self._reading = False
            self.asked.append(sum(sent.values()) + sum(waiting.values()))
        self._real.acquire()

    def __exit__(self, *exc: object) -> None:
        self._real.release()


def test_a_request_counts_as_waiting_until_it_counts_as_sent(sandbox: Sandbox) -> None:
    """Never neither: a progress line would count its conversation as not started."""
    api = api_client(sandbox)
    watched = CountsOnEveryLock(api)
    api._lock = watched  # type: ignore[assignment]
    try:
        api.get("/users")
        api.get("/teams")
    finally:
        api.close()
    assert watched.asked == sorted(watched.asked), watched.asked
    assert watched.asked[-1] == 2

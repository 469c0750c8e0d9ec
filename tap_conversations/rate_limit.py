"""Request pacing: one schedule per token, shared by every stream and thread.

The API allows `max_requests_per_minute` per token over a sliding window. Sending
at exactly that pace, one request every `60 / limit` seconds, never meets a 429 and
never leaves budget idle, however many threads are waiting.

Why not pyrate-limiter (what MeltanoLabs' tap-stackexchange uses): measured here with
version 4.5 and eight threads, its blocking wait adds a fixed buffer to every sleep
and shifts the stored timestamps of waiting items, so at 3000 requests/minute it used
91% of the budget with zero latency (83% at 6000) and let acquisitions bunch within
one interval. An even slot schedule is a few lines, exact, and easy to test.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


#: Slots are this much wider than the limit allows: any limit + 1 consecutive requests
#: then span 1% more than the server's window (0.6 s of a minute), so jitter between
#: sending and the server's clock cannot squeeze one request too many into a window.
SAFETY_MARGIN = 0.01


@dataclass
class PacerStats:
    """What the pacer did, for progress lines and benchmarks."""

    requests: int = 0
    paused_seconds: float = 0.0


class RequestPacer:
    """Hands out evenly spaced request slots; honours server-side pauses.

    Args:
        requests_per_minute: The token's rate limit.
        clock: Monotonic clock, replaceable in unit tests.
        sleep: Sleep function, replaceable in unit tests.
    """

    def __init__(
        self,
        requests_per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if requests_per_minute < 1:
            msg = "requests_per_minute must be at least 1"
            raise ValueError(msg)
        self.requests_per_minute = requests_per_minute
        self.interval = 60.0 / requests_per_minute * (1 + SAFETY_MARGIN)
        #: The clock the pace is kept on (progress lines and their ETA read it too).
        self.clock = clock
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = clock()
        self._resume_at = 0.0
        self._last_release = -self.interval
        self.stats = PacerStats()

    def acquire(self) -> None:
        """Block until this caller may send one request."""
        with self._lock:
            slot = self._reserve()
        while True:
            with self._lock:
                now = self._clock()
                if slot < self._resume_at:
                    slot = self._reserve()  # a pause came after our reservation: it voids it
                # A thread that woke late must not leave less than an interval before
                # the next one: releases, not just slots, stay an interval apart.
                earliest = max(slot, self._last_release + self.interval)
                if now >= earliest:
                    self._last_release = now
                    self.stats.requests += 1
                    return
                wait = earliest - now
            self._sleep(wait)

    def _reserve(self) -> float:
        """The next free slot (call with the lock held)."""
        slot = max(self._clock(), self._next_slot, self._resume_at)
        self._next_slot = slot + self.interval
        return slot

    def pause(self, seconds: float) -> None:
        """Send nothing for `seconds` (the server's Retry-After), from any thread."""
        with self._lock:
            resume_at = self._clock() + seconds
            if resume_at > self._resume_at:
                self.stats.paused_seconds += resume_at - max(self._resume_at, self._clock())
                self._resume_at = resume_at

    def seconds_for(self, requests: int) -> float:
        """Time the pace needs for `requests` more requests (for an ETA)."""
        return requests * self.interval

    def seconds_until_sent(self, requests: int, interval: float | None = None) -> float:
        """When the last of `requests` more requests goes out (for an ETA).

        Releases stay an interval apart (this pace's, or a slower `interval` measured by
        the caller): the n-th next one leaves n intervals after the last one (or the end
        of a server-side pause), never before now.
        """
        if requests <= 0:
            return 0.0
        step = max(self.interval, interval or 0.0)
        with self._lock:
            now = self._clock()
            start = max(self._last_release, self._resume_at - step)
            return max(0.0, start + requests * step - now)

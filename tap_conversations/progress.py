"""Progress of a long sync on stderr: the tap's equivalent of a progress bar.

One line every 15 s by the clock, also while a chunk is being fetched (a timer thread
writes it, not the chunk loop): conversations done of those to fetch, requests spent,
the daily quota used, and an ETA from the pacing rate. One closing line at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_conversations.client import ApiClient

LOGGER = logging.getLogger("tap_conversations")

#: Seconds between progress lines.
PROGRESS_INTERVAL_SECONDS = 15.0


class ProgressReporter:
    """Logs where the conversations sync is, every interval, until `finish`.

    Args:
        api: The API client, for request counts, quota use and the pace.
        total: Conversations to fetch in this run.
        interval: Seconds between lines.
        clock: Monotonic clock, replaceable in tests.
    """

    def __init__(
        self,
        api: ApiClient,
        total: int,
        *,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._total = total
        self._done = 0
        self._clock = clock
        self._started = clock()
        self._requests_at_start = api.stats.requests
        self._quota_at_start = api.stats.conversations_touched
        self._interval = PROGRESS_INTERVAL_SECONDS if interval is None else interval
        self._stopped = threading.Event()
        self._timer = threading.Thread(target=self._every_interval, name="progress", daemon=True)
        self._timer.start()

    def advance(self, conversations: int) -> None:
        """Count finished conversations."""
        self._done += conversations

    def finish(self) -> None:
        """Stop the timer; log the closing line."""
        self._stopped.set()
        self._timer.join()
        LOGGER.info("%s", self.line(final=True))

    def _every_interval(self) -> None:
        while not self._stopped.wait(self._interval):
            LOGGER.info("%s", self.line())

    def line(self, *, final: bool = False) -> str:
        """The progress line."""
        stats = self._api.stats
        spent = stats.requests - self._requests_at_start
        quota = stats.conversations_touched - self._quota_at_start
        done = self._done
        per_conversation = spent / done if done else 1.0
        remaining = self._total - done
        eta = self._api.pacer.seconds_for(round(remaining * per_conversation))
        head = "conversations done" if final else "conversations"
        return (
            f"{head}: {done}/{self._total} "
            f"({100 * done / max(self._total, 1):.0f}%), {spent} requests "
            f"({per_conversation:.2f}/conversation), quota used this run: {quota}, "
            f"elapsed {self._clock() - self._started:.0f} s"
            + ("" if final else f", ETA {eta:.0f} s at {self._api.pacer.requests_per_minute}/min")
        )

"""Progress of a long sync on stderr: the tap's equivalent of a progress bar.

One line at a steady cadence (not per record): conversations done of those listed,
requests spent, the daily quota used, and an ETA from the pacing rate.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from tap_conversations.client import ApiClient

LOGGER = logging.getLogger("tap_conversations")

#: Seconds between progress lines.
PROGRESS_INTERVAL_SECONDS = 15.0


class ProgressReporter:
    """Logs where the conversations sync is, at most once per interval.

    Args:
        api: The API client, for request counts and the pace.
        total: Conversations listed for this run.
        clock: Monotonic clock, replaceable in tests.
    """

    def __init__(
        self, api: ApiClient, total: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._api = api
        self._total = total
        self._done = 0
        self._clock = clock
        self._started = clock()
        self._requests_at_start = api.stats.requests
        self._last_report = self._started

    def advance(self, conversations: int) -> None:
        """Count finished conversations; log a line if the interval has passed."""
        self._done += conversations
        now = self._clock()
        if now - self._last_report >= PROGRESS_INTERVAL_SECONDS:
            self._last_report = now
            LOGGER.info("%s", self.line())

    def finish(self) -> None:
        """Log the closing line."""
        LOGGER.info("%s", self.line(final=True))

    def line(self, *, final: bool = False) -> str:
        """The progress line."""
        spent = self._api.stats.requests - self._requests_at_start
        per_conversation = spent / self._done if self._done else 1.0
        remaining = self._total - self._done
        eta = self._api.pacer.seconds_for(round(remaining * per_conversation))
        head = "conversations done" if final else "conversations"
        return (
            f"{head}: {self._done}/{self._total} "
            f"({100 * self._done / max(self._total, 1):.0f}%), {spent} requests "
            f"({per_conversation:.2f}/conversation), quota used this run: {self._done}, "
            f"elapsed {self._clock() - self._started:.0f} s"
            + ("" if final else f", ETA {eta:.0f} s at {self._api.pacer.requests_per_minute}/min")
        )

"""The run's notion of "now": the real UTC clock, replaceable where a test drives time.

Every decision that depends on the date (the API's 30 days, the late-data window,
when a conversation still processing is due again) reads the tap's clock, never the
system's directly, so that a simulation can run a month of an account's history in
seconds on a clock it shares with its sandbox server. Pacing and timeouts measure
durations and stay on the monotonic clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

#: A function that returns the current moment as an aware UTC datetime.
Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    """The real current moment, in UTC."""
    return dt.datetime.now(dt.timezone.utc)

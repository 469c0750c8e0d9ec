"""Conversations removed at the source after they were loaded.

The list endpoint shows what exists now, and the bookmark only ever moves forward, so
a conversation deleted in the app would stay in the warehouse forever, looking like any
other. Telling a removal from a conversation that merely aged out of the API's 30 days
takes two facts: the conversation was loaded and is still inside the 30 days, and it
is gone (no longer listed, and its detail answers 404). So the state keeps the ids this
tap loaded, by UTC day of their `date`, for the API's 30 days (`LoadedIds`), and every
`removal_sweep_hours` a run lists the whole window again (`RemovalSweep`): an id it
loaded that no longer lists is fetched once; a 404 makes it a removal, emitted on the
`removed_conversations` stream and forgotten.

Days near the edge of the history are left out (a conversation may age out between
the listing and its detail request), and so are days with a tie no filter could list
whole (a conversation there may exist unlisted). The ids are kept under the filters
they were loaded with: a conversation the run's filters no longer list is not gone,
so a change of filters starts the record again.

The state grows with the account's daily volume, never with the number of runs or
of removals: at the default quota of 1000 conversations a day, at most 30,000 ids of
23 characters each.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_conversations.timestamps import format_timestamp, parse_timestamp, utc_day

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_conversations.conversation_filters import ListedConversation

#: Days this close to the API's history floor are not compared: a conversation there
#: can age out between the re-list and its detail request, and aging out is not removal.
EDGE_OF_HISTORY = dt.timedelta(days=1)
#: How the removals this module finds were found, as the stream says it.
FOUND_BY = "not listed in a re-list of the 30 days; its detail answered 404"
#: What a sweep costs, as the setting's description and the stream's cost both say it.
SWEEP_COST = (
    "one list request per 25 conversations of the 30 days, and one request (and up to "
    "one unit of the daily quota) per loaded conversation no longer listed"
)


#: Ids the state may keep as they are: they go back into a request path, so a state
#: handed over must not be able to make one that reaches another endpoint.
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def pack_id(conversation_id: str) -> str | None:
    """A compact form of an id for the state: a canonical uuid in 22 characters.

    Another id of plain characters is kept as it is, after a `=` (which base64url never
    writes); None for one that is neither (the API promises uuids).
    """
    try:
        parsed = uuid.UUID(conversation_id)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == conversation_id:
        return base64.urlsafe_b64encode(parsed.bytes).decode("ascii").rstrip("=")
    return "=" + conversation_id if _PLAIN_ID.fullmatch(conversation_id) else None


def unpack_id(packed: str) -> str:
    """The id `pack_id` packed.

    Raises:
        ValueError: The text is not what `pack_id` writes.
    """
    if packed.startswith("="):
        if not _PLAIN_ID.fullmatch(packed[1:]):
            msg = "a loaded id has characters no id has"
            raise ValueError(msg)
        return packed[1:]
    try:
        raw = base64.b64decode(packed + "==", altchars=b"-_", validate=True)
    except binascii.Error as error:
        msg = f"a loaded id is not packed ({error})"
        raise ValueError(msg) from None
    return str(uuid.UUID(bytes=raw))


@dataclass(frozen=True)
class Removal:
    """A loaded conversation found removed at the source."""

    conversation_id: str
    #: The UTC day of its `date`.
    day: str
    found_at: dt.datetime
    #: The re-list before the one that found it: it was listed then, or loaded after.
    previous_sweep_at: dt.datetime | None

    def record(self, run_id: str) -> dict[str, Any]:
        """The `removed_conversations` record."""
        return {
            "conversation_id": self.conversation_id,
            "conversation_day": self.day,
            "found_at": format_timestamp(self.found_at),
            "previous_sweep_at": (
                None if self.previous_sweep_at is None else format_timestamp(self.previous_sweep_at)
            ),
            "found_by": FOUND_BY,
            "run_id": run_id,
        }


@dataclass
class LoadedIds:
    """The ids this tap emitted records for, by UTC day of `date`, under one set of filters."""

    #: The filters the ids were loaded under (`ConversationFilters.to_state()`).
    filters: dict[str, list[str]] = field(default_factory=dict)
    days: dict[str, set[str]] = field(default_factory=dict)
    #: When the window was last listed whole, or the record started (None: not yet).
    swept_at: dt.datetime | None = None
    #: Whether this run records what it loads (`removed_conversations` is selected).
    watching: bool = field(default=False, compare=False)
    #: Each day's packed text as last written, and whether it changed since.
    _written: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    _changed: set[str] = field(default_factory=set, repr=False, compare=False)

    @classmethod
    def from_state(cls, value: object) -> LoadedIds:
        """Read what `to_state` wrote (None: nothing loaded yet).

        Raises:
            TypeError, ValueError: The value is not what `to_state` writes.
        """
        if value is None:
            return cls()
        if not isinstance(value, dict):
            msg = f"removals is {type(value).__name__}, not an object"
            raise TypeError(msg)
        filters = value.get("filters") or {}
        if not isinstance(filters, dict):
            msg = "removals.filters is not an object"
            raise TypeError(msg)
        swept_at = value.get("swept_at")
        days = {}
        written = {}
        for day, text in (value.get("loaded") or {}).items():
            dt.date.fromisoformat(day)
            days[day] = {unpack_id(packed) for packed in text.split()}
            written[day] = text
        return cls(
            filters={str(k): [str(v) for v in vs] for k, vs in filters.items()},
            days=days,
            swept_at=None if swept_at is None else parse_timestamp(swept_at),
            _written=written,
        )

    def to_state(self) -> dict[str, Any]:
        """As JSON; a day's ids are packed again only when they changed."""
        for day in self._changed:
            if day in self.days:
                packed = (pack_id(cid) for cid in self.days[day])
                self._written[day] = " ".join(sorted(p for p in packed if p is not None))
        self._changed.clear()
        self._written = {day: self._written[day] for day in sorted(self.days)}
        return {
            "filters": self.filters,
            "swept_at": None if self.swept_at is None else format_timestamp(self.swept_at),
            "loaded": dict(self._written),
        }

    def follow(self, filters: dict[str, list[str]], now: dt.datetime) -> bool:
        """Record what this run loads, under its filters; False when it had to start afresh.

        Ids loaded under other filters cannot be compared with this run's listing (a
        conversation these filters leave out is not gone): the record starts again.
        """
        kept = filters == self.filters or not self.days
        if not kept:
            self.stop()
        self.filters, self.watching = filters, True
        if self.swept_at is None:
            # Everything loaded from here on was listed now: the first run is a sweep.
            self.swept_at = now
        return kept

    def stop(self) -> None:
        """Keep no ids (`removed_conversations` is not selected)."""
        self.filters, self.days, self.swept_at, self.watching = {}, {}, None, False
        self._written, self._changed = {}, set()

    def add(self, conversation_id: str, date: dt.datetime) -> None:
        """Remember that records of this conversation were emitted (when watching)."""
        if not self.watching:
            return
        day = utc_day(date)
        ids = self.days.setdefault(day, set())
        if conversation_id not in ids:
            ids.add(conversation_id)
            self._changed.add(day)

    def discard(self, conversation_id: str, day: str) -> None:
        """Forget a conversation (it was removed)."""
        ids = self.days.get(day)
        if ids is not None and conversation_id in ids:
            ids.discard(conversation_id)
            self._changed.add(day)
            if not ids:
                del self.days[day]

    def prune(self, history_floor: dt.datetime) -> None:
        """Forget the days the API no longer lists."""
        floor = utc_day(history_floor)
        for day in [day for day in self.days if day < floor]:
            del self.days[day]

    def __len__(self) -> int:
        """How many ids are kept."""
        return sum(map(len, self.days.values()))


@dataclass
class RemovalSweep:
    """One run's re-list of the window, compared with what was loaded.

    Args:
        loaded: The ids loaded before this run.
        interval: How often to sweep (zero: never).
        history_floor: The oldest date the API lists now.
        now: The run's clock.
    """

    loaded: LoadedIds
    interval: dt.timedelta
    history_floor: dt.datetime
    now: dt.datetime

    @property
    def due(self) -> bool:
        """Whether this run re-lists the window (there is something loaded to compare)."""
        if not self.interval or not self.loaded.days:
            return False
        return self.loaded.swept_at is None or self.now - self.loaded.swept_at >= self.interval

    @property
    def compared_from(self) -> dt.datetime:
        """The first instant compared: the midnight after the edge of the history."""
        edge = (self.history_floor + EDGE_OF_HISTORY).astimezone(dt.timezone.utc)
        midnight = edge.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight if midnight == edge else midnight + dt.timedelta(days=1)

    def missing(
        self, listed: Iterable[ListedConversation], unproven_dates: Iterable[str]
    ) -> list[tuple[str, str]]:
        """Loaded ids on compared days that this listing did not list: (day, id), oldest first.

        Args:
            listed: Every conversation the run listed, from `compared_from` on.
            unproven_dates: Dates of tie groups not listed whole: their days are skipped.
        """
        first_day = utc_day(self.compared_from)
        skipped = {utc_day(parse_timestamp(date)) for date in unproven_dates}
        listed_ids = {item.id for item in listed}
        return [
            (day, cid)
            for day in sorted(self.loaded.days)
            if day >= first_day and day not in skipped
            for cid in sorted(self.loaded.days[day])
            if cid not in listed_ids
        ]

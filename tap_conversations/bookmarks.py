"""The conversations bookmark: where the last sync stopped, and what may still change.

A bookmark on `date` alone loses data here: a conversation can be listed hours after
its `date`, and one listed while still processing gets its summary, transcript and
insights later. So besides the high-water mark the state keeps:

* `seen`: short prefixes of the ids already emitted, bucketed by hour of their
  `date`, for the late-data window only, so that re-listing the window costs list
  requests, not detail ones;
* `pending`: ids emitted before processing finished, with their date and when they
  were last fetched. They are fetched again on a schedule that thins out as they age
  (see `recheck_due`), or at once when a `conversation.completed` webhook delivery
  names them, until they are complete or leave the API's 30 days of history;
* `account_id`: the account the state belongs to;
* `coverage`: which conversations, streams and filters the state stands for (see
  `coverage.py`), so that a widened filter or a newly selected stream is backfilled.

The state's size depends on the window, the account's daily volume and the number of
conversations still processing, never on the number of syncs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_conversations.coverage import Coverage
from tap_conversations.errors import StateError
from tap_conversations.timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from tap_conversations.conversation_filters import ListedConversation

#: 12 hex digits (48 bits) of a random uuid: a collision among the ids of one hour is
#: about as likely as winning a lottery twice, at a third of the state size.
SEEN_PREFIX_CHARS = 12
#: A pending conversation is fetched again once it has aged by half its age at the
#: last fetch (so about 12 re-checks in its first day), and at least once a day.
RECHECK_AGE_SHARE = 0.5
MAX_RECHECK_INTERVAL = dt.timedelta(days=1)


def recheck_due(date: dt.datetime, checked: dt.datetime, now: dt.datetime) -> bool:
    """Whether a conversation still processing should be fetched again now.

    The interval grows with the conversation's age at its last fetch, capped at a
    day: a conversation that takes minutes is re-checked within minutes, one stuck
    for weeks costs one request a day, and about 40 in all over the API's 30 days.
    """
    interval = min(MAX_RECHECK_INTERVAL, (checked - date) * RECHECK_AGE_SHARE)
    return now - checked >= interval


def _checked_bucket(bucket: str) -> str:
    dt.datetime.strptime(bucket, "%Y-%m-%dT%H")  # noqa: DTZ007  # validates the shape only
    return bucket


def _hour_bucket(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H")


def _prefix(conversation_id: str) -> str:
    return conversation_id.replace("-", "")[:SEEN_PREFIX_CHARS]


@dataclass
class Pending:
    """A conversation emitted before its processing finished."""

    date: dt.datetime
    #: When it was last fetched.
    checked: dt.datetime


def _pending_from_state(value: object) -> Pending:
    # Versions before 0.2 stored the date alone: re-check such entries at once.
    if isinstance(value, str):
        date = parse_timestamp(value)
        return Pending(date=date, checked=date)
    if not isinstance(value, dict):
        msg = f"a pending entry is {type(value).__name__}, not an object"
        raise TypeError(msg)
    return Pending(date=parse_timestamp(value["date"]), checked=parse_timestamp(value["checked"]))


@dataclass
class ConversationCheckpoint:
    """The conversations stream's bookmark, read from and written to its stream state."""

    high_water: dt.datetime | None = None
    seen: dict[str, set[str]] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    account_id: str | None = None
    coverage: Coverage = field(default_factory=Coverage)
    #: Scopes of selected streams the token lacked in the last run.
    missing_scopes: frozenset[str] = frozenset()

    @classmethod
    def from_state(cls, stream_state: dict[str, Any]) -> ConversationCheckpoint:
        """Read the checkpoint from a stream state dict (empty for a first run).

        Raises:
            StateError: The state was not written by this tap, or was damaged.
        """
        try:
            value = stream_state.get("replication_key_value")
            seen = {
                _checked_bucket(bucket): set(prefixes.split())
                for bucket, prefixes in (stream_state.get("seen") or {}).items()
            }
            pending = {
                str(cid): _pending_from_state(entry)
                for cid, entry in (stream_state.get("pending") or {}).items()
            }
            account_id = stream_state.get("account_id")
            if account_id is not None and not isinstance(account_id, str):
                msg = "account_id is not a string"
                raise TypeError(msg)  # noqa: TRY301
            checkpoint = cls(
                high_water=None if value is None else parse_timestamp(value),
                seen=seen,
                pending=pending,
                account_id=account_id,
                coverage=Coverage.from_state(stream_state.get("coverage")),
                missing_scopes=frozenset(
                    str(scope) for scope in stream_state.get("missing_scopes") or ()
                ),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            msg = (
                f"The state of stream conversations cannot be read ({type(error).__name__}: "
                f"{error}). {StateError.FIX}"
            )
            raise StateError(msg) from None
        return checkpoint

    def write_to(self, stream_state: dict[str, Any]) -> None:
        """Store the checkpoint in the stream state dict, in place, in one update."""
        if self.high_water is None and self.account_id is None:
            return
        stream_state.update(
            {
                "replication_key": "date",
                "replication_key_value": (
                    None if self.high_water is None else format_timestamp(self.high_water)
                ),
                "account_id": self.account_id,
                "seen": {
                    bucket: " ".join(sorted(prefixes))
                    for bucket, prefixes in sorted(self.seen.items())
                },
                "pending": {
                    cid: {
                        "date": format_timestamp(entry.date),
                        "checked": format_timestamp(entry.checked),
                    }
                    for cid, entry in sorted(self.pending.items())
                },
                "coverage": self.coverage.to_state(),
                "missing_scopes": sorted(self.missing_scopes),
            }
        )

    def needs_fetch(
        self,
        conversation: ListedConversation,
        *,
        streams: frozenset[str],
        relist_from: dt.datetime,
        completed: frozenset[str],
        now: dt.datetime,
    ) -> bool:
        """Whether a listed conversation must be fetched in this run.

        Args:
            conversation: The listed conversation.
            streams: The conversation streams this run emits.
            relist_from: Where the late-data window begins.
            completed: Ids that webhook deliveries report as completed.
            now: The run's clock.
        """
        done = self.high_water is not None and conversation.date <= self.high_water
        if done and not self.coverage.covers(conversation, streams):
            return True  # a widened filter or a newly selected stream
        pending = self.pending.get(conversation.id)
        if pending is not None:
            return conversation.id in completed or recheck_due(pending.date, pending.checked, now)
        if not done:
            return not self.was_seen(conversation.id, conversation.date)
        return conversation.date >= relist_from and not self.was_seen(
            conversation.id, conversation.date
        )

    def was_seen(self, conversation_id: str, date: dt.datetime) -> bool:
        """Whether the conversation was emitted inside the late-data window."""
        return _prefix(conversation_id) in self.seen.get(_hour_bucket(date), ())

    def mark_emitted(
        self, conversation_id: str, date: dt.datetime, *, complete: bool, now: dt.datetime
    ) -> None:
        """Remember a conversation whose records (and its children's) were emitted."""
        self.seen.setdefault(_hour_bucket(date), set()).add(_prefix(conversation_id))
        if complete:
            self.pending.pop(conversation_id, None)
        else:
            self.pending[conversation_id] = Pending(date=date, checked=now)

    def advance(self, date: dt.datetime, now: dt.datetime) -> None:
        """Move the high-water mark: every conversation listed up to `date` is done.

        It never moves past the present: a conversation dated in the future (a clock
        ahead of ours) must not push the next listing's start beyond what is done.
        """
        date = min(date, now)
        if self.high_water is None or date > self.high_water:
            self.high_water = date

    def relist_from(self, window: dt.timedelta, now: dt.datetime) -> dt.datetime | None:
        """Where the next listing starts: the late-data window below the high-water mark.

        It hangs off the present as well: in a quiet account the newest conversation
        may be days old, and the window below it still reaches today.
        """
        if self.high_water is None:
            return None
        return min(self.high_water, now) - window

    def prune(
        self, window: dt.timedelta, history_floor: dt.datetime, now: dt.datetime
    ) -> list[str]:
        """Forget what the next runs no longer need; return the pending ids given up.

        `seen` keeps the late-data window; `pending` keeps every conversation still
        processing until it leaves the API's history (`history_floor`), then gives up.
        """
        relist = self.relist_from(window, now)
        if relist is not None:
            floor_bucket = _hour_bucket(relist)
            self.seen = {b: ids for b, ids in self.seen.items() if b >= floor_bucket}
        given_up = sorted(cid for cid, entry in self.pending.items() if entry.date < history_floor)
        for cid in given_up:
            del self.pending[cid]
        self.coverage.prune(history_floor)
        return given_up

"""The conversations bookmark: where the last sync stopped, and what may still change.

A bookmark on `date` alone loses data here: a conversation can be listed hours after
its `date`, and one listed while still processing gets its summary, transcript and
insights later. So besides the high-water mark the state keeps, for the late-data
window only:

* `seen`: short prefixes of the ids already emitted complete, bucketed by hour of
  their `date`, so that re-listing the window costs list requests, not detail ones;
* `pending`: ids emitted before processing finished, fetched again on the next runs
  until complete or out of the window.

Both are pruned to the window, so the state's size depends on the window and the
account's daily volume, never on the number of syncs or conversations in total.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from tap_conversations.errors import StateError

#: 12 hex digits (48 bits) of a random uuid: a collision among the ids of one hour is
#: about as likely as winning a lottery twice, at a third of the state size.
SEEN_PREFIX_CHARS = 12


def parse_timestamp(value: str) -> dt.datetime:
    """Parse the API's ISO 8601 timestamps (`Z` or offset) into aware datetimes."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def is_timestamp(value: object) -> bool:
    """Whether `value` is a timestamp `parse_timestamp` reads."""
    if not isinstance(value, str):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def format_timestamp(value: dt.datetime) -> str:
    """Format as the API does: UTC, milliseconds, `Z`."""
    utc = value.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _checked_bucket(bucket: str) -> str:
    dt.datetime.strptime(bucket, "%Y-%m-%dT%H")  # noqa: DTZ007  # validates the shape only
    return bucket


def _hour_bucket(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H")


def _prefix(conversation_id: str) -> str:
    return conversation_id.replace("-", "")[:SEEN_PREFIX_CHARS]


@dataclass
class ConversationCheckpoint:
    """The conversations stream's bookmark, read from and written to its stream state."""

    high_water: dt.datetime | None = None
    seen: dict[str, set[str]] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_state(cls, stream_state: dict[str, Any]) -> ConversationCheckpoint:
        """Read the checkpoint from a stream state dict (empty for a first run).

        Raises:
            StateError: The state was not written by this tap, or was damaged.
        """
        try:
            value = stream_state.get("replication_key_value")
            seen_state = stream_state.get("seen") or {}
            pending_state = stream_state.get("pending") or {}
            seen = {
                _checked_bucket(bucket): set(prefixes.split())
                for bucket, prefixes in seen_state.items()
            }
            pending = {
                str(cid): format_timestamp(parse_timestamp(d)) for cid, d in pending_state.items()
            }
            high_water = None if value is None else parse_timestamp(value)
        except (AttributeError, TypeError, ValueError) as error:
            msg = (
                f"The conversations state cannot be read ({type(error).__name__}: {error}). "
                "Remove it to start again from start_date (with Meltano: meltano state "
                "clear <state id>), or pass the state file this tap wrote."
            )
            raise StateError(msg) from None
        return cls(high_water=high_water, seen=seen, pending=pending)

    def write_to(self, stream_state: dict[str, Any]) -> None:
        """Store the checkpoint in the stream state dict, in place, in one update."""
        if self.high_water is None:
            return
        stream_state.update(
            {
                "replication_key": "date",
                "replication_key_value": format_timestamp(self.high_water),
                "seen": {
                    bucket: " ".join(sorted(prefixes))
                    for bucket, prefixes in sorted(self.seen.items())
                },
                "pending": dict(sorted(self.pending.items())),
            }
        )

    def needs_fetch(self, conversation_id: str, date: dt.datetime) -> bool:
        """Whether a listed conversation must be fetched (new, or still pending)."""
        if conversation_id in self.pending:
            return True
        return _prefix(conversation_id) not in self.seen.get(_hour_bucket(date), ())

    def mark_emitted(self, conversation_id: str, date: dt.datetime, *, complete: bool) -> None:
        """Remember a conversation whose records (and its children's) were emitted."""
        self.seen.setdefault(_hour_bucket(date), set()).add(_prefix(conversation_id))
        if complete:
            self.pending.pop(conversation_id, None)
        else:
            self.pending[conversation_id] = format_timestamp(date)

    def advance(self, date: dt.datetime) -> None:
        """Move the high-water mark: every conversation listed up to `date` is done."""
        if self.high_water is None or date > self.high_water:
            self.high_water = date

    def prune(self, window: dt.timedelta) -> None:
        """Forget what is older than the late-data window below the high-water mark."""
        if self.high_water is None:
            return
        floor = self.high_water - window
        floor_bucket = _hour_bucket(floor)
        self.seen = {b: ids for b, ids in self.seen.items() if b >= floor_bucket}
        self.pending = {
            cid: date for cid, date in self.pending.items() if parse_timestamp(date) >= floor
        }

    def relist_from(self, window: dt.timedelta) -> dt.datetime | None:
        """Where the next listing starts: the late-data window below the high-water mark."""
        return None if self.high_water is None else self.high_water - window

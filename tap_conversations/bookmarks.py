"""The conversations bookmark: where the last sync stopped, and what may still change.

A bookmark on `date` alone loses data here: a conversation can be listed hours after
its `date`, and one listed while still processing gets its summary, transcript and
insights later. So besides the high-water mark the state keeps:

* `seen`: short prefixes of the ids already emitted, each with the streams it was
  emitted for (`prefix.tag`, the tag a bitmask over `TAGGED_STREAMS`), bucketed by
  hour of their `date`, for the late-data window only, so that re-listing the window
  costs list requests, not detail ones, and a stream selected since is noticed;
* `emitted_ahead`: the conversations of `seen` a run emitted beyond what it proved (a
  daily quota cut: the ones fetched in parallel past the first one refused), by id
  prefix with their date: `seen` keeps them past the late-data window until a later
  run's proof passes them, so the quota is not spent on them twice;
* `pending`: ids listed but not complete yet, with their date, when they were last
  fetched and why they are not complete (still processing, detail or summary not
  available yet). They are fetched again on a schedule that thins out as they age
  (see `recheck_due`), or at once when a `conversation.completed` webhook delivery
  names them, until they are complete, or were fetched once `PROCESSING_ALLOWANCE`
  after their date, or leave the API's 30 days of history (each given up by name);
* `rechecks`: how many re-checks today's UTC day has spent (they get a share of the
  daily quota, see `planner.py`);
* `summary_rereads`: with `summary_reread_days`, how many summaries today's UTC day
  re-read, and the last one (the walk through the window goes on from there);
* `unproven_ties`: dates where more conversations share one instant than the API's
  filters can list provably whole; each later run lists them again, no span of the
  coverage claims them, and `seen` keeps their hour while they stay;
* `account_id`: the account the state belongs to;
* `coverage`: which conversations, streams and filters the state stands for (see
  `coverage.py`), so that a widened filter or a newly selected stream is backfilled;
* `removals`: the ids loaded inside the API's 30 days, by day, and when the window was
  last listed again to find the ones removed since (see `removals.py`).

The state's size depends on the window, the account's daily volume and the number of
conversations still processing, never on the number of syncs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_conversations.coverage import Coverage
from tap_conversations.errors import StateError
from tap_conversations.removals import LoadedIds
from tap_conversations.timestamps import format_timestamp, parse_timestamp, utc_day

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_conversations.conversation_filters import ListedConversation

#: The streams a `seen` tag can name, by bit; new streams go at the end.
TAGGED_STREAMS = (
    "conversations",
    "transcripts",
    "transcript_segments",
    "insights",
    "summaries",
    "recordings",
)
#: An entry written before tags: emitted for whatever was selected then.
_UNTAGGED = (1 << len(TAGGED_STREAMS)) - 1


def streams_tag(streams: frozenset[str]) -> int:
    """The bitmask of `streams` (names outside TAGGED_STREAMS are not tagged)."""
    return sum(1 << bit for bit, name in enumerate(TAGGED_STREAMS) if name in streams)


def _seen_entry(text: str) -> tuple[str, int]:
    prefix, _, tag = text.partition(".")
    return prefix, int(tag, 16) if tag else _UNTAGGED


#: 12 hex digits (48 bits) of a random uuid: a collision among the ids of one hour is
#: about as likely as winning a lottery twice, at a third of the state size.
SEEN_PREFIX_CHARS = 12
#: A pending conversation is fetched again once it has aged by half its age at the
#: last fetch (so about 12 re-checks in its first day), and at least once a day.
RECHECK_AGE_SHARE = 0.5
MAX_RECHECK_INTERVAL = dt.timedelta(days=1)
#: A conversation still incomplete when fetched this long after its date is taken as it
#: is: about 1 in 10 conversations never get a summary (short calls, chats), and
#: re-checking each for the API's whole 30 days took 30-40 quota units apiece. Three
#: days bound a conversation's re-checks to about 16 while leaving slow processing
#: (hours, a weekend) time to finish.
PROCESSING_ALLOWANCE = dt.timedelta(days=3)
#: The bound on `emitted_ahead`. One quota cut emits at most two chunks beyond its proof
#: (the cut one and the next, already in flight: 2 x streams.FETCH_CHUNK_SIZE - 1 = 49),
#: more only when the cut splits a date many conversations share (they are all held);
#: a later run drops them as its proof passes them (or they leave the API's 30 days).
#: Beyond it the latest-dated are forgotten, and fetched again, as before they were kept.
EMITTED_AHEAD_LIMIT = 100

#: Why a pending conversation is not complete, as a warning words it ("N conversations …").
PROCESSING = "processing"
DETAIL_UNAVAILABLE = "detail_unavailable"
SUMMARY_UNAVAILABLE = "summary_unavailable"
RECORDING_UNAVAILABLE = "recording_unavailable"
PENDING_REASONS = {
    PROCESSING: "had no summary yet",
    DETAIL_UNAVAILABLE: "were listed, but their detail answered 404 or for another conversation",
    SUMMARY_UNAVAILABLE: "had a summary, but /summary answered 404",
    RECORDING_UNAVAILABLE: "had /recording answering 404",
}


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


def _emitted_ahead_from_state(value: object) -> dict[str, dt.datetime]:
    """Read what `write_to` wrote under `emitted_ahead` (None: nothing held)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"emitted_ahead is {type(value).__name__}, not an object"
        raise TypeError(msg)
    held = {}
    for prefix, date in value.items():
        if not isinstance(prefix, str) or not prefix:
            msg = "an emitted_ahead id prefix is empty"
            raise ValueError(msg)
        if not isinstance(date, str):
            msg = f"emitted_ahead[{prefix!r}] is {type(date).__name__}, not a date"
            raise TypeError(msg)
        held[prefix] = parse_timestamp(date)
    return held


@dataclass(frozen=True)
class Pending:
    """A listed conversation whose records are not complete yet (replaced, never changed)."""

    date: dt.datetime
    #: When it was last fetched.
    checked: dt.datetime
    #: One of PENDING_REASONS.
    reason: str = PROCESSING

    def to_state(self) -> dict[str, str]:
        """The entry as JSON."""
        return {
            "date": format_timestamp(self.date),
            "checked": format_timestamp(self.checked),
            "reason": self.reason,
        }


def _pending_from_state(value: object) -> Pending:
    # Versions before 0.2 stored the date alone: re-check such entries at once.
    if isinstance(value, str):
        date = parse_timestamp(value)
        return Pending(date=date, checked=date)
    if not isinstance(value, dict):
        msg = f"a pending entry is {type(value).__name__}, not an object"
        raise TypeError(msg)
    reason = value.get("reason", PROCESSING)
    if reason not in PENDING_REASONS:
        msg = f"a pending entry's reason is {reason!r:.40}"
        raise ValueError(msg)
    return Pending(
        date=parse_timestamp(value["date"]),
        checked=parse_timestamp(value["checked"]),
        reason=reason,
    )


@dataclass
class RecheckSpend:
    """Re-checks spent on one UTC day (the quota's day)."""

    day: str = ""
    spent: int = 0

    def spent_on(self, now: dt.datetime) -> int:
        """Re-checks spent on `now`'s UTC day."""
        return self.spent if self.day == utc_day(now) else 0

    def add(self, now: dt.datetime) -> None:
        """Count one re-check on `now`'s UTC day."""
        today = utc_day(now)
        if self.day != today:
            self.day, self.spent = today, 0
        self.spent += 1

    @classmethod
    def from_state(cls, value: object) -> RecheckSpend:
        """Read what `to_state` wrote (None: nothing spent)."""
        if value is None:
            return cls()
        if not isinstance(value, dict):
            msg = f"rechecks is {type(value).__name__}, not an object"
            raise TypeError(msg)
        day, spent = value["day"], value["spent"]
        if day:
            dt.date.fromisoformat(day)
        if not isinstance(spent, int) or spent < 0:
            msg = "rechecks.spent is not a count"
            raise TypeError(msg)
        return cls(day, spent)

    def to_state(self) -> dict[str, object]:
        """As JSON."""
        return {"day": self.day, "spent": self.spent}


@dataclass
class RereadProgress(RecheckSpend):
    """Summary re-reads: spent on one UTC day, and the last (day, id) re-read.

    The re-reads walk the conversations of the last `summary_reread_days` in order of
    day and id, and start over from the oldest after the newest: with a budget smaller
    than the window, each conversation's turn still comes.
    """

    after: str = ""

    @classmethod
    def from_state(cls, value: object) -> RereadProgress:
        """Read what `to_state` wrote (None: nothing re-read yet)."""
        spend = RecheckSpend.from_state(value)
        after = value.get("after", "") if isinstance(value, dict) else ""
        if not isinstance(after, str):
            msg = "summary_rereads.after is not a string"
            raise TypeError(msg)
        return cls(spend.day, spend.spent, after)

    def to_state(self) -> dict[str, object]:
        """As JSON."""
        return {**super().to_state(), "after": self.after}


@dataclass(frozen=True)
class GivenUp:
    """A pending conversation no longer followed, and why."""

    conversation_id: str
    reason: str
    #: True: it left the API's 30 days; False: it outlived PROCESSING_ALLOWANCE.
    aged_out: bool


class _WrittenParts:
    """What `write_to` formatted before, so that a chunk formats only what it changed.

    `seen` buckets are compared with a copy of their entries as last formatted (a dict
    comparison, in C); pending entries by identity (`Pending` is frozen: a change is a
    new entry). Not part of the checkpoint's value.
    """

    def __init__(self) -> None:
        self.seen: dict[str, tuple[dict[str, int], str]] = {}
        self.pending: dict[str, tuple[Pending, dict[str, str]]] = {}

    def seen_state(self, seen: dict[str, dict[str, int]]) -> dict[str, str]:
        """`seen` as the state holds it: per hour bucket, its sorted `prefix.tag` entries."""
        cache = self.seen
        written = {}
        for bucket in sorted(seen):
            entries = seen[bucket]
            known = cache.get(bucket)
            if known is None or known[0] != entries:
                text = " ".join(f"{prefix}.{tag:02x}" for prefix, tag in sorted(entries.items()))
                known = cache[bucket] = (dict(entries), text)
            written[bucket] = known[1]
        if len(cache) > len(written):
            self.seen = {bucket: cache[bucket] for bucket in written}
        return written

    def pending_state(self, pending: dict[str, Pending]) -> dict[str, dict[str, str]]:
        """`pending` as the state holds it, by id."""
        cache = self.pending
        written = {}
        for cid in sorted(pending):
            entry = pending[cid]
            known = cache.get(cid)
            if known is None or known[0] is not entry:
                known = cache[cid] = (entry, entry.to_state())
            written[cid] = known[1]
        if len(cache) > len(written):
            self.pending = {cid: cache[cid] for cid in written}
        return written


@dataclass
class ConversationCheckpoint:
    """The conversations stream's bookmark, read from and written to its stream state."""

    high_water: dt.datetime | None = None
    #: Hour bucket -> id prefix -> streams tag.
    seen: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Id prefix -> date: entries of `seen` emitted beyond what their run proved (see
    #: `hold_ahead`), kept past the late-data window until a later run proves them.
    emitted_ahead: dict[str, dt.datetime] = field(default_factory=dict)
    pending: dict[str, Pending] = field(default_factory=dict)
    account_id: str | None = None
    coverage: Coverage = field(default_factory=Coverage)
    #: Scopes of selected streams the token lacked in the last run.
    missing_scopes: frozenset[str] = frozenset()
    rechecks: RecheckSpend = field(default_factory=RecheckSpend)
    #: Summary re-reads (`summary_reread_days`): today's spend and where the walk is.
    rereads: RereadProgress = field(default_factory=RereadProgress)
    #: False for a state written before coverage was recorded (no `coverage` key).
    coverage_recorded: bool = True
    #: Dates (as the API wrote them) whose tie groups could not be listed provably whole.
    unproven_ties: set[str] = field(default_factory=set)
    #: The ids loaded inside the 30 days, for finding removals (empty when not wanted).
    loaded: LoadedIds = field(default_factory=LoadedIds)
    _written: _WrittenParts = field(
        default_factory=_WrittenParts, init=False, repr=False, compare=False
    )

    @classmethod
    def from_state(cls, stream_state: dict[str, Any]) -> ConversationCheckpoint:
        """Read the checkpoint from a stream state dict (empty for a first run).

        Raises:
            StateError: The state was not written by this tap, or was damaged.
        """
        try:
            value = stream_state.get("replication_key_value")
            seen = {
                _checked_bucket(bucket): dict(map(_seen_entry, entries.split()))
                for bucket, entries in (stream_state.get("seen") or {}).items()
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
                emitted_ahead=_emitted_ahead_from_state(stream_state.get("emitted_ahead")),
                pending=pending,
                account_id=account_id,
                coverage=Coverage.from_state(stream_state.get("coverage")),
                coverage_recorded="coverage" in stream_state or value is None,
                missing_scopes=frozenset(
                    str(scope) for scope in stream_state.get("missing_scopes") or ()
                ),
                rechecks=RecheckSpend.from_state(stream_state.get("rechecks")),
                rereads=RereadProgress.from_state(stream_state.get("summary_rereads")),
                unproven_ties={
                    format_timestamp(parse_timestamp(date))
                    for date in stream_state.get("unproven_ties") or ()
                },
                loaded=LoadedIds.from_state(stream_state.get("removals")),
            )
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            msg = (
                f"The state of stream conversations cannot be read ({type(error).__name__}: "
                f"{error}). {StateError.FIX}"
            )
            raise StateError(msg) from None
        return checkpoint

    def write_to(self, stream_state: dict[str, Any]) -> None:
        """Store the checkpoint in the stream state dict, in place, in one update.

        Called after every chunk: the `seen` buckets and pending entries the chunk did
        not change are not formatted again.
        """
        if self.high_water is None and self.account_id is None:
            return
        stream_state.update(
            {
                "replication_key": "date",
                "replication_key_value": (
                    None if self.high_water is None else format_timestamp(self.high_water)
                ),
                "account_id": self.account_id,
                "seen": self._written.seen_state(self.seen),
                "pending": self._written.pending_state(self.pending),
                "coverage": self.coverage.to_state(),
                "missing_scopes": sorted(self.missing_scopes),
                "rechecks": self.rechecks.to_state(),
                "unproven_ties": sorted(self.unproven_ties),
            }
        )
        if self.loaded.watching:
            stream_state["removals"] = self.loaded.to_state()
        else:
            stream_state.pop("removals", None)
        if self.rereads.day:
            stream_state["summary_rereads"] = self.rereads.to_state()
        if self.emitted_ahead:
            held = sorted(self.emitted_ahead.items())
            stream_state["emitted_ahead"] = {prefix: format_timestamp(d) for prefix, d in held}
        else:
            stream_state.pop("emitted_ahead", None)

    def is_new_to(self, conversation: ListedConversation, *, streams: frozenset[str]) -> bool:
        """Whether a listed conversation's records of `streams` were never emitted.

        Emitted means: seen in the late-data window with every one of `streams`, or
        inside a span of the coverage, which claims only dates settled when it was
        recorded (older than the late-data window), so a conversation listed late never
        falls into one. Pending conversations are not new: the planner re-checks them.

        Args:
            conversation: The listed conversation.
            streams: The conversation streams this run emits.
        """
        if conversation.id in self.pending:
            return False
        tag = self.seen_tag(conversation.id, conversation.date)
        if tag is not None and streams_tag(streams) & ~tag == 0:
            return False
        if format_timestamp(conversation.date) in self.unproven_ties:
            return True  # a span's end may reach it, but it was never listed whole
        return not self.coverage.covers(conversation, streams)

    def record_ties(self, unproven: set[str], *, filtered: bool) -> None:
        """Keep the dates this run could not list whole; a run without filters may clear.

        A run with filters proves its part of a date only, so it adds but never clears.
        """
        found = {format_timestamp(parse_timestamp(date)) for date in unproven}
        self.unproven_ties = (self.unproven_ties | found) if filtered else found

    def seen_tag(self, conversation_id: str, date: dt.datetime) -> int | None:
        """The streams tag the conversation was emitted with in the window; None if not."""
        return self.seen.get(_hour_bucket(date), {}).get(_prefix(conversation_id))

    def mark_emitted(
        self,
        conversation: ListedConversation,
        *,
        streams: frozenset[str],
        pending_reason: str | None,
        now: dt.datetime,
    ) -> None:
        """Remember a fetched conversation: complete (None), or pending for a reason.

        A span that claimed this conversation for more streams than these no longer
        holds for its date: the records emitted now replace what that span stood for.
        """
        cid, date = conversation.id, conversation.date
        if pending_reason != DETAIL_UNAVAILABLE:  # else nothing was emitted
            self.seen.setdefault(_hour_bucket(date), {})[_prefix(cid)] = streams_tag(streams)
            self.loaded.add(cid, date)
            self.coverage.withdraw(conversation, streams)
        if pending_reason is None:
            self.pending.pop(cid, None)
        else:
            self.pending[cid] = Pending(date=date, checked=now, reason=pending_reason)

    def hold_ahead(self, emitted: Iterable[ListedConversation], proven_until: dt.datetime) -> None:
        """Keep the conversations emitted beyond `proven_until` in `seen` until proven.

        A chunk the daily quota cut emits what was fetched in parallel past the first
        conversation refused, and a chunk that splits a tie emits part of a date its
        state cannot claim: neither the bookmark nor a span of the coverage proves
        them, and `seen` alone would forget them once they are older than the late-data
        window (a backfill's at once). The next run would fetch them again, spending the
        quota twice; held here, it finds them in `seen`.

        Args:
            emitted: The conversations a chunk fetched (those not in `seen` emitted nothing).
            proven_until: What the run has proven so far (its fetched prefix).
        """
        for conversation in emitted:
            if (
                conversation.date > proven_until
                and self.seen_tag(conversation.id, conversation.date) is not None
            ):
                self.emitted_ahead[_prefix(conversation.id)] = conversation.date

    def proven(self, start: dt.datetime, until: dt.datetime) -> None:
        """A run listed from `start` and fetched every new conversation up to `until`.

        The holds dated inside that range are dropped: the bookmark and the coverage
        account for what this run listed there. One its filters did not list (narrowed
        since the cut) is dropped too; a later run with the wider filters fetches it
        again, which costs a quota unit and loses nothing.
        """
        self.emitted_ahead = {
            prefix: date
            for prefix, date in self.emitted_ahead.items()
            if not start <= date <= until
        }

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

    def distrust_future(self, now: dt.datetime) -> dt.datetime | None:
        """Drop a bookmark later than now, with the coverage it claims; return it.

        This version never moves the bookmark past its own clock (`advance`), so a
        later one comes from an older version that trusted a conversation dated ahead,
        or from a clock that was wrong. Such a state cannot say when it was written, so
        it proves nothing about the conversations dated since: the run lists the whole
        history again, and fetches what `seen` and `pending` do not account for.
        """
        if self.high_water is None or self.high_water <= now:
            return None
        future, self.high_water = self.high_water, None
        self.coverage.spans = []
        return future

    def prune(
        self, window: dt.timedelta, history_floor: dt.datetime, now: dt.datetime
    ) -> list[GivenUp]:
        """Forget what the next runs no longer need; return the pending entries given up.

        `seen` keeps the late-data window, and below it the conversations held ahead
        (`emitted_ahead`, inside the API's history and `EMITTED_AHEAD_LIMIT`); `pending`
        keeps a conversation until a fetch `PROCESSING_ALLOWANCE` after its date still
        finds it incomplete, or until it leaves the API's history (`history_floor`).
        """
        # A hold whose `seen` entry is gone (a state an older version pruned, or edited by
        # hand) proves nothing: it must not take the place of one that does.
        held = sorted(
            (date, prefix)
            for prefix, date in self.emitted_ahead.items()
            if date >= history_floor and prefix in self.seen.get(_hour_bucket(date), {})
        )
        self.emitted_ahead = {prefix: date for date, prefix in held[:EMITTED_AHEAD_LIMIT]}
        relist = self.relist_from(window, now)
        if relist is not None:
            floor_bucket = _hour_bucket(relist)
            ties = {_hour_bucket(parse_timestamp(date)) for date in self.unproven_ties}
            was = self.seen
            self.seen = {b: entries for b, entries in was.items() if b >= floor_bucket or b in ties}
            for prefix, date in self.emitted_ahead.items():  # each in `was` (checked above)
                bucket = _hour_bucket(date)
                self.seen.setdefault(bucket, {})[prefix] = was[bucket][prefix]
        given_up = [
            GivenUp(cid, entry.reason, aged_out=entry.date < history_floor)
            for cid, entry in sorted(self.pending.items())
            if entry.date < history_floor or entry.checked - entry.date >= PROCESSING_ALLOWANCE
        ]
        for entry in given_up:
            del self.pending[entry.conversation_id]
        self.coverage.prune(history_floor)
        self.loaded.prune(history_floor)
        floor = format_timestamp(history_floor)
        self.unproven_ties = {d for d in self.unproven_ties if d >= floor}
        return given_up

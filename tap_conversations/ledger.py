"""The completeness ledger: what a run proved, per conversation date, as data.

A warning scrolls away in an orchestrator's log; a data team wants to ask the
warehouse which days are complete and what is still missing, and why. So every run
emits, on the `sync_ledger` stream, one row per UTC day of conversation `date` it
listed or still holds pending (with the run's filters), and one row for the run as a
whole (`day` null): conversations listed, complete, still pending by reason, tie
instants no filter could list provably whole, requests and quota units spent, and how
the run ended. `transform/models/marts/fct_sync_completeness.sql` turns the rows into
one verdict per day.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tap_conversations.bookmarks import PENDING_REASONS
from tap_conversations.timestamps import format_timestamp, parse_timestamp, utc_day

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from tap_conversations.bookmarks import ConversationCheckpoint
    from tap_conversations.conversation_filters import ConversationFilters, ListedConversation
    from tap_conversations.removals import Removal

#: How a run ended, as the ledger says it.
COMPLETE = "complete"
QUOTA = "quota"


def filters_label(filters: ConversationFilters) -> str:
    """The filters as one stable string, e.g. `mediums=call,video` (`all`: none)."""
    parts = [f"{name}={','.join(values)}" for name, values in filters.to_state().items() if values]
    return "; ".join(parts) or "all"


@dataclass
class RunLedger:
    """The counts of one run, filled by the conversations stream, read by `sync_ledger`."""

    run_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started_at: dt.datetime | None = None
    filters: str = "all"
    listed_from: dt.datetime | None = None
    listed: Counter[str] = field(default_factory=Counter)
    complete: Counter[str] = field(default_factory=Counter)
    pending: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    unproven_ties: Counter[str] = field(default_factory=Counter)
    #: Loaded conversations this run found removed at the source.
    removals: list[Removal] = field(default_factory=list)
    ended: str | None = None
    requests: int = 0
    quota_used: int = 0
    #: Listed ids and their day, to count the complete ones at the end.
    listed_ids: dict[str, str] = field(default_factory=dict)
    fetched_days: set[str] = field(default_factory=set)

    def record_listing(
        self,
        started_at: dt.datetime,
        filters: ConversationFilters,
        listed_from: dt.datetime,
        listed: Iterable[ListedConversation],
    ) -> None:
        """What this run listed, by day of `date`."""
        self.started_at = started_at
        self.filters = filters_label(filters)
        self.listed_from = listed_from
        self.listed_ids = {item.id: utc_day(item.date) for item in listed}
        self.listed = Counter(self.listed_ids.values())

    def record_fetched(self, fetched: Iterable[ListedConversation]) -> None:
        """Days of conversations fetched again (re-checks): their rows say what changed."""
        self.fetched_days.update(utc_day(item.date) for item in fetched)

    def finish(
        self, checkpoint: ConversationCheckpoint, *, ended: str, requests: int, quota_used: int
    ) -> None:
        """The run's outcome: what is pending now, what stays unproven, what it cost.

        `requests`: those sent so far, as a run reading one stream after another
        counts them (the early reads of streams not reached yet left out).
        """
        self.pending = defaultdict(Counter)
        for entry in checkpoint.pending.values():
            self.pending[utc_day(entry.date)][entry.reason] += 1
        pending_ids = set(checkpoint.pending)
        self.complete = Counter(
            day for cid, day in self.listed_ids.items() if cid not in pending_ids
        )
        self.unproven_ties = Counter(utc_day(parse_timestamp(d)) for d in checkpoint.unproven_ties)
        self.ended = ended
        self.requests = requests
        self.quota_used = quota_used

    def removal_records(self) -> list[dict[str, Any]]:
        """The `removed_conversations` records of this run."""
        return [removal.record(self.run_id) for removal in self.removals]

    def rows(self) -> list[dict[str, Any]]:
        """One row per day, then one for the run (nothing before the run has finished)."""
        if self.ended is None or self.started_at is None:
            return []
        common = {
            "run_id": self.run_id,
            "run_started_at": format_timestamp(self.started_at),
            "filters": self.filters,
            "ended": self.ended,
        }
        days = sorted(
            set(self.listed)
            | set(self.pending)
            | set(self.unproven_ties)
            | self.fetched_days
            | {removal.day for removal in self.removals}
        )
        rows = [
            {
                **common,
                "row_key": day,
                "day": day,
                **self._counts(day),
                "requests": None,
                "quota_used": None,
            }
            for day in days
        ]
        totals = self._counts(None)
        rows.append(
            {
                **common,
                "row_key": "run",
                "day": None,
                **totals,
                "listed_from": format_timestamp(self.listed_from) if self.listed_from else None,
                "requests": self.requests,
                "quota_used": self.quota_used,
            }
        )
        for row in rows:
            row.setdefault("listed_from", None)
        return rows

    def _counts(self, day: str | None) -> dict[str, int]:
        def pick(counter: Counter[str]) -> int:
            return sum(counter.values()) if day is None else counter.get(day, 0)

        pending: Counter[str] = (
            sum(self.pending.values(), Counter())
            if day is None
            else self.pending.get(day, Counter())
        )
        counts = {
            "listed": pick(self.listed),
            "complete": pick(self.complete),
            "unproven_tie_instants": pick(self.unproven_ties),
            "removed": pick(Counter(removal.day for removal in self.removals)),
        }
        for reason in PENDING_REASONS:
            counts[f"pending_{reason}"] = pending.get(reason, 0)
        return counts

"""Planning a run: where to list from, and which listed conversations to fetch.

Pure decisions, no requests: the planner takes the checkpoint (what earlier runs
proved), the run's wishes (settings, selected streams, filters) and the run's clock,
and answers the two questions the conversations stream asks it:

1. `listing_start`: from which date this run lists. The late-data window below the
   bookmark, or the first date the coverage does not prove for these wishes, or the
   configured start for a first run (which says it is one).
2. `choose`: which listed conversations to fetch, in which order. First every
   conversation new to these wishes, oldest first (those move the bookmark); then the
   pending ones a `conversation.completed` delivery reports done; then the pending
   ones due by their schedule, least recently checked first, within the day's
   re-check budget. Re-checks are a guess (the API cannot say a conversation without
   a summary will never get one), so they get at most `RECHECK_QUOTA_SHARE` of the
   daily quota and never come before a new conversation.

A simulation drives this module through the stream on a shared clock
(tests/simulation.py); its decisions are also tested directly.
"""

from __future__ import annotations

import bisect
import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tap_conversations.bookmarks import recheck_due
from tap_conversations.conversation_filters import ListedConversation
from tap_conversations.coverage import CoveredSpan
from tap_conversations.timestamps import (
    JUST_BELOW,
    format_timestamp,
    is_timestamp,
    parse_timestamp,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_conversations.bookmarks import ConversationCheckpoint
    from tap_conversations.conversation_filters import ConversationFilters
    from tap_conversations.settings import Settings

LOGGER = logging.getLogger("tap_conversations")

#: The share of the daily conversation quota that re-checks may spend per UTC day.
RECHECK_QUOTA_SHARE = 0.10


def recheck_budget(daily_quota: int) -> int:
    """Re-checks allowed per UTC day for a token with this daily quota."""
    return math.ceil(daily_quota * RECHECK_QUOTA_SHARE)


@dataclass
class FetchList:
    """What one run fetches, in order: `dated`, then `rechecks`."""

    #: Conversations new to this run's wishes, oldest first; they move the bookmark.
    dated: list[ListedConversation] = field(default_factory=list)
    #: Pending conversations fetched again: confirmed by a webhook first, then due.
    rechecks: list[ListedConversation] = field(default_factory=list)
    #: Ids among `rechecks` fetched on a guess (by schedule); they spend the budget.
    guesses: frozenset[str] = frozenset()
    #: Re-checks due but left for a later day by the budget.
    deferred: int = 0
    #: Complete conversations fetched again for edited summaries (`summary_reread_days`).
    rereads: list[ListedConversation] = field(default_factory=list)

    @property
    def conversations(self) -> list[ListedConversation]:
        """Everything to fetch, in the order to fetch it."""
        return self.dated + self.rechecks + self.rereads

    @property
    def reread_ids(self) -> frozenset[str]:
        """The ids among `rereads`."""
        return frozenset(item.id for item in self.rereads)

    def fetched_until(self, done: int) -> dt.datetime | None:
        """The date up to which every dated conversation is fetched, after `done` in order.

        When the first one not fetched shares the date of the last one fetched (a tie),
        that date is not done: the answer is just below it.
        """
        done = min(done, len(self.dated))
        if not done:
            return None
        last = self.dated[done - 1].date
        if done < len(self.dated) and self.dated[done].date == last:
            return last - JUST_BELOW
        return last


class RunPlanner:
    """The decisions of one run of the conversations stream.

    Args:
        checkpoint: What earlier runs proved (read from the state).
        settings: The tap's settings.
        history_floor: The oldest date the API lists now.
        streams: The conversation streams this run emits.
        filters: The run's conversation filters.
        now: The run's clock.
    """

    def __init__(  # noqa: PLR0913 - the planner's inputs, each named
        self,
        checkpoint: ConversationCheckpoint,
        settings: Settings,
        *,
        history_floor: dt.datetime,
        streams: frozenset[str],
        filters: ConversationFilters,
        now: dt.datetime,
    ) -> None:
        self.checkpoint = checkpoint
        self.settings = settings
        self.history_floor = history_floor
        self.streams = streams
        self.filters = filters
        self.now = now

    @property
    def configured_start(self) -> dt.datetime:
        """The earliest date wanted: start_date, never before the API's history."""
        return max(self.settings.start_date or self.history_floor, self.history_floor)

    def listing_start(self) -> dt.datetime:
        """Where this run lists from: the late-data window, or the first unproven date."""
        checkpoint = self.checkpoint
        configured = self.configured_start
        future = checkpoint.distrust_future(self.now)
        if future is not None:
            LOGGER.warning(
                "conversations: the state's bookmark %s is later than now (%s): it was "
                "written by an older version after a conversation dated ahead, or by a clock "
                "that was wrong, and cannot prove what was synced since. Listing again from "
                "%s; conversations the state does not remember are fetched again.",
                format_timestamp(future),
                format_timestamp(self.now),
                format_timestamp(configured),
            )
        relist_from = checkpoint.relist_from(self.settings.late_data_window, self.now)
        if relist_from is None or checkpoint.high_water is None:
            if future is None and not checkpoint.pending:
                LOGGER.info(
                    "conversations: no bookmark in the state: a first run, listing every "
                    "conversation since %s.",
                    format_timestamp(configured),
                )
            return configured
        if not checkpoint.coverage.spans and not checkpoint.coverage_recorded:
            # A state written before coverage was recorded: it stands for this run's wishes.
            checkpoint.coverage.add(
                CoveredSpan(configured, checkpoint.high_water, self.filters, self.streams)
            )
        gap = checkpoint.coverage.first_gap(
            configured, checkpoint.high_water, self.filters, self.streams
        )
        start = max(configured, relist_from)
        if gap is not None and gap[0] < start:
            LOGGER.warning(
                "conversations: the state does not cover this run's selection (%s); "
                "listing again from %s to fetch what it lacks.",
                gap[1],
                format_timestamp(gap[0]),
            )
            return gap[0]
        return start

    def settled(self, until: dt.datetime) -> dt.datetime:
        """How far a span may claim after listing up to `until`: dates no late listing reaches."""
        return min(until, self.now - self.settings.late_data_window)

    def waiting(self) -> bool:
        """Whether some pending conversation is not due by its schedule (webhooks may help)."""
        return any(
            not recheck_due(entry.date, entry.checked, self.now)
            for entry in self.checkpoint.pending.values()
        )

    def completed_per(self, deliveries: Iterable[dict[str, object]]) -> frozenset[str]:
        """Pending ids that a `conversation.completed` delivery reports done since checked."""
        pending = self.checkpoint.pending
        completed = set()
        for delivery in deliveries:
            entry = pending.get(str(delivery.get("resource_id")))
            created = delivery.get("created_at")
            if (
                entry is not None
                and delivery.get("event_type") == "conversation.completed"
                and is_timestamp(created)
                and parse_timestamp(str(created)) >= entry.checked
            ):
                completed.add(str(delivery["resource_id"]))
        return frozenset(completed)

    def choose(
        self, listed: list[ListedConversation], completed: frozenset[str] = frozenset()
    ) -> FetchList:
        """The conversations this run fetches, in order (see the module's docstring)."""
        checkpoint = self.checkpoint
        dated = sorted(item for item in listed if checkpoint.is_new_to(item, streams=self.streams))
        confirmed = []
        due = []
        listed_by_id = {item.id: item for item in listed}
        for cid, entry in sorted(checkpoint.pending.items(), key=lambda kv: (kv[1].checked, kv[0])):
            item = listed_by_id.get(cid) or ListedConversation(date=entry.date, id=cid)
            if cid in completed:
                confirmed.append(item)
            elif recheck_due(entry.date, entry.checked, self.now):
                due.append(item)
        budget = recheck_budget(self.settings.daily_conversation_quota)
        left = max(0, budget - checkpoint.rechecks.spent_on(self.now))
        guesses = due[:left]
        plan = FetchList(
            dated=dated,
            rechecks=confirmed + guesses,
            guesses=frozenset(item.id for item in guesses),
            deferred=len(due) - len(guesses),
        )
        plan.rereads = self._rereads({item.id for item in plan.conversations})
        self._log(plan)
        return plan

    def _rereads(self, taken: set[str]) -> list[ListedConversation]:
        """Complete conversations of the last `summary_reread_days` to fetch again.

        Summaries can be edited in the app after a conversation completed; a re-read
        brings the edit. Before today only (today's were just fetched), in order of day
        and id from where the last re-read stopped, within today's budget.
        """
        days = self.settings.summary_reread_days
        checkpoint = self.checkpoint
        if not days or "summaries" not in self.streams:
            return []
        today = self.now.astimezone(dt.timezone.utc).date()
        first, last = str(today - dt.timedelta(days=days)), str(today - dt.timedelta(days=1))
        candidates = sorted(
            (day, cid)
            for day, ids in checkpoint.loaded.days.items()
            if first <= day <= last
            for cid in ids
            if cid not in checkpoint.pending and cid not in taken
        )
        after = tuple(checkpoint.rereads.after.split(" ", 1))
        turn = bisect.bisect_right(candidates, after)
        budget = recheck_budget(self.settings.daily_conversation_quota)
        left = max(0, budget - checkpoint.rereads.spent_on(self.now))
        chosen = (candidates[turn:] + candidates[:turn])[:left]
        return [
            ListedConversation(
                date=dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc), id=cid
            )
            for day, cid in chosen
        ]

    def _log(self, plan: FetchList) -> None:
        checkpoint = self.checkpoint
        new = sum(
            1
            for item in plan.dated
            if checkpoint.high_water is None or item.date > checkpoint.high_water
        )
        backfill = len(plan.dated) - new
        if backfill > 0 and checkpoint.high_water is not None:
            LOGGER.warning(
                "conversations: fetching %d conversations the state does not cover yet "
                "(%d requests and %d units of the token's daily conversation quota), "
                "besides %d new and %d still processing.",
                backfill,
                backfill,
                backfill,
                new,
                len(plan.rechecks),
            )
        if plan.rereads:
            LOGGER.info(
                "conversations: fetching %d conversations of the last %d days again for "
                "edited summaries (summary_reread_days).",
                len(plan.rereads),
                self.settings.summary_reread_days,
            )
        if plan.deferred:
            LOGGER.info(
                "conversations: %d re-checks of conversations still processing wait for "
                "tomorrow: today's share of the quota for re-checks (%d) is spent.",
                plan.deferred,
                recheck_budget(self.settings.daily_conversation_quota),
            )

"""Summaries edited in the app after completion arrive with `summary_reread_days`.

In-process runs against the sandbox on a shared simulated clock; request counts and
quota units come from the sandbox's counters.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from tap_conversations.planner import recheck_budget
from tests.sandbox import Sandbox
from tests.simulation import SimClock
from tests.test_history_cases import START, Account

if TYPE_CHECKING:
    from collections.abc import Iterator

STREAMS = ("conversations", "summaries")


@pytest.fixture
def account() -> Iterator[Account]:
    clock = SimClock(START)
    with Sandbox(conversations=0, rate_limit=100_000, clock=clock) as sb:
        yield Account(sb, clock)


def detail_requests(sb: Sandbox) -> int:
    return sb.counters.requests(endpoint="/conversations/{id}")


def test_an_edited_summary_arrives_on_the_next_day(account: Account) -> None:
    sb = account.sb
    ids = [account.add(hours_ago=h) for h in (2, 30, 80, 200)]  # today, 1, 3 and 8 days old
    account.run(STREAMS, summary_reread_days=7)
    for cid in ids:
        sb.edit_summary(cid, f"Edited {cid}.")
    account.later(days=1)
    sb.reset_counters()
    quota_before = sb.counters.quota_used()
    out = account.run(STREAMS, summary_reread_days=7)
    # Younger than 7 days and before today, oldest first; the 8-day-old one is not.
    reread = [ids[2], ids[1], ids[0]]
    assert out.ids("summaries", "conversation_id") == reread
    assert out.ids("conversations") == reread
    for cid in reread:
        summary = account.warehouse.row("summaries", cid)
        assert (summary["summary"], summary["updated_at"]) == (
            f"Edited {cid}.",
            "2026-03-02T09:00:00.000Z",  # when it was edited
        )
        assert account.warehouse.row("conversations", cid)["summary"] == f"Edited {cid}."
    assert account.warehouse.row("summaries", ids[3])["summary"] != f"Edited {ids[3]}."
    # Each re-read: the detail and /summary, one unit of the new day's quota.
    assert detail_requests(sb) == 3
    assert sb.counters.requests(endpoint="/conversations/{id}/summary") == 3
    assert sb.counters.quota_used() - quota_before == 3
    assert account.conversations_state["summary_rereads"] == {
        "day": "2026-03-03",
        "spent": 3,
        "after": f"2026-03-02 {ids[0]}",
    }


def test_off_by_default_and_without_the_summaries_stream(account: Account) -> None:
    sb = account.sb
    account.add(hours_ago=30)
    account.run(STREAMS)
    account.run(("conversations",), summary_reread_days=7)
    account.later(hours=1)
    sb.reset_counters()
    account.run(STREAMS)
    account.run(("conversations",), summary_reread_days=7)
    assert detail_requests(sb) == 0
    assert "removals" not in account.conversations_state  # nothing needs the loaded ids


def test_rereads_come_after_new_conversations_within_a_tenth_of_the_quota(
    account: Account,
) -> None:
    sb = account.sb
    quota = {"daily_conversation_quota": 30, "summary_reread_days": 5}  # budget: 3 a day
    old = [account.add(hours_ago=24 + h) for h in range(8)]
    account.run(STREAMS, **quota)
    account.later(hours=1)
    new = [account.add(hours_ago=0.2), account.add(hours_ago=0.1)]
    out = account.run(STREAMS, **quota)
    by_date = sorted(old, key=lambda c: (sb.conversation_detail(c)["date"][:10], c))
    assert out.ids("conversations") == [*new, *by_date[:3]]
    # The same day: the budget is spent, nothing more is re-read.
    account.later(hours=1)
    assert account.run(STREAMS, **quota).ids("conversations") == []
    # The next day the walk goes on where it stopped, and wraps to the oldest.
    account.later(days=1)
    assert account.run(STREAMS, **quota).ids("conversations") == by_date[3:6]
    # Yesterday's new ones joined the walk after the older day's.
    walk = [*by_date, *sorted(new)]
    account.later(days=1)
    assert account.run(STREAMS, **quota).ids("conversations") == walk[6:9]
    account.later(days=1)
    assert account.run(STREAMS, **quota).ids("conversations") == [walk[9], *walk[:2]]
    assert recheck_budget(30) == 3


def test_a_reread_moves_no_bookmark_and_changes_no_coverage(account: Account) -> None:
    account.add(hours_ago=30)
    account.run(STREAMS, summary_reread_days=3)
    before = dict(account.conversations_state)
    account.later(hours=1)
    account.run(STREAMS, summary_reread_days=3)
    after = account.conversations_state
    for key in ("replication_key_value", "coverage", "pending", "seen"):
        assert after[key] == before[key], key
    assert dt.date.fromisoformat(after["summary_rereads"]["day"]) == START.date()

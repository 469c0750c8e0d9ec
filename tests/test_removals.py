"""Conversations removed at the source reach the warehouse on `removed_conversations`.

Each test runs the tap in-process against the sandbox on a shared simulated clock,
removes conversations between runs, and checks the exact removals, requests and quota
units against the sandbox's truth and counters.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from typing import TYPE_CHECKING

import pytest

from tap_conversations.bookmarks import ConversationCheckpoint
from tap_conversations.errors import StateError
from tap_conversations.removals import FOUND_BY, LoadedIds, pack_id, unpack_id
from tests.sandbox import Sandbox
from tests.simulation import SimClock
from tests.test_history_cases import START, Account

if TYPE_CHECKING:
    from collections.abc import Iterator

WITH_REMOVALS = ("conversations", "removed_conversations", "sync_ledger")
SWEEP_EVERY_HOUR = {"removal_sweep_hours": 1}


@pytest.fixture
def account() -> Iterator[Account]:
    clock = SimClock(START)
    with Sandbox(conversations=0, rate_limit=100_000, clock=clock) as sb:
        yield Account(sb, clock)


def spread(account: Account, count: int, days: float = 20) -> list[str]:
    """`count` conversations spread over the last `days`, oldest first."""
    return [
        account.add(hours_ago=days * 24 * (count - n) / count, medium=("call", "video")[n % 2])
        for n in range(count)
    ]


def list_requests(sb: Sandbox) -> int:
    return sb.counters.requests(endpoint="/conversations")


def detail_requests(sb: Sandbox) -> int:
    return sb.counters.requests(endpoint="/conversations/{id}")


def test_a_removed_conversation_is_found_by_the_next_sweep_and_only_then(
    account: Account,
) -> None:
    sb = account.sb
    ids = spread(account, 60)
    first = account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    assert first.records("removed_conversations") == []
    loaded = LoadedIds.from_state(account.conversations_state["removals"])
    assert len(loaded) == 60
    assert loaded.swept_at == START

    gone = [ids[10], ids[41]]
    for cid in gone:
        sb.remove(cid)
    # Not due yet (the first run counts as a sweep): nothing re-listed, nothing found.
    account.later(minutes=30)
    sb.reset_counters()
    quiet = account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    assert quiet.records("removed_conversations") == []
    assert list_requests(sb) == 1

    account.later(minutes=30)
    sb.reset_counters()
    quota_before = sb.counters.quota_used()
    swept = account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    removals = swept.records("removed_conversations")
    assert [r["conversation_id"] for r in removals] == gone
    for record, cid in zip(removals, gone, strict=True):
        assert record == {
            "conversation_id": cid,
            "conversation_day": sb.conversation_detail(cid)["date"][:10],
            "found_at": "2026-03-02T10:00:00.000Z",
            "previous_sweep_at": "2026-03-02T09:00:00.000Z",
            "found_by": FOUND_BY,
            "run_id": swept.records("sync_ledger")[-1]["run_id"],
        }
    # The sweep lists the 58 left of the 30 days (minus its edge day) in pages of 25,
    # then fetches the two missing ones once each: two requests (a 404 spends no quota
    # in the sandbox; the contract leaves it open, so the README says "up to one unit").
    assert list_requests(sb) == math.ceil(58 / 25)
    assert detail_requests(sb) == 2
    assert sb.counters.quota_used() - quota_before == 0
    ledger = {row["row_key"]: row for row in swept.records("sync_ledger")}
    assert ledger["run"]["removed"] == 2
    assert sum(row["removed"] for key, row in ledger.items() if key != "run") == 2
    # Found once: the state forgets them, and the next sweep finds nothing more.
    after = LoadedIds.from_state(account.conversations_state["removals"])
    assert len(after) == 58
    assert not set(gone) & {cid for day in after.days.values() for cid in day}
    account.later(hours=1)
    assert account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR).records("removed_conversations") == []


def test_a_conversation_that_ages_out_is_never_a_removal(account: Account) -> None:
    sb = account.sb
    ids = spread(account, 30, days=29)
    account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    removed = ids[20]
    sb.remove(removed)
    # Five days on, the five oldest days have left the API's 30 days.
    account.later(days=5)
    sb.reset_counters()
    out = account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    assert out.ids("removed_conversations", "conversation_id") == [removed]
    assert detail_requests(sb) == 1
    kept = LoadedIds.from_state(account.conversations_state["removals"])
    floor = (account.clock.now - dt.timedelta(days=30)).date().isoformat()
    assert min(kept.days) >= floor


def test_a_conversation_hidden_from_the_list_but_still_there_is_kept(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    ids = spread(account, 10)
    account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    sb.hide(ids[3])
    account.later(hours=2)
    caplog.set_level(logging.INFO, logger="tap_conversations")
    sb.reset_counters()
    out = account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    assert out.records("removed_conversations") == []
    assert detail_requests(sb) == 1
    assert f"conversations: {ids[3]} no longer lists, but its detail answers: kept." in (
        caplog.messages
    )
    assert len(LoadedIds.from_state(account.conversations_state["removals"])) == 10


def test_more_missing_than_a_run_checks_are_found_over_several_runs(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    ids = spread(account, 20)
    quota = {"daily_conversation_quota": 20, **SWEEP_EVERY_HOUR}  # re-check budget: 2
    account.run(WITH_REMOVALS, **quota)
    gone = ids[:5]
    for cid in gone:
        sb.remove(cid)
    found: list[str] = []
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    for _ in range(3):
        account.later(hours=1)
        sb.reset_counters()
        found += account.run(WITH_REMOVALS, **quota).ids("removed_conversations", "conversation_id")
        assert detail_requests(sb) <= 2
    assert found == gone
    assert (
        "conversations: 5 loaded conversations no longer list, more than a run checks (2); "
        "the next run lists the 30 days again for the rest."
    ) in caplog.messages


def test_changed_filters_start_the_record_again_without_calling_anything_removed(
    account: Account,
) -> None:
    sb = account.sb
    spread(account, 12)
    account.run(WITH_REMOVALS, **SWEEP_EVERY_HOUR)
    account.later(hours=2)
    sb.reset_counters()
    narrowed = account.run(WITH_REMOVALS, mediums=["call"], **SWEEP_EVERY_HOUR)
    assert narrowed.records("removed_conversations") == []
    assert detail_requests(sb) == 0
    state = account.conversations_state["removals"]
    assert state["filters"]["mediums"] == ["call"]
    assert LoadedIds.from_state(state).days == {}


def test_deselected_the_state_keeps_no_ids(account: Account) -> None:
    spread(account, 5)
    account.run(WITH_REMOVALS)
    assert len(LoadedIds.from_state(account.conversations_state["removals"])) == 5
    account.later(hours=1)
    account.run(("conversations",))
    assert "removals" not in account.conversations_state


def test_the_state_stays_bounded_by_the_window(account: Account) -> None:
    """Its size follows the conversations inside the 30 days, not runs or removals."""
    sb = account.sb
    sizes = []
    removed, found = [], []
    yesterday: list[str] = []
    for _ in range(45):
        today = [account.add(hours_ago=h) for h in (1, 2, 3)]
        if yesterday:
            sb.remove(yesterday[0])
            removed.append(yesterday[0])
        out = account.run(WITH_REMOVALS, removal_sweep_hours=24)
        found += out.ids("removed_conversations", "conversation_id")
        sizes.append(len(json.dumps(account.conversations_state["removals"])))
        account.later(days=1)
        yesterday = today
    assert found == removed
    loaded = LoadedIds.from_state(account.conversations_state["removals"])
    assert len(loaded) <= 31 * 2 + 1
    assert max(sizes[32:]) <= sizes[31] + 100


def test_a_packed_id_reads_back() -> None:
    canonical = "0b0e2a56-4d6f-4f1f-9d2c-3b7e8f9a1c2d"
    packed = pack_id(canonical)
    assert packed is not None
    assert len(packed) == 22
    assert unpack_id(packed) == canonical
    for odd in ("0B0E2A56-4D6F-4F1F-9D2C-3B7E8F9A1C2D", "conv_123"):
        assert pack_id(odd) == f"={odd}"
        assert unpack_id(f"={odd}") == odd
    # An id that would change a request's path is never kept, nor read from a state.
    for unsafe in ("../me", "a/b", "a?b", ""):
        assert pack_id(unsafe) is None
        with pytest.raises(ValueError, match="characters no id has"):
            unpack_id(f"={unsafe}")


def test_a_damaged_removals_state_is_one_clear_error() -> None:
    damaged = {"replication_key_value": None, "removals": {"loaded": {"2026-03-01": "not*b64"}}}
    with pytest.raises(StateError, match=r"^The state of stream conversations cannot be read"):
        ConversationCheckpoint.from_state(damaged)

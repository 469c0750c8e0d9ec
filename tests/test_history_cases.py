"""The histories that used to end with exit 0 and rows missing, one deterministic test each.

Each runs the tap in-process against the sandbox on a clock the two share (so "a day
later" is a step of the clock, not a wait), passes the state along as a scheduler
would, loads the records upserting by key, and compares with the sandbox's truth.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.bookmarks import PROCESSING_ALLOWANCE
from tap_conversations.planner import recheck_budget
from tests.harness import SyncOutput, Warehouse, run_sync, tap_config
from tests.sandbox import Sandbox
from tests.simulation import SimClock

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
EVERY_PART = ("conversations", "transcripts", "insights", "summaries", "recordings")


class Account:
    """A sandbox on a simulated clock, and successive runs of the tap against it."""

    def __init__(self, sb: Sandbox, clock: SimClock) -> None:
        self.sb = sb
        self.clock = clock
        self.state: dict[str, Any] | None = None
        self.warehouse = Warehouse()

    def run(
        self, streams: Iterable[str] = EVERY_PART, *, keep_until: int | None = None, **config: Any
    ) -> SyncOutput:
        """One run; `keep_until` cuts its output after that many STATE messages (a stop)."""
        out = run_sync(
            tap_config(self.sb, **config), state=self.state, streams=list(streams), clock=self.clock
        )
        if keep_until is not None:
            states = [i for i, m in enumerate(out.messages) if m["type"] == "STATE"]
            out = SyncOutput(out.messages[: states[keep_until - 1] + 1])
        self.warehouse.load(out)
        self.state = out.state
        return out

    def later(self, **delta: float) -> None:
        self.clock.now += dt.timedelta(**delta)

    def add(self, *, hours_ago: float = 0.5, **overrides: Any) -> str:
        return self.sb.add_conversation(
            date=self.clock.now - dt.timedelta(hours=hours_ago), **overrides
        )

    @property
    def conversations_state(self) -> dict[str, Any]:
        return (self.state or {})["bookmarks"]["conversations"]

    def assert_complete(self, ids: Iterable[str], streams: Iterable[str] = EVERY_PART) -> None:
        """Every row of these conversations in every stream is loaded, as the server has it."""
        wh, sb = self.warehouse, self.sb
        ids = set(ids)
        streams = set(streams)
        if "conversations" in streams:
            assert wh.ids("conversations") >= ids
            for cid in ids:
                assert (
                    wh.row("conversations", cid)["summary"]
                    == sb.conversation_detail(cid)["summary"]
                )
        if "transcripts" in streams:
            assert {c for c in ids if c in wh.ids("transcripts", "conversation_id")} == {
                c for c in ids if sb.transcript(c) is not None
            }
        if "insights" in streams:
            loaded = {r["id"] for r in wh.rows("insights") if r["conversation_id"] in ids}
            assert loaded == {i["id"] for c in ids for i in sb.insights(c)}
        if "summaries" in streams:
            assert {c for c in ids if c in wh.ids("summaries", "conversation_id")} == {
                c for c in ids if sb.summary(c) is not None
            }
            for cid in ids:
                if sb.summary(cid) is not None:
                    assert wh.row("summaries", cid)["updated_at"] == sb.summary(cid)["updated_at"]  # type: ignore[index]
        if "recordings" in streams:
            assert {c for c in ids if c in wh.ids("recordings", "conversation_id")} == ids


@pytest.fixture
def account() -> Iterator[Account]:
    clock = SimClock(START)
    with Sandbox(conversations=0, rate_limit=100_000, clock=clock) as sb:
        yield Account(sb, clock)


def detail_requests(sb: Sandbox, status: int | None = None) -> int:
    return sb.counters.requests(endpoint="/conversations/{id}", status=status)


def test_a_listed_conversation_whose_detail_answers_404_is_fetched_again(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    shown_late = account.add()
    other = account.add(hours_ago=1)
    sb.fail_next(shown_late, "detail", times=1, status=404)
    first = account.run()
    assert first.ids("conversations") == [other]
    pending = account.conversations_state["pending"]
    assert set(pending) == {shown_late}
    assert pending[shown_late]["reason"] == "detail_unavailable"

    account.later(hours=1)
    sb.reset_counters()
    account.run()
    assert detail_requests(sb) == 1  # the pending one only
    account.assert_complete({shown_late, other})
    assert account.conversations_state["pending"] == {}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_detail_404_that_never_heals_is_given_up_by_name(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    gone = account.add()
    sb.fail_next(gone, "detail", times=100, status=404)
    account.run()
    fetches = 1
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    while gone in account.conversations_state["pending"]:
        account.later(hours=6)
        before = detail_requests(sb)
        account.run()
        fetches += detail_requests(sb) - before
        assert fetches < 20
    warnings = [r.getMessage() for r in caplog.records if gone in r.getMessage()]
    assert warnings == [
        (
            "conversations: 1 conversations were listed, but their detail answered 404 or for "
            "another conversation when fetched 3 days after their date; no longer fetched "
            f"again, their records as loaded stand: {gone}. Ask the vendor's support about them."
        )
    ]
    assert account.clock.now - START >= PROCESSING_ALLOWANCE


def test_a_summary_answering_404_once_arrives_on_a_later_run(account: Account) -> None:
    sb = account.sb
    cid = account.add()
    sb.fail_next(cid, "summary", times=1, status=404)
    account.run()
    assert account.warehouse.ids("summaries", "conversation_id") == set()
    assert account.conversations_state["pending"][cid]["reason"] == "summary_unavailable"
    account.later(hours=1)
    account.run()
    account.assert_complete({cid})
    assert account.conversations_state["pending"] == {}


def test_a_detail_answering_another_id_is_not_emitted_under_it(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    asked = account.add(hours_ago=2)
    other = account.add(hours_ago=1)
    sb.answer_as(asked, other)
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    first = account.run(["conversations"])
    assert first.ids("conversations") == [other]  # once, under its own id
    assert [r.getMessage() for r in caplog.records] == [
        (
            f"conversations: GET /conversations/{asked} answered another conversation; it "
            "stays pending and is fetched again on a later run."
        )
    ]
    account.later(hours=1)
    account.run(["conversations"])
    account.assert_complete({asked, other}, ["conversations"])


def test_a_first_run_stopped_part_way_covers_only_what_it_emitted(account: Account) -> None:
    ids = [account.add(hours_ago=100 - i) for i in range(60)]
    account.run(["conversations"], keep_until=2)  # stopped after two chunks
    assert len(account.warehouse.ids("conversations")) == 50
    account.later(minutes=5)
    account.run(EVERY_PART)  # more streams selected now
    account.assert_complete(ids)


def test_a_bookmark_in_the_future_is_not_trusted(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    older = [account.add(hours_ago=48 + i) for i in range(3)]
    account.run(["conversations"])
    # An older version moved the bookmark to a conversation dated ahead.
    future = account.clock.now + dt.timedelta(days=3)
    account.conversations_state["replication_key_value"] = future.isoformat()
    account.conversations_state["seen"] = {}
    account.later(days=2)
    since = [account.add(hours_ago=30 + i) for i in range(4)]  # older than the window
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    account.run(["conversations"])
    account.assert_complete(older + since, ["conversations"])
    assert any("is later than now" in r.getMessage() for r in caplog.records)


def test_ties_no_filter_reaches_are_named_and_listed_again(
    account: Account, caplog: pytest.LogCaptureFixture
) -> None:
    sb = account.sb
    retired_department = sb.departments()[0]["id"]
    retired_user = sb.users()[0]["id"]
    sb.set_department_enabled(retired_department, enabled=False)
    sb.set_user_active(retired_user, active=False)
    department = sb.departments()[0]["id"]
    user = sb.users()[0]["id"]
    instant = account.clock.now - dt.timedelta(hours=2)
    reachable = {
        sb.add_conversation(date=instant, medium="call", department_id=department, user_id=None)
        for _ in range(12)
    } | {
        sb.add_conversation(date=instant, medium="call", department_id=None, user_id=user)
        for _ in range(12)
    }
    unreachable = {
        sb.add_conversation(date=instant, medium="call", department_id=None, user_id=None),
        sb.add_conversation(
            date=instant, medium="call", department_id=retired_department, user_id=retired_user
        ),
    }
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    account.run(["conversations"])
    # Every conversation some filter reaches; the rest only if the unsplit page had them.
    assert reachable <= account.warehouse.ids("conversations") <= reachable | unreachable
    stamp = instant.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    warnings = [r.getMessage() for r in caplog.records if "share the date" in r.getMessage()]
    assert len(warnings) == 1
    assert (
        f"share the date {stamp} (medium=call); could not prove every conversation" in (warnings[0])
    )
    assert account.conversations_state["unproven_ties"] == [stamp]

    # Two days later, far below the late-data window: listed again, warned again.
    account.later(days=2)
    newly_reachable = sb.add_conversation(
        date=instant, medium="call", department_id=department, user_id=user
    )
    caplog.clear()
    account.run(["conversations"])
    assert newly_reachable in account.warehouse.ids("conversations")
    assert [r for r in caplog.records if f"share the date {stamp}" in r.getMessage()]


def test_conversations_never_summarized_cost_a_bounded_number_of_fetches(
    account: Account,
) -> None:
    """1 in 10 never gets a summary; a month of hourly runs fetches each a bounded number."""
    sb = account.sb
    never = []
    for hour in range(24 * 5):
        for n in range(3):
            cid = account.add(hours_ago=0.1, summary=None if (hour + n) % 10 == 0 else "Done.")
            if (hour + n) % 10 == 0:
                never.append(cid)
        account.run(["conversations"])
        account.later(hours=1)
    pending = account.conversations_state["pending"]
    assert set(pending) <= set(never)
    assert all(
        account.clock.now - dt.datetime.fromisoformat(entry["date"].replace("Z", "+00:00"))
        < PROCESSING_ALLOWANCE + dt.timedelta(days=1)
        for entry in pending.values()
    )
    # Fetched once each, and the never-summarized ones again on the age schedule
    # until the 3-day allowance: not 30-40 times each for a month.
    rechecks = detail_requests(sb) - 3 * 24 * 5
    given_up = len(never) - len(pending)
    assert given_up > 0
    assert rechecks <= 16 * len(never)


def test_re_checks_come_after_new_conversations_within_a_tenth_of_the_quota(
    account: Account,
) -> None:
    quota = 100
    waiting = [account.add(hours_ago=2, processed=False) for _ in range(30)]
    account.run(["conversations"], daily_conversation_quota=quota)
    account.later(hours=3)
    fresh = [account.add(hours_ago=0.2) for _ in range(5)]
    out = account.run(["conversations"], daily_conversation_quota=quota)
    order = out.ids("conversations")
    rechecked = [cid for cid in order if cid in waiting]
    assert order[: len(fresh)] == sorted(fresh)  # one date: by id
    assert len(rechecked) == recheck_budget(quota) == 10
    assert account.conversations_state["rechecks"] == {
        "day": account.clock.now.date().isoformat(),
        "spent": 10,
    }
    account.later(hours=3)  # the same day: the share is spent
    again = account.run(["conversations"], daily_conversation_quota=quota)
    assert again.ids("conversations") == []
    assert len(account.conversations_state["pending"]) == 30


def test_a_user_removed_at_the_source_is_a_removed_version(account: Account) -> None:
    """Each read of a reference stream is a version; ACTIVATE_VERSION follows its records."""
    sb = account.sb
    first = account.run(["users", "departments", "teams", "webhook_deliveries"])
    leaving = sb.users()[0]["id"]
    sb.set_user_active(leaving, active=False)
    second = account.run(["users", "departments", "teams", "webhook_deliveries"])
    for out in (first, second):
        for stream in ("users", "departments", "teams"):
            messages = [m for m in out.messages if m.get("stream") == stream]
            records = [m for m in messages if m["type"] == "RECORD"]
            activations = [m for m in messages if m["type"] == "ACTIVATE_VERSION"]
            # After the last record, once, with the version every record carries.
            assert len(activations) == 1
            assert messages[-1] == activations[0]
            assert {m["version"] for m in records} == {activations[0]["version"]}
        # Deliveries leave the endpoint after 7 days: aging out is not a removal.
        assert not [
            m
            for m in out.messages
            if m["type"] == "ACTIVATE_VERSION" and m["stream"] == "webhook_deliveries"
        ]
    assert leaving not in second.ids("users")
    assert leaving in first.ids("users")
    version = next(m["version"] for m in second.messages if m["type"] == "ACTIVATE_VERSION")
    assert version > next(m["version"] for m in first.messages if m["type"] == "ACTIVATE_VERSION")


def test_a_reference_read_that_fails_activates_nothing(account: Account) -> None:
    token = account.sb.add_token(scopes=("conversations",))  # no users scope: a 403
    out = run_sync(tap_config(account.sb, token=token), streams=["users"], clock=account.clock)
    assert [m for m in out.messages if m["type"] in {"RECORD", "ACTIVATE_VERSION"}] == []


def test_the_ledger_says_per_day_what_is_complete_and_what_is_missing(account: Account) -> None:
    sb = account.sb
    yesterday = [account.add(hours_ago=26 + i) for i in range(3)]
    processing = account.add(hours_ago=1, processed=False)
    not_yet = account.add(hours_ago=2)
    sb.fail_next(not_yet, "detail", times=1, status=404)
    today = [account.add(hours_ago=3 + i) for i in range(2)]
    out = account.run(["conversations", "summaries", "sync_ledger"])
    rows = {row["row_key"]: row for row in out.records("sync_ledger")}
    run_id = {row["run_id"] for row in rows.values()}
    assert len(run_id) == 1
    day_of = {
        cid: sb.conversation_detail(cid)["date"][:10]
        for cid in [*yesterday, processing, not_yet, *today]
    }
    days = sorted(set(day_of.values()))
    assert sorted(rows) == [*days, "run"]
    for day in days:
        ids = [cid for cid, d in day_of.items() if d == day]
        assert rows[day]["listed"] == len(ids)
        assert rows[day]["complete"] == len(set(ids) - {processing, not_yet})
        assert rows[day]["pending_processing"] == (processing in ids)
        assert rows[day]["pending_detail_unavailable"] == (not_yet in ids)
        assert rows[day]["ended"] == "complete"
    run = rows["run"]
    assert (run["listed"], run["complete"]) == (7, 5)
    assert (run["pending_processing"], run["pending_detail_unavailable"]) == (1, 1)
    assert run["requests"] == sb.counters.requests()
    assert run["quota_used"] == sb.counters.quota_used()
    assert run["day"] is None


def test_a_run_the_quota_stopped_says_so_in_the_ledger(account: Account) -> None:
    account.sb.set_daily_quota(2)
    for i in range(4):
        account.add(hours_ago=1 + i)
    out = account.run(["conversations", "sync_ledger"])
    run = next(row for row in out.records("sync_ledger") if row["row_key"] == "run")
    assert run["ended"] == "quota"
    assert run["listed"] == 4
    assert run["quota_used"] == 2

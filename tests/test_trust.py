"""Trust: across runs, the warehouse ends with everything the token may see, or a warning.

Each test runs the tap two or more times against the sandbox, passes the state from one
run to the next as a scheduler would, upserts the records by key as a loader would, and
compares the result with the sandbox's own truth, or finds the exact warning.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.bookmarks import ConversationCheckpoint
from tap_conversations.conversation_filters import ListedConversation
from tap_conversations.errors import StateError
from tap_conversations.planner import FetchList
from tests.harness import SyncOutput, Warehouse, run_sync, tap_config
from tests.helpers import hold_detail

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from pathlib import Path

    from tests.sandbox import Sandbox

CONVERSATION_STREAMS = ("conversations", "transcripts", "insights", "summaries")


def truth_ids(sb: Sandbox, **filters: Any) -> set[str]:
    return {c["id"] for c in sb.listed_conversations(**filters)}


def assert_conversation_streams_match(
    sb: Sandbox, warehouse: Warehouse, ids: Iterable[str]
) -> None:
    ids = set(ids)
    assert warehouse.ids("conversations") == ids
    assert warehouse.ids("transcripts", "conversation_id") == {
        c for c in ids if sb.transcript(c) is not None
    }
    assert warehouse.ids("insights") == {i["id"] for c in ids for i in sb.insights(c)}
    assert warehouse.ids("summaries", "conversation_id") == {
        c for c in ids if sb.summary(c) is not None
    }


class Runs:
    """Successive runs of one configuration, the state passed along, loaded upserting."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.state: dict[str, Any] | None = None
        self.warehouse = Warehouse()

    def run(self, streams: Iterable[str] = CONVERSATION_STREAMS, **overrides: Any) -> SyncOutput:
        out = run_sync({**self.config, **overrides}, state=self.state, streams=list(streams))
        self.warehouse.load(out)
        self.state = out.state
        return out


def detail_requests(sb: Sandbox) -> int:
    return sb.counters.requests(endpoint="/conversations/{id}")


# --- late data ---------------------------------------------------------------------


def test_slow_processing_in_a_quiet_account_arrives_when_a_webhook_says_done(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc)
    slow = sb.add_conversation(date=now - dt.timedelta(hours=3), processed=False)
    runs = Runs(tap_config(sb, late_data_window_hours=1))
    runs.run()
    assert slow in runs.state["bookmarks"]["conversations"]["pending"]  # type: ignore[index]

    # A newer conversation moves the bookmark: the slow one leaves the late-data window.
    newer = sb.add_conversation(date=now)
    runs.run()
    assert slow in runs.state["bookmarks"]["conversations"]["pending"]  # type: ignore[index]

    sb.set_processed(slow, processed=True)  # records a conversation.completed delivery
    sb.reset_counters()
    runs.run()
    assert_conversation_streams_match(sb, runs.warehouse, {slow, newer})
    assert runs.warehouse.row("summaries", slow) == {**sb.summary(slow), "conversation_id": slow}  # type: ignore[dict-item]
    assert sb.counters.requests(endpoint="/conversations/{id}") == 1
    assert sb.counters.requests(endpoint="/webhooks/deliveries") == 1
    assert runs.state["bookmarks"]["conversations"]["pending"] == {}  # type: ignore[index]


def test_slow_processing_without_webhooks_is_rechecked_on_its_schedule(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc)
    slow = sb.add_conversation(date=now - dt.timedelta(days=2), processed=False)
    newer = sb.add_conversation(date=now)
    runs = Runs(tap_config(sb, late_data_window_hours=1))
    runs.run()
    sb.set_processed(slow, processed=True, webhook=False)

    sb.reset_counters()
    runs.run()  # checked two days after its date a moment ago: not due yet
    assert detail_requests(sb) == 0
    assert slow not in runs.warehouse.ids("summaries", "conversation_id")

    # A day later (the state's clock moved back by a day): due, fetched, complete.
    pending = runs.state["bookmarks"]["conversations"]["pending"]  # type: ignore[index]
    checked = dt.datetime.fromisoformat(pending[slow]["checked"].replace("Z", "+00:00"))
    pending[slow]["checked"] = (checked - dt.timedelta(days=1)).isoformat()
    sb.reset_counters()
    runs.run()
    assert detail_requests(sb) == 1
    assert_conversation_streams_match(sb, runs.warehouse, {slow, newer})


def test_a_conversation_that_never_completes_is_given_up_with_one_warning(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    stuck = sandbox.add_conversation(date=an_hour_ago, processed=False)
    runs = Runs(tap_config(sandbox))
    runs.run()
    state = runs.state
    assert state is not None
    pending = state["bookmarks"]["conversations"]["pending"]
    assert set(pending) == {stuck}
    # As if it had been pending since before the API's 30 days.
    pending[stuck]["date"] = "2020-01-01T00:00:00.000Z"
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    caplog.clear()
    runs.run()
    warnings = [r.getMessage() for r in caplog.records if "no longer fetched" in r.getMessage()]
    assert warnings == [
        (
            "conversations: 1 conversations had no summary yet when they left the API's 30 "
            f"days of history; no longer fetched again, their records as loaded stand: {stuck}."
        )
    ]
    assert stuck not in runs.state["bookmarks"]["conversations"]["pending"]  # type: ignore[index]


def test_the_bookmark_never_moves_past_the_present() -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    checkpoint = ConversationCheckpoint()
    checkpoint.advance(now + dt.timedelta(days=2), now)  # a conversation dated ahead of us
    assert checkpoint.high_water == now
    assert checkpoint.relist_from(dt.timedelta(hours=24), now) == now - dt.timedelta(hours=24)


# --- ties --------------------------------------------------------------------------


@pytest.mark.parametrize("ties", [26, 60])
def test_ties_beyond_a_page_are_all_listed(
    sandbox_factory: Callable[..., Sandbox], ties: int
) -> None:
    sb = sandbox_factory(conversations=0)
    tie = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=3)
    mediums = ("call", "video", "email", "chat", "live")
    added = {sb.add_conversation(date=tie, medium=mediums[i % 5]) for i in range(ties)}
    runs = Runs(tap_config(sb))
    runs.run(["conversations"])
    assert runs.warehouse.ids("conversations") == added == truth_ids(sb)
    # The group page, one page per medium, the walk's pages; one detail each.
    assert detail_requests(sb) == ties


def test_ties_the_filters_cannot_split_are_named_in_a_warning(
    sandbox_factory: Callable[..., Sandbox], caplog: pytest.LogCaptureFixture
) -> None:
    sb = sandbox_factory(conversations=0)
    tie = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(hours=3)
    department = sb.departments()[0]["id"]
    user = sb.users()[0]["id"]
    for _ in range(27):
        sb.add_conversation(date=tie, medium="call", department_id=department, user_id=user)
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    runs = Runs(tap_config(sb))
    runs.run(["conversations"])
    assert len(runs.warehouse.ids("conversations")) == 25
    stamp = tie.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    warnings = [r.getMessage() for r in caplog.records if "share the date" in r.getMessage()]
    assert warnings == [
        (
            f"conversations: more than 25 conversations share the date {stamp} (medium=call); "
            "could not prove every conversation at this instant was listed: the API's filters "
            "cannot split them into pages, and conversations without a department or user, or "
            "of a disabled department or an inactive user, are reachable by no filter. The "
            "state keeps this date and later runs list it again. Report it to the vendor with "
            "this line."
        )
    ]
    assert runs.state["bookmarks"]["conversations"]["unproven_ties"] == [stamp]  # type: ignore[index]


# --- what the state covers -----------------------------------------------------------


def test_a_widened_filter_fetches_exactly_what_the_state_does_not_cover(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    runs = Runs(tap_config(sandbox))
    runs.run(mediums=["call"])
    calls = truth_ids(sandbox, medium="call")
    assert runs.warehouse.ids("conversations") == calls

    caplog.set_level(logging.WARNING, logger="tap_conversations")
    sandbox.reset_counters()
    runs.run()
    assert_conversation_streams_match(sandbox, runs.warehouse, truth_ids(sandbox))
    assert detail_requests(sandbox) == len(truth_ids(sandbox) - calls)
    messages = [r.getMessage() for r in caplog.records]
    assert any("filters widened (mediums ['call'] → all)" in m for m in messages)
    assert any(
        m.startswith(f"conversations: fetching {len(truth_ids(sandbox) - calls)} conversations")
        for m in messages
    )

    # A third run costs what a quiet run costs: nothing is refetched.
    sandbox.reset_counters()
    runs.run()
    assert detail_requests(sandbox) == 0


def test_a_narrowed_filter_loses_nothing_that_was_covered(sandbox: Sandbox) -> None:
    runs = Runs(tap_config(sandbox))
    runs.run()
    runs.run(mediums=["call"])
    sandbox.reset_counters()
    runs.run()  # all mediums again: everything was covered by the first run
    assert_conversation_streams_match(sandbox, runs.warehouse, truth_ids(sandbox))
    assert detail_requests(sandbox) == 0


def test_a_stream_selected_later_is_backfilled(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    runs = Runs(tap_config(sandbox))
    runs.run(["conversations"])
    caplog.set_level(logging.WARNING, logger="tap_conversations")
    sandbox.reset_counters()
    runs.run(CONVERSATION_STREAMS)
    assert_conversation_streams_match(sandbox, runs.warehouse, truth_ids(sandbox))
    assert detail_requests(sandbox) == len(truth_ids(sandbox))
    assert any(
        "streams insights, summaries, transcripts were not synced before" in r.getMessage()
        for r in caplog.records
    )


def test_a_scope_granted_later_is_backfilled(sandbox: Sandbox) -> None:
    token = sandbox.add_token(scopes=("conversations",))
    runs = Runs(tap_config(sandbox, token=token))
    runs.run()
    assert runs.warehouse.ids("transcripts", "conversation_id") == set()
    assert runs.state["bookmarks"]["conversations"]["missing_scopes"] == [  # type: ignore[index]
        "insights",
        "transcripts",
    ]
    sandbox.reset_counters()
    runs.run()  # still missing: a probe each, no backfill
    assert detail_requests(sandbox) == 0

    sandbox.add_token(scopes=("conversations", "transcripts", "insights"), token=token)
    runs.run()
    assert_conversation_streams_match(sandbox, runs.warehouse, truth_ids(sandbox))


def test_an_earlier_start_date_is_backfilled(sandbox: Sandbox) -> None:
    ids = sorted(sandbox.listed_conversations(), key=lambda c: c["date"])
    middle = ids[len(ids) // 2]["date"]
    runs = Runs(tap_config(sandbox))
    runs.run(start_date=middle)
    assert runs.warehouse.ids("conversations") == {c["id"] for c in ids if c["date"] >= middle}
    runs.run()
    assert_conversation_streams_match(sandbox, runs.warehouse, truth_ids(sandbox))


# --- state input ---------------------------------------------------------------------


def test_the_whole_state_message_is_accepted(sandbox: Sandbox) -> None:
    first = run_sync(tap_config(sandbox), streams=["conversations"])
    sandbox.reset_counters()
    message = {"type": "STATE", "value": first.state}
    second = run_sync(tap_config(sandbox), state=message, streams=["conversations"])
    assert second.ids("conversations") == []
    assert detail_requests(sandbox) == 0


def test_a_state_of_another_account_stops_before_any_conversation_request(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    mine = sandbox_factory(seed=7)
    theirs = sandbox_factory(seed=8)
    assert mine.account()["id"] != theirs.account()["id"]
    state = run_sync(tap_config(mine), streams=["conversations"]).state
    with pytest.raises(StateError, match=r"^The state was written for account "):
        run_sync(tap_config(theirs), state=state, streams=["conversations"])
    assert theirs.counters.requests(endpoint="/conversations") == 0
    assert detail_requests(theirs) == 0


def test_the_same_account_at_a_new_api_url_continues(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    old = sandbox_factory(seed=7)
    new = sandbox_factory(seed=7)  # same account, another address
    state = run_sync(tap_config(old), streams=["conversations"]).state
    second = run_sync(tap_config(new), state=state, streams=["conversations"])
    assert second.ids("conversations") == []
    assert detail_requests(new) == 0


def test_a_delivery_status_change_reaches_the_warehouse(sandbox: Sandbox) -> None:
    conversation = sandbox.listed_conversations()[0]["id"]
    an_hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    delivery = sandbox.add_delivery(conversation, created_at=an_hour_ago)
    sandbox.add_delivery(conversation, status="delivered")  # newer, read in the same run
    runs = Runs(tap_config(sandbox))
    runs.run(["webhook_deliveries"])
    assert runs.warehouse.row("webhook_deliveries", delivery)["status"] == "pending"
    sandbox.set_delivery_status(delivery, "delivered")
    runs.run(["webhook_deliveries"])
    assert runs.warehouse.row("webhook_deliveries", delivery)["status"] == "delivered"
    assert runs.warehouse.ids("webhook_deliveries") == {
        d["id"] for d in sandbox.webhook_deliveries()
    }


def run_cli(sandbox: Sandbox, tmp_path: Path, state_text: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tap_config(sandbox)))
    state = tmp_path / "state.json"
    state.write_text(state_text)
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "tap_conversations", "--config", str(config), "--state", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("state_text", "says"),
    [
        ('{"bookmarks": {"conversations": {"replication_key_value": "2026-', "is not valid JSON"),
        ('{"bookmarks": {"webhook_deliveries": "x"}}', "The state of stream webhook_deliveries"),
        (
            '{"bookmarks": {"conversations": {"pending": ["x"]}}}',
            "The state of stream conversations",
        ),
        ('{"bookmarks": []}', "is not a Singer state"),
        (
            '{"bookmarks": {"conversations": {"emitted_ahead": ["x"]}}}',
            "(TypeError: emitted_ahead is list, not an object)",
        ),
        (
            '{"bookmarks": {"conversations": {"emitted_ahead": {"0a1b2c3d": 5}}}}',
            "(TypeError: emitted_ahead['0a1b2c3d'] is int, not a date)",
        ),
    ],
)
def test_a_damaged_state_is_one_line_before_any_record(
    sandbox: Sandbox, tmp_path: Path, state_text: str, says: str
) -> None:
    result = run_cli(sandbox, tmp_path, state_text)
    assert result.returncode == 2
    assert '"type":"RECORD"' not in result.stdout.replace(" ", "")
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if says in line]
    assert len(errors) == 1
    assert "meltano state clear" in errors[0]
    assert sandbox.counters.requests() == 0


def test_a_backfill_cut_by_the_daily_quota_resumes_without_fetching_twice(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = Runs(tap_config(sandbox))
    runs.run(["conversations"])
    everything = truth_ids(sandbox)
    quota = 30
    sandbox.set_daily_quota(quota)
    #: Conversations still processing before a run: re-checked by design.
    pending_before = set(runs.state["bookmarks"]["conversations"]["pending"])  # type: ignore[index]
    backfill = sorted(
        ListedConversation.from_item(item)
        for item in sandbox.listed_conversations()
        if item["id"] not in pending_before
    )
    # The first cut day: the 27th conversation's thread stalls until the others have
    # spent the quota, so conversations after it in date order are fetched and emitted
    # while it is refused (threads racing ahead of one that waited made that 21 in CI).
    stalled = backfill[26].id
    hold_detail(
        monkeypatch,
        stalled,
        lambda: sandbox.counters.quota_used(sandbox.token) >= quota,
        "the other threads did not spend the quota",
    )
    fetched_per_day: list[int] = []
    first_fetches: Counter[str] = Counter()
    rechecks = 0
    while not fetched_per_day or fetched_per_day[-1]:
        sandbox.new_day()
        sandbox.reset_counters()
        out = runs.run()  # transcripts, insights, summaries selected now: a backfill of every one
        fetched_per_day.append(
            sandbox.counters.requests(endpoint="/conversations/{id}", status=200)
        )
        emitted = set(out.ids("conversations"))
        if len(fetched_per_day) == 1:
            assert stalled not in emitted
            assert emitted & {item.id for item in backfill[27:]}, "nothing emitted past the cut"
        first_fetches.update(emitted - pending_before)
        rechecks += len(emitted & pending_before)
        pending_before = set(runs.state["bookmarks"]["conversations"]["pending"])  # type: ignore[index]
        assert len(fetched_per_day) <= 6
    assert_conversation_streams_match(sandbox, runs.warehouse, everything)
    # 30 a day until done, then a quiet day.
    assert fetched_per_day[:3] == [quota] * 3
    assert fetched_per_day[-1] == 0
    # No conversation is fetched twice but to re-check one still processing: what a cut
    # day emitted beyond what its bookmark proved, its state holds until proven.
    assert set(first_fetches) == {item.id for item in backfill}
    assert max(first_fetches.values()) == 1
    assert sum(fetched_per_day) == len(backfill) + rechecks


def test_a_quota_cut_inside_a_tie_leaves_that_date_uncovered() -> None:
    tie = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)
    plan = FetchList(
        dated=[
            ListedConversation(date=tie - dt.timedelta(hours=1), id="a"),
            ListedConversation(date=tie, id="b"),
            ListedConversation(date=tie, id="c"),
        ],
        rechecks=[ListedConversation(date=tie - dt.timedelta(days=2), id="d")],
    )
    cut_in_tie = plan.fetched_until(2)
    assert cut_in_tie is not None
    assert tie - dt.timedelta(milliseconds=1) < cut_in_tie < tie
    assert plan.fetched_until(1) == tie - dt.timedelta(hours=1)
    assert plan.fetched_until(3) == tie
    # Re-checks come after the dated conversations and never move the bookmark back.
    assert plan.fetched_until(4) == tie
    assert plan.fetched_until(0) is None


def test_a_quota_cut_at_a_tie_across_two_chunks_loses_neither(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """The 25th and 26th conversations to fetch share a date; the quota stops at the 26th."""
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    for i in range(24):
        sb.add_conversation(date=now - dt.timedelta(days=10, hours=i))
    tie = now - dt.timedelta(days=3)
    sb.add_conversation(date=tie)
    sb.add_conversation(date=tie)
    for i in range(5):
        sb.add_conversation(date=now - dt.timedelta(hours=i + 1))
    # One fetch at a time: the quota runs out exactly at the 26th conversation.
    runs = Runs(tap_config(sb, max_parallel_requests=1))
    runs.run(["conversations"])
    sb.set_daily_quota(25)
    sb.new_day()
    runs.run()  # transcripts, insights, summaries now: a backfill cut inside the tie
    sb.set_daily_quota(1000)
    sb.new_day()
    runs.run()
    assert_conversation_streams_match(sb, runs.warehouse, truth_ids(sb))

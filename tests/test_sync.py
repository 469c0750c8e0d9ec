"""Syncs against the sandbox: exact records, exact requests, state across runs."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.bookmarks import (
    EMITTED_AHEAD_LIMIT,
    PROCESSING,
    PROCESSING_ALLOWANCE,
    ConversationCheckpoint,
    format_timestamp,
    parse_timestamp,
)
from tap_conversations.conversation_filters import ListedConversation
from tap_conversations.tap import TapConversations
from tests.harness import ALL_STREAMS, catalog_selecting, run_sync, tap_config
from tests.helpers import Answer, crafted_config
from tests.listing_model import PAGE, expected_list_requests

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.helpers import CraftedApi
    from tests.sandbox import Sandbox

CONVERSATION_CHILDREN = (
    "transcripts",
    "transcript_segments",
    "insights",
    "summaries",
    "recordings",
)


def listed_ids(sb: Sandbox, **filters: Any) -> list[str]:
    return [item["id"] for item in sb.listed_conversations(**filters)]


def assert_unique(ids: list[Any]) -> None:
    assert len(ids) == len(set(ids)), "duplicate primary key in one sync"


def test_full_sync_emits_exactly_the_sandbox_truth(sandbox: Sandbox) -> None:
    out = run_sync(tap_config(sandbox), streams=ALL_STREAMS)
    conversation_ids = listed_ids(sandbox)

    assert sorted(out.ids("conversations")) == sorted(conversation_ids)
    assert out.ids("users") == [u["id"] for u in sandbox.users()]
    assert out.ids("teams") == [t["id"] for t in sandbox.teams()]
    assert out.ids("departments") == [d["id"] for d in sandbox.departments()]
    assert out.ids("account") == [sandbox.account()["id"]]
    assert sorted(out.ids("webhook_deliveries")) == sorted(
        d["id"] for d in sandbox.webhook_deliveries()
    )
    with_transcript = [c for c in conversation_ids if sandbox.transcript(c) is not None]
    assert sorted(out.ids("transcripts", "conversation_id")) == sorted(with_transcript)
    assert sorted(
        (r["conversation_id"], r["segment_index"]) for r in out.records("transcript_segments")
    ) == sorted(
        (c, i)
        for c in with_transcript
        for i in range(len((sandbox.transcript(c) or {})["segments"]))
    )
    assert sorted(out.ids("insights")) == sorted(
        i["id"] for c in conversation_ids for i in sandbox.insights(c)
    )
    assert sorted(out.ids("summaries", "conversation_id")) == sorted(
        c for c in conversation_ids if sandbox.summary(c) is not None
    )
    assert sorted(out.ids("recordings", "conversation_id")) == sorted(conversation_ids)

    for stream, key in [
        ("conversations", "id"),
        ("transcripts", "conversation_id"),
        ("insights", "id"),
        ("summaries", "conversation_id"),
        ("recordings", "conversation_id"),
    ]:
        assert_unique(out.ids(stream, key))
    assert_unique(
        [(r["conversation_id"], r["segment_index"]) for r in out.records("transcript_segments")]
    )
    for stream in ALL_STREAMS:
        assert out.schema_count(stream) == 1, stream


def test_records_carry_the_api_values_without_the_envelope(sandbox: Sandbox) -> None:
    out = run_sync(tap_config(sandbox), streams=["conversations", "transcripts", "summaries"])
    conversation = out.records("conversations")[0]
    truth = sandbox.conversation_detail(
        conversation["id"], include_transcript=False, include_insights=False
    )
    truth.pop("_meta", None)
    assert conversation == truth
    transcript = out.records("transcripts")[0]
    assert (
        transcript["segments"]
        == (sandbox.transcript(transcript["conversation_id"]) or {})["segments"]
    )
    summary = out.records("summaries")[0]
    assert summary == sandbox.summary(summary["conversation_id"])


@pytest.mark.parametrize(
    ("streams", "per_conversation"),
    [
        (["conversations"], {"/conversations/{id}": 1}),
        (["conversations", "transcripts", "insights"], {"/conversations/{id}": 1}),
        (["transcripts"], {"/conversations/{id}": 1}),
        (["recordings"], {"/conversations/{id}/recording": 1}),
        (
            list(ALL_STREAMS),
            {"/conversations/{id}": 1, "/conversations/{id}/recording": 1, "summary": 1},
        ),
    ],
)
def test_request_counts_per_selection(
    sandbox: Sandbox, streams: list[str], per_conversation: dict[str, int]
) -> None:
    out = run_sync(tap_config(sandbox), streams=streams)
    ids = listed_ids(sandbox)
    counts = sandbox.counters.by_endpoint()
    total = {endpoint: sum(by_status.values()) for endpoint, by_status in counts.items()}

    # /me ties the state to its account: one request, shared with the account stream.
    expected = {"/conversations": expected_list_requests(sandbox), "/me": 1}
    for endpoint in per_conversation:
        if endpoint == "summary":
            expected["/conversations/{id}/summary"] = sum(
                1 for c in ids if sandbox.summary(c) is not None
            )
        else:
            expected[endpoint] = len(ids)
    first = min(sandbox.listed_conversations(), key=lambda c: (c["date"], c["id"]))["id"]
    if {"transcripts", "transcript_segments"} & set(streams) and sandbox.transcript(first) is None:
        expected["/conversations/{id}/transcript"] = 1  # the one scope probe
    for stream, endpoint in [
        ("account", "/me"),
        ("users", "/users"),
        ("teams", "/teams"),
        ("departments", "/departments"),
        ("webhook_deliveries", "/webhooks/deliveries"),
    ]:
        if stream in streams:
            expected[endpoint] = 1
    assert total == expected
    # One run finds nothing removed (tests/test_removals.py removes between runs).
    assert out.streams_with_records == set(streams) - {"removed_conversations"}


def test_selected_child_with_deselected_parent(sandbox: Sandbox) -> None:
    out = run_sync(tap_config(sandbox), streams=["transcripts"])
    assert out.records("conversations") == []
    assert sorted(out.ids("transcripts", "conversation_id")) == sorted(
        c for c in listed_ids(sandbox) if sandbox.transcript(c) is not None
    )
    assert out.state["bookmarks"]["conversations"]["replication_key_value"]


@pytest.mark.parametrize("count", [24, 25, 26, 51])
def test_page_boundaries(sandbox_factory: Callable[..., Sandbox], count: int) -> None:
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc)
    added = [sb.add_conversation(date=now - dt.timedelta(hours=3 * i + 1)) for i in range(count)]
    out = run_sync(tap_config(sb), streams=["conversations"])
    assert sorted(out.ids("conversations")) == sorted(added)
    assert sb.counters.requests(endpoint="/conversations") == -(-count // PAGE)
    assert sb.counters.requests(endpoint="/conversations/{id}") == count


def test_ties_across_a_page_boundary_are_not_lost(sandbox_factory: Callable[..., Sandbox]) -> None:
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    tie = now - dt.timedelta(hours=5)
    added = [sb.add_conversation(date=now - dt.timedelta(minutes=i + 1)) for i in range(24)]
    added += [sb.add_conversation(date=tie) for _ in range(3)]  # page 1 ends inside the tie
    added += [sb.add_conversation(date=tie - dt.timedelta(hours=1))]
    cursor_walk = [item["id"] for page in sb.listed_pages() for item in page]
    assert len(cursor_walk) < len(added), "the contract's cursor walk loses the tie"
    out = run_sync(tap_config(sb), streams=["conversations"])
    assert sorted(out.ids("conversations")) == sorted(added)


@pytest.mark.parametrize(
    "filters",
    [
        {"mediums": ["call", "video"]},
        {"department_ids": "first"},
        {"user_ids": "two"},
        {"mediums": ["email"], "user_ids": "two"},
    ],
)
def test_filters_combine_one_value_per_request(sandbox: Sandbox, filters: dict[str, Any]) -> None:
    config: dict[str, Any] = {}
    if "mediums" in filters:
        config["mediums"] = filters["mediums"]
    if filters.get("department_ids") == "first":
        config["department_ids"] = [sandbox.departments()[0]["id"]]
    if filters.get("user_ids") == "two":
        config["user_ids"] = [u["id"] for u in sandbox.users()[:2]]
    combos = [
        {k: v for k, v in combo.items() if v is not None}
        for combo in (
            {"medium": m, "department_id": d, "user_id": u}
            for m in config.get("mediums", [None])
            for d in config.get("department_ids", [None])
            for u in config.get("user_ids", [None])
        )
    ]
    expected = {cid for combo in combos for cid in listed_ids(sandbox, **combo)}
    assert expected, "the filter should match something"
    assert len(expected) < len(listed_ids(sandbox))

    out = run_sync(tap_config(sandbox, **config), streams=["conversations"])
    assert sorted(out.ids("conversations")) == sorted(expected)
    assert sandbox.counters.requests(endpoint="/conversations") == sum(
        expected_list_requests(sandbox, **combo) for combo in combos
    )


def test_quiet_rerun_costs_a_handful_of_requests(sandbox: Sandbox) -> None:
    config = tap_config(sandbox)
    first = run_sync(config, streams=ALL_STREAMS)
    sandbox.reset_counters()
    second = run_sync(config, state=first.state, streams=["conversations", "transcripts"])
    # The sandbox's processed conversations without a summary are all older than the
    # processing allowance: fetched once, taken as they are, nothing stays pending, so
    # no webhook delivery is read either: /me and one list page.
    without_summary = {
        c["id"] for c in sandbox.listed_conversations() if sandbox.summary(c["id"]) is None
    }
    allowance_start = dt.datetime.now(dt.timezone.utc) - PROCESSING_ALLOWANCE
    assert without_summary
    assert all(
        parse_timestamp(sandbox.conversation_detail(c)["date"]) < allowance_start
        for c in without_summary
    )
    assert first.state["bookmarks"]["conversations"]["pending"] == {}
    assert second.ids("conversations") == []
    assert sandbox.counters.by_endpoint() == {"/me": {200: 1}, "/conversations": {200: 1}}


def test_late_data_reaches_the_target_on_a_later_run(sandbox: Sandbox) -> None:
    config = tap_config(sandbox)
    now = dt.datetime.now(dt.timezone.utc)
    unfinished = sandbox.add_conversation(date=now - dt.timedelta(hours=2), processed=False)
    first = run_sync(config, streams=["conversations", "transcripts", "insights", "summaries"])
    assert unfinished in first.ids("conversations")
    assert unfinished not in first.ids("transcripts", "conversation_id")
    assert unfinished not in first.ids("summaries", "conversation_id")

    late = sandbox.add_conversation(date=now - dt.timedelta(hours=6))  # listed after its date
    sandbox.set_processed(unfinished, processed=True)
    sandbox.reset_counters()
    second = run_sync(
        config, state=first.state, streams=["conversations", "transcripts", "insights", "summaries"]
    )
    assert {late, unfinished} <= set(second.ids("conversations"))
    assert {late, unfinished} <= set(second.ids("transcripts", "conversation_id"))
    assert {late, unfinished} <= set(second.ids("summaries", "conversation_id"))
    assert sorted(second.ids("insights")) == sorted(
        i["id"] for c in second.ids("conversations") for i in sandbox.insights(c)
    )
    # Nothing else was fetched again, apart from conversations that still lack a summary.
    refetched = set(second.ids("conversations")) - {late, unfinished}
    assert all(sandbox.summary(c) is None for c in refetched)

    third = run_sync(config, state=second.state, streams=["conversations"])
    assert unfinished not in third.ids("conversations")
    assert late not in third.ids("conversations")


def test_resume_from_state_skips_finished_conversations(sandbox: Sandbox) -> None:
    config = tap_config(sandbox)
    first = run_sync(config, streams=["conversations"])
    now = dt.datetime.now(dt.timezone.utc)
    new = [sandbox.add_conversation(date=now - dt.timedelta(minutes=m)) for m in (1, 2, 3)]
    sandbox.reset_counters()
    second = run_sync(config, state=first.state, streams=["conversations"])
    assert set(new) <= set(second.ids("conversations"))
    assert sandbox.counters.requests(endpoint="/conversations/{id}") == len(
        second.ids("conversations")
    )
    assert len(second.ids("conversations")) <= len(new) + 2  # + the 2 without a summary


def test_partial_scope_token(sandbox: Sandbox, caplog: pytest.LogCaptureFixture) -> None:
    token = sandbox.add_token(scopes=("conversations", "users"), include_recordings=False)
    with caplog.at_level(logging.WARNING):
        out = run_sync(tap_config(sandbox, token=token), streams=ALL_STREAMS)
    assert out.streams_with_records == {
        "account",
        "users",
        "conversations",
        "summaries",
        "webhook_deliveries",
        "sync_ledger",
    }
    assert sorted(out.ids("conversations")) == sorted(listed_ids(sandbox))
    forbidden = sandbox.counters.requests(status=403)
    assert forbidden == 5  # teams, departments, and one probe each for transcripts,
    # insights and recordings
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    for scope in ("teams", "departments", "transcripts", "insights", "recordings"):
        matching = [w for w in warnings if f"'{scope}' scope" in w]
        assert len(matching) == 1, (scope, warnings)
        assert "Settings → REST API" in matching[0]
    assert any("include_recordings" in w for w in warnings)


def test_start_date_older_than_30_days_is_clamped_with_one_warning(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=45)
    with caplog.at_level(logging.WARNING):
        out = run_sync(
            tap_config(sandbox, start_date=format_timestamp(old)), streams=["conversations"]
        )
    assert sorted(out.ids("conversations")) == sorted(listed_ids(sandbox))
    older = set(sandbox.all_conversation_ids()) - set(listed_ids(sandbox))
    assert older, "the sandbox holds conversations older than 30 days"
    assert not older & set(out.ids("conversations"))
    clamps = [r for r in caplog.records if "older than the 30 days" in r.getMessage()]
    assert len(clamps) == 1


def test_start_date_inside_the_window_limits_the_sync(sandbox: Sandbox) -> None:
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=7)
    out = run_sync(
        tap_config(sandbox, start_date=format_timestamp(start)), streams=["conversations"]
    )
    assert sorted(out.ids("conversations")) == sorted(
        listed_ids(sandbox, date_from=format_timestamp(start))
    )


STREAMS = frozenset({"conversations", "transcripts", "insights", "summaries"})


def test_state_stays_small_after_a_month_of_hourly_syncs() -> None:
    """1000 conversations a day, one sync an hour, 30 days, 2% still processing."""
    window = dt.timedelta(hours=24)
    checkpoint = ConversationCheckpoint()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    per_hour = 1000 // 24 + 1
    largest = 0
    for hour in range(30 * 24):
        state: dict[str, Any] = {}
        for n in range(per_hour):
            date = start + dt.timedelta(hours=hour, seconds=n * 3600 // per_hour)
            cid = f"{hour:08x}-{n:04x}-4000-8000-{hour * per_hour + n:012x}"
            # 2% still processing; all but 1 in 1000 finish within six hours.
            reason = None if n % 50 else PROCESSING
            checkpoint.mark_emitted(
                ListedConversation(date=date, id=cid),
                streams=STREAMS,
                pending_reason=reason,
                now=date,
            )
            checkpoint.advance(date, now=date)
        now = start + dt.timedelta(hours=hour + 1)
        for cid, entry in list(checkpoint.pending.items()):
            if now - entry.date > dt.timedelta(hours=6) and int(cid[-12:], 16) % 1000:
                checkpoint.mark_emitted(
                    ListedConversation(date=entry.date, id=cid),
                    streams=STREAMS,
                    pending_reason=None,
                    now=now,
                )
        checkpoint.prune(window, now - dt.timedelta(days=30), now)
        checkpoint.write_to(state)
        largest = max(largest, len(json.dumps({"bookmarks": {"conversations": state}})))
    assert largest < 64 * 1024
    never_finished = sum(
        1
        for hour in range(30 * 24)
        for n in range(0, per_hour, 50)
        if (hour * per_hour + n) % 1000 == 0
    )
    assert len(checkpoint.pending) <= 6 * per_hour // 50 + 7 + never_finished


def test_what_a_cut_emitted_beyond_its_proof_stays_in_seen_until_proven() -> None:
    """A backfill cut by the quota: the conversations past its proof are older than the window."""
    window = dt.timedelta(hours=1)
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    floor = now - dt.timedelta(days=30)
    checkpoint = ConversationCheckpoint(high_water=now)
    day = now - dt.timedelta(days=10)
    proof, ahead = (
        ListedConversation(date=day + dt.timedelta(minutes=m), id=f"{m:08x}-0000-4000-8000-0")
        for m in (1, 2)
    )
    for conversation in (proof, ahead):
        checkpoint.mark_emitted(conversation, streams=STREAMS, pending_reason=None, now=now)
    checkpoint.hold_ahead([proof, ahead], proven_until=proof.date)
    checkpoint.prune(window, floor, now)
    state: dict[str, Any] = {}
    checkpoint.write_to(state)
    resumed = ConversationCheckpoint.from_state(state)
    assert list(resumed.emitted_ahead.values()) == [ahead.date]
    assert not resumed.is_new_to(ahead, streams=STREAMS)
    assert resumed.is_new_to(ahead, streams=STREAMS | {"recordings"})  # a stream selected since
    assert resumed.is_new_to(proof, streams=STREAMS)  # no span in this sketch: below the window
    # A run that lists from before it and proves past it: the coverage accounts for it now.
    resumed.proven(proof.date, ahead.date)
    resumed.prune(window, floor, now)
    assert resumed.emitted_ahead == {}
    assert resumed.seen == {}
    resumed.write_to(state)
    assert "emitted_ahead" not in state


def test_what_cuts_hold_ahead_is_bounded_and_ages_out() -> None:
    window = dt.timedelta(hours=1)
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    floor = now - dt.timedelta(days=30)
    checkpoint = ConversationCheckpoint(high_water=now)
    held = [
        ListedConversation(date=floor + dt.timedelta(hours=i - 1), id=f"{i:012x}-0000-4000-8000")
        for i in range(EMITTED_AHEAD_LIMIT + 20)
    ]
    for conversation in held:
        checkpoint.mark_emitted(conversation, streams=STREAMS, pending_reason=None, now=now)
    checkpoint.hold_ahead(held, proven_until=floor - dt.timedelta(days=1))
    checkpoint.prune(window, floor, now)
    kept = sorted(checkpoint.emitted_ahead.values())
    # The one older than the API's 30 days leaves; of the rest, the earliest-dated stay.
    assert kept == [c.date for c in held[1 : EMITTED_AHEAD_LIMIT + 1]]
    assert sum(len(entries) for entries in checkpoint.seen.values()) == EMITTED_AHEAD_LIMIT


def test_a_hold_without_its_seen_entry_gives_way_to_one_with() -> None:
    """Holds an older version's prune left without `seen` entries prove nothing."""
    window = dt.timedelta(hours=1)
    now = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)
    floor = now - dt.timedelta(days=30)
    checkpoint = ConversationCheckpoint(high_water=now)
    stale = {f"{i:08x}": floor + dt.timedelta(hours=1, minutes=i) for i in range(100)}
    fresh = [
        ListedConversation(date=now - dt.timedelta(days=5, minutes=i), id=f"f{i:07x}-0000-4000")
        for i in range(10)
    ]
    for conversation in fresh:
        checkpoint.mark_emitted(conversation, streams=STREAMS, pending_reason=None, now=now)
    checkpoint.emitted_ahead = dict(stale)  # as a state round trip through an older version
    checkpoint.hold_ahead(fresh, proven_until=now - dt.timedelta(days=6))
    checkpoint.prune(window, floor, now)
    assert sorted(checkpoint.emitted_ahead.values()) == sorted(c.date for c in fresh)
    assert not any(checkpoint.is_new_to(c, streams=STREAMS) for c in fresh)


@pytest.mark.date_slicing
def test_listing_in_date_slices_when_latency_bounds_it(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """Latency x rate allows many requests in flight: the listing is cut into slices."""
    sb = sandbox_factory(conversations=0)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    added = [sb.add_conversation(date=now - dt.timedelta(minutes=71 * i + 1)) for i in range(400)]
    tie = now - dt.timedelta(days=9)
    added += [sb.add_conversation(date=tie) for _ in range(3)]
    sb.faults.latency_ms = 60.0  # x 6000/min = 6 requests could be in flight
    out = run_sync(
        tap_config(sb, max_requests_per_minute=6000, max_parallel_requests=8),
        streams=["conversations"],
    )
    assert sorted(out.ids("conversations")) == sorted(added)
    assert_unique(out.ids("conversations"))
    serial_walk = expected_list_requests(sb)
    listed = sb.counters.requests(endpoint="/conversations")
    # Slicing shows as a few extra, partial pages: one per slice at most, and the one
    # boundary item each slice's walk re-lists.
    assert serial_walk < listed <= serial_walk + 2 * 8


USER_ROW = {
    "id": "6f1c2d3e-0000-4000-8000-0000000000a1",
    "full_name": "Ada",
    "email": "ada@example.com",
    "role": "owner",
    "team_id": None,
    "team_name": None,
}


def _users_sync(crafted: Callable[..., CraftedApi], catalog_edit: Callable[[dict], None]) -> Any:
    user = {**USER_ROW, "nickname": "a field the schema lacks"}
    users = [dict(USER_ROW), user, dict(USER_ROW)]
    api = crafted(lambda _path, _query: Answer(body={"users": users}))
    config = crafted_config(api)
    catalog = catalog_selecting(config, ["users"])
    for entry in catalog["streams"]:
        if entry["tap_stream_id"] == "users":
            catalog_edit(entry["schema"])
    tap = TapConversations(config=config, catalog=catalog)
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    with contextlib.redirect_stdout(stdout):
        tap.sync_all()
    stdout.flush()
    tap.api.close()
    return [json.loads(line) for line in raw.getvalue().decode("utf-8").splitlines()]


def test_a_field_the_schema_lacks_is_dropped_and_named_as_the_sdk_does(
    crafted: Callable[..., CraftedApi], caplog: pytest.LogCaptureFixture
) -> None:
    """The SDK's top-level conforming, skipped where it changes nothing, still drops it.

    The record with the extra field comes after one without: the conforming is decided
    for each record, not carried over from the one before.
    """
    messages = _users_sync(crafted, lambda _schema: None)
    records = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users"]
    assert records == [USER_ROW, USER_ROW, USER_ROW]
    dropped = [r.getMessage() for r in caplog.records if "not found in catalog" in r.getMessage()]
    sdk_line = (
        "Properties ('nickname',) were present in the 'users' stream but not found in "
        "catalog schema. Ignoring."
    )
    assert dropped == [sdk_line]


def test_a_catalog_schema_without_a_field_drops_it_from_every_record(
    crafted: Callable[..., CraftedApi],
) -> None:
    messages = _users_sync(crafted, lambda schema: schema["properties"].pop("role"))
    records = [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == "users"]
    without_role = {k: v for k, v in USER_ROW.items() if k != "role"}
    assert records == [without_role, without_role, without_role]

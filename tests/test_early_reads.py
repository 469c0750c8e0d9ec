"""Issue 21, "overlap the single requests": the list streams' reads go alongside the
conversations path, and the fetch pool starts after the first detail, not the first
conversation; proven with the sandbox's requests in the order it received them.

Order is judged by the server's log of arrivals, never by wall-clock times: where a
test needs requests to overlap, the sandbox holds an answer until the requests that
should be in flight meanwhile have arrived (a bound of seconds only keeps a failing
run from hanging; it never decides a pass).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.client import ApiClient
from tap_conversations.early_reads import EarlyReads
from tap_conversations.errors import ApiResponseError, QuotaExceededError
from tap_conversations.tap import TapConversations
from tests.harness import ALL_STREAMS, SyncOutput, catalog_selecting, run_sync, tap_config
from tests.helpers import assert_no_traceback, hold_detail, run_cli
from tests.listing_model import expected_list_requests
from tests.sandbox import ALL_SCOPES

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.sandbox import Sandbox

LISTING = "/conversations"
DETAIL = "/conversations/{id}"
RECORDING = "/conversations/{id}/recording"
SUMMARY = "/conversations/{id}/summary"
#: The list streams' reads, by stream.
EARLY = {
    "departments": "/departments",
    "teams": "/teams",
    "users": "/users",
    "webhook_deliveries": "/webhooks/deliveries",
}
DEFAULT_STREAMS = [s for s in ALL_STREAMS if s != "transcript_segments"]
#: How long a held answer waits at most for what should arrive meanwhile (seconds).
HOLD_BOUND = 20.0


class ArrivalLog:
    """The sandbox's requests in the order they arrived, and answers held on purpose.

    `hold(endpoint, until)`: the first request to `endpoint` is answered only once each
    endpoint in `until` has arrived as many times as it says (or HOLD_BOUND passed: the
    log then says so).
    `/me`'s answer is logged as `answered /me` just before it is sent.
    """

    def __init__(self, sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entries: list[str] = []
        self._changed = threading.Condition()
        self._holds: dict[str, dict[str, int]] = {}
        original = sb.handle_request

        def handle(method: str, target: str, authorization: str | None, body: bytes) -> Any:
            reply = original(method, target, authorization, body)
            endpoint = endpoint_of(target)
            with self._changed:
                self.entries.append(endpoint)
                self._changed.notify_all()
                until = self._holds.pop(endpoint, None)
                if until is not None:
                    arrived = self._changed.wait_for(
                        lambda: all(self.entries.count(e) >= n for e, n in until.items()),
                        timeout=HOLD_BOUND,
                    )
                    self.entries.append(f"released {endpoint}" if arrived else "hold timed out")
                if endpoint == "/me":
                    self.entries.append("answered /me")
            return reply

        monkeypatch.setattr(sb, "handle_request", handle)

    def hold(self, endpoint: str, until: dict[str, int]) -> None:
        with self._changed:
            self._holds[endpoint] = until

    def index(self, entry: str, *, last: bool = False) -> int:
        positions = [i for i, e in enumerate(self.entries) if e == entry]
        assert positions, (entry, self.entries)
        return positions[-1] if last else positions[0]


def endpoint_of(target: str) -> str:
    """The endpoint template of a request target (the sandbox's own routing)."""
    path = target.split("?", 1)[0].removeprefix("/api/v1")
    pieces = path.split("/")
    if len(pieces) >= 3 and pieces[1] == "conversations":
        pieces[2] = "{id}"
    return "/".join(pieces)


def totals(sb: Sandbox) -> dict[str, int]:
    return {ep: sum(by_status.values()) for ep, by_status in sb.counters.by_endpoint().items()}


def expected_totals(sb: Sandbox, streams: list[str]) -> dict[str, int]:
    """What a sync of `streams` costs, one stream after another (the request count)."""
    listed = [c["id"] for c in sb.listed_conversations()]
    expected = {"/me": 1, LISTING: expected_list_requests(sb), DETAIL: len(listed)}
    if "recordings" in streams:
        expected[RECORDING] = len(listed)
    if "summaries" in streams:
        expected[SUMMARY] = sum(1 for c in listed if sb.summary(c) is not None)
    for stream, path in EARLY.items():
        if stream in streams:
            expected[path] = 1
    return expected


def one_after_another(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing read early: each list stream reads when the SDK reaches it."""
    monkeypatch.setattr(EarlyReads, "start", lambda _self, _paths: None)


def masked(out: SyncOutput) -> list[dict[str, Any]]:
    """The messages with what the run's own clock and id put in them masked.

    The runs compared share the tap's clock (`run_sync(clock=...)`); what the SDK
    stamps by the real clock (versions, extraction times, its signpost) and the run's
    id differ by run.
    """
    shown = []
    for message in out.messages:
        copy = json.loads(json.dumps(message))
        if "version" in copy:
            copy["version"] = "<version>"
        copy.pop("time_extracted", None)
        if copy["type"] == "RECORD" and copy["stream"] == "sync_ledger":
            copy["record"]["run_id"] = "<run>"
        if copy["type"] == "STATE":
            for stream_state in copy["value"].get("bookmarks", {}).values():
                if "replication_key_signpost" in stream_state:
                    stream_state["replication_key_signpost"] = "<now>"
        shown.append(copy)
    return shown


def test_the_list_reads_are_in_flight_before_the_listing_ends(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/me alone first; then the four list reads go with the listing's first page."""
    sb = sandbox_factory(conversations=120)
    log = ArrivalLog(sb, monkeypatch)
    log.hold(LISTING, until=dict.fromkeys(EARLY.values(), 1))
    out = run_sync(tap_config(sb), streams=DEFAULT_STREAMS)

    assert "hold timed out" not in log.entries, log.entries[:12]
    assert log.entries[:2] == ["/me", "answered /me"], "the token is proven before anything else"
    for path in EARLY.values():
        assert log.index(path) < log.index(f"released {LISTING}"), (path, log.entries[:12])
        assert log.index(path) < log.index(LISTING, last=True), path
        assert log.index(path) < log.index(DETAIL), path
    assert totals(sb) == expected_totals(sb, DEFAULT_STREAMS)
    for stream, truth in [
        ("users", sb.users()),
        ("teams", sb.teams()),
        ("departments", sb.departments()),
    ]:
        assert out.ids(stream) == [row["id"] for row in truth]
    assert sorted(out.ids("webhook_deliveries")) == sorted(d["id"] for d in sb.webhook_deliveries())


def test_the_output_is_that_of_reading_one_stream_after_another(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    sb = sandbox_factory(conversations=60)
    now = sb.now()
    overlapped = run_sync(tap_config(sb), streams=DEFAULT_STREAMS, clock=lambda: now)
    overlapped_requests = totals(sb)
    sb.reset_counters()
    with monkeypatch.context() as serial:
        one_after_another(serial)
        in_turn = run_sync(tap_config(sb), streams=DEFAULT_STREAMS, clock=lambda: now)
    assert masked(overlapped) == masked(in_turn)
    assert overlapped_requests == totals(sb) == expected_totals(sb, DEFAULT_STREAMS)
    activated = [m["stream"] for m in overlapped.messages if m["type"] == "ACTIVATE_VERSION"]
    assert activated == ["account", "departments", "teams", "users"]


@pytest.mark.parametrize(
    "streams",
    [
        ["conversations", "users"],
        ["account", "teams", "webhook_deliveries"],
        ["conversations", "transcripts", "departments", "webhook_deliveries"],
    ],
)
def test_a_stream_not_selected_is_not_read(sandbox: Sandbox, streams: list[str]) -> None:
    out = run_sync(tap_config(sandbox), streams=streams)
    sent = totals(sandbox)
    for stream, path in EARLY.items():
        assert sent.get(path, 0) == (1 if stream in streams else 0), (stream, sent)
        assert bool(out.records(stream)) == (stream in streams)


def test_without_me_the_lists_are_read_in_their_turn(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No /me (only list streams): nothing proves the token first, so nothing goes early."""
    log = ArrivalLog(sandbox, monkeypatch)
    out = run_sync(tap_config(sandbox), streams=["teams", "users"])
    assert log.entries == ["/teams", "/users"]
    assert out.ids("users") == [u["id"] for u in sandbox.users()]


def test_a_missing_scope_is_warned_in_its_streams_turn(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The 403 arrives early; its warning and skip come where the stream is synced."""
    token = sandbox.add_token(
        scopes=("conversations", "users", "transcripts", "insights", "recordings"),
        include_recordings=True,
    )
    with caplog.at_level(logging.INFO, logger="tap_conversations"):
        out = run_sync(tap_config(sandbox, token=token), streams=DEFAULT_STREAMS)
    messages = [r.getMessage() for r in caplog.records]
    fetched = next(i for i, m in enumerate(messages) if m.startswith("conversations done:"))
    for scope in ("departments", "teams"):
        warned = [i for i, m in enumerate(messages) if f"'{scope}' scope" in m]
        assert len(warned) == 1, (scope, messages)
        assert warned[0] > fetched, f"{scope}: warned in its turn, after the conversations"
        assert out.records(scope) == []
    assert sandbox.counters.requests(status=403) == 2
    assert out.ids("users") == [u["id"] for u in sandbox.users()]
    # The streams synced before the one that met the 403 were written whole before it.
    types = [(m["type"], m.get("stream")) for m in out.messages]
    assert ("ACTIVATE_VERSION", "teams") not in types
    assert ("ACTIVATE_VERSION", "users") in types


def test_a_list_read_that_fails_fails_in_its_streams_turn(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer the tap cannot use ends the run where that stream is, with its line."""
    log = ArrivalLog(sandbox, monkeypatch)
    logged = sandbox.handle_request

    def teams_not_a_list(method: str, target: str, authorization: str | None, body: bytes) -> Any:
        reply = logged(method, target, authorization, body)
        if endpoint_of(target) == "/teams":
            reply.body = b'{"teams": "none"}'
        return reply

    monkeypatch.setattr(sandbox, "handle_request", teams_not_a_list)
    config = tap_config(sandbox)
    tap = TapConversations(config=config, catalog=catalog_selecting(config, DEFAULT_STREAMS))
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    with (
        contextlib.redirect_stdout(stdout),
        pytest.raises(ApiResponseError, match=r"^GET /teams answered without a 'teams' list"),
    ):
        tap.sync_all()
    stdout.flush()
    tap.api.close()
    out = SyncOutput([json.loads(line) for line in raw.getvalue().decode().splitlines()])
    assert log.index("/teams") < log.index(DETAIL), "read early"
    # Everything the SDK reaches before teams is written whole; teams and later nothing.
    assert len(out.ids("conversations")) == len(sandbox.listed_conversations())
    assert out.ids("departments") == [d["id"] for d in sandbox.departments()]
    assert out.schema_count("teams") == 1
    assert out.records("teams") == out.records("users") == []
    assert out.schema_count("users") == 0


def test_the_first_recording_request_goes_alone_with_the_first_details(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sent with the first details, not after one answered; other recordings after it."""
    sb = sandbox_factory(conversations=60)
    log = ArrivalLog(sb, monkeypatch)
    # The first detail is answered only once a recording request has arrived, and the
    # first recording only once a second detail has: both went before any answer.
    log.hold(DETAIL, until={RECORDING: 1})
    log.hold(RECORDING, until={DETAIL: 2})
    streams = ["conversations", "recordings", "summaries"]
    run_sync(tap_config(sb, max_parallel_requests=4), streams=streams)
    assert "hold timed out" not in log.entries, log.entries[:16]
    released = log.index(f"released {RECORDING}")
    details = [i for i, e in enumerate(log.entries) if e == DETAIL]
    recordings = [i for i, e in enumerate(log.entries) if e == RECORDING]
    assert recordings[0] < released
    assert details[1] < released
    assert recordings[1] > released, "no second recording request before the first answered"
    assert totals(sb) == expected_totals(sb, streams)


def test_an_early_recording_request_that_failed_is_asked_again_after_its_detail(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused by the client while its detail was still in flight, it is not dropped.

    The client refuses a conversation it has not touched yet once another one met the
    day's quota; the first recording goes before its detail has answered, so it can be
    refused while the quota has already paid for the conversation.
    """
    sb = sandbox_factory(conversations=30)
    refused: list[str] = []
    get = ApiClient.get

    def refuse_the_first_recording(
        api: ApiClient, path: str, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        if path.endswith("/recording") and not refused:
            refused.append(path)
            raise QuotaExceededError(None)
        return get(api, path, params)

    monkeypatch.setattr(ApiClient, "get", refuse_the_first_recording)
    out = run_sync(tap_config(sb), streams=["conversations", "recordings"])
    listed = sorted(c["id"] for c in sb.listed_conversations())
    assert len(refused) == 1
    assert sorted(out.ids("conversations")) == listed
    assert sorted(r["conversation_id"] for r in out.records("recordings")) == listed
    assert sb.counters.requests(endpoint=RECORDING) == len(listed)


def test_the_first_conversation_settles_the_scopes_whichever_answers_first(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conversation still processing answers without a transcript; it settles nothing.

    The oldest conversation's detail is held back until later ones, still processing,
    have arrived: their answers lack the transcript, and settling the transcripts scope
    from one of them would cost a probe the oldest, complete one does not.
    """
    sb = sandbox_factory(conversations=40)
    oldest_first = sorted(sb.listed_conversations(), key=lambda c: (c["date"], c["id"]))
    first, processing = oldest_first[0]["id"], [c["id"] for c in oldest_first[1:8]]
    for conversation_id in processing:
        sb.set_processed(conversation_id, processed=False, webhook=False)
    assert sb.transcript(first) is not None
    hold_detail(
        monkeypatch,
        first,
        lambda: sb.counters.requests(endpoint=DETAIL) >= 5,
        "the other details did not go",
        then_wait=0.05,  # their answers are back
    )
    out = run_sync(
        tap_config(sb, max_parallel_requests=8), streams=["conversations", "transcripts"]
    )
    assert sb.counters.requests(endpoint=f"{DETAIL}/transcript") == 0
    assert first in {r["conversation_id"] for r in out.records("transcripts")}
    assert sb.counters.requests(endpoint=DETAIL) == len(oldest_first)


def test_a_first_conversation_refused_by_the_quota_still_leaves_the_scopes_settled(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Later details answered while the first was refused: the scopes, before they emit.

    The day's quota runs out while the oldest conversation's detail waits; the later
    ones it paid for are emitted (the cut chunk's), and whether the token may read
    transcripts must be known first: the state records it as missing, so that a scope
    granted later brings a backfill.
    """
    quota = 5
    sb = sandbox_factory(conversations=40)
    token = sb.add_token(scopes=("conversations",), daily_quota=quota)
    oldest_first = sorted(sb.listed_conversations(), key=lambda c: (c["date"], c["id"]))
    first = oldest_first[0]["id"]
    hold_detail(
        monkeypatch,
        first,
        lambda: sb.counters.quota_used(token) >= quota,
        "the other details did not spend the quota",
    )
    config = tap_config(sb, token=token, max_parallel_requests=8, daily_conversation_quota=quota)
    out = run_sync(config, streams=["conversations", "transcripts"])
    emitted = out.ids("conversations")
    assert emitted, "the cut chunk emits what the quota paid for"
    assert first not in emitted
    assert out.state["bookmarks"]["conversations"]["missing_scopes"] == ["transcripts"]
    assert sb.counters.requests(endpoint=f"{DETAIL}/transcript") == 1
    assert out.records("transcripts") == []


def test_the_first_details_go_together(
    sandbox_factory: Callable[..., Sandbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool starts with the first listed conversations, not after one detail alone."""
    sb = sandbox_factory(conversations=60)
    log = ArrivalLog(sb, monkeypatch)
    # The first detail is answered only once three more have arrived.
    log.hold(DETAIL, until={DETAIL: 4})
    streams = ["conversations", "transcripts", "insights"]
    out = run_sync(tap_config(sb, max_parallel_requests=4), streams=streams)
    assert "hold timed out" not in log.entries, log.entries[:16]
    assert log.entries.count(DETAIL) == len(sb.listed_conversations())
    assert sorted(out.ids("conversations")) == sorted(c["id"] for c in sb.listed_conversations())
    assert totals(sb) == expected_totals(sb, streams)


def test_without_the_transcripts_and_insights_scopes_one_probe_each_however_many_in_flight(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    """The first answer settles the scopes; the details in flight with it wait, not probe."""
    sb = sandbox_factory(conversations=60, latency_ms=20)
    token = sb.add_token(scopes=("conversations",))
    streams = ["conversations", "transcripts", "insights"]
    out = run_sync(tap_config(sb, token=token, max_parallel_requests=8), streams=streams)
    listed = [c["id"] for c in sb.listed_conversations()]
    assert sb.counters.requests(endpoint=f"{DETAIL}/transcript") == 1
    assert sb.counters.requests(endpoint=f"{DETAIL}/insights") == 1
    assert sb.counters.requests(status=403) == 2
    assert sb.counters.requests(endpoint=DETAIL) == len(listed)
    assert sorted(out.ids("conversations")) == sorted(listed)
    assert out.records("transcripts") == out.records("insights") == []


def test_without_the_recordings_scope_one_403_however_many_in_flight(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    sb = sandbox_factory(conversations=60, latency_ms=20)
    token = sb.add_token(scopes=("conversations", "transcripts", "insights"))
    out = run_sync(tap_config(sb, token=token), streams=["conversations", "recordings"])
    assert sb.counters.requests(endpoint=RECORDING) == 1
    assert sb.counters.requests(status=403) == 1
    assert len(out.ids("conversations")) == len(sb.listed_conversations())


def test_a_token_revoked_after_me_ends_the_run_with_the_one_line(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A 401 on any request ends the run at the conversations, never retried.

    Revoked just after `/me` answered: the list reads in flight meet it too, and
    nothing is sent after it.
    """
    token = sandbox.add_token(scopes=ALL_SCOPES, include_recordings=True)
    original = sandbox.handle_request

    def revoke_after_me(method: str, target: str, authorization: str | None, body: bytes) -> Any:
        reply = original(method, target, authorization, body)
        if endpoint_of(target) == "/me":
            sandbox.revoke_token(token)
        return reply

    monkeypatch.setattr(sandbox, "handle_request", revoke_after_me)
    result = run_cli(tmp_path, tap_config(sandbox, token=token))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert (
        result.error_lines[-1]
        .split(" | ")[-1]
        .startswith("The API rejected the token (HTTP 401 on GET /")
    )
    assert result.records("conversations") == []
    sent = totals(sandbox)
    assert sent["/me"] == 1
    assert sandbox.counters.requests(status=401) == sum(sent.values()) - 1
    assert sent.get(LISTING, 0) <= 1
    assert sum(sent.values()) - 1 <= 1 + len(EARLY), "what was in flight, nothing after"

"""Reliability: 401 fails fast, malformed answers, schema drift, a small fault soak."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.errors import (
    ApiResponseError,
    AuthenticationError,
    RecordShapeError,
    TapConversationsError,
)
from tap_conversations.tap import TapConversations
from tests.harness import catalog_selecting, run_sync, tap_config

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import ModuleType

    from tests.sandbox import Sandbox

from tests.helpers import (
    CONVERSATION_ID,
    DATE,
    DETAIL_STREAMS,
    GIVE_UP,
    INSIGHT_ID,
    ROOT,
    UNKNOWN_TOKEN,
    Answer,
    CraftedApi,
    assert_no_traceback,
    conversation_detail,
    crafted_config,
    one_conversation_api,
    run_cli,
)

# --- 401 -----------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["revoked", "unknown"])
def test_401_fails_fast_with_one_line_pointing_to_settings(
    sandbox: Sandbox, tmp_path: Path, how: str
) -> None:
    token = sandbox.add_token(scopes=("conversations", "users"))
    if how == "revoked":
        sandbox.revoke_token(token)
    else:
        token = UNKNOWN_TOKEN
    config = tap_config(sandbox, token=token)
    result = run_cli(tmp_path, config)

    assert result.returncode != 0
    assert sandbox.counters.requests() == 1, sandbox.counters.by_endpoint()
    assert sandbox.counters.requests(status=401) == 1
    assert_no_traceback(result)
    assert len(result.error_lines) >= 1
    last = result.error_lines[-1]
    assert "HTTP 401" in last
    assert "Settings → REST API" in last
    assert "api_token" in last
    assert result.records("account") == []


def test_401_mid_sync_is_not_retried(sandbox: Sandbox) -> None:
    """A token revoked during a sync: the first 401 ends it, no retry of that request."""
    token = sandbox.add_token(scopes=("conversations", "users", "transcripts", "insights"))
    config = tap_config(sandbox, token=token, max_parallel_requests=1)
    tap = TapConversations(config=config, catalog=catalog_selecting(config, ["conversations"]))
    acquire = tap.api.pacer.acquire
    calls: list[int] = []

    def revoke_after_listing() -> int:
        calls.append(1)
        if len(calls) == 10:  # past the listing, among the details
            sandbox.revoke_token(token)
        return acquire()

    tap.api.pacer.acquire = revoke_after_listing  # type: ignore[method-assign]
    try:
        with pytest.raises(AuthenticationError, match="Settings → REST API"):
            tap.sync_all()
    finally:
        tap.api.close()
    assert sandbox.counters.requests(status=401) == 1
    assert tap.api.stats.retries == 0


def test_connection_test_with_a_bad_token(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(tmp_path, tap_config(sandbox, token=UNKNOWN_TOKEN), "--test")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert sandbox.counters.requests() == 1
    assert any(
        "Connection test failed" in line and "Settings → REST API" in line
        for line in result.error_lines
    ), result.stderr


def test_connection_test_with_a_good_token(sandbox: Sandbox, tmp_path: Path) -> None:
    result = run_cli(tmp_path, tap_config(sandbox), "--test")
    assert result.returncode == 0, result.stderr
    assert_no_traceback(result)
    assert "Connection test passed" in result.stderr
    assert sandbox.account()["name"] in result.stderr
    assert "missing scope" not in result.stderr
    assert result.stdout.strip() == ""


def test_connection_test_lists_missing_scopes(sandbox: Sandbox, tmp_path: Path) -> None:
    token = sandbox.add_token(scopes=("conversations", "users"), include_recordings=False)
    result = run_cli(tmp_path, tap_config(sandbox, token=token), "--test")
    assert result.returncode == 0, result.stderr
    assert "Connection test passed" in result.stderr
    warned = {
        scope
        for scope in ("teams", "departments", "transcripts", "insights", "recordings")
        if f"missing scope '{scope}'" in result.stderr
    }
    assert warned == {"teams", "departments", "transcripts", "insights", "recordings"}
    assert "missing scope 'users'" not in result.stderr
    assert "missing scope 'conversations'" not in result.stderr
    assert "include_recordings" in result.stderr


# --- malformed answers the sandbox injects -------------------------------------------


@pytest.mark.parametrize(
    ("fault", "status"), [("non_json_rate", 200), ("html_rate", 502), ("truncate_rate", None)]
)
@pytest.mark.usefixtures("fast_retries")
def test_persistent_malformed_answer_is_retried_then_names_endpoint(
    sandbox: Sandbox, fault: str, status: int | None
) -> None:
    sandbox.faults.endpoints = {"/conversations/{id}"}
    setattr(sandbox.faults, fault, 1.0)
    config = tap_config(sandbox, max_parallel_requests=1)
    with pytest.raises(ApiResponseError) as caught:
        run_sync(config, streams=["conversations"])
    message = str(caught.value)
    assert "GET /conversations/{id}" in message
    if status is not None:
        assert f"HTTP {status}" in message
    assert "6 attempts" in message
    assert "\n" not in message
    # The first conversation is asked 6 times; the chunk's unstarted fetches are dropped
    # (one more may already run on the single worker).
    assert 6 <= sandbox.counters.requests(endpoint="/conversations/{id}") <= 12


@pytest.mark.usefixtures("fast_retries")
def test_transient_malformed_answers_are_retried_to_success(sandbox: Sandbox) -> None:
    # ~16% of answers broken: 6 broken tries in a row stay improbable (2e-5 a request).
    sandbox.faults.endpoints = {"/conversations", "/conversations/{id}"}
    sandbox.faults.error_every = 10  # every tenth request: 503
    sandbox.faults.non_json_rate = 0.02
    sandbox.faults.html_rate = 0.02
    sandbox.faults.truncate_rate = 0.02
    out = run_sync(tap_config(sandbox), streams=["conversations", "insights"])
    faults = sandbox.counters.faults_injected
    assert all(faults[kind] for kind in ("error_every", "non_json", "html", "truncate")), faults
    listed = [c["id"] for c in sandbox.listed_conversations()]
    assert sorted(out.ids("conversations")) == sorted(listed)
    assert sorted(out.ids("insights")) == sorted(
        i["id"] for c in listed for i in sandbox.insights(c)
    )


def test_html_error_page_through_the_cli_is_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    """A proxy's HTML 502 on the list, persistently: one ERROR line, no traceback."""
    sandbox.faults.endpoints = {"/conversations"}
    sandbox.faults.html_rate = 1.0
    config = tap_config(sandbox)
    result = run_cli(
        tmp_path, config, catalog=catalog_selecting(config, ["conversations"]), fast_retries=True
    )
    assert result.returncode == 1
    assert_no_traceback(result)
    last = result.error_lines[-1]
    assert "GET /conversations answered HTTP 502" in last
    assert sandbox.counters.requests(endpoint="/conversations") == 6
    assert result.records("conversations") == []


# --- malformed answers only a crafted server gives -----------------------------------


def _list_page(items: list[dict[str, Any]], *, has_more: bool, cursor: str | None) -> Answer:
    return Answer(
        body={
            "conversations": items,
            "pagination": {"has_more": has_more, "next_cursor": cursor, "limit": 25},
        }
    )


def test_empty_page_with_has_more_stops_with_a_clear_error(
    crafted: Callable[..., CraftedApi],
) -> None:
    api = crafted(lambda _p, _q: _list_page([], has_more=True, cursor=DATE))
    with pytest.raises(ApiResponseError, match="has_more but listed nothing"):
        run_sync(crafted_config(api), streams=["conversations"])
    assert api.paths() == ["/me", "/conversations"]


def test_cursor_that_does_not_advance_stops_with_a_clear_error(
    crafted: Callable[..., CraftedApi],
) -> None:
    """A full page of ties whose next_cursor never moves: stop, don't loop forever."""
    items = [{"id": f"0b7c2a4e-3333-4a2b-9c3d-{n:012d}", "date": DATE} for n in range(25)]
    api = crafted(lambda _p, _q: _list_page(items, has_more=True, cursor="stuck"))
    with pytest.raises(ApiResponseError) as caught:
        run_sync(crafted_config(api), streams=["conversations"])
    assert GIVE_UP not in str(caught.value), "the tap looped between cursor and date_to"
    assert "cursor does not advance" in str(caught.value)
    # /me, the first page, date_to, the tie group, one split (the filter is ignored), cursor.
    assert len(api.requests) <= 7
    assert not any(p.startswith("/conversations/") for p in api.paths())


def test_list_page_that_repeats_forever_is_stopped(crafted: Callable[..., CraftedApi]) -> None:
    """has_more with the same page whatever is asked: the walk must end."""
    items = [
        {"id": f"0b7c2a4e-4444-4a2b-9c3d-{n:012d}", "date": f"2099-01-01T10:{n:02d}:00.000Z"}
        for n in range(25)
    ]
    api = crafted(lambda _p, _q: _list_page(items, has_more=True, cursor=DATE))
    with pytest.raises(ApiResponseError) as caught:
        run_sync(crafted_config(api), streams=["conversations"])
    assert GIVE_UP not in str(caught.value), "the tap looped over one page"
    assert len(api.requests) <= 5


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"items": []}, "without 'conversations' and 'pagination'"),
        ({"conversations": {}, "pagination": {}}, "without 'conversations' and 'pagination'"),
        ({"conversations": [{"date": DATE}], "pagination": {}}, "without an id"),
        ({"conversations": [{"id": CONVERSATION_ID}], "pagination": {}}, "without a valid date"),
        (
            {"conversations": [{"id": CONVERSATION_ID, "date": "tomorrow"}], "pagination": {}},
            "without a valid date",
        ),
        ({"conversations": ["x"], "pagination": {}}, "without an id"),
    ],
)
def test_list_answer_missing_keys_or_wrong_types(
    crafted: Callable[..., CraftedApi], body: dict[str, Any], match: str
) -> None:
    api = crafted(lambda _p, _q: Answer(body=body))
    with pytest.raises(TapConversationsError, match=match) as caught:
        run_sync(crafted_config(api), streams=["conversations"])
    assert "/conversations" in str(caught.value)
    assert api.paths() == ["/me", "/conversations"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[1, 2, 3]", 200),
        (b'"just a string"', 200),
        (b"", 200),
        (b"<html>gateway</html>", 200),
        (b'{"conversations": [', 200),
    ],
)
@pytest.mark.usefixtures("fast_retries")
def test_list_answer_that_is_not_a_json_object(
    crafted: Callable[..., CraftedApi], body: bytes, status: int
) -> None:
    api = crafted(lambda _p, _q: Answer(status, body))
    with pytest.raises(ApiResponseError) as caught:
        run_sync(crafted_config(api), streams=["conversations"])
    message = str(caught.value)
    assert "GET /conversations" in message
    assert (
        api.paths() == ["/me"] + ["/conversations"] * 6
    )  # retried: a proxy's hiccup is usually transient


def test_unexpected_4xx_quotes_status_and_body(crafted: Callable[..., CraftedApi]) -> None:
    api = crafted(
        lambda _p, _q: Answer(400, {"error": "invalid_parameter", "message": "Bad 'limit'."})
    )
    with pytest.raises(ApiResponseError) as caught:
        run_sync(crafted_config(api), streams=["conversations"])
    assert str(caught.value) == "GET /conversations answered HTTP 400: \"Bad 'limit'.\""
    assert api.paths() == ["/me", "/conversations"]


def _detail_run(
    crafted: Callable[..., CraftedApi], detail: dict[str, Any] | Answer
) -> tuple[CraftedApi, list[dict[str, Any]], BaseException | None]:
    """Sync the detail streams of one crafted conversation; (api, messages, error)."""
    api = crafted(one_conversation_api(detail))
    config = crafted_config(api)
    tap = TapConversations(config=config, catalog=catalog_selecting(config, DETAIL_STREAMS))
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    error: BaseException | None = None
    with contextlib.redirect_stdout(stdout):
        try:
            tap.sync_all()
        except Exception as exc:  # noqa: BLE001  # the test inspects it
            error = exc
        finally:
            stdout.flush()
            tap.api.close()
    lines = raw.getvalue().decode().splitlines()
    return api, [json.loads(line) for line in lines if line.strip()], error


def _records(messages: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [m["record"] for m in messages if m["type"] == "RECORD" and m["stream"] == stream]


@pytest.mark.parametrize(
    ("changes", "stream", "field_name"),
    [
        ({"duration": "300"}, "conversations", "duration"),
        ({"participants": "Ann, Bob"}, "conversations", "participants"),
        ({"date": None}, "conversations", "date"),
        ({"id": 12345}, "conversations", "id"),
        ({"transcript": {"segments": "Hi there"}}, "transcripts", "segments"),
        (
            {"insights": [{"id": INSIGHT_ID, "insight_type": "kpi", "message_index": "0"}]},
            "insights",
            "message_index",
        ),
    ],
)
def test_changed_type_is_a_one_line_error_naming_stream_field_and_record(
    crafted: Callable[..., CraftedApi], changes: dict[str, Any], stream: str, field_name: str
) -> None:
    _, messages, error = _detail_run(crafted, conversation_detail(**changes))
    assert isinstance(error, RecordShapeError), repr(error)
    message = str(error)
    assert f"Stream {stream}," in message
    assert f"field '{field_name}'" in message
    assert "\n" not in message
    if stream == "conversations" and field_name != "id":
        assert CONVERSATION_ID in message
    # Nothing with the wrong type was emitted, for this stream or any after it.
    assert _records(messages, stream) == []


@pytest.mark.parametrize(
    ("changes", "stream"),
    [
        ({"transcript": {"segments": ["Hi there"]}}, "transcript_segments"),
        ({"transcript": {"segments": [None]}}, "transcript_segments"),
        ({"transcript": {"segments": "Hi there"}}, "transcript_segments"),
        ({"insights": ["renewed"]}, "insights"),
        ({"insights": "renewed"}, "insights"),
        ({"insights": {"id": INSIGHT_ID}}, "insights"),
        ({"transcript": "Hi there"}, "transcripts"),
    ],
)
def test_wrong_types_inside_the_detail_are_a_clear_error_not_a_crash(
    crafted: Callable[..., CraftedApi], changes: dict[str, Any], stream: str
) -> None:
    """Child parts of the detail with a changed shape: a tap error, never TypeError."""
    _, messages, error = _detail_run(crafted, conversation_detail(**changes))
    if error is None:
        # Acceptable only when nothing wrong reached the output.
        for record in _records(messages, stream):
            assert isinstance(record, dict)
        assert stream == "transcripts"  # an unusable transcript may be skipped
        return
    assert isinstance(error, TapConversationsError), repr(error)
    assert stream in str(error) or "transcript" in str(error) or "insight" in str(error)
    assert _records(messages, stream) == []


def test_new_fields_are_ignored_safely(crafted: Callable[..., CraftedApi]) -> None:
    detail = conversation_detail(
        language="en", scores={"csat": 5}, participants=[{"name": "Ann", "new_field": 1}]
    )
    detail["insights"][0]["confidence"] = 0.93
    detail["transcript"]["segments"][0]["words"] = [{"w": "Hi"}]
    _, messages, error = _detail_run(crafted, detail)
    assert error is None, error
    (conversation,) = _records(messages, "conversations")
    assert conversation["id"] == CONVERSATION_ID
    assert "language" not in conversation
    assert "scores" not in conversation
    (insight,) = _records(messages, "insights")
    assert "confidence" not in insight
    (segment,) = _records(messages, "transcript_segments")
    assert "words" not in segment
    assert segment["text"] == "Hi"


def test_new_fields_are_ignored_in_a_real_sync(sandbox: Sandbox) -> None:
    """Records carry only schema fields (the SDK drops the rest), sandbox data."""
    out = run_sync(tap_config(sandbox), streams=["conversations"])
    schema = next(
        m["schema"]
        for m in out.messages
        if m["type"] == "SCHEMA" and m["stream"] == "conversations"
    )
    for record in out.records("conversations"):
        assert set(record) <= set(schema["properties"])
        assert "_meta" not in record


def test_absent_optional_fields_become_null(crafted: Callable[..., CraftedApi]) -> None:
    optional = ["title", "company", "duration", "sentiment", "summary", "department", "user"]
    detail = conversation_detail(**dict.fromkeys(optional, ...))
    detail["insights"] = [{"id": INSIGHT_ID, "insight_type": "kpi"}]
    _, messages, error = _detail_run(crafted, detail)
    assert error is None, error
    (conversation,) = _records(messages, "conversations")
    for name in optional:
        assert name in conversation
        assert conversation[name] is None
    (insight,) = _records(messages, "insights")
    for name in ("insight_text", "kpi_slug", "impact", "message_index"):
        assert insight[name] is None


def test_detail_without_transcript_or_insights_emits_no_child_records(
    crafted: Callable[..., CraftedApi],
) -> None:
    """Still processing: no transcript key, empty insights; nothing made up."""
    _, messages, error = _detail_run(
        crafted, conversation_detail(transcript=..., insights=[], summary=None)
    )
    assert error is None, error
    assert len(_records(messages, "conversations")) == 1
    assert _records(messages, "transcripts") == []
    assert _records(messages, "insights") == []


def test_changed_type_through_the_cli_is_one_line(
    crafted: Callable[..., CraftedApi], tmp_path: Path
) -> None:
    api = crafted(one_conversation_api(conversation_detail(duration="5 minutes")))
    config = crafted_config(api)
    result = run_cli(tmp_path, config, catalog=catalog_selecting(config, ["conversations"]))
    assert result.returncode == 1
    assert_no_traceback(result)
    last = result.error_lines[-1]
    assert "Stream conversations" in last
    assert "field 'duration'" in last
    assert CONVERSATION_ID in last
    assert result.records("conversations") == []


def test_changed_type_in_the_sandbox_stops_before_the_record(sandbox: Sandbox) -> None:
    bad = sandbox.add_conversation(duration="long")
    with pytest.raises(RecordShapeError, match=f"Stream conversations, record id='{bad}'"):
        run_sync(tap_config(sandbox, max_parallel_requests=1), streams=["conversations"])


def test_webhook_delivery_with_unparsable_created_at(crafted: Callable[..., CraftedApi]) -> None:
    delivery = {
        "id": "0b7c2a4e-5555-4a2b-9c3d-000000000001",
        "event_type": "conversation.completed",
        "resource_id": CONVERSATION_ID,
        "status": "delivered",
        "attempts": 1,
        "created_at": "last tuesday",
    }
    api = crafted(lambda _p, _q: Answer(body={"deliveries": [delivery]}))
    with pytest.raises(TapConversationsError, match="created_at"):
        run_sync(crafted_config(api), streams=["webhook_deliveries"])


# --- fault soak (small) --------------------------------------------------------------


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_fault_soak_small() -> None:
    """Every fault knob on at once (~20% of requests): the sync ends complete and exact."""
    soak = _load_script("fault_soak")
    report = soak.run_soak(soak.SoakSettings.small())
    print(report.describe())  # noqa: T201  # the figures, with -s
    assert report.complete, report.describe()
    met = {kind for kind, n in report.faults.items() if n}
    assert sum(report.faults.values()) >= 10, report.describe()
    assert len(met) >= 5, report.describe()
    # Every fault met costs exactly one retry; nothing is given up.
    assert report.retries >= sum(report.faults.values()), report.describe()

"""Discovery: offline without a token, scope-aware with one."""

from __future__ import annotations

import contextlib
import io
import json
from typing import TYPE_CHECKING, Any

from tap_conversations.tap import TapConversations
from tests.harness import ALL_STREAMS

if TYPE_CHECKING:
    from tests.sandbox import Sandbox


def discover(config: dict[str, Any]) -> dict[str, bool]:
    """Run discovery as `--discover` does; map stream -> selected by default."""
    tap = TapConversations(config=config, validate_config=False)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tap.run_discovery()
    catalog = json.loads(out.getvalue())
    return {
        entry["tap_stream_id"]: next(
            m["metadata"].get("selected-by-default", False)
            for m in entry["metadata"]
            if m["breadcrumb"] == []
        )
        for entry in catalog["streams"]
    }


def test_discovery_without_a_token_is_offline_and_complete() -> None:
    selected = discover({"api_url": "http://127.0.0.1:9/api/v1"})  # nothing listens there
    assert set(selected) == set(ALL_STREAMS)
    assert {s for s, on in selected.items() if not on} == {"transcript_segments"}


def test_discovery_with_a_partial_token_deselects_what_it_cannot_read(sandbox: Sandbox) -> None:
    token = sandbox.add_token(scopes=("conversations", "transcripts"), include_recordings=True)
    selected = discover(
        {"api_url": sandbox.base_url, "api_token": token, "max_requests_per_minute": 100_000}
    )
    assert {s for s, on in selected.items() if not on} == {
        "users",
        "teams",
        "departments",
        "insights",
        "recordings",
        "transcript_segments",
    }
    # The account (/me), four list probes, then one per-conversation probe each for
    # three scopes.
    assert sandbox.counters.requests() == 8
    assert sandbox.counters.quota_used(token) == 1


def test_discovery_with_a_rejected_token_still_writes_the_catalog(sandbox: Sandbox) -> None:
    selected = discover(
        {"api_url": sandbox.base_url, "api_token": "mt_not_a_token", "max_requests_per_minute": 600}
    )
    assert set(selected) == set(ALL_STREAMS)
    assert sandbox.counters.requests(status=401) == 1

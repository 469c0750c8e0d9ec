"""What makes a fetched conversation complete, and why one is still pending."""

from __future__ import annotations

import datetime as dt

from tap_conversations.bookmarks import (
    DETAIL_UNAVAILABLE,
    PROCESSING,
    RECORDING_UNAVAILABLE,
    SUMMARY_UNAVAILABLE,
)
from tap_conversations.conversation_fetch import ConversationBundle

DATE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
CID = "0b7c2a4e-1111-4a2b-9c3d-000000000001"


def test_a_conversation_with_its_summary_is_complete() -> None:
    assert ConversationBundle(CID, DATE, {"id": CID, "summary": "Done."}).pending_reason is None


def test_a_conversation_still_processing_is_pending() -> None:
    bundle = ConversationBundle(CID, DATE, {"id": CID, "summary": None})
    assert bundle.pending_reason == PROCESSING


def test_a_listed_conversation_whose_detail_is_not_available_is_pending() -> None:
    bundle = ConversationBundle(CID, DATE, None, unavailable=DETAIL_UNAVAILABLE)
    assert bundle.pending_reason == DETAIL_UNAVAILABLE


def test_a_summary_not_available_keeps_a_summarized_conversation_pending() -> None:
    bundle = ConversationBundle(
        CID, DATE, {"id": CID, "summary": "Done."}, unavailable=SUMMARY_UNAVAILABLE
    )
    assert bundle.pending_reason == SUMMARY_UNAVAILABLE


def test_a_recordings_only_fetch_has_nothing_to_watch_but_its_recording() -> None:
    listed = {"id": CID}
    assert ConversationBundle(CID, DATE, listed, detail_fetched=False).pending_reason is None
    missing = ConversationBundle(
        CID, DATE, listed, detail_fetched=False, unavailable=RECORDING_UNAVAILABLE
    )
    assert missing.pending_reason == RECORDING_UNAVAILABLE

"""What makes a fetched conversation complete (no longer watched for late data)."""

from __future__ import annotations

import datetime as dt

from tap_conversations.conversation_fetch import ConversationBundle

DATE = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
CID = "0b7c2a4e-1111-4a2b-9c3d-000000000001"


def test_a_conversation_with_its_summary_is_complete() -> None:
    assert ConversationBundle(CID, DATE, {"id": CID, "summary": "Done."}).complete


def test_a_conversation_still_processing_is_watched() -> None:
    assert not ConversationBundle(CID, DATE, {"id": CID, "summary": None}).complete


def test_a_conversation_gone_since_it_was_listed_is_not_watched() -> None:
    assert ConversationBundle(CID, DATE, None).complete


def test_a_recordings_only_fetch_has_nothing_to_watch() -> None:
    assert ConversationBundle(CID, DATE, {"id": CID}, detail_fetched=False).complete

"""The SDK's standard tap tests, against a sandbox started for this module.

They are a floor: their key test cannot see duplicate keys and they know nothing of
the API's rate limits; tests/test_sync.py covers both.
"""

from __future__ import annotations

import atexit
import datetime as dt

from singer_sdk.testing import get_tap_test_class

from tap_conversations.conversation_filters import ConversationFilters
from tap_conversations.removals import pack_id
from tap_conversations.tap import TapConversations
from tap_conversations.timestamps import format_timestamp
from tests.harness import ALL_STREAMS, catalog_selecting
from tests.sandbox import Sandbox

# get_tap_test_class needs its config when the class is defined, before fixtures run.
_SANDBOX = Sandbox(seed=11, conversations=60, rate_limit=100_000).start()
atexit.register(_SANDBOX.stop)

# A conversation loaded by an earlier run and deleted in the app since: the run's sweep
# (due: the last was a week ago) finds it, so removed_conversations has its record.
_REMOVED = max(_SANDBOX.listed_conversations(), key=lambda c: c["date"])
_SANDBOX.remove(_REMOVED["id"])
_STATE = {
    "bookmarks": {
        "conversations": {
            "removals": {
                "filters": ConversationFilters().to_state(),
                "swept_at": format_timestamp(_SANDBOX.now() - dt.timedelta(days=7)),
                "loaded": {_REMOVED["date"][:10]: pack_id(_REMOVED["id"])},
            }
        }
    }
}

_CONFIG = {
    "api_token": _SANDBOX.token,
    "api_url": _SANDBOX.base_url,
    "max_requests_per_minute": 100_000,
}

TestTapConversations = get_tap_test_class(
    tap_class=TapConversations,
    config=_CONFIG,
    # transcript_segments is not selected by default; the suite should still cover it.
    catalog=catalog_selecting(_CONFIG, ALL_STREAMS),
    state=_STATE,
)

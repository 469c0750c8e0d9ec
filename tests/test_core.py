"""The SDK's standard tap tests, against a sandbox started for this module.

They are a floor: their key test cannot see duplicate keys and they know nothing of
the API's rate limits; tests/test_sync.py covers both.
"""

from __future__ import annotations

import atexit

from singer_sdk.testing import get_tap_test_class

from tap_conversations.tap import TapConversations
from tests.harness import ALL_STREAMS, catalog_selecting
from tests.sandbox import Sandbox

# get_tap_test_class needs its config when the class is defined, before fixtures run.
_SANDBOX = Sandbox(seed=11, conversations=60, rate_limit=100_000).start()
atexit.register(_SANDBOX.stop)

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
)

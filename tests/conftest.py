# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Fixtures every test module shares."""

from __future__ import annotations

import math

import pytest

from tap_conversations import conversation_listing

pytest_plugins = ["tests.sandbox.fixtures", "tests.helpers", "tests.postgres"]


@pytest.fixture(autouse=True)
def listing_never_sliced_by_machine_load(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the listing's request count independent of how busy the machine is.

    The listing switches to concurrent date slices when measured latency x rate
    allows several requests in flight; at the tests' 100000/min a loaded machine's
    few milliseconds would switch it on and add list requests. Tests marked
    `date_slicing` inject a latency large enough to decide it on purpose.
    """
    if request.node.get_closest_marker("date_slicing") is None:
        monkeypatch.setattr(conversation_listing, "SLICE_MIN_IN_FLIGHT", math.inf)

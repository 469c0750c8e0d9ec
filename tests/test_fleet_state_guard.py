# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""A state of another account stops the run before any stream writes a record.

With one plugin definition for many accounts, a wrong token next to a state id (or a
state id next to a wrong token) is one typo away. The full-table streams (account,
users, teams, departments) sync before conversations: the check must come before
them, or their rows land in the other account's tables before the run fails.
"""

from __future__ import annotations

import contextlib
import io
import json
from typing import TYPE_CHECKING

import pytest

from tap_conversations.errors import StateError
from tap_conversations.tap import TapConversations
from tests.fleet import DETAIL
from tests.harness import run_sync, tap_config

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.sandbox import Sandbox


def test_another_accounts_state_stops_the_run_before_any_record(
    sandbox_factory: Callable[..., Sandbox],
) -> None:
    mine = sandbox_factory(seed=7, conversations=20)
    theirs = sandbox_factory(seed=8, conversations=20)
    state = run_sync(tap_config(mine)).state
    assert state["bookmarks"]["conversations"]["account_id"] == mine.account()["id"]
    theirs.reset_counters()

    tap = TapConversations(config=tap_config(theirs), state=state)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    with contextlib.redirect_stdout(out), pytest.raises(StateError) as raised:
        tap.sync_all()
    out.flush()
    tap.api.close()
    assert str(raised.value).startswith(
        f"The state was written for account {mine.account()['id']}, but the token reads "
        f"account {theirs.account()['id']}"
    )
    lines = raw.getvalue().decode("utf-8").splitlines()
    messages = [json.loads(line) for line in lines if line.strip()]
    # The SDK repeats the state it was given first; nothing else is written.
    assert [m["type"] for m in messages] == ["STATE"]
    repeated = messages[0]["value"]["bookmarks"]["conversations"]
    assert repeated == state["bookmarks"]["conversations"]
    assert theirs.counters.requests() == theirs.counters.requests("/me") == 1
    assert theirs.counters.requests(DETAIL) == 0


def test_the_same_accounts_state_costs_no_extra_request(sandbox: Sandbox) -> None:
    """The early check reads `/me` once, as the account stream does anyway."""
    state = run_sync(tap_config(sandbox)).state
    sandbox.reset_counters()
    again = run_sync(tap_config(sandbox), state=state)
    assert again.ids("account") == [sandbox.account()["id"]]
    assert sandbox.counters.requests("/me") == 1
    assert sandbox.counters.requests(DETAIL) == 0

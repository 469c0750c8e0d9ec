# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Pytest plugin with sandbox fixtures (``pytest_plugins = ["tests.sandbox.fixtures"]``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.sandbox.server import Sandbox

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DEFAULTS: dict[str, Any] = {"seed": 7, "conversations": 120, "rate_limit": 100_000}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A started sandbox: seed 7, 120 conversations, rate limit 100000/min."""
    with Sandbox(**DEFAULTS) as sb:
        yield sb


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Sandbox]]:
    """Start sandboxes with custom kwargs; all are stopped at teardown.

    Defaults are the ``sandbox`` fixture's (seed 7, 120 conversations, rate limit
    100000); any ``Sandbox`` keyword overrides them.
    """
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        sb = Sandbox(**{**DEFAULTS, **kwargs})
        started.append(sb)
        return sb.start()

    yield make
    for sb in started:
        sb.stop()

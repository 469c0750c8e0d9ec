# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Mutable sandbox state: fault knobs, counters and per-token limits."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

ALL_SCOPES: tuple[str, ...] = (
    "conversations",
    "transcripts",
    "insights",
    "recordings",
    "users",
    "teams",
    "departments",
    "notetaker",
)
DEMO_TOKEN = "mt_sandbox_demo_token"  # noqa: S105 - the sandbox's public demo token
UNKNOWN_ENDPOINT = "<unknown>"
DROPPED_STATUS = 0  # status recorded for a request answered by closing the socket

FAULT_KINDS = (
    "error",
    "error_every",
    "slow",
    "truncate",
    "html",
    "non_json",
    "drop",
    "rate_limited",
    "fail_next",  # sb.fail_next answers (per conversation and endpoint, counted down)
    "answer_as",  # sb.answer_as answers (another conversation's detail)
)


@dataclass
class Faults:
    """Fault-injection knobs; all off by default. Mutate the attributes freely.

    Rates are shares of eligible requests (0.0-1.0), decided by an RNG seeded with
    the sandbox seed. ``endpoints`` limits faults to those endpoint templates
    (``None`` = every endpoint except ``/me``).
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    error_every: int = 0
    slow_rate: float = 0.0
    slow_seconds: float = 5.0
    truncate_rate: float = 0.0
    html_rate: float = 0.0
    non_json_rate: float = 0.0
    drop_rate: float = 0.0
    rate_limited_rate: float = 0.0
    #: False: answers carry no `X-RateLimit-*` headers (optional in the contract); a
    #: 429 still carries Retry-After.
    rate_limit_headers: bool = True
    endpoints: set[str] | None = None

    def applies_to(self, endpoint: str) -> bool:
        """Tell whether faults may hit ``endpoint``."""
        if self.endpoints is None:
            return endpoint != "/me"
        return endpoint in self.endpoints

    def reset(self) -> None:
        """Turn every fault off (latency included)."""
        fresh = Faults()
        for name in fresh.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))


@dataclass
class TokenState:
    """One API token and its limits/usage."""

    token: str
    id: str
    scopes: frozenset[str]
    include_recordings: bool
    rate_limit: int | None = None  # None = sandbox default
    rate_window: float | None = None  # None = sandbox default
    daily_quota: int | None = None  # None = sandbox default
    hits: deque[float] = field(default_factory=deque)  # monotonic times in the window
    blocked_until: float = 0.0  # monotonic end of the last Retry-After we sent
    quota_day: tuple[str, int] = ("", 0)
    quota_ids: set[str] = field(default_factory=set)

    @property
    def prefix(self) -> str:
        """``_meta.token_prefix``: the first 11 characters."""
        return self.token[:11]


class Counters:
    """Thread-safe request/fault counters of one sandbox."""

    def __init__(
        self,
        quota_used: Callable[[str | None], int],
    ) -> None:
        """Create empty counters; ``quota_used`` answers :meth:`quota_used`."""
        self._lock = threading.Lock()
        self._quota_used = quota_used
        self._requests: defaultdict[tuple[str, int, str | None], int] = defaultdict(int)
        self._in_flight = 0
        self._max_in_flight = 0
        self._faults: defaultdict[str, int] = defaultdict(int)
        self._violations: defaultdict[str, int] = defaultdict(int)

    # --- recording (used by the server) ----------------------------------------------

    def record(self, endpoint: str, status: int, token: str | None) -> None:
        """Count one answered request."""
        with self._lock:
            self._requests[(endpoint, status, token)] += 1

    def enter(self) -> None:
        """A request started being handled."""
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def leave(self) -> None:
        """A request finished (answered or dropped)."""
        with self._lock:
            self._in_flight -= 1

    def fault(self, kind: str) -> None:
        """Count one injected fault."""
        with self._lock:
            self._faults[kind] += 1

    def violation(self, token: str) -> None:
        """Count a request that ignored a running Retry-After."""
        with self._lock:
            self._violations[token] += 1

    # --- reading (used by tests) -----------------------------------------------------

    def requests(
        self,
        endpoint: str | None = None,
        status: int | None = None,
        token: str | None = None,
    ) -> int:
        """Count requests matching every given filter (``None`` = any).

        ``endpoint`` is a contract path template without the base, e.g.
        ``"/conversations/{id}"``; unmatched paths count as ``"<unknown>"``;
        dropped connections have status 0.
        """
        with self._lock:
            return sum(
                n
                for (ep, st, tok), n in self._requests.items()
                if (endpoint is None or ep == endpoint)
                and (status is None or st == status)
                and (token is None or tok == token)
            )

    def by_endpoint(self) -> dict[str, dict[int, int]]:
        """Endpoint template -> status -> count."""
        out: dict[str, dict[int, int]] = {}
        with self._lock:
            for (ep, st, _tok), n in self._requests.items():
                per = out.setdefault(ep, {})
                per[st] = per.get(st, 0) + n
        return out

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        """Most requests handled at once since the last reset."""
        with self._lock:
            return self._max_in_flight

    @property
    def faults_injected(self) -> dict[str, int]:
        """Injected faults per kind (every kind present, zero included)."""
        with self._lock:
            return {kind: self._faults.get(kind, 0) for kind in FAULT_KINDS}

    def quota_used(self, token: str | None = None) -> int:
        """Unique conversation ids charged today (``None`` = the demo token)."""
        return self._quota_used(token)

    def retry_after_violations(self, token: str | None = None) -> int:
        """Requests that arrived while a rate-limit Retry-After was still running.

        ``None`` sums over all tokens. Only rate-limit 429s (real or the
        ``rate_limited`` fault) set a Retry-After that is policed here.
        """
        with self._lock:
            if token is None:
                return sum(self._violations.values())
            return self._violations.get(token, 0)

    def reset(self) -> None:
        """Zero requests, max in-flight, faults and violations (not quota)."""
        with self._lock:
            self._requests.clear()
            self._max_in_flight = self._in_flight
            self._faults.clear()
            self._violations.clear()

# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""The sandbox: a real loopback HTTP server that behaves like the vendor's API."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import random
import re
import socket
import socketserver
import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import requests

from tests.sandbox.data import (
    LIST_WINDOW,
    MEDIUMS,
    UTC,
    WEBHOOK_WINDOW,
    Conversation,
    DataGenerator,
    Delivery,
    is_uuid,
    iso,
    parse_iso,
    to_utc,
    truncate_ms,
)
from tests.sandbox.state import (
    ALL_SCOPES,
    DEMO_TOKEN,
    DROPPED_STATUS,
    UNKNOWN_ENDPOINT,
    Counters,
    Faults,
    TokenState,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from typing_extensions import Self

BASE_PATH = "/api/v1"
MAX_PAGE = 25
MAX_BODY = 1 << 20
JSON_CT = "application/json; charset=utf-8"
SUBRESOURCES = ("transcript", "insights", "recording", "summary")
ENDPOINT_SCOPE: dict[str, str | None] = {
    "/me": None,
    "/users": "users",
    "/teams": "teams",
    "/departments": "departments",
    "/conversations": "conversations",
    "/conversations/{id}": "conversations",
    "/conversations/{id}/transcript": "transcripts",
    "/conversations/{id}/insights": "insights",
    "/conversations/{id}/recording": "recordings",
    "/conversations/{id}/summary": "conversations",
    "/webhooks/deliveries": None,
    "/notetaker": "notetaker",
}
ENDPOINT_METHOD = {ep: ("POST" if ep == "/notetaker" else "GET") for ep in ENDPOINT_SCOPE}
_STATIC_ENDPOINTS = {"/me", "/users", "/teams", "/departments"}
#: ``fail_next`` endpoint names -> endpoint templates
HEALING_ENDPOINTS = {
    "detail": "/conversations/{id}",
    **{sub: f"/conversations/{{id}}/{sub}" for sub in SUBRESOURCES},
}
HEALING_STATUSES = frozenset({404, 429, 500, 502, 503})
_NOTETAKER_HOSTS = {
    "zoom.us": "zoom",
    "teams.microsoft.com": "microsoft_teams",
    "teams.live.com": "microsoft_teams",
    "meet.google.com": "google_meet",
}
_NOTETAKER_PLATFORMS = ("zoom", "microsoft_teams", "google_meet")
_PHRASES = {s.value: s.phrase for s in HTTPStatus}
_NON_JSON_BODY = b"<html><body><h1>Service temporarily unavailable</h1></body></html>"
_HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class Reply:
    """What the handler writes (or does instead of writing)."""

    status: int
    body: bytes
    content_type: str = JSON_CT
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    truncate: bool = False
    drop: bool = False
    rate_exempt: bool = False  # an injected 429: does not count against the window


@dataclass
class _Pending:
    """Answers still owed by ``fail_next`` (status) or ``answer_as`` (other id)."""

    remaining: int
    status: int = 0
    retry_after: int | None = None
    other_id: str = ""


def _error(status: int, code: str, message: str, **extra: str) -> Reply:
    return Reply(status, _dumps({"error": code, "message": message, **extra}))


class _BadParameterError(ValueError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass
class _ListFilters:
    department_id: str | None = None
    user_id: str | None = None
    medium: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    cursor: datetime | None = None


def _route(path: str) -> tuple[str | None, str | None]:
    """Map a request path to (endpoint template, conversation id)."""
    if not path.startswith(BASE_PATH + "/"):
        return None, None
    rest = path[len(BASE_PATH) :]
    if rest in ENDPOINT_SCOPE and "{" not in rest:
        return rest, None
    parts = rest.split("/")
    # parts: "", "conversations", the id and optionally a sub-resource
    if len(parts) in (3, 4) and parts[1] == "conversations" and parts[2]:
        if len(parts) == 3:
            return "/conversations/{id}", parts[2]
        if parts[3] in SUBRESOURCES:
            return f"/conversations/{{id}}/{parts[3]}", parts[2]
    return None, None


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _first(query: dict[str, list[str]], name: str) -> str | None:
    """First value of a query parameter; empty values count as absent."""
    values = query.get(name)
    if not values or values[0] == "":
        return None
    return values[0]


def _parse_date_param(query: dict[str, list[str]], name: str) -> datetime | None:
    value = _first(query, name)
    if value is None:
        return None
    try:
        return parse_iso(value)
    except ValueError:
        msg = f"Invalid '{name}': expected an ISO-8601 timestamp, got {value!r}."
        raise _BadParameterError(name, msg) from None


def _parse_uuid_param(query: dict[str, list[str]], name: str) -> str | None:
    value = _first(query, name)
    if value is None:
        return None
    if not is_uuid(value):
        msg = f"Invalid '{name}': expected a UUID, got {value!r}."
        raise _BadParameterError(name, msg)
    return value.lower()


def _parse_limit(query: dict[str, list[str]]) -> int:
    value = _first(query, "limit")
    if value is None:
        return MAX_PAGE
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit <= 0:
        msg = f"Invalid 'limit': expected a positive integer, got {value!r}."
        name = "limit"
        raise _BadParameterError(name, msg)
    return min(limit, MAX_PAGE)


def _parse_list_query(query: dict[str, list[str]]) -> tuple[_ListFilters, int]:
    limit = _parse_limit(query)
    medium = _first(query, "medium")
    if medium is not None and medium not in MEDIUMS:
        msg = f"Invalid 'medium': expected one of {', '.join(MEDIUMS)}, got {medium!r}."
        name = "medium"
        raise _BadParameterError(name, msg)
    filters = _ListFilters(
        department_id=_parse_uuid_param(query, "department_id"),
        user_id=_parse_uuid_param(query, "user_id"),
        medium=medium,
        date_from=_parse_date_param(query, "date_from"),
        date_to=_parse_date_param(query, "date_to"),
        cursor=_parse_date_param(query, "cursor"),
    )
    return filters, limit


def _real_now() -> datetime:
    return datetime.now(UTC)


def _seconds_to_utc_midnight(now: datetime) -> int:
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((midnight - now).total_seconds()))


class Sandbox:
    """A real HTTP server on loopback that behaves like the vendor's REST API (v1).

    Data is deterministic from ``seed`` and ``conversations``; dates are relative
    to the moment the sandbox is created on its clock (``clock``: a function
    returning an aware UTC datetime, settable later as ``sb.clock``; ``None`` = the
    real UTC clock). See README.md beside this file for the knobs.
    """

    def __init__(  # noqa: PLR0913, PLR0917 - the public constructor's knobs
        self,
        seed: int = 7,
        conversations: int = 120,
        rate_limit: int = 60,
        rate_window_seconds: float = 60.0,
        daily_quota: int = 1000,
        latency_ms: float = 0.0,
        port: int = 0,
        host: str = "127.0.0.1",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        """Build the data; call :meth:`start` to serve it."""
        self.seed = seed
        self.host = host
        self.port = port
        self.clock = clock
        self.anchor = self._now_ms()
        self.faults = Faults(latency_ms=latency_ms)
        self.counters = Counters(self._quota_used)
        self.server_errors: list[str] = []  # tracebacks of handler bugs (answered 500)
        self._lock = threading.RLock()
        self._rate_limit = rate_limit
        self._rate_window = rate_window_seconds
        self._daily_quota = daily_quota
        self._day_offset = 0
        self._removed: list[str] = []
        self._failing: dict[tuple[str, str], deque[_Pending]] = {}
        self._answering_as: dict[str, deque[_Pending]] = {}
        self._fault_seq = 0
        self._fault_rng = random.Random(f"{seed}:faults")
        self._rng = random.Random(f"{seed}:runtime")
        self._gen = DataGenerator(seed, self.anchor)
        self._tokens: dict[str, TokenState] = {}
        demo = TokenState(
            token=DEMO_TOKEN,
            id=self._new_uuid(),
            scopes=frozenset(ALL_SCOPES),
            include_recordings=True,
        )
        self._tokens[DEMO_TOKEN] = demo
        self._convs: dict[str, Conversation] = {}
        self._sorted: list[Conversation] = []
        for conv in self._gen.initial_conversations(conversations):
            self._convs[conv.id] = conv
        self._resort()
        self._deliveries: list[Delivery] = self._gen.initial_deliveries(self._sorted, demo.id)
        self._notetaker: list[dict[str, Any]] = []
        self._inactive_users: set[str] = set()
        self._static = {"/me": self._prefix(self._gen.account)}
        self._rebuild_static()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- the clock -------------------------------------------------------------------

    @property
    def clock(self) -> Callable[[], datetime]:
        """The sandbox's notion of now (every date-dependent answer reads it).

        Assign a function returning an aware UTC datetime (a naive one counts as
        UTC) to move the sandbox's time; ``None`` restores the real UTC clock. The
        rate limit's window and ``X-RateLimit-*`` headers stay on real time.
        """
        return self._clock

    @clock.setter
    def clock(self, value: Callable[[], datetime] | None) -> None:
        self._clock = value if value is not None else _real_now

    def now(self) -> datetime:
        """The current moment on the sandbox's clock, in UTC."""
        return to_utc(self._clock())

    def _now_ms(self) -> datetime:
        return truncate_ms(self.now())

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Sandbox:
        """Bind (port 0 = a free port) and serve in a daemon thread."""
        if self._server is not None:
            return self
        server = _Server((self.host, self.port), self)
        self.port = int(server.server_address[1])
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"sandbox-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        """Start on entering a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop on leaving a ``with`` block."""
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/api/v1`` (only meaningful once started)."""
        return f"http://{self.host}:{self.port}{BASE_PATH}"

    @property
    def token(self) -> str:
        """The demo token: every scope, include_recordings=True."""
        return DEMO_TOKEN

    # --- tokens and limits -------------------------------------------------------------

    def _new_uuid(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def add_token(  # noqa: PLR0913, PLR0917 - public interface, mirrors the token settings
        self,
        scopes: Iterable[str] = ("conversations", "users"),
        include_recordings: bool = False,  # noqa: FBT001, FBT002 - public interface
        rate_limit: int | None = None,
        daily_quota: int | None = None,
        token: str | None = None,
        rate_window_seconds: float | None = None,
    ) -> str:
        """Create a token; ``None`` limits follow the sandbox defaults.

        Returns:
            The token string (``mt_`` + 8 hex chars + ``_`` + 16 hex chars).
        """
        scope_set = frozenset(scopes)
        unknown = scope_set - set(ALL_SCOPES)
        if unknown:
            msg = f"unknown scopes: {sorted(unknown)}"
            raise ValueError(msg)
        with self._lock:
            if token is None:
                token = f"mt_{self._rng.getrandbits(32):08x}_{self._rng.getrandbits(64):016x}"
            self._tokens[token] = TokenState(
                token=token,
                id=self._new_uuid(),
                scopes=scope_set,
                include_recordings=include_recordings,
                rate_limit=rate_limit,
                rate_window=rate_window_seconds,
                daily_quota=daily_quota,
            )
        return token

    def revoke_token(self, token: str) -> None:
        """Forget a token: its requests answer 401 from now on."""
        with self._lock:
            self._tokens.pop(token, None)

    def token_id(self, token: str | None = None) -> str:
        """The UUID of a token (``None`` = the demo token), for ``token_id`` filters."""
        with self._lock:
            return self._tokens[token or DEMO_TOKEN].id

    def set_rate_limit(
        self, limit: int, window_seconds: float = 60.0, token: str | None = None
    ) -> None:
        """Set the sliding-window limit of one token, or of all (``None``)."""
        with self._lock:
            if token is not None:
                state = self._tokens[token]
                state.rate_limit, state.rate_window = limit, window_seconds
                return
            self._rate_limit, self._rate_window = limit, window_seconds
            for state in self._tokens.values():
                state.rate_limit = state.rate_window = None

    def set_daily_quota(self, quota: int, token: str | None = None) -> None:
        """Set the unique-conversations-per-day quota of one token, or of all."""
        with self._lock:
            if token is not None:
                self._tokens[token].daily_quota = quota
                return
            self._daily_quota = quota
            for state in self._tokens.values():
                state.daily_quota = None

    def new_day(self) -> None:
        """As if UTC midnight passed: every token's quota usage resets."""
        with self._lock:
            self._day_offset += 1
            for state in self._tokens.values():
                state.quota_ids = set()

    def reset_counters(self) -> None:
        """Zero requests, max in-flight, faults and violations (not quota)."""
        self.counters.reset()

    def _day_key(self) -> tuple[str, int]:
        return (self.now().date().isoformat(), self._day_offset)

    def _quota_used(self, token: str | None) -> int:
        with self._lock:
            state = self._tokens[token or DEMO_TOKEN]
            if state.quota_day != self._day_key():
                return 0
            return len(state.quota_ids)

    # --- truth for assertions ----------------------------------------------------------

    def _resort(self) -> None:
        self._sorted = sorted(self._convs.values(), key=lambda c: c.sort_key, reverse=True)

    def _conv(self, conv_id: str) -> Conversation:
        try:
            return self._convs[conv_id]
        except KeyError:
            msg = f"unknown conversation {conv_id!r}"
            raise KeyError(msg) from None

    def _select(self, f: _ListFilters, now: datetime) -> list[Conversation]:
        """Conversations GET /conversations lists (all pages), newest first.

        ``cursor`` is a strict "older than" bound, exactly like the contract.
        """
        floor = now - LIST_WINDOW
        lower = max(f.date_from, floor) if f.date_from is not None else floor
        upper = min(f.date_to, now) if f.date_to is not None else now
        out = []
        with self._lock:
            for c in self._sorted:
                if c.date > upper or (f.cursor is not None and c.date >= f.cursor):
                    continue
                if c.date < lower:
                    break  # sorted newest first: everything after is older
                if c.hidden or c.removed:
                    continue
                if f.medium is not None and c.medium != f.medium:
                    continue
                if f.department_id is not None and (
                    c.department is None or c.department["id"] != f.department_id
                ):
                    continue
                if f.user_id is not None and (c.user is None or c.user["id"] != f.user_id):
                    continue
                out.append(c)
        return out

    @staticmethod
    def _truth_filters(filters: dict[str, Any]) -> _ListFilters:
        allowed = {"department_id", "medium", "user_id", "date_from", "date_to", "cursor"}
        unknown = set(filters) - allowed
        if unknown:
            msg = f"unknown filters: {sorted(unknown)}"
            raise TypeError(msg)
        out = _ListFilters(
            department_id=filters.get("department_id"),
            user_id=filters.get("user_id"),
            medium=filters.get("medium"),
        )
        for name in ("date_from", "date_to", "cursor"):
            if filters.get(name) is not None:
                setattr(out, name, to_utc(filters[name]))
        return out

    def listed_conversations(self, **filters: Any) -> list[dict[str, Any]]:
        """What GET /conversations lists right now with these filters, newest first.

        Filters: department_id, medium, user_id, date_from, date_to (str or
        datetime) and cursor. This is the whole filtered listing: items that a
        cursor walk loses at a page boundary (equal dates) are included; see
        :meth:`listed_pages` for exactly what paging returns.
        """
        selected = self._select(self._truth_filters(filters), self.now())
        return [c.list_item() for c in selected]

    def listed_pages(self, limit: int = MAX_PAGE, **filters: Any) -> list[list[dict[str, Any]]]:
        """Exactly the pages a client following ``next_cursor`` gets right now."""
        f = self._truth_filters(filters)
        pages: list[list[dict[str, Any]]] = []
        now = self.now()
        while True:
            selected = self._select(f, now)
            page = selected[: min(limit, MAX_PAGE)]
            pages.append([c.list_item() for c in page])
            if len(selected) <= len(page):
                return pages
            f.cursor = page[-1].date

    def all_conversation_ids(self) -> list[str]:
        """Every conversation in the store (listed or not), newest first; not removed ones."""
        with self._lock:
            return [c.id for c in self._sorted if not c.removed]

    def removed_ids(self) -> list[str]:
        """Conversations taken away by :meth:`remove`, in the order they were removed."""
        with self._lock:
            return list(self._removed)

    def conversation_detail(
        self,
        conv_id: str,
        include_transcript: bool = True,  # noqa: FBT001, FBT002 - public interface
        include_insights: bool = True,  # noqa: FBT001, FBT002 - public interface
    ) -> dict[str, Any]:
        """Detail shape (ignores scopes; ``transcript`` only when one exists)."""
        with self._lock:
            return self._conv(conv_id).detail(
                include_transcript=include_transcript, include_insights=include_insights
            )

    def transcript(self, conv_id: str) -> dict[str, Any] | None:
        """``{"segments": [...]}`` or None (the transcript endpoint answers 404)."""
        with self._lock:
            return self._conv(conv_id).transcript()

    def insights(self, conv_id: str) -> list[dict[str, Any]]:
        """Insights of a conversation."""
        with self._lock:
            return self._conv(conv_id).insights()

    def summary(self, conv_id: str) -> dict[str, Any] | None:
        """Summary endpoint body without _meta, or None (the endpoint answers 404)."""
        with self._lock:
            return self._conv(conv_id).summary()

    def recording(self, conv_id: str) -> dict[str, Any]:
        """Recording endpoint body without _meta."""
        with self._lock:
            return self._conv(conv_id).recording()

    def is_processed(self, conv_id: str) -> bool:
        """Tell whether a conversation's processing is complete."""
        with self._lock:
            return self._conv(conv_id).processed

    def users(self) -> list[dict[str, Any]]:
        """Users as GET /users lists them (active ones)."""
        with self._lock:
            return json.loads(_dumps(self._listed_users()))

    def teams(self) -> list[dict[str, Any]]:
        """Teams (with members) as GET /teams lists them."""
        with self._lock:
            return json.loads(_dumps(self._gen.teams))

    def departments(self) -> list[dict[str, Any]]:
        """Departments as GET /departments lists them (enabled ones)."""
        with self._lock:
            return json.loads(_dumps(self._listed_departments()))

    def _listed_users(self) -> list[dict[str, Any]]:
        return [u for u in self._gen.users if u["id"] not in self._inactive_users]

    def _listed_departments(self) -> list[dict[str, Any]]:
        return [d for d in self._gen.departments if d["enabled"]]

    def _rebuild_static(self) -> None:
        """Re-render the cached /users, /teams and /departments bodies."""
        with self._lock:
            self._static["/users"] = self._prefix({"users": self._listed_users()})
            self._static["/teams"] = self._prefix({"teams": self._gen.teams})
            departments = self._listed_departments()
            self._static["/departments"] = self._prefix({"departments": departments})

    # --- reference data: departments and users ---------------------------------------

    def set_department_enabled(
        self,
        department_id: str,
        enabled: bool,  # noqa: FBT001 - public interface
    ) -> None:
        """Disable (or enable again) a department.

        A disabled one is not listed by GET /departments (nor ``departments()``),
        but conversations keep referencing it and ``department_id`` still filters.

        Raises:
            KeyError: unknown department id.
        """
        with self._lock:
            department = next((d for d in self._gen.departments if d["id"] == department_id), None)
            if department is None:
                raise KeyError(department_id)
            department["enabled"] = enabled
            self._rebuild_static()

    def set_user_active(
        self,
        user_id: str,
        active: bool,  # noqa: FBT001 - public interface
    ) -> None:
        """Deactivate (or reactivate) a user.

        An inactive one is not listed by GET /users (nor ``users()``), but
        conversations keep referencing it and teams keep it as a member.

        Raises:
            KeyError: unknown user id.
        """
        with self._lock:
            self._gen.user_ref(user_id)  # KeyError when unknown
            if active:
                self._inactive_users.discard(user_id)
            else:
                self._inactive_users.add(user_id)
            self._rebuild_static()

    def add_department(
        self, name: str, slug: str | None = None, display_name: str | None = None
    ) -> str:
        """Add an enabled department (listed from now on); returns its id.

        ``slug`` defaults to the name's lowercase ASCII letters and digits joined by
        ``-``.
        """
        with self._lock:
            department_id = self._new_uuid()
            if slug is None:
                slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "department"
            self._gen.departments.append(
                {
                    "id": department_id,
                    "name": name,
                    "slug": slug,
                    "enabled": True,
                    "display_name": display_name,
                }
            )
            self._rebuild_static()
            return department_id

    def add_user(
        self,
        full_name: str,
        email: str | None = None,
        role: str = "member",
        team_id: str | None = None,
    ) -> str:
        """Add an active user (listed from now on, and a member of ``team_id``).

        ``email`` defaults to ``user-<first 8 hex of its id>@telco-demo.test``.

        Returns:
            The new user's id.

        Raises:
            KeyError: unknown team id.
        """
        with self._lock:
            team = None
            if team_id is not None:
                team = next((t for t in self._gen.teams if t["id"] == team_id), None)
                if team is None:
                    raise KeyError(team_id)
            user_id = self._new_uuid()
            email = email if email is not None else f"user-{user_id[:8]}@telco-demo.test"
            self._gen.users.append(
                {
                    "id": user_id,
                    "full_name": full_name,
                    "email": email,
                    "role": role,
                    "team_id": team_id,
                    "team_name": team["name"] if team is not None else None,
                }
            )
            if team is not None:
                team["members"].append({"id": user_id, "full_name": full_name, "email": email})
            self._rebuild_static()
            return user_id

    def account(self) -> dict[str, Any]:
        """The account as GET /me returns it, without _meta."""
        return dict(self._gen.account)

    def webhook_deliveries(self, token_id: str | None = None) -> list[dict[str, Any]]:
        """Deliveries of the last 7 days, newest first (as the endpoint lists them)."""
        floor = self.now() - WEBHOOK_WINDOW
        with self._lock:
            chosen = [
                d
                for d in self._deliveries
                if d.created_at >= floor and (token_id is None or d.token_id == token_id)
            ]
        chosen.sort(key=lambda d: (d.created_at, d.id), reverse=True)
        return [d.as_dict() for d in chosen]

    def notetaker_requests(self) -> list[dict[str, Any]]:
        """Notetaker requests accepted so far (without _meta), oldest first."""
        with self._lock:
            return [dict(r) for r in self._notetaker]

    # --- late data -------------------------------------------------------------------

    _OVERRIDABLE = frozenset(
        {
            "id",
            "title",
            "company",
            "duration",
            "medium",
            "sentiment",
            "conversation_type",
            "department",
            "user",
            "department_id",
            "user_id",
            "participants",
            "summary",
            "transcript",
            "insights",
            "has_recording",
        }
    )

    def add_conversation(
        self,
        date: datetime | str | None = None,
        processed: bool = True,  # noqa: FBT001, FBT002 - public interface
        **overrides: Any,
    ) -> str:
        """Add the next deterministic conversation; listed from now on.

        ``date`` defaults to now (the sandbox clock); a past date models a
        conversation that appears in the list after its date. ``processed=False``:
        no summary, transcript or insights until :meth:`set_processed`.
        ``overrides`` replace generated fields (``department_id``/``user_id`` pick
        a department/user by id; ``summary``, ``transcript`` (segments list) and
        ``insights`` set the processed content).

        Returns:
            The new conversation id.
        """
        unknown = set(overrides) - self._OVERRIDABLE
        if unknown:
            msg = f"unknown overrides: {sorted(unknown)}"
            raise TypeError(msg)
        now = self._now_ms()
        # The API writes milliseconds: a finer date would list differently than it reads.
        when = now if date is None else truncate_ms(to_utc(date))
        with self._lock:
            conv = self._gen.conversation(when, processed=processed, now=now)
            self._apply_overrides(conv, overrides)
            if conv.id in self._convs:
                msg = f"duplicate conversation id {conv.id}"
                raise ValueError(msg)
            conv.summary_created_at = now if conv.full_summary is not None else None
            conv.summary_updated_at = conv.summary_created_at
            self._convs[conv.id] = conv
            self._resort()
            if processed:
                self._record_delivery(conv.id, now)
            return conv.id

    def _apply_overrides(self, conv: Conversation, overrides: dict[str, Any]) -> None:
        for key, value in overrides.items():
            if key == "department_id":
                conv.department = None if value is None else self._gen.department_ref(value)
            elif key == "user_id":
                conv.user = None if value is None else self._gen.user_ref(value)
            elif key == "summary":
                conv.full_summary = value
            elif key == "transcript":
                conv.full_transcript = value["segments"] if isinstance(value, dict) else value
            elif key == "insights":
                conv.full_insights = value
            else:
                setattr(conv, key, value)
        conv.list_json = None

    def set_processed(
        self,
        conv_id: str,
        processed: bool,  # noqa: FBT001 - public interface
        *,
        webhook: bool = True,
    ) -> None:
        """Finish (or undo) processing; True also records a webhook delivery.

        ``webhook=False`` models an account without webhooks: nothing is recorded.
        """
        with self._lock:
            conv = self._conv(conv_id)
            conv.processed = processed
            if processed:
                now = self._now_ms()
                if conv.summary_created_at is None:
                    conv.summary_created_at = now
                conv.summary_updated_at = now
                if webhook:
                    self._record_delivery(conv_id, now)

    def edit_summary(self, conv_id: str, text: str) -> None:
        """A person edits the summary in the app: new text, `updated_at` now.

        The detail's `summary` and `/summary` both show the edit; no delivery is sent
        (the completed webhook fired once, at completion).
        """
        with self._lock:
            conv = self._conv(conv_id)
            conv.full_summary = text
            conv.summary_updated_at = self._now_ms()

    def add_delivery(
        self, conv_id: str, status: str = "pending", created_at: datetime | None = None
    ) -> str:
        """Record a ``conversation.completed`` delivery with ``status``; returns its id."""
        return self._record_delivery(conv_id, created_at or self._now_ms(), status, None)

    def set_delivery_status(self, delivery_id: str, status: str) -> None:
        """Change a delivery's status (``delivered`` also sets ``delivered_at``)."""
        with self._lock:
            delivery = next(d for d in self._deliveries if d.id == delivery_id)
            now = self._now_ms()
            delivery.status = status
            delivery.attempts += 1
            delivery.last_attempt_at = now
            if status == "delivered":
                delivery.delivered_at = now
                delivery.response_status = 200

    # --- answers that heal later ---------------------------------------------------

    def fail_next(
        self,
        conv_id: str,
        endpoint: str,
        times: int = 1,
        status: int = 404,
        *,
        retry_after: int | None = None,
    ) -> None:
        """The next ``times`` requests of one conversation's endpoint answer ``status``.

        ``endpoint``: ``"detail"``, ``"summary"``, ``"transcript"``, ``"insights"``
        or ``"recording"``. ``status`` 404 answers ``not_found`` like a real unknown
        id; 500/502/503 ``internal_error``; 429 ``rate_limited`` with a
        ``Retry-After: retry_after`` header (none when ``None``). These answers
        charge no quota (and a 429 does not count against the rate window); after
        them the endpoint answers normally again. Calls queue up in order.

        Raises:
            KeyError: unknown conversation.
            ValueError: unknown endpoint, status or a non-positive ``times``.
        """
        if endpoint not in HEALING_ENDPOINTS:
            msg = f"endpoint must be one of {sorted(HEALING_ENDPOINTS)}, got {endpoint!r}"
            raise ValueError(msg)
        if status not in HEALING_STATUSES:
            msg = f"status must be one of {sorted(HEALING_STATUSES)}, got {status}"
            raise ValueError(msg)
        if times <= 0:
            msg = f"times must be positive, got {times}"
            raise ValueError(msg)
        with self._lock:
            self._conv(conv_id)
            queue = self._failing.setdefault((conv_id, HEALING_ENDPOINTS[endpoint]), deque())
            queue.append(_Pending(times, status=status, retry_after=retry_after))

    def answer_as(self, conv_id: str, other_id: str, times: int = 1) -> None:
        """The next ``times`` detail requests of ``conv_id`` answer ``other_id``'s detail.

        A replica/caching bug: the body is the other conversation's (with the
        requested ``include_*`` parts); the quota is charged for ``conv_id``.

        Raises:
            KeyError: unknown conversation.
            ValueError: a non-positive ``times``.
        """
        if times <= 0:
            msg = f"times must be positive, got {times}"
            raise ValueError(msg)
        with self._lock:
            self._conv(conv_id)
            self._conv(other_id)
            queue = self._answering_as.setdefault(conv_id, deque())
            queue.append(_Pending(times, other_id=other_id))

    @staticmethod
    def _take(queues: dict[Any, deque[_Pending]], key: Any) -> _Pending | None:
        """Consume one answer owed under ``key`` (call with the lock held)."""
        queue = queues.get(key)
        if not queue:
            return None
        pending = queue[0]
        pending.remaining -= 1
        if pending.remaining <= 0:
            queue.popleft()
            if not queue:
                del queues[key]
        return pending

    def _healing_reply(self, pending: _Pending, conv_id: str, tok: TokenState) -> Reply:
        self.counters.fault("fail_next")
        if pending.status == 404:
            return _error(404, "not_found", f"Conversation {conv_id} not found.")
        if pending.status != 429:
            return _error(pending.status, "internal_error", "Injected server error.")
        reply = _error(429, "rate_limited", "Rate limit exceeded (injected).")
        reply.rate_exempt = True
        if pending.retry_after is not None:
            reply.headers.append(("Retry-After", str(pending.retry_after)))
            with self._lock:
                tok.blocked_until = time.monotonic() + pending.retry_after
        return reply

    def remove(self, conv_id: str) -> None:
        """Delete a conversation for good (unlike :meth:`hide`).

        It leaves the listing, and its detail and sub-endpoints answer 404
        ``not_found`` from now on (no quota charged).
        The truth methods ``listed_conversations``/``listed_pages``/
        ``all_conversation_ids`` leave it out; ``conversation_detail`` and the other
        per-id truth methods still describe what it was.
        """
        with self._lock:
            conv = self._conv(conv_id)
            if not conv.removed:
                conv.removed = True
                self._removed.append(conv_id)

    def hide(self, conv_id: str) -> None:
        """Temporarily leave a conversation out of the listing."""
        with self._lock:
            self._conv(conv_id).hidden = True

    def unhide(self, conv_id: str) -> None:
        """List a hidden conversation again."""
        with self._lock:
            self._conv(conv_id).hidden = False

    def _record_delivery(
        self,
        conv_id: str,
        when: datetime,
        status: str = "delivered",
        response_status: int | None = 200,
        delivery_id: str | None = None,
    ) -> str:
        with self._lock:
            delivery = Delivery(
                id=delivery_id or self._new_uuid(),
                resource_id=conv_id,
                token_id=self._tokens[DEMO_TOKEN].id,
                status=status,
                attempts=1,
                last_attempt_at=when,
                delivered_at=when if status == "delivered" else None,
                response_status=response_status,
                created_at=when,
            )
            self._deliveries.append(delivery)
            return delivery.id

    # --- webhooks ----------------------------------------------------------------------

    def webhook_body(
        self, conv_id: str, delivery_id: str, token: str | None = None
    ) -> dict[str, Any]:
        """The ``conversation.completed`` body (detail without transcript/insights)."""
        return {
            "event": "conversation.completed",
            "timestamp": iso(self._now_ms()),
            "data": {
                "conversation": self.conversation_detail(
                    conv_id, include_transcript=False, include_insights=False
                )
            },
            "_meta": {"token_prefix": (token or DEMO_TOKEN)[:11], "delivery_id": delivery_id},
        }

    def send_webhook(
        self, url: str, conv_id: str, secret: str, token: str | None = None
    ) -> requests.Response:
        """POST a signed ``conversation.completed`` webhook to ``url``.

        Headers: X-Webhook-Signature ``sha256=<hex HMAC-SHA256(secret, raw body)>``,
        X-Webhook-Event, X-Webhook-Delivery-Id, X-Webhook-Timestamp (unix seconds of
        the sandbox clock).
        The delivery is recorded (delivered on 2xx, failed otherwise).
        """
        delivery_id = self._new_uuid()
        raw = _dumps(self.webhook_body(conv_id, delivery_id, token))
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": f"sha256={signature}",
            "X-Webhook-Event": "conversation.completed",
            "X-Webhook-Delivery-Id": delivery_id,
            "X-Webhook-Timestamp": str(int(self.now().timestamp())),
        }
        try:
            response = requests.post(url, data=raw, headers=headers, timeout=10)
        except requests.RequestException:
            self._record_delivery(conv_id, self._now_ms(), "failed", None, delivery_id)
            raise
        ok = 200 <= response.status_code < 300
        status = "delivered" if ok else "failed"
        self._record_delivery(conv_id, self._now_ms(), status, response.status_code, delivery_id)
        return response

    # --- request handling ----------------------------------------------------------------

    @staticmethod
    def _prefix(obj: dict[str, Any]) -> bytes:
        """JSON of ``obj`` without its closing brace, ready for ``_meta``."""
        return _dumps(obj)[:-1]

    def _with_meta(self, prefix: bytes, tok: TokenState) -> bytes:
        meta = _dumps({"token_prefix": tok.prefix, "timestamp": iso(self.now())})
        sep = b"," if len(prefix) > 1 else b""
        return prefix + sep + b'"_meta":' + meta + b"}"

    def _ok(self, obj: dict[str, Any], tok: TokenState, status: int = 200) -> Reply:
        return Reply(status, self._with_meta(self._prefix(obj), tok))

    def handle_request(
        self, method: str, target: str, authorization: str | None, body: bytes
    ) -> Reply:
        """Answer one HTTP request (used by the handler threads)."""
        split = urlsplit(target)
        endpoint, conv_id = _route(split.path)
        token = _bearer(authorization)
        if endpoint is None:
            reply = _error(404, "not_found", f"No such path: {split.path}")
            return self._finish(reply, UNKNOWN_ENDPOINT, token)
        with self._lock:
            tok = self._tokens.get(token) if token else None
        if tok is None:
            msg = "Missing, invalid or revoked API token."
            return self._finish(_error(401, "unauthorized", msg), endpoint, token)
        fault = self._decide_fault(endpoint)
        limited, rl_headers, hit = self._rate_check(tok, commit=fault != "rate_limited")
        if limited is not None:
            return self._finish(limited, endpoint, token, rl_headers)
        if fault is not None and fault not in ("slow", "truncate"):
            return self._finish(self._fault_reply(fault, tok), endpoint, token, rl_headers)
        if method != ENDPOINT_METHOD[endpoint]:
            reply = _error(405, "method_not_allowed", f"{method} is not allowed here.")
            reply.headers.append(("Allow", ENDPOINT_METHOD[endpoint]))
        else:
            reply = self._dispatch(endpoint, conv_id, split.query, tok, body)
            if reply.rate_exempt and hit is not None:
                with self._lock, contextlib.suppress(ValueError):
                    tok.hits.remove(hit)
        if fault == "slow":
            self.counters.fault(fault)
            reply.delay += self.faults.slow_seconds
        elif fault == "truncate":
            self.counters.fault(fault)
            reply.truncate = True
        return self._finish(reply, endpoint, token, rl_headers)

    def _finish(
        self,
        reply: Reply,
        endpoint: str,
        token: str | None,
        headers: list[tuple[str, str]] | None = None,
    ) -> Reply:
        if headers and not reply.drop:
            keep_rate_headers = self.faults.rate_limit_headers
            reply.headers.extend(
                (name, value)
                for name, value in headers
                if keep_rate_headers or not name.startswith("X-RateLimit-")
            )
        latency = self.faults.latency_ms
        if latency > 0 and not reply.drop:
            reply.delay += latency / 1000.0
        self.counters.record(endpoint, DROPPED_STATUS if reply.drop else reply.status, token)
        return reply

    def _rate_check(
        self, tok: TokenState, *, commit: bool
    ) -> tuple[Reply | None, list[tuple[str, str]], float | None]:
        """Sliding-window rate limit; a 429 answer does not count against it.

        Returns:
            The 429 reply (or None), the rate-limit headers and the time of the hit
            recorded for this request (None when none was).
        """
        now = time.monotonic()
        with self._lock:
            if now < tok.blocked_until:
                self.counters.violation(tok.token)
            limit = tok.rate_limit if tok.rate_limit is not None else self._rate_limit
            window = tok.rate_window if tok.rate_window is not None else self._rate_window
            hits = tok.hits
            cutoff = now - window
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= limit:
                free_at = hits[len(hits) - limit] + window if limit > 0 else now + window
                retry = max(1, math.ceil(free_at - now))
                tok.blocked_until = now + retry
                headers = [
                    ("Retry-After", str(retry)),
                    ("X-RateLimit-Limit", str(limit)),
                    ("X-RateLimit-Remaining", "0"),
                    ("X-RateLimit-Reset", str(math.ceil(time.time() + free_at - now))),
                ]
                msg = f"Rate limit of {limit} requests per {window:g} s exceeded."
                return _error(429, "rate_limited", msg), headers, None
            if commit:
                hits.append(now)
            reset_in = (hits[0] + window - now) if hits else 0.0
            headers = [
                ("X-RateLimit-Limit", str(limit)),
                ("X-RateLimit-Remaining", str(max(0, limit - len(hits)))),
                ("X-RateLimit-Reset", str(math.ceil(time.time() + reset_in))),
            ]
            return None, headers, now if commit else None

    def _decide_fault(self, endpoint: str) -> str | None:
        f = self.faults
        with self._lock:
            self._fault_seq += 1
            if not f.applies_to(endpoint):
                return None
            if f.error_every > 0 and self._fault_seq % f.error_every == 0:
                return "error_every"
            r = self._fault_rng.random()
        acc = 0.0
        for kind, rate in (
            ("error", f.error_rate),
            ("slow", f.slow_rate),
            ("truncate", f.truncate_rate),
            ("html", f.html_rate),
            ("non_json", f.non_json_rate),
            ("drop", f.drop_rate),
            ("rate_limited", f.rate_limited_rate),
        ):
            acc += rate
            if r < acc:
                return kind
        return None

    def _fault_reply(self, fault: str, tok: TokenState) -> Reply:
        self.counters.fault(fault)
        if fault == "error":
            with self._lock:
                status = self._fault_rng.choice((500, 502, 503))
            return _error(status, "internal_error", "Injected server error.")
        if fault == "error_every":
            return _error(503, "internal_error", "Injected server error (error_every).")
        if fault == "html":
            return Reply(502, _HTML_502, content_type="text/html")
        if fault == "non_json":
            return Reply(200, _NON_JSON_BODY)
        if fault == "drop":
            return Reply(DROPPED_STATUS, b"", drop=True)
        # rate_limited: a spurious 429 with Retry-After: 1
        with self._lock:
            tok.blocked_until = time.monotonic() + 1
        reply = _error(429, "rate_limited", "Rate limit exceeded (injected).")
        reply.headers.append(("Retry-After", "1"))
        return reply

    def _dispatch(
        self, endpoint: str, conv_id: str | None, query_string: str, tok: TokenState, body: bytes
    ) -> Reply:
        scope = ENDPOINT_SCOPE[endpoint]
        if scope is not None and scope not in tok.scopes:
            return _error(
                403,
                "insufficient_scope",
                f"This token lacks the scope '{scope}'.",
                required_scope=scope,
            )
        if endpoint in _STATIC_ENDPOINTS:
            return Reply(200, self._with_meta(self._static[endpoint], tok))
        query = parse_qs(query_string, keep_blank_values=True) if query_string else {}
        if conv_id is not None:
            return self._conversation_endpoint(endpoint, conv_id, query, tok)
        if endpoint == "/conversations":
            return self._list(query, tok)
        if endpoint == "/webhooks/deliveries":
            return self._deliveries_endpoint(query, tok)
        return self._notetaker_endpoint(body, tok)

    def _list(self, query: dict[str, list[str]], tok: TokenState) -> Reply:
        try:
            filters, limit = _parse_list_query(query)
        except _BadParameterError as exc:
            return _error(400, "invalid_parameter", str(exc))
        selected = self._select(filters, self.now())
        page = selected[:limit]
        # next_cursor is the date of the page's last item and the next page holds
        # only strictly older dates: conversations sharing that date but not on this
        # page are skipped. That is the contract (x-assumed), not a sandbox bug.
        has_more = len(selected) > len(page)
        items = []
        for c in page:
            if c.list_json is None:
                c.list_json = _dumps(c.list_item())
            items.append(c.list_json)
        pagination = {
            "has_more": has_more,
            "next_cursor": iso(page[-1].date) if has_more else None,
            "limit": limit,
        }
        prefix = b'{"conversations":[' + b",".join(items) + b'],"pagination":' + _dumps(pagination)
        return Reply(200, self._with_meta(prefix, tok))

    def _charge(self, tok: TokenState, conv_id: str) -> Reply | None:
        """Charge the daily quota for a conversation id (once per id per day)."""
        with self._lock:
            day = self._day_key()
            if tok.quota_day != day:
                tok.quota_day, tok.quota_ids = day, set()
            if conv_id in tok.quota_ids:
                return None
            quota = tok.daily_quota if tok.daily_quota is not None else self._daily_quota
            if len(tok.quota_ids) >= quota:
                reply = _error(
                    429,
                    "quota_exceeded",
                    f"Daily quota of {quota} unique conversations reached; resets at 00:00 UTC.",
                )
                midnight_in = _seconds_to_utc_midnight(self.now())
                reply.headers.append(("Retry-After", str(midnight_in)))
                return reply
            tok.quota_ids.add(conv_id)
            return None

    def _conversation_endpoint(
        self, endpoint: str, conv_id: str, query: dict[str, list[str]], tok: TokenState
    ) -> Reply:
        if endpoint.endswith("/recording") and not tok.include_recordings:
            return _error(
                403,
                "recordings_disabled",
                "Recordings are disabled for this token (include_recordings=false).",
            )
        with self._lock:
            failing = self._take(self._failing, (conv_id, endpoint))
        if failing is not None:
            return self._healing_reply(failing, conv_id, tok)
        with self._lock:
            conv = self._convs.get(conv_id)
            if conv is None or conv.removed:
                return _error(404, "not_found", f"Conversation {conv_id} not found.")
            over = self._charge(tok, conv_id)
            if over is not None:
                return over
            sub = endpoint.rsplit("/", 1)[-1]
            obj = self._conversation_body(conv, sub, query, tok)
        if obj is None:
            return _error(404, "not_found", f"No {sub} for conversation {conv_id} (yet).")
        return self._ok(obj, tok)

    def _conversation_body(
        self, conv: Conversation, sub: str, query: dict[str, list[str]], tok: TokenState
    ) -> dict[str, Any] | None:
        """Body of a conversation endpoint (``sub``: the id or a sub-resource); lock held."""
        if sub == "{id}":
            want_t = (_first(query, "include_transcript") or "").lower() == "true"
            want_i = (_first(query, "include_insights") or "").lower() == "true"
            other = self._take(self._answering_as, conv.id)
            if other is not None:
                self.counters.fault("answer_as")
                conv = self._convs[other.other_id]
            return conv.detail(
                include_transcript=want_t and "transcripts" in tok.scopes,
                include_insights=want_i and "insights" in tok.scopes,
            )
        if sub == "transcript":
            transcript = conv.transcript()
            if transcript is None:
                return None
            return {"conversation_id": conv.id, "transcript": transcript}
        if sub == "insights":
            return {"conversation_id": conv.id, "insights": conv.insights()}
        if sub == "summary":
            return conv.summary()
        return conv.recording()

    def _deliveries_endpoint(self, query: dict[str, list[str]], tok: TokenState) -> Reply:
        try:
            token_id = _parse_uuid_param(query, "token_id")
        except _BadParameterError as exc:
            return _error(400, "invalid_parameter", str(exc))
        return self._ok({"deliveries": self.webhook_deliveries(token_id)}, tok)

    def _notetaker_endpoint(  # noqa: PLR0911 - one return per validation error
        self, body: bytes, tok: TokenState
    ) -> Reply:
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _error(400, "invalid_parameter", "Request body must be a JSON object.")
        if not isinstance(payload, dict):
            return _error(400, "invalid_parameter", "Request body must be a JSON object.")
        url = payload.get("meeting_url")
        platform = _notetaker_platform(url) if isinstance(url, str) else None
        if platform is None:
            return _error(
                400,
                "invalid_parameter",
                "Invalid 'meeting_url': expected a Zoom, Microsoft Teams or Google Meet URL.",
            )
        hint = payload.get("meeting_platform")
        if hint is not None and hint not in _NOTETAKER_PLATFORMS:
            msg = f"Invalid 'meeting_platform': expected one of {', '.join(_NOTETAKER_PLATFORMS)}."
            return _error(400, "invalid_parameter", msg)
        times: dict[str, str | None] = {}
        for name in ("meeting_start_time", "meeting_end_time"):
            value = payload.get(name)
            try:
                times[name] = iso(parse_iso(value)) if value is not None else None
            except (TypeError, ValueError, AttributeError):
                msg = f"Invalid '{name}': expected an ISO-8601 timestamp."
                return _error(400, "invalid_parameter", msg)
        title = payload.get("meeting_title")
        if title is not None and not isinstance(title, str):
            return _error(400, "invalid_parameter", "Invalid 'meeting_title': expected a string.")
        with self._lock:
            request = {
                "id": self._new_uuid(),
                "provider_bot_id": f"bot_{self._rng.getrandbits(32):08x}",
                "meeting_platform": hint or platform,
                "meeting_title": title,
                "meeting_start_time": times["meeting_start_time"],
                "status": "scheduled" if times["meeting_start_time"] else "joining",
                "status_message": None,
                "conversation_id": None,
                "created_at": iso(self._now_ms()),
            }
            self._notetaker.append(request)
        return self._ok(dict(request), tok, status=201)


def _notetaker_platform(url: str) -> str | None:
    split = urlsplit(url)
    if split.scheme not in ("http", "https") or not split.hostname:
        return None
    host = split.hostname.lower()
    for domain, platform in _NOTETAKER_HOSTS.items():
        if host == domain or host.endswith("." + domain):
            return platform
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), which can stall on DNS.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connection-level errors (resets, broken pipes) are not news: stay silent."""

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._conns_lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "SandboxAPI/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: _Server

    _date_cache: tuple[int, str] = (0, "")

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        """Log nothing per request."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        sandbox = self.server.sandbox
        sandbox.counters.enter()
        try:
            body = self._read_body()
            if body is None:
                return
            reply = sandbox.handle_request(
                method, self.path, self.headers.get("Authorization"), body
            )
            if reply.delay > 0:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            self._write(reply)
        except OSError:
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a handler bug must never kill the server
            sandbox.server_errors.append(traceback.format_exc())
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._write(_error(500, "internal_error", "Sandbox handler error."))
        finally:
            sandbox.counters.leave()

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._write(_error(411, "invalid_parameter", "Send a Content-Length body."))
            return None
        length_header = self.headers.get("Content-Length")
        if not length_header:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._write(_error(400, "invalid_parameter", "Bad Content-Length."))
            return None
        return self.rfile.read(length)

    def _date(self) -> str:
        now = int(time.time())
        cached = _Handler._date_cache
        if cached[0] != now:
            cached = (now, formatdate(now, usegmt=True))
            _Handler._date_cache = cached
        return cached[1]

    def _write(self, reply: Reply) -> None:
        body = reply.body
        lines = [
            f"HTTP/1.1 {reply.status} {_PHRASES.get(reply.status, 'Unknown')}",
            f"Content-Type: {reply.content_type}",
            f"Content-Length: {len(body)}",
            f"Date: {self._date()}",
        ]
        lines.extend(f"{k}: {v}" for k, v in reply.headers)
        if reply.truncate:
            body = body[: len(body) // 2]
            self.close_connection = True
        elif self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)

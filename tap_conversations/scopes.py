"""What the token may read: learnt cheaply, reported once per missing scope.

Tokens carry scopes (conversations, transcripts, insights, recordings, users, teams,
departments), and recordings also need the token setting include_recordings=true.
Nothing lists a token's scopes, so the tap learns them from answers it needs anyway,
and only where an answer is ambiguous (the detail endpoint silently omits a
transcript it may not show) from one probe request. A missing scope ends in ONE
warning that names the scope, the streams skipped and where to grant it; it never
costs a 403 per conversation, and never looks like "no data yet".
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from tap_conversations.errors import (
    GRANT_HINT,
    AuthenticationError,
    MissingScopeError,
    NotFoundError,
    RecordingsDisabledError,
    TapConversationsError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tap_conversations.client import ApiClient

LOGGER = logging.getLogger("tap_conversations")

#: Probe endpoints, relative to one conversation, for the scopes the detail cannot prove.
PER_CONVERSATION_PROBES = {
    "transcripts": "/transcript",
    "insights": "/insights",
    "recordings": "/recording",
}
#: Probe endpoints for the scopes whose streams have a list endpoint of their own.
LIST_PROBES = {
    "users": "/users",
    "teams": "/teams",
    "departments": "/departments",
    "conversations": "/conversations",
}


class ScopeTracker:
    """Per run: which scopes are known granted or missing, and the one warning each.

    Args:
        streams_by_scope: The selected stream names that need each scope.
    """

    def __init__(self, streams_by_scope: Mapping[str, list[str]]) -> None:
        self._streams_by_scope = streams_by_scope
        self._granted: set[str] = set()
        self._missing: dict[str, MissingScopeError] = {}
        self._lock = threading.Lock()

    def is_missing(self, scope: str | None) -> bool:
        """Whether the scope is known to be missing."""
        return scope is not None and scope in self._missing

    def is_known(self, scope: str) -> bool:
        """Whether the scope is known either way."""
        return scope in self._granted or scope in self._missing

    def granted(self, scope: str) -> None:
        """Record that an answer proved the scope."""
        with self._lock:
            self._granted.add(scope)

    def missing(self, scope: str, error: MissingScopeError) -> None:
        """Record a missing scope; the first time, warn once with what to do."""
        with self._lock:
            if scope in self._missing:
                return
            self._missing[scope] = error
        streams = ", ".join(self._streams_by_scope.get(scope, [])) or "none selected"
        LOGGER.warning("%s Skipping streams: %s.", error, streams)


def probe_scopes(api: ApiClient) -> dict[str, MissingScopeError | None]:
    """Ask the API which scopes the token has; for discovery and `--test`.

    Costs one request per list endpoint (the conversation list with `limit=1`) and,
    when a conversation exists, one per per-conversation endpoint for that one
    conversation (one unit of the daily quota). Each scope maps to None when granted,
    or to the error that says it is missing (for recordings, possibly that the token's
    include_recordings setting is off); a scope left out is unknown.

    Raises:
        AuthenticationError: The token is rejected.
    """
    result: dict[str, MissingScopeError | None] = {}
    first_conversation: str | None = None
    for scope, path in LIST_PROBES.items():
        params = {"limit": "1"} if scope == "conversations" else None
        known, missing, payload = _probe(api, path, params)
        if known:
            result[scope] = missing
        items = (payload or {}).get("conversations") or [{}]
        first_conversation = first_conversation or items[0].get("id")
    if first_conversation is not None:
        for scope, suffix in PER_CONVERSATION_PROBES.items():
            known, missing, _ = _probe(api, f"/conversations/{first_conversation}{suffix}")
            if known:
                result[scope] = missing
    return result


def _probe(
    api: ApiClient, path: str, params: Mapping[str, str] | None = None
) -> tuple[bool, MissingScopeError | None, dict | None]:
    """(known, the missing-scope error or None, payload) for one probe request."""
    try:
        payload = api.get(path, params)
    except MissingScopeError as error:  # RecordingsDisabledError included
        return True, error, None
    except NotFoundError:
        return True, None, None  # allowed, just nothing there
    except AuthenticationError:
        raise
    except TapConversationsError:
        return False, None, None
    return True, None, payload


def describe_missing(scope: str, error: MissingScopeError | None = None) -> str:
    """The advice for one scope the token cannot use, after "Token " (`--test`, discovery)."""
    if isinstance(error, RecordingsDisabledError):
        return (
            f"has the '{scope}' scope, but its include_recordings setting is off: "
            f"{RecordingsDisabledError.FIX}."
        )
    extra = " and turn on include_recordings" if scope == "recordings" else ""
    return f"missing scope '{scope}': {GRANT_HINT}{extra}."


def probe_missing(api: ApiClient, scopes: set[str]) -> dict[str, MissingScopeError]:
    """Probe scopes a previous run found missing; those still missing, with their error.

    Costs one list request (`limit=1`) for a conversation id and one request per
    per-conversation scope (one unit of the daily quota); list scopes cost one each.
    A scope the probe cannot decide counts as granted: the run then finds out itself.
    """
    still_missing: dict[str, MissingScopeError] = {}
    conversation_id: str | None = None
    for scope in sorted(scopes):
        if scope in LIST_PROBES:
            path: str | None = LIST_PROBES[scope]
            params = {"limit": "1"} if scope == "conversations" else None
        else:
            if conversation_id is None:
                listing = _answer(api, "/conversations", {"limit": "1"})
                items = listing.get("conversations") if isinstance(listing, dict) else None
                first = items[0] if isinstance(items, list) and items else {}
                conversation_id = first.get("id") if isinstance(first, dict) else None
            suffix = PER_CONVERSATION_PROBES.get(scope)
            path = (
                None
                if conversation_id is None or suffix is None
                else (f"/conversations/{conversation_id}{suffix}")
            )
            params = None
        if path is None:
            continue
        answer = _answer(api, path, params)
        if isinstance(answer, MissingScopeError):
            still_missing[scope] = answer
    return still_missing


def _answer(
    api: ApiClient, path: str, params: Mapping[str, str] | None
) -> dict | MissingScopeError | None:
    """The answer to one probe: the payload, the missing-scope error, or None (unknown)."""
    try:
        return api.get(path, params)
    except MissingScopeError as error:
        return error
    except AuthenticationError:
        raise
    except TapConversationsError:
        return None

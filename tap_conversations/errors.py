"""Errors the tap raises, each with a one-line message that says what to do.

`TapConversationsError` and its subclasses end a run with that line and no traceback
(see `TapConversations.invoke`). The retriable ones never reach the user unless the
retries run out.
"""

from __future__ import annotations

GRANT_HINT = "Grant it to the token in the app under Settings → REST API"


class TapConversationsError(Exception):
    """A failure the user can act on; `str()` is the whole message."""

    exit_code = 1


class ConfigError(TapConversationsError):
    """The tap's configuration is unusable; nothing was requested."""

    exit_code = 2


class StateError(TapConversationsError):
    """The state given to the tap cannot be used; no record was written."""

    exit_code = 2
    #: What to do about an unusable state, appended to every such message.
    FIX = (
        "Pass the state this tap wrote for this account, or remove it to start again from "
        "start_date (with Meltano: meltano state clear <state id>)."
    )


class AuthenticationError(TapConversationsError):
    """HTTP 401: the token is missing, wrong or revoked. Never retried."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(
            f"The API rejected the token (HTTP 401 on GET {endpoint}): it is wrong, expired or "
            "revoked. Create or copy a token in the app under Settings → REST API and set "
            "api_token (TAP_CONVERSATIONS_API_TOKEN)."
        )


class MissingScopeError(TapConversationsError):
    """HTTP 403: the token may not read this endpoint."""

    def __init__(self, endpoint: str, scope: str | None) -> None:
        self.endpoint = endpoint
        self.scope = scope
        what = f"the '{scope}' scope" if scope else "a scope this endpoint needs"
        also = " (recordings also need the token setting include_recordings=true)"
        super().__init__(
            f"The token lacks {what} (HTTP 403 on GET {endpoint}). {GRANT_HINT}"
            f"{also if scope == 'recordings' else ''}."
        )


class RecordingsDisabledError(MissingScopeError):
    """HTTP 403 recordings_disabled: the scope is granted, the token setting is off."""

    #: What to do, as `--test`, discovery and a sync say it.
    FIX = (
        "turn on include_recordings for the token in the app under Settings → REST API "
        "(the recordings stream needs the scope and that setting)"
    )

    def __init__(self, endpoint: str) -> None:
        TapConversationsError.__init__(
            self,
            "The token has the 'recordings' scope, but its include_recordings setting is off "
            f"(HTTP 403 recordings_disabled on GET {endpoint}): {self.FIX}.",
        )
        self.endpoint = endpoint
        self.scope = "recordings"


class NotFoundError(TapConversationsError):
    """HTTP 404: no such resource, or not available yet."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(f"GET {endpoint} answered 404 (not found or not available yet).")


class QuotaExceededError(TapConversationsError):
    """HTTP 429 quota_exceeded: the token's daily conversation budget is spent."""

    def __init__(self, retry_after: float | None) -> None:
        self.retry_after = retry_after
        hours = f" (resets in {retry_after / 3600:.1f} h)" if retry_after else ""
        super().__init__(f"The token's daily conversation quota is used up{hours}.")


class ApiResponseError(TapConversationsError):
    """An answer the tap cannot use, after any retries: status, endpoint and body quoted."""


class ConnectionFailedError(ApiResponseError):
    """No answer at all: the host, the cause (refused, not resolved, TLS, timed out), the fix."""


class RecordShapeError(TapConversationsError):
    """A field arrived with a type the stream's schema does not allow."""


class RetriableError(Exception):
    """Base of the errors that are retried; not shown to users unless retries run out."""


class TransientApiError(RetriableError):
    """5xx, timeout, reset connection, truncated or non-JSON body.

    `advice` ends the line when the retries run out: "try again later", unless the
    cause calls for another fix.
    """

    def __init__(self, message: str, advice: str = "try again later") -> None:
        super().__init__(message)
        self.advice = advice


class RateLimitedError(RetriableError):
    """HTTP 429 rate_limited; wait `retry_after` seconds, then retry."""

    def __init__(self, endpoint: str, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"GET {endpoint} was rate limited; retry after {retry_after:g} s")

"""The API client: one HTTP economy (pacing, retries, Retry-After, quota) for all streams.

Why not the SDK's `RESTStream` request loop: its request decorator lives per stream,
ignores `Retry-After`, gives up after five tries, and cannot share one pacer and one
quota gate with the threads that fetch conversation details in parallel. This client
keeps the SDK's retry library (`backoff`) and does exactly one thing: turn a GET into
parsed JSON or a precise error.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import re
import socket
import ssl
import threading
import time
import weakref
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import backoff
import msgspec
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from tap_conversations import redaction
from tap_conversations.errors import (
    ApiResponseError,
    AuthenticationError,
    ConnectionFailedError,
    MissingScopeError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    RecordingsDisabledError,
    TransientApiError,
)
from tap_conversations.pooled_get import Answered, PooledGet

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from backoff.types import Details

    from tap_conversations.rate_limit import RequestPacer

LOGGER = logging.getLogger("tap_conversations")

#: Transient failures: tries in all, first wait and cap (seconds). 0.5, 1, 2, 4, 8 with
#: full jitter keeps a blip to seconds, never minutes.
TRANSIENT_MAX_TRIES = 6
TRANSIENT_BASE_SECONDS = 0.5
TRANSIENT_MAX_WAIT_SECONDS = 8.0
#: 429 rate_limited answers are retried after the server's Retry-After, this many times.
RATE_LIMITED_MAX_TRIES = 10
#: Used when a 429 carries no usable Retry-After.
DEFAULT_RETRY_AFTER_SECONDS = 5.0
#: A longer Retry-After is not believed: a day's quota reset is reported, not slept.
MAX_RETRY_AFTER_SECONDS = 24 * 3600.0
#: The longest a rate-limited request waits before its retry.
MAX_RATE_LIMIT_WAIT_SECONDS = 120.0
#: Scopes an error body may name; anything else is not quoted.
KNOWN_SCOPES = frozenset(
    {"conversations", "transcripts", "insights", "recordings", "users", "teams", "departments"}
)
CONNECT_TIMEOUT_SECONDS = 10.0
#: Body bytes read at a time; the request's deadline is checked between reads.
READ_CHUNK_BYTES = 64 * 1024
#: The most bytes one answer may hold once decoded (gzip inflated). The largest answer is
#: a conversation detail with its transcript: an hour of speech is some 100-300 KiB of
#: segment JSON, so even a day-long recording stays far below 64 MiB, while a gzip bomb
#: (1 MiB inflating to 1 GiB) is cut before it takes the machine's memory. Counted as
#: the decoded body streams in, never after.
MAX_BODY_BYTES = 64 * 1024 * 1024

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_JSON_DECODER = msgspec.json.Decoder()


def endpoint_of(path: str) -> str:
    """The path's template, e.g. `/conversations/{id}/transcript`, for logs and counters.

    Masked: a listed id that is not a UUID is server content, and stays in the path.
    """
    return redaction.mask(_UUID.sub("{id}", path))


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB"


def _release(session: requests.Session, token: str) -> None:
    """Close the connection pool and stop masking the token (a client's finalizer)."""
    session.close()
    redaction.unregister(token)


def _conversation_of(path: str) -> str | None:
    """The conversation id of a per-conversation path (the quota's unit), else None."""
    if not path.startswith("/conversations/"):
        return None
    match = _UUID.search(path)
    return match.group(0) if match else path.split("/")[2]


#: OpenSSL's reasons when the port does not speak TLS (plain http answers the handshake).
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"}
)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps (causes, contexts, reasons, args)."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = (current.__cause__, current.__context__, getattr(current, "reason", None))
        stack.extend(c for c in (*wrapped, *current.args) if isinstance(c, BaseException))


def _cause_of(exc: requests.exceptions.RequestException) -> tuple[str, BaseException | None]:
    """Why a request got no answer: (refused, unresolved, dns_temporary, tls, ..., detail).

    Anything not named here (a reset, a body cut short) is its exception's class name.
    """
    causes = list(_causes(exc))
    tls = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
    dns = next((c for c in causes if isinstance(c, socket.gaierror)), None)
    unreachable = next(
        (
            c
            for c in causes
            if isinstance(c, OSError) and c.errno in {errno.ENETUNREACH, errno.EHOSTUNREACH}
        ),
        None,
    )
    found: list[tuple[bool, str, BaseException | None]] = [
        (isinstance(exc, requests.exceptions.SSLError) or tls is not None, "tls", tls),
        (isinstance(exc, requests.exceptions.ConnectTimeout), "connect_timeout", None),
        (isinstance(exc, requests.exceptions.ReadTimeout), "read_timeout", None),
        (any(isinstance(c, ConnectionRefusedError) for c in causes), "refused", None),
        (dns is not None and dns.errno == socket.EAI_AGAIN, "dns_temporary", dns),
        (
            dns is not None
            or any(isinstance(c, urllib3.exceptions.NameResolutionError) for c in causes),
            "unresolved",
            dns,
        ),
        (unreachable is not None, "unreachable", unreachable),
    ]
    return next(((kind, detail) for hit, kind, detail in found if hit), (type(exc).__name__, None))


def _tls_line(error: ssl.SSLError | None, where: str, endpoint: str, url: str) -> str:
    """The line for a failed TLS handshake, by what OpenSSL said."""
    head = f"TLS handshake with {where} failed (GET {endpoint})"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"{head}: the server's certificate is not trusted ({error.verify_message}). Check "
            f"that api_url ({url}) names the API's own host; behind a proxy that inspects TLS, "
            "set REQUESTS_CA_BUNDLE to its CA certificate file. Not retried."
        )
    if error is not None and error.reason in _NOT_TLS_REASONS:
        return (
            f"{head}: the server on that port does not speak TLS (plain http?). api_url "
            f"({url}) says https://: check its port, or use the API's https address. "
            "Not retried."
        )
    reason = (error.reason if error is not None else None) or "no reason given"
    return (
        f"{head}: {str(reason).lower().replace('_', ' ')}. Check api_url ({url}) and any "
        "proxy in between (HTTPS_PROXY). Not retried."
    )


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped.

    None when absent or unusable, so that a broken header falls back to a default
    instead of a crash or an endless wait.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000" means UTC without a stated zone
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - datetime.now(timezone.utc)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


def rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """`X-RateLimit-Remaining` as a count; None when absent or not a count."""
    value = headers.get("X-RateLimit-Remaining")
    if value is None:
        return None
    try:
        remaining = int(value)
    except ValueError:
        return None
    return remaining if remaining >= 0 else None


class Answer(Protocol):
    """What the error lines read of an answer (`Answered`, or a `requests.Response`)."""

    @property
    def status_code(self) -> int:
        """The HTTP status."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """The headers, by case-insensitive name."""
        ...


@dataclass
class ClientStats:
    """Counts kept by the client (thread-safe through its lock), for progress and tests."""

    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    transient_failures: int = 0
    #: Seconds the last answer took (the server's and the network's share, no pacing).
    last_latency: float = 0.0
    #: Distinct conversations answered: the daily quota this run used.
    conversations_touched: int = 0
    #: Requests sent, by endpoint template (`/conversations/{id}/summary`); read it
    #: through `ApiClient.requests_by_endpoint`, which copies it under the lock.
    by_endpoint: Counter[str] = field(default_factory=Counter)


class ApiClient:
    """GETs against the API base URL, paced, retried, decoded.

    Args:
        base_url: The API base URL including the version path.
        token: The API token (sent only in the Authorization header).
        pacer: The shared request pacer.
        timeout_seconds: Read timeout per request.
        max_connections: Size of the keep-alive pool (one per parallel request).
        user_agent: The User-Agent header.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        base_url: str,
        token: str,
        pacer: RequestPacer,
        timeout_seconds: float,
        max_connections: int,
        user_agent: str,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        default_port = 443 if parts.scheme == "https" else 80
        #: host:port as a connection failure names it.
        self._where = f"{parts.hostname}:{parts.port or default_port}"
        #: Whether the API answered anything yet in this run (see _connection_failure).
        self._answered = False
        self.pacer = pacer
        self.stats = ClientStats()
        self._deadline_seconds = timeout_seconds
        self._timeout = (min(CONNECT_TIMEOUT_SECONDS, timeout_seconds), timeout_seconds)
        self._lock = threading.Lock()
        self._quota_error: QuotaExceededError | None = None
        self._auth_error: AuthenticationError | None = None
        #: Set when a request used up its retries: the API is down, stop spending.
        self._gave_up: ApiResponseError | None = None
        #: Conversations answered this run: touching them again the same day is free.
        self._touched: set[str] = set()
        #: Requests waiting for their slot, by endpoint template (for the progress ETA).
        self._waiting: Counter[str] = Counter()
        session = requests.Session()
        # The token goes in the Authorization header and nowhere else: no ~/.netrc (it
        # would replace the header), no proxy for a plain-http loopback API (it would
        # see the token in clear text). A proxy from the environment is kept for https,
        # where corporate networks need it and it sees only the encrypted stream.
        session.trust_env = False
        if urlsplit(self.base_url).scheme == "https":
            session.proxies.update(get_environ_proxies(self.base_url))
            session.verify = (
                os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            )
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max_connections, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": user_agent,
            }
        )
        self._session = session
        # Every GET goes through the session's pool without requests' per-request work
        # (57 % of the tap's instructions; see pooled_get.py): same headers, proxy, TLS.
        self._pooled = PooledGet(session, self.base_url, self._timeout)
        # Quoted server content is masked for this token while the client lives.
        redaction.register(token)
        # Closed with the client, or at exit: no call site has to remember it.
        self._closer = weakref.finalize(self, _release, session, token)
        self._get_with_retries = backoff.on_exception(
            backoff.expo,
            TransientApiError,
            max_tries=TRANSIENT_MAX_TRIES,
            factor=TRANSIENT_BASE_SECONDS,
            max_value=TRANSIENT_MAX_WAIT_SECONDS,
            jitter=backoff.full_jitter,
            on_backoff=self._on_retry,
            logger=None,
        )(
            backoff.on_exception(
                backoff.runtime,
                RateLimitedError,
                value=self._pause_for_retry_after,
                max_tries=RATE_LIMITED_MAX_TRIES,
                jitter=None,
                on_backoff=self._on_retry,
                logger=None,
            )(self._get_once)
        )

    def close(self) -> None:
        """Release the connection pool now."""
        self._closer()

    def requests_by_endpoint(self) -> tuple[dict[str, int], dict[str, int]]:
        """(sent, waiting for the pacer) by endpoint template; copies, safe from any thread."""
        with self._lock:
            return dict(self.stats.by_endpoint), dict(self._waiting)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET `path` (relative to the base URL) and return the JSON object it answers.

        Raises:
            ApiResponseError: The answer stayed unusable after every retry.
        """
        try:
            result: dict[str, Any] = self._get_with_retries(path, params)
        except TransientApiError as exc:
            msg = f"{exc} — still failing after {TRANSIENT_MAX_TRIES} attempts; {exc.advice}."
            error = ApiResponseError(msg)
            self._give_up(error)
            raise error from None
        except RateLimitedError as exc:
            msg = (
                f"{exc}, {RATE_LIMITED_MAX_TRIES} times in a row; lower "
                "max_requests_per_minute to the token's real limit."
            )
            raise ApiResponseError(msg) from None
        return result

    def _wait_for_the_pace(self, endpoint: str) -> int:
        """Wait for the pacer; count the request as waiting, then as sent; its ticket."""
        with self._lock:
            self._waiting[endpoint] += 1
        try:
            ticket = self.pacer.acquire()
        except BaseException:
            with self._lock:
                self._waiting[endpoint] -= 1
            raise
        with self._lock:
            # In one step: a request between "waiting" and "sent" would count as neither,
            # and a progress line then would count its conversation as not started.
            self._waiting[endpoint] -= 1
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] += 1
        return ticket

    def _get_once(self, path: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        endpoint = endpoint_of(path)
        if self._auth_error is not None:
            raise self._auth_error  # a rejected token stays rejected: send nothing more
        if self._gave_up is not None:
            raise self._gave_up  # other requests in flight need not retry a dead API
        conversation_id = _conversation_of(path)
        if (
            self._quota_error is not None
            and conversation_id is not None
            and conversation_id not in self._touched
        ):
            # A conversation not yet touched today would only be answered 429 too.
            raise self._quota_error
        ticket = self._wait_for_the_pace(endpoint)
        sent = time.monotonic()
        deadline = sent + self._deadline_seconds
        remaining: int | None = None
        try:
            try:
                raw = self._send(path, params)
                remaining = rate_limit_remaining(raw.headers)
            finally:
                self.pacer.answered(ticket, remaining)
            latency = time.monotonic() - sent
            body = self._read_body(raw, deadline, endpoint)
        except requests.exceptions.RequestException as exc:
            # Named by its cause, never quoted: the exception text can hold the URL.
            self._count_transient()
            raise self._connection_failure(exc, endpoint) from None
        except TimeoutError:
            self._count_transient()
            msg = (
                f"GET {endpoint} timed out: no complete answer within {self._deadline_seconds:g} s"
            )
            raise TransientApiError(msg) from None
        self._answered = True
        with self._lock:
            self.stats.last_latency = latency
        response = Answered(raw.status, raw.headers)
        if response.status_code < HTTPStatus.MULTIPLE_CHOICES:
            payload = self._decode(response, body, endpoint)
            if conversation_id is not None:
                with self._lock:
                    self._touched.add(conversation_id)
                    self.stats.conversations_touched = len(self._touched)
            return payload
        raise self._error_for(response, body, endpoint)

    def _send(self, path: str, params: Mapping[str, str] | None) -> urllib3.BaseHTTPResponse:
        """Send the GET; the answer's status and headers, its body still to read."""
        return self._pooled.get(path, params)

    def _connection_failure(
        self, exc: requests.exceptions.RequestException, endpoint: str
    ) -> TransientApiError | ConnectionFailedError:
        """The line for a request that got no answer: the host, the cause, the fix.

        Retry policy by cause. Before the API has answered anything in this run, a
        refused connection, a name that does not resolve or a connect timeout is almost
        always the address in api_url (a typo'd host or port, a local server not
        started): retrying cannot fix it, so the run stops at once with the fix instead
        of some 17 s of retries (a connect timeout already spans TCP's own repeated
        attempts). Once the API has answered, the same causes are a restart, a failover
        or a network blip, and are retried like a 5xx. A failed TLS handshake (a
        certificate not trusted, https:// to a port that speaks plain http) does not heal
        in seconds: never retried. A temporary DNS failure (EAI_AGAIN), an unreachable
        network, a read timeout and a connection cut mid-answer are always retried.
        """
        kind, detail = _cause_of(exc)
        if kind == "tls":
            failure = ConnectionFailedError(
                _tls_line(
                    detail if isinstance(detail, ssl.SSLError) else None,
                    self._where,
                    endpoint,
                    self.base_url,
                )
            )
        else:
            first_contact, short, advice = self._failure_lines(kind, endpoint, detail)
            if first_contact and not self._answered:
                failure = ConnectionFailedError(first_contact)
            else:
                return TransientApiError(short, advice)
        self._give_up(failure)
        return failure

    def _failure_lines(
        self, kind: str, endpoint: str, detail: BaseException | None
    ) -> tuple[str, str, str]:
        """(the line when it ends the run at first contact, or ""; the retry line; advice)."""
        url, where = self.base_url, self._where
        host = where.rsplit(":", 1)[0]
        connect = f"Could not connect to {where} (GET {endpoint})"
        named = f"Could not connect to {host} (GET {endpoint})"
        timeout = self._timeout[0]
        earlier = "the API answered earlier in this run"
        lines = {
            "refused": (
                (
                    f"{connect}: connection refused, nothing listens on that port. Check the host "
                    f"and port in api_url ({url}) (a local test server: is it running?). Not "
                    "retried: a wrong address does not heal."
                ),
                f"{connect}: connection refused",
                f"{earlier} and stopped accepting connections: try again later",
            ),
            "unresolved": (
                (
                    f"{named}: the host name does not resolve (DNS knows no such name). Check the "
                    f"host in api_url ({url}) for a typo. Not retried."
                ),
                f"{named}: the host name did not resolve",
                f"{earlier}: check this machine's DNS, then try again later",
            ),
            "dns_temporary": (
                "",
                f"{named}: its name could not be resolved now (temporary DNS failure)",
                "check this machine's network and DNS server, then try again",
            ),
            "connect_timeout": (
                (
                    f"Could not connect to {where} within {timeout:g} s (GET {endpoint}): "
                    "connection timed out, nothing answered the connection request. A firewall, "
                    f"VPN or missing proxy drops it, or api_url ({url}) names the wrong host: "
                    "check that this machine reaches the host (set HTTPS_PROXY if it needs a "
                    "proxy). Not retried: TCP already repeated the attempt."
                ),
                f"{connect}: connection timed out after {timeout:g} s",
                f"{earlier}: check the network, then try again later",
            ),
            "read_timeout": (
                "",
                (
                    f"GET {endpoint}: {where} accepted the connection but sent no answer within "
                    f"{self._deadline_seconds:g} s"
                ),
                (
                    "the API is slow or a proxy holds the request: raise request_timeout_seconds, "
                    "or try again later"
                ),
            ),
            "unreachable": (
                "",
                f"{connect}: {os.strerror(getattr(detail, 'errno', 0) or 0).lower()}",
                "check this machine's network (VPN, proxy, routes), then try again",
            ),
        }
        return lines.get(
            kind,
            ("", f"GET {endpoint}: the connection to {where} broke ({kind})", "try again later"),
        )

    def _give_up(self, error: ApiResponseError) -> None:
        """Stop every request of this run (the first reason stays)."""
        with self._lock:
            self._gave_up = self._gave_up or error

    @staticmethod
    def _read_body(response: urllib3.BaseHTTPResponse, deadline: float, endpoint: str) -> bytes:
        """The whole decoded body, or TimeoutError once the request's deadline has passed.

        The read timeout bounds each wait for bytes; a server that sends one byte at a
        time would hold a request for ever. Reading what has arrived, chunk by chunk,
        lets the deadline cut it at most one read timeout late. The decoded bytes are
        counted as they come: past MAX_BODY_BYTES the answer is refused, so a gzip bomb
        costs at most the cap and one chunk of memory.

        Raises:
            ApiResponseError: The decoded body is larger than MAX_BODY_BYTES.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError
                chunk = response.read1(READ_CHUNK_BYTES, decode_content=True)
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    chunks.clear()
                    msg = (
                        f"GET {endpoint} answered a body larger than {_mib(MAX_BODY_BYTES)} "
                        "once decoded, the most one answer may hold; not read further. "
                        "Report it with this line."
                    )
                    raise ApiResponseError(msg)
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise TimeoutError from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if isinstance(error, TimeoutError):
                raise
            # A cut or broken body, as requests itself would report it.
            raise requests.exceptions.ConnectionError(type(error).__name__) from None
        finally:
            # As requests' Response.close: a connection whose answer was not read to
            # its end is closed; a whole answer's connection goes back to the pool.
            response.close()
            response.release_conn()

    def _decode(self, response: Answer, body: bytes, endpoint: str) -> dict[str, Any]:
        try:
            payload = _JSON_DECODER.decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
            self._count_transient()
            kind = response.headers.get("Content-Type", "unknown content type")
            text = "not UTF-8 text; " if isinstance(error, UnicodeDecodeError) else ""
            msg = (
                f"GET {endpoint} answered HTTP {response.status_code} with a body that is not "
                f"valid JSON ({text}{redaction.excerpt(kind, 80)}, {len(body)} bytes)"
            )
            raise TransientApiError(msg) from None
        if not isinstance(payload, dict):
            self._count_transient()
            msg = f"GET {endpoint} answered a JSON {type(payload).__name__}, not an object"
            raise TransientApiError(msg)
        return payload

    def _error_for(  # noqa: PLR0911  # one return per kind of answer reads best
        self, response: Answer, raw_body: bytes, endpoint: str
    ) -> Exception:
        status = response.status_code
        try:
            body = _JSON_DECODER.decode(raw_body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            body = None  # an HTML page, a Latin-1 message: quoted below, or just the status
        if not isinstance(body, dict):
            body = {}
        code = body.get("error")
        if status in {HTTPStatus.UNAUTHORIZED, HTTPStatus.FORBIDDEN}:
            return self._access_error(status, body, endpoint)
        if status == HTTPStatus.NOT_FOUND and "{id}" not in endpoint:
            return ApiResponseError(
                f"GET {endpoint} answered 404: api_url ({self.base_url}) does not point at the "
                "API. Set it to the base URL shown under Settings → REST API, ending in /api/v1."
            )
        if status == HTTPStatus.NOT_FOUND:
            return NotFoundError(endpoint)
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return self._too_many_requests(response, code, endpoint)
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR or status == HTTPStatus.REQUEST_TIMEOUT:
            self._count_transient()
            return TransientApiError(f"GET {endpoint} answered HTTP {status}")
        if HTTPStatus.MULTIPLE_CHOICES <= status < HTTPStatus.BAD_REQUEST:
            return ApiResponseError(self._redirect_message(response, endpoint))
        message = body.get("message")
        quoted = message if isinstance(message, str) else raw_body.decode("utf-8", "replace")
        return ApiResponseError(f"GET {endpoint} answered HTTP {status}: {redaction.quote(quoted)}")

    def _access_error(self, status: int, body: dict[str, Any], endpoint: str) -> Exception:
        """401: the token is rejected, for every request from now on; 403: a scope."""
        if status == HTTPStatus.UNAUTHORIZED:
            rejected = AuthenticationError(endpoint)
            with self._lock:
                self._auth_error = self._auth_error or rejected
            return rejected
        if body.get("error") == "recordings_disabled":
            return RecordingsDisabledError(endpoint)
        scope = body.get("required_scope")
        known = isinstance(scope, str) and scope in KNOWN_SCOPES
        return MissingScopeError(endpoint, scope if known else None)

    def _redirect_message(self, response: Answer, endpoint: str) -> str:
        """Where a redirect pointed (scheme and host only), and what to do about it."""
        location = urlsplit(response.headers.get("Location", ""))
        target = (
            f"{location.scheme}://{location.hostname}"
            if location.scheme and location.hostname
            else "another path on the same host"
        )
        return (
            f"GET {endpoint} answered HTTP {response.status_code}, a redirect to {target}; "
            "the token is not sent on. Set api_url to the final base URL (ending in /api/v1)."
        )

    def _too_many_requests(self, response: Answer, code: object, endpoint: str) -> Exception:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if code == "quota_exceeded":
            error = QuotaExceededError(retry_after)
            with self._lock:
                self._quota_error = self._quota_error or error
            return error
        with self._lock:
            self.stats.rate_limited += 1
        wait = min(retry_after or DEFAULT_RETRY_AFTER_SECONDS, MAX_RATE_LIMIT_WAIT_SECONDS)
        return RateLimitedError(endpoint, wait)

    def _count_transient(self) -> None:
        with self._lock:
            self.stats.transient_failures += 1

    def _pause_for_retry_after(self, error: RateLimitedError) -> float:
        # The pause is shared: every thread holds off, not just the one that was told.
        self.pacer.pause(error.retry_after)
        return 0.0

    def _on_retry(self, details: Details) -> None:
        with self._lock:
            self.stats.retries += 1
        LOGGER.info(
            "Retrying (attempt %d) in %.1f s: %s",
            details["tries"] + 1,
            details.get("wait", 0.0),
            details.get("exception"),
        )

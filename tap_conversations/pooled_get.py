"""One GET through the connection pool requests set up, without requests' per-request work.

Why: counted with valgrind (cachegrind) on a sync of every stream but
`transcript_segments`, requests' per-request work (preparing the request, merging the
session's settings, the adapter's pool lookup, building a `Response`, cookies, hooks)
was 57 % of the tap's instructions, for a GET whose URL, headers and connection are the
same every time but for the path. `scripts/benchmark.py` prints the count.

What stays requests': the `Session` decides everything once, exactly as for
`Session.get`: the headers (`Session.prepare_request`), the proxy (https only, from the
environment; the client sets it), the CA bundle and TLS settings
(`Session.merge_environment_settings`), the connection pool
(`HTTPAdapter.get_connection_with_tls_context` and `HTTPAdapter.cert_verify`, what
`HTTPAdapter.send` calls) and the request target (`HTTPAdapter.request_url`). Each GET
then calls the pool's `urlopen` with the arguments `HTTPAdapter.send` passes, and a
failure is raised as the `requests` exception `HTTPAdapter.send` would raise, so the
client's messages by cause stay what they were. A path that requests would re-quote
(anything but plain URL characters) is prepared by requests itself.

Not kept: cookies. The API authenticates by the token alone; a cookie a server sets is
not sent back.

These `HTTPAdapter` members are public but documented as "for subclassing";
`tests/test_sdk_internals.py` checks their signatures and that a GET sent here has the
target and headers `Session.get` would send, so an upgrade that changes them fails there.
"""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import urlencode

import requests
import urllib3
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)

if TYPE_CHECKING:
    from collections.abc import Mapping, MutableMapping

    from requests.adapters import HTTPAdapter

#: The `requests`/`urllib3` members this module relies on beyond `Session.get`, checked by
#: the tests: (owner, member, its parameters).
FENCED_MEMBERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("requests.adapters.HTTPAdapter", "get_connection_with_tls_context",
     ("self", "request", "verify", "proxies", "cert")),
    ("requests.adapters.HTTPAdapter", "cert_verify", ("self", "conn", "url", "verify", "cert")),
    ("requests.adapters.HTTPAdapter", "request_url", ("self", "request", "proxies")),
    ("requests.sessions.Session", "merge_environment_settings",
     ("self", "url", "proxies", "stream", "verify", "cert")),
)  # fmt: skip

#: A path requests sends as it is: `requote_uri` leaves these characters alone, and no
#: `%` (which it might unquote) or `?` (a query of its own).
_PLAIN_PATH = re.compile(r"[A-Za-z0-9\-._~/:@!$&'()*+,;=]*")


class _Route(NamedTuple):
    """What `Session.get` decides for the base URL, the same for every GET."""

    pool: HTTPConnectionPool
    #: The base URL's own request target ("/api/v1"); a path is appended to it.
    prefix: str
    headers: dict[str, str]
    proxies: MutableMapping[str, str]


class Answered(NamedTuple):
    """The status and headers of an answer, as the client's error lines read them."""

    status_code: int
    headers: Mapping[str, str]


class PooledGet:
    """GETs under one base URL, through the pool of a configured `requests.Session`.

    Args:
        session: The configured session (headers, proxies, verify); not changed later.
        base_url: The API base URL, without a trailing slash.
        timeout: (connect, read) seconds, as `Session.get` takes them.
    """

    def __init__(
        self, session: requests.Session, base_url: str, timeout: tuple[float, float]
    ) -> None:
        self._session = session
        self._base_url = base_url
        self._adapter: HTTPAdapter = session.get_adapter(base_url)  # type: ignore[assignment]
        self._timeout = urllib3.Timeout(connect=timeout[0], read=timeout[1])
        self._lock = threading.Lock()
        #: (pool, target prefix, headers, proxies), set up at the first GET: a setting
        #: requests refuses (a CA bundle path that does not exist) fails a request, as
        #: with `Session.get`, not the client's construction.
        self._route: _Route | None = None

    def get(self, path: str, params: Mapping[str, str] | None) -> urllib3.BaseHTTPResponse:
        """GET base URL + `path` with `params`; the answer's body not read yet.

        Raises:
            requests.exceptions.RequestException: As `Session.get` would raise it.
        """
        # Outside the try, as in `Session.get`: what fails here is not a connection's
        # failure (a CA bundle path that does not exist, a URL requests refuses).
        pool, prefix, headers, proxies = self._route or self._set_up()
        target = self.target(path, params, prefix, proxies)
        try:
            return pool.urlopen(
                "GET",
                target,
                body=None,
                headers=headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=self._adapter.max_retries,
                timeout=self._timeout,
                chunked=False,
            )
        except (ProtocolError, OSError) as error:
            raise requests.exceptions.ConnectionError(error) from error
        except urllib3.exceptions.HTTPError as error:
            mapped = as_requests_error(error)
            if mapped is error:
                raise
            raise mapped from error

    def target(
        self,
        path: str,
        params: Mapping[str, str] | None,
        prefix: str | None = None,
        proxies: MutableMapping[str, str] | None = None,
    ) -> str:
        """The request target `Session.get(base_url + path, params=params)` sends."""
        if prefix is None or proxies is None:
            _, prefix, _, proxies = self._route or self._set_up()
        if _PLAIN_PATH.fullmatch(path) is None:
            prepared = self._session.prepare_request(
                requests.Request("GET", self._base_url + path, params=params)
            )
            return self._adapter.request_url(prepared, proxies)
        query = urlencode(list((params or {}).items()), doseq=True)
        return f"{prefix}{path}?{query}" if query else prefix + path

    def _set_up(self) -> _Route:
        """What `Session.get` decides for the base URL, once."""
        with self._lock:
            if self._route is not None:
                return self._route
            session = self._session
            prepared = session.prepare_request(requests.Request("GET", self._base_url))
            settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
            verify, cert, proxies = settings["verify"], settings["cert"], settings["proxies"]
            try:
                pool = self._adapter.get_connection_with_tls_context(
                    prepared, verify, proxies=proxies, cert=cert
                )
                assert isinstance(pool, HTTPConnectionPool)  # noqa: S101  # what it builds
            except LocationValueError as error:
                raise requests.exceptions.InvalidURL(error) from error
            self._adapter.cert_verify(pool, str(prepared.url), verify, cert)
            prefix = self._adapter.request_url(prepared, proxies).rstrip("/")
            self._route = _Route(pool, prefix, dict(prepared.headers), proxies)
            return self._route


#: `HTTPAdapter.send`'s mapping, in its order: a `MaxRetryError` by its reason, a
#: connect timeout only when the connection was not refused (NewConnectionError is a
#: ConnectTimeoutError too); anything else that gave up is a ConnectionError.
_GAVE_UP_BECAUSE: tuple[tuple[type[Exception], type[requests.RequestException]], ...] = (
    (NewConnectionError, requests.exceptions.ConnectionError),
    (ConnectTimeoutError, requests.exceptions.ConnectTimeout),
    (ResponseError, requests.exceptions.RetryError),
    (urllib3.exceptions.ProxyError, requests.exceptions.ProxyError),
    (urllib3.exceptions.SSLError, requests.exceptions.SSLError),
)
_FAILED: tuple[tuple[type[Exception], type[requests.RequestException]], ...] = (
    (ClosedPoolError, requests.exceptions.ConnectionError),
    (urllib3.exceptions.ProxyError, requests.exceptions.ProxyError),
    (urllib3.exceptions.SSLError, requests.exceptions.SSLError),
    (ReadTimeoutError, requests.exceptions.ReadTimeout),
    (urllib3.exceptions.InvalidHeader, requests.exceptions.InvalidHeader),
)


def as_requests_error(error: Exception) -> Exception:
    """The exception `HTTPAdapter.send` raises for this urllib3 failure of `urlopen`.

    The failure itself when requests lets it through unchanged.
    """
    if isinstance(error, MaxRetryError):
        gave_up = next(
            (kind for cause, kind in _GAVE_UP_BECAUSE if isinstance(error.reason, cause)),
            requests.exceptions.ConnectionError,
        )
        return gave_up(error)
    failed = next((kind for cause, kind in _FAILED if isinstance(error, cause)), None)
    return failed(error) if failed is not None else error

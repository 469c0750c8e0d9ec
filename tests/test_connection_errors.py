"""A request that gets no answer: the line names the host and the cause, and says the fix.

Refused, name not resolved, TLS, timed out: each through the real CLI where the cause
can be made for real on loopback, in-process where only a fake can make it (a connect
timeout, a temporary DNS failure). Before the API has answered once, a refusal or an
unknown name is the address in api_url: the run stops at once, without retries.
"""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests
import urllib3
from pytest_httpserver import HTTPServer

from tap_conversations.client import TRANSIENT_MAX_TRIES, ApiClient
from tap_conversations.errors import ApiResponseError, ConnectionFailedError
from tap_conversations.rate_limit import RequestPacer
from tests.helpers import Answer, assert_no_traceback, crafted_config, run_cli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.helpers import CraftedApi

#: A run that stops at first contact takes the CLI's start-up and one request, not the
#: 17 s of backoff that retries would add.
NO_RETRY_SECONDS = 10.0


def _client(base_url: str, timeout: float = 5) -> ApiClient:
    return ApiClient(
        base_url=base_url,
        token="mt_connection_test_token",  # noqa: S106  # not a real token
        pacer=RequestPacer(100_000),
        timeout_seconds=timeout,
        max_connections=2,
        user_agent="test",
    )


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def _config(url: str, **overrides: Any) -> dict[str, Any]:
    return {"api_token": "mt_connection_test_token", "api_url": url, **overrides}


@pytest.mark.parametrize("args", [(), ("--test",)], ids=["sync", "test"])
def test_a_refused_connection_names_host_and_port_and_is_not_retried(
    tmp_path: Path, closed_port: int, args: tuple[str, ...]
) -> None:
    url = f"http://127.0.0.1:{closed_port}/api/v1"
    started = time.monotonic()
    result = run_cli(tmp_path, _config(url), *args)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    assert_no_traceback(result)
    expected = (
        f"Could not connect to 127.0.0.1:{closed_port} (GET /me): connection refused, nothing "
        f"listens on that port. Check the host and port in api_url ({url}) (a local test "
        "server: is it running?). Not retried: a wrong address does not heal."
    )
    assert result.error_lines[-1].endswith(expected), result.error_lines
    assert "Retrying" not in result.stderr
    assert "try again later" not in result.stderr
    assert elapsed < NO_RETRY_SECONDS


def _resolves_as_unknown(host: str) -> bool:
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as error:
        return error.errno != socket.EAI_AGAIN
    return False


@pytest.mark.skipif(
    not _resolves_as_unknown("nonexistent.invalid"),
    reason="this machine's DNS cannot say 'no such name' (offline resolver)",
)
def test_a_name_that_does_not_resolve_says_check_the_host(tmp_path: Path) -> None:
    url = "https://nonexistent.invalid/api/v1"
    started = time.monotonic()
    result = run_cli(tmp_path, _config(url), "--test")
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.error_lines[-1].endswith(
        "Could not connect to nonexistent.invalid (GET /me): the host name does not resolve "
        f"(DNS knows no such name). Check the host in api_url ({url}) for a typo. Not retried."
    ), result.error_lines
    assert "Retrying" not in result.stderr
    assert time.monotonic() - started < NO_RETRY_SECONDS


def _gaierror(code: int) -> Callable[..., Any]:
    def fail(*_args: Any, **_kwargs: Any) -> Any:
        raise socket.gaierror(code, "faked")

    return fail


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize(
    ("code", "raised", "expected", "retries"),
    [
        pytest.param(
            socket.EAI_NONAME,
            ConnectionFailedError,
            "Could not connect to api.example.test (GET /me): the host name does not resolve "
            "(DNS knows no such name). Check the host in api_url "
            "(https://api.example.test/api/v1) for a typo. Not retried.",
            0,
            id="unknown-name-not-retried",
        ),
        pytest.param(
            socket.EAI_AGAIN,
            ApiResponseError,
            "Could not connect to api.example.test (GET /me): its name could not be resolved "
            f"now (temporary DNS failure) — still failing after {TRANSIENT_MAX_TRIES} "
            "attempts; check this machine's network and DNS server, then try again.",
            TRANSIENT_MAX_TRIES - 1,
            id="temporary-failure-retried",
        ),
    ],
)
def test_a_dns_failure_in_process_says_what_to_check(
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    raised: type[ApiResponseError],
    expected: str,
    retries: int,
) -> None:
    """The same lines whatever the machine's resolver: getaddrinfo fails with `code`.

    An unknown name (EAI_NONAME) is not retried; a temporary failure (EAI_AGAIN) is.
    """
    monkeypatch.setattr(socket, "getaddrinfo", _gaierror(code))
    api = _client("https://api.example.test/api/v1")
    with pytest.raises(raised) as caught:
        api.get("/me")
    assert str(caught.value) == expected
    assert api.stats.retries == retries


@pytest.mark.parametrize("args", [(), ("--test",)], ids=["sync", "test"])
def test_https_to_a_plain_http_port_is_a_tls_failure_with_its_fix(
    tmp_path: Path, crafted: Callable[..., CraftedApi], args: tuple[str, ...]
) -> None:
    api = crafted(lambda _path, _query: Answer(body={}))
    url = api.base_url.replace("http://", "https://", 1)
    where = url.removeprefix("https://").removesuffix("/api/v1")
    result = run_cli(tmp_path, crafted_config(api, api_url=url), *args)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.error_lines[-1].endswith(
        f"TLS handshake with {where} failed (GET /me): the server on that port does not speak "
        f"TLS (plain http?). api_url ({url}) says https://: check its port, or use the API's "
        "https address. Not retried."
    ), result.error_lines
    assert "Retrying" not in result.stderr


@pytest.fixture
def self_signed(tmp_path: Path) -> Iterator[str]:
    """An https API base URL on loopback whose certificate nobody trusts."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(  # noqa: S603  # fixed arguments
        [  # noqa: S607  # openssl from PATH
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = HTTPServer(host="127.0.0.1", port=0, ssl_context=context)
    server.expect_request("/api/v1/me").respond_with_json({})
    server.start()
    try:
        yield server.url_for("/api/v1")
    finally:
        server.stop()


def test_an_untrusted_certificate_says_how_to_trust_a_proxy(self_signed: str) -> None:
    api = _client(self_signed)
    with pytest.raises(ConnectionFailedError) as caught:
        api.get("/me")
    where = self_signed.removeprefix("https://").removesuffix("/api/v1")
    message = str(caught.value)
    assert message.startswith(
        f"TLS handshake with {where} failed (GET /me): the server's certificate is not trusted ("
    )
    assert message.endswith(
        f"). Check that api_url ({self_signed}) names the API's own host; behind a proxy that "
        "inspects TLS, set REQUESTS_CA_BUNDLE to its CA certificate file. Not retried."
    )
    assert api.stats.retries == 0


@pytest.mark.usefixtures("fast_retries")
def test_no_answer_in_time_is_retried_then_says_raise_the_timeout(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    api = _client(f"http://127.0.0.1:{silent_port}/api/v1", timeout=0.2)
    with (
        caplog.at_level(logging.INFO, "tap_conversations"),
        pytest.raises(ApiResponseError) as caught,
    ):
        api.get("/me")
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == TRANSIENT_MAX_TRIES - 1
    assert retries[0].endswith(
        f"s: GET /me: 127.0.0.1:{silent_port} accepted the connection but sent no answer "
        "within 0.2 s"
    )
    assert str(caught.value) == (
        f"GET /me: 127.0.0.1:{silent_port} accepted the connection but sent no answer within "
        f"0.2 s — still failing after {TRANSIENT_MAX_TRIES} attempts; the API is slow or a "
        "proxy holds the request: raise request_timeout_seconds, or try again later."
    )
    assert api.stats.retries == TRANSIENT_MAX_TRIES - 1


def _connect_timeout(*_args: Any, **_kwargs: Any) -> Any:
    reason = urllib3.exceptions.ConnectTimeoutError(None, "connect timed out")
    retries = urllib3.exceptions.MaxRetryError(None, "/", reason)  # type: ignore[arg-type]
    raise requests.exceptions.ConnectTimeout(retries)


def test_a_connect_timeout_at_first_contact_says_check_reachability(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ApiClient, "_send", _connect_timeout)
    api = _client("https://api.example.test/api/v1", timeout=60)
    with pytest.raises(ConnectionFailedError) as caught:
        api.get("/me")
    assert str(caught.value) == (
        "Could not connect to api.example.test:443 within 10 s (GET /me): connection timed out, "
        "nothing answered the connection request. A firewall, VPN or missing proxy drops it, "
        "or api_url (https://api.example.test/api/v1) names the wrong host: check that this "
        "machine reaches the host (set HTTPS_PROXY if it needs a proxy). Not retried: TCP "
        "already repeated the attempt."
    )


@pytest.mark.usefixtures("fast_retries")
def test_a_refusal_after_the_api_answered_is_retried(
    crafted: Callable[..., CraftedApi],
) -> None:
    """Mid-run, a refusal is a restart or a failover: retried, then 'try again later'."""
    server = crafted(lambda _path, _query: Answer(body={"users": []}))
    api = _client(server.base_url)
    api.get("/me")
    server.stop()
    where = server.base_url.removeprefix("http://").removesuffix("/api/v1")
    with pytest.raises(ApiResponseError) as caught:
        api.get("/users")
    assert str(caught.value) == (
        f"Could not connect to {where} (GET /users): connection refused — still failing after "
        f"{TRANSIENT_MAX_TRIES} attempts; the API answered earlier in this run and stopped "
        "accepting connections: try again later."
    )
    assert api.stats.retries == TRANSIENT_MAX_TRIES - 1

"""The token goes to the API host only, in its one header, and never into any output.

Every test talks to a real loopback server: the sandbox, pytest-httpserver for
crafted answers, or a raw socket for what no HTTP library would send (a body dripped
one byte at a time, a proxy that counts who connects).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import TYPE_CHECKING, Any

import pytest
from werkzeug.wrappers import Response

from tap_conversations.client import ApiClient
from tap_conversations.errors import ApiResponseError, ConfigError
from tap_conversations.rate_limit import RequestPacer
from tap_conversations.settings import Settings
from tests.harness import run_sync, tap_config
from tests.helpers import CRAFTED_ACCOUNT, cli_env, run_cli

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from pytest_httpserver import HTTPServer

    from tests.sandbox import Sandbox

TOKEN = "mt_5ecre7a1_0123456789abcdef"  # noqa: S105  # the token these tests must never leak


def pieces(token: str, size: int = 6) -> set[str]:
    """Every piece of `size` characters of the token."""
    return {token[i : i + size] for i in range(len(token) - size + 1)}


def leaked(text: str, token: str = TOKEN) -> set[str]:
    return {piece for piece in pieces(token) if piece in text}


# --- api_url: one parser decides -------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://evil.example\\@127.0.0.1:8765/api/v1", "backslash"),
        ("https://user:pa55word@host.example/api/v1", "user name or password"),
        ("https://host.example/api/v1 extra", "whitespace"),
        ("https://host.example/api\t/v1", "whitespace"),
        ("https://host.example/api/v1\x00", "control character"),
        ("http://evil.example/api/v1", "plain http:// for evil.example"),
        ("ftp://host.example/api/v1", "must be an http(s) URL"),
    ],
)
def test_an_api_url_that_could_send_the_token_elsewhere_is_refused(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_config({"api_token": TOKEN, "api_url": url})
    message = str(caught.value)
    assert message.startswith("Setting api_url ")
    assert says in message
    assert "\n" not in message
    assert "pa55word" not in message


def test_the_backslash_trick_sends_nothing_anywhere(sandbox: Sandbox, tmp_path: Path) -> None:
    host, port = sandbox.base_url.split("//")[1].split("/")[0].split(":")
    config = tap_config(sandbox, token=TOKEN)
    config["api_url"] = f"http://evil.example\\@{host}:{port}/api/v1"
    result = run_cli(tmp_path, config)
    assert result.returncode == 2
    assert sandbox.counters.requests() == 0
    assert [line for line in result.stderr.splitlines() if "Setting api_url" in line]


# --- the token in one header -------------------------------------------------------------


def test_a_netrc_entry_does_not_replace_the_token(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password other\n", encoding="utf-8")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".netrc").write_text(netrc.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / ".netrc").chmod(0o600)
    out = run_sync(tap_config(sandbox), streams=["account"])
    assert out.ids("account") == [sandbox.account()["id"]]
    assert sandbox.counters.requests(status=401) == 0


class CountingListener:
    """A TCP listener on loopback that only counts who connects (a would-be proxy)."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def proxy() -> Iterator[CountingListener]:
    listener = CountingListener()
    yield listener
    listener.close()


def test_an_environment_proxy_never_sees_a_plain_http_loopback_request(
    sandbox: Sandbox, proxy: CountingListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    out = run_sync(tap_config(sandbox), streams=["account", "users"])
    assert out.ids("account") == [sandbox.account()["id"]]
    assert proxy.connections == 0
    assert sandbox.counters.requests() == 2


def test_an_environment_proxy_is_kept_for_https(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.corp.example:3128")

    def client(url: str) -> ApiClient:
        return ApiClient(
            base_url=url,
            token=TOKEN,
            pacer=RequestPacer(60),
            timeout_seconds=5,
            max_connections=1,
            user_agent="tests",
        )

    secure = client("https://api.example.com/api/v1")
    assert secure._session.proxies["https"] == "http://proxy.corp.example:3128"
    assert not secure._session.trust_env  # and so no ~/.netrc
    assert client("http://127.0.0.1:9/api/v1")._session.proxies == {}


# --- nothing of the token in any output ------------------------------------------------


def crafted_config(server: HTTPServer, **overrides: Any) -> dict[str, Any]:
    return {
        "api_token": TOKEN,
        "api_url": server.url_for("/api/v1"),
        "max_requests_per_minute": 100_000,
        **overrides,
    }


@pytest.mark.parametrize(
    ("status", "body"),
    [
        # Cut at 200 characters, 12 of them the token's: the cut must come after the mask.
        (400, {"error": "invalid_parameter", "message": "x" * 180 + f" Bearer {TOKEN}"}),
        (400, {"error": "invalid_parameter", "message": f"token {TOKEN[:14]}… is odd"}),
        (422, f"<html>{'y' * 160} Authorization: Bearer {TOKEN}</html>"),
        (403, {"error": "insufficient_scope", "message": f"{TOKEN} may not"}),
        (401, {"error": "unauthorized", "message": f"{TOKEN} is revoked"}),
        (503, f"upstream said: {TOKEN}"),
    ],
    ids=["echo-near-the-cut", "echo-a-prefix", "html-echo", "403-echo", "401-echo", "503-echo"],
)
def test_an_error_body_echoing_the_token_leaks_no_piece_of_it(
    httpserver: HTTPServer, tmp_path: Path, status: int, body: dict[str, Any] | str
) -> None:
    text = json.dumps(body) if isinstance(body, dict) else body
    httpserver.expect_request("/api/v1/me").respond_with_json(CRAFTED_ACCOUNT)
    httpserver.expect_request("/api/v1/conversations").respond_with_data(
        text, status=status, content_type="application/json"
    )
    result = run_cli(
        tmp_path, crafted_config(httpserver), env=cli_env(LOGLEVEL="DEBUG"), fast_retries=True
    )
    assert result.returncode != 0
    assert leaked(result.stdout + result.stderr) == set()
    assert any("GET /conversations" in line for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    ("token", "where"),
    [
        (TOKEN[:10] + "\u200b" + TOKEN[10:], 11),
        (TOKEN + "\n", len(TOKEN) + 1),
        (TOKEN[:5] + " " + TOKEN[5:], 6),
        ("\u00a0" + TOKEN, 1),
    ],
    ids=["zero-width-space", "newline", "space", "no-break-space"],
)
def test_a_mis_pasted_token_is_one_line_that_quotes_none_of_it(
    sandbox: Sandbox, tmp_path: Path, token: str, where: int
) -> None:
    result = run_cli(tmp_path, tap_config(sandbox, token=token))
    assert result.returncode == 2
    assert sandbox.counters.requests() == 0
    lines = [line for line in result.stderr.splitlines() if "api_token looks mis-pasted" in line]
    assert len(lines) == 1
    assert f"character {where} of {len(token)}" in lines[0]
    assert leaked(result.stdout + result.stderr) == set()
    assert "Traceback" not in result.stderr


# --- a deadline for the whole request ----------------------------------------------------


class DrippingServer:
    """Answers /me with headers at once, then the body one byte every `interval` s.

    The first `drips` requests drip; later ones answer at once.
    """

    def __init__(self, drips: int, interval: float) -> None:
        self.drips = drips
        self.interval = interval
        self.requests = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}/api/v1"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            self.requests += 1
            drip = self.requests <= self.drips
            body = json.dumps(CRAFTED_ACCOUNT).encode()
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            try:
                connection.sendall(head)
                if not drip:
                    connection.sendall(body)
                    return
                for byte in body:
                    if self._stop.wait(self.interval):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up on the drip: what the test wants

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


def test_a_body_dripped_past_the_deadline_is_cut_and_retried() -> None:
    server = DrippingServer(drips=2, interval=0.4)
    try:
        client = ApiClient(
            base_url=server.base_url,
            token=TOKEN,
            pacer=RequestPacer(100_000),
            timeout_seconds=1,
            max_connections=1,
            user_agent="tests",
        )
        assert client.get("/me") == CRAFTED_ACCOUNT
    finally:
        server.close()
    # Two dripping answers cut, the third whole (read whole, each drip would take a minute).
    assert server.requests == 3
    assert client.stats.transient_failures == 2


def test_a_request_that_always_drips_ends_with_a_timed_out_line() -> None:
    server = DrippingServer(drips=100, interval=0.3)
    try:
        client = ApiClient(
            base_url=server.base_url,
            token=TOKEN,
            pacer=RequestPacer(100_000),
            timeout_seconds=1,
            max_connections=1,
            user_agent="tests",
        )
        with pytest.raises(ApiResponseError) as caught:
            client.get("/me")
    finally:
        server.close()
    assert str(caught.value).startswith("GET /me timed out: no complete answer within 1 s")
    assert server.requests == 6


# --- redirects ---------------------------------------------------------------------------


def test_a_redirect_is_not_followed_and_says_where_it_pointed(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/api/v1/me").respond_with_response(
        Response(status=301, headers={"Location": "https://api.other.example/api/v1/me?x=1"})
    )
    result = run_cli(tmp_path, crafted_config(httpserver))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "answered HTTP 301" in line]
    assert len(errors) == 1
    assert "a redirect to https://api.other.example;" in errors[0]
    assert "Set api_url to the final base URL" in errors[0]
    assert "x=1" not in errors[0]
    assert [request.path for request, _ in httpserver.log].count("/api/v1/me") == 1

"""Bytes the API answers that no JSON parser should meet: bombs and broken encodings.

A gzip body is inflated as it streams and refused past `MAX_BODY_BYTES`, before the
rest is decoded; a body that is not UTF-8 is a malformed answer, retried like one, and
ends in one line, never a traceback. Every answer comes from a real loopback server
(pytest-httpserver).
"""

from __future__ import annotations

import functools
import json
import zlib
from typing import TYPE_CHECKING, Any

import pytest
import urllib3
from werkzeug.wrappers import Response

from tap_conversations import client as client_module
from tap_conversations.client import ApiClient
from tap_conversations.errors import ApiResponseError
from tap_conversations.rate_limit import RequestPacer
from tests.harness import catalog_selecting
from tests.helpers import (
    CONVERSATION_ID,
    CRAFTED_ACCOUNT,
    DATE,
    Answer,
    assert_no_traceback,
    run_cli,
)

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_httpserver import HTTPServer

MIB = 1024 * 1024
#: Zeros inflated from about 80 KB of gzip.
BOMB_BYTES = 80 * MIB


@functools.cache
def gzip_bomb() -> bytes:
    """BOMB_BYTES of zeros, gzip-compressed a MiB at a time (never all in memory)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(MIB)
    parts = [packer.compress(zeros) for _ in range(BOMB_BYTES // MIB)]
    return b"".join([*parts, packer.flush()])


def gzip_answer(body: bytes) -> Response:
    return Response(
        body,
        status=200,
        headers={"Content-Encoding": "gzip"},
        content_type="application/json",
    )


def config_for(server: HTTPServer) -> dict[str, Any]:
    return {
        "api_token": "mt_b0b0b0b0_0123456789abcdef",
        "api_url": server.url_for("/api/v1"),
        "max_requests_per_minute": 100_000,
    }


def requests_to(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def client_for(server: HTTPServer) -> ApiClient:
    return ApiClient(
        base_url=server.url_for("/api/v1"),
        token="mt_b0b0b0b0_0123456789abcdef",  # noqa: S106  # a test token
        pacer=RequestPacer(100_000),
        timeout_seconds=30,
        max_connections=1,
        user_agent="tests",
    )


# --- the decoded size of one answer ------------------------------------------------------


def test_a_gzip_bomb_is_refused_before_it_is_inflated(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = 1 * MIB
    monkeypatch.setattr(client_module, "MAX_BODY_BYTES", cap)
    decoded = []
    read1 = urllib3.response.HTTPResponse.read1

    def counting_read1(self: urllib3.response.HTTPResponse, *args: Any, **kwargs: Any) -> bytes:
        chunk = read1(self, *args, **kwargs)
        decoded.append(len(chunk))
        return chunk

    monkeypatch.setattr(urllib3.response.HTTPResponse, "read1", counting_read1)
    httpserver.expect_request("/api/v1/users").respond_with_response(gzip_answer(gzip_bomb()))
    api = client_for(httpserver)
    try:
        with pytest.raises(ApiResponseError) as caught:
            api.get("/users")
    finally:
        api.close()
    assert str(caught.value) == (
        "GET /users answered a body larger than 1 MiB once decoded, the most one answer "
        "may hold; not read further. Report it with this line."
    )
    # Read (and held) at most the cap and one chunk, not the 80 MiB the body inflates to.
    assert cap < sum(decoded) <= cap + client_module.READ_CHUNK_BYTES
    assert max(decoded) <= client_module.READ_CHUNK_BYTES
    assert requests_to(httpserver, "/api/v1/users") == 1  # a bomb is not asked for again


def test_an_answer_just_under_the_cap_is_read(
    httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module, "MAX_BODY_BYTES", 1 * MIB)
    users = [{"id": f"u{n}", "name": "x" * 1000} for n in range(900)]
    body = json.dumps({"users": users}).encode()
    assert 0.8 * MIB < len(body) < MIB
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    gzipped = packer.compress(body) + packer.flush()
    httpserver.expect_request("/api/v1/users").respond_with_response(gzip_answer(gzipped))
    api = client_for(httpserver)
    try:
        assert len(api.get("/users")["users"]) == len(users)
    finally:
        api.close()


def test_a_gzip_bomb_as_a_conversation_detail_ends_the_run_with_one_line(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    """At the real cap (64 MiB), through the CLI: the endpoint's template, no id, no trace."""
    httpserver.expect_request("/api/v1/me").respond_with_json(CRAFTED_ACCOUNT)
    httpserver.expect_request("/api/v1/conversations").respond_with_json(
        {
            "conversations": [{"id": CONVERSATION_ID, "date": DATE}],
            "pagination": {"has_more": False, "limit": 25},
        }
    )
    detail = f"/api/v1/conversations/{CONVERSATION_ID}"
    httpserver.expect_request(detail).respond_with_response(gzip_answer(gzip_bomb()))
    config = config_for(httpserver)
    catalog = catalog_selecting(config, ["conversations"])
    result = run_cli(tmp_path, config, catalog=catalog)
    assert result.returncode == 1, result.stderr[-3000:]
    assert_no_traceback(result)
    assert result.error_lines[-1].endswith(
        "GET /conversations/{id} answered a body larger than 64 MiB once decoded, the most "
        "one answer may hold; not read further. Report it with this line."
    )
    assert CONVERSATION_ID not in result.error_lines[-1]
    assert requests_to(httpserver, detail) == 1
    assert result.records("conversations") == []


# --- bodies that are not UTF-8 -----------------------------------------------------------


#: The account as a Latin-1 server would write it: "é" is one byte, 0xE9.
LATIN1_ACCOUNT = json.dumps(CRAFTED_ACCOUNT | {"name": "Café"}, ensure_ascii=False).encode(
    "latin-1"
)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            Answer(200, LATIN1_ACCOUNT, "application/json"),
            "GET /me answered HTTP 200 with a body that is not valid JSON (not UTF-8 text; "
            f"application/json, {len(LATIN1_ACCOUNT)} bytes) — still failing after "
            f"{client_module.TRANSIENT_MAX_TRIES} attempts; try again later.",
            id="200-not-utf8",
        ),
        pytest.param(
            Answer(
                503,
                '{"error": "unavailable", "message": "Service indisponible, réessayez"}'.encode(
                    "latin-1"
                ),
                "application/json; charset=iso-8859-1",
            ),
            f"GET /me answered HTTP 503 — still failing after {client_module.TRANSIENT_MAX_TRIES} "
            "attempts; try again later.",
            id="503-latin1-error-body",
        ),
    ],
)
def test_a_body_that_is_not_utf8_is_retried_then_one_line(
    httpserver: HTTPServer,
    tmp_path: Path,
    answer: Answer,
    expected: str,
) -> None:
    """A 200 that is not UTF-8 is a malformed answer; a 503 in Latin-1 is still a 503."""
    httpserver.expect_request("/api/v1/me").respond_with_data(
        answer.raw(), status=answer.status, content_type=answer.content_type
    )
    result = run_cli(tmp_path, config_for(httpserver), fast_retries=True)
    assert result.returncode == 1
    assert_no_traceback(result)
    assert result.error_lines[-1].endswith(expected)
    assert requests_to(httpserver, "/api/v1/me") == client_module.TRANSIENT_MAX_TRIES


def test_a_400_with_a_latin1_error_body_is_quoted_once(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    body = '{"error": "invalid_parameter", "message": "paramètre inconnu"}'
    httpserver.expect_request("/api/v1/me").respond_with_data(
        body.encode("latin-1"), status=400, content_type="application/json"
    )
    result = run_cli(tmp_path, config_for(httpserver))
    assert result.returncode == 1
    assert_no_traceback(result)
    assert "GET /me answered HTTP 400: " in result.error_lines[-1]
    assert "param\ufffdtre inconnu" in result.error_lines[-1]
    assert requests_to(httpserver, "/api/v1/me") == 1

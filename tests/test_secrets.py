"""The API token never appears in any output, at any log level.

A distinctive token is created in the sandbox and every byte the CLI prints (stdout and
stderr, DEBUG level) is searched for it: a whole sync with faults (so retries and
errors are logged), a 401, persistent malformed answers, error bodies that echo the
request, `--about`, `--discover` and `--test`. The STATE and the exceptions the tap
raises are searched too.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.errors import TapConversationsError
from tap_conversations.settings import Settings
from tests.harness import ALL_STREAMS, catalog_selecting, run_sync, tap_config
from tests.helpers import (
    DATE,
    Answer,
    CliResult,
    CraftedApi,
    cli_env,
    conversation_detail,
    crafted_config,
    one_conversation_api,
    run_cli,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.sandbox import Sandbox

#: `mt_` + 8 hex + `_` + 16 hex, like the vendor's. The first 11 characters are the
#: public prefix the API echoes in `_meta.token_prefix`; the rest is the secret.
TOKEN = "mt_c0ffee42_5ec2e7a5ec2e7b5e"  # noqa: S105  # a test token, the search target
SECRET_PART = TOKEN[11:]
DEBUG = cli_env(LOGLEVEL="DEBUG")
#: Other shapes a leak could take.
LEAK_FORMS = (TOKEN, SECRET_PART, f"Bearer {TOKEN}", TOKEN.upper())


def assert_no_token(text: str, where: str) -> None:
    """Neither the token nor its secret part appears in `text`."""
    for form in LEAK_FORMS:
        assert form not in text, f"the token leaked into {where}"


def assert_debug_logging(result: CliResult) -> None:
    """The run really logged at DEBUG (otherwise the search proves little)."""
    assert "| DEBUG" in result.stderr, result.stderr[-2000:]


@pytest.fixture
def secret_sandbox(sandbox_factory: Callable[..., Sandbox]) -> Sandbox:
    sb = sandbox_factory(conversations=40)
    sb.add_token(
        scopes=("conversations", "transcripts", "insights", "recordings", "users", "teams"),
        include_recordings=True,
        token=TOKEN,
    )
    return sb


def test_debug_sync_with_faults_never_prints_the_token(
    secret_sandbox: Sandbox, tmp_path: Path
) -> None:
    sb = secret_sandbox
    sb.faults.error_rate = 0.04
    sb.faults.non_json_rate = 0.02
    sb.faults.html_rate = 0.02
    sb.faults.truncate_rate = 0.02
    sb.faults.drop_rate = 0.02
    sb.faults.rate_limited_rate = 0.01
    config = tap_config(sb, token=TOKEN)
    result = run_cli(tmp_path, config, catalog=catalog_selecting(config, ALL_STREAMS), env=DEBUG)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_debug_logging(result)
    assert "Retrying" in result.stderr  # errors and retries were logged
    assert "lacks the 'departments' scope" in result.stderr  # a 403 was logged
    assert sum(sb.counters.faults_injected.values()) > 0
    assert result.records("conversations")
    assert_no_token(result.stdout, "stdout (records, STATE)")
    assert_no_token(result.stderr, "stderr (logs)")
    assert_no_token((tmp_path / "config.json").read_text().replace(TOKEN, ""), "sanity")


def test_401_at_debug_never_prints_the_token(secret_sandbox: Sandbox, tmp_path: Path) -> None:
    secret_sandbox.revoke_token(TOKEN)
    result = run_cli(tmp_path, tap_config(secret_sandbox, token=TOKEN), env=DEBUG)
    assert result.returncode != 0
    assert_debug_logging(result)
    assert "HTTP 401" in result.stderr
    assert_no_token(result.output, "the output of a 401 run")


def test_persistent_malformed_answer_at_debug_never_prints_the_token(
    secret_sandbox: Sandbox, tmp_path: Path
) -> None:
    secret_sandbox.faults.endpoints = {"/users"}
    secret_sandbox.faults.non_json_rate = 1.0
    config = tap_config(secret_sandbox, token=TOKEN)
    result = run_cli(
        tmp_path, config, catalog=catalog_selecting(config, ["users"]), env=DEBUG, fast_retries=True
    )
    assert result.returncode == 1
    assert_debug_logging(result)
    assert "not valid JSON" in result.stderr
    assert_no_token(result.output, "the output of a malformed-answer run")


@pytest.mark.parametrize(
    ("status", "key"), [(400, "message"), (403, "required_scope"), (422, "detail")]
)
def test_error_body_echoing_the_token_is_not_printed(
    crafted: Callable[..., CraftedApi], tmp_path: Path, status: int, key: str
) -> None:
    """A proxy or API that echoes the request in its error body: quote it, redacted."""
    api: CraftedApi

    def respond(path: str, query: dict[str, str]) -> Answer:  # noqa: ARG001
        auth = api.authorizations[-1] if api.authorizations else ""
        return Answer(status, {"error": "bad_request", key: f"rejected request with {auth}"})

    api = crafted(respond)
    config = crafted_config(api, api_token=TOKEN)
    result = run_cli(tmp_path, config, catalog=catalog_selecting(config, ["users"]), env=DEBUG)
    assert api.authorizations == [f"Bearer {TOKEN}"]  # the echo really carried it
    assert result.returncode == (0 if status == 403 else 1)  # a 403 skips the stream
    assert f"HTTP {status}" in result.stderr
    assert_no_token(result.output, f"the output of an HTTP {status} whose body echoes it")


def test_about_never_prints_the_token(secret_sandbox: Sandbox, tmp_path: Path) -> None:
    config = tap_config(secret_sandbox, token=TOKEN)
    for fmt in ((), ("--format", "json"), ("--format", "markdown")):
        result = run_cli(tmp_path, config, "--about", *fmt, env=DEBUG)
        assert result.returncode == 0, result.stderr
        assert "api_token" in result.stdout
        assert_no_token(result.output, f"--about --format {fmt}")
    assert secret_sandbox.counters.requests() == 0


def test_discover_never_prints_the_token(secret_sandbox: Sandbox, tmp_path: Path) -> None:
    config = tap_config(secret_sandbox, token=TOKEN)
    result = run_cli(tmp_path, config, "--discover", env=DEBUG)
    assert result.returncode == 0, result.stderr
    assert_debug_logging(result)
    assert secret_sandbox.counters.requests(token=TOKEN) > 0  # the scope probe ran
    assert '"streams"' in result.stdout
    assert_no_token(result.output, "--discover")


@pytest.mark.parametrize("token_state", ["valid", "revoked"])
def test_connection_test_never_prints_the_token(
    secret_sandbox: Sandbox, tmp_path: Path, token_state: str
) -> None:
    revoked = token_state == "revoked"  # noqa: S105
    if revoked:
        secret_sandbox.revoke_token(TOKEN)
    result = run_cli(tmp_path, tap_config(secret_sandbox, token=TOKEN), "--test", env=DEBUG)
    assert result.returncode == (1 if revoked else 0), result.stderr
    assert_debug_logging(result)
    assert_no_token(result.output, "--test")


# --- in-process: STATE, exceptions -------------------------------------------------------


def _exception_texts(error: BaseException) -> str:
    """Everything an exception could show: message, repr, chain, formatted traceback."""
    texts = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(current.args)]
        current = current.__cause__ or current.__context__
    texts.append("".join(traceback.format_exception(error)))
    return "\n".join(texts)


def test_state_holds_no_token(secret_sandbox: Sandbox) -> None:
    out = run_sync(tap_config(secret_sandbox, token=TOKEN), streams=ALL_STREAMS)
    assert out.state["bookmarks"]
    assert_no_token(repr(out.messages), "the Singer messages")


@pytest.mark.parametrize(
    "setup",
    ["revoked", "persistent_5xx", "dropped", "timeout"],
)
def test_exceptions_carry_no_token(
    secret_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch, setup: str
) -> None:
    from tap_conversations import client  # noqa: PLC0415

    monkeypatch.setattr(client, "TRANSIENT_BASE_SECONDS", 0.001)
    monkeypatch.setattr(client, "TRANSIENT_MAX_WAIT_SECONDS", 0.002)
    sb = secret_sandbox
    overrides: dict[str, Any] = {}
    if setup == "revoked":
        sb.revoke_token(TOKEN)
    elif setup == "persistent_5xx":
        sb.faults.error_rate = 1.0
    elif setup == "dropped":
        sb.faults.drop_rate = 1.0
    else:
        sb.faults.slow_rate, sb.faults.slow_seconds = 1.0, 1.5
        overrides["request_timeout_seconds"] = 1
    with pytest.raises(TapConversationsError) as caught:
        run_sync(tap_config(sb, token=TOKEN, **overrides), streams=["users"])
    assert_no_token(_exception_texts(caught.value), f"the exception ({setup})")


def test_exception_from_an_echoing_error_body_carries_no_token(
    crafted: Callable[..., CraftedApi],
) -> None:
    api: CraftedApi

    def respond(path: str, query: dict[str, str]) -> Answer:  # noqa: ARG001
        return Answer(400, {"error": "x", "message": f"got {api.authorizations[-1]}"})

    api = crafted(respond)
    with pytest.raises(TapConversationsError) as caught:
        run_sync(crafted_config(api, api_token=TOKEN), streams=["users"])
    assert_no_token(_exception_texts(caught.value), "the exception of an echoing 400")


def test_settings_repr_hides_the_token() -> None:
    """Settings end up in reprs (debuggers, error reports): the token must not."""
    settings = Settings.from_config({"api_token": TOKEN, "api_url": "https://x.example/api/v1"})
    assert_no_token(repr(settings), "repr(Settings)")
    assert_no_token(str(settings), "str(Settings)")


def test_detail_answer_echoing_the_token_prefix_is_not_a_leak(
    crafted: Callable[..., CraftedApi],
) -> None:
    """`_meta.token_prefix` (the public 11 characters) never reaches a record."""
    api = crafted(one_conversation_api(conversation_detail(_meta={"token_prefix": TOKEN[:11]})))
    out = run_sync(crafted_config(api, api_token=TOKEN), streams=["conversations"])
    assert out.records("conversations")
    assert TOKEN[:11] not in repr(out.messages)


# --- server content that echoes the token into a 200 answer ------------------------------

#: Every piece of the token a message could keep: 6 characters or more are masked.
TOKEN_PIECES = {TOKEN[i : i + 6] for i in range(len(TOKEN) - 5)}
TIES = [{"id": f"0b7c2a4e-3333-4a2b-9c3d-{n:012d}", "date": DATE} for n in range(25)]
SPREAD = [
    {"id": f"0b7c2a4e-4444-4a2b-9c3d-{n:012d}", "date": f"2099-01-01T10:{n:02d}:00.000Z"}
    for n in range(25)
]


def _list_answer(items: list[Any], *, has_more: bool, cursor: object) -> Answer:
    return Answer(
        body={
            "conversations": items,
            "pagination": {"has_more": has_more, "next_cursor": cursor, "limit": 25},
        }
    )


def _echo_item_without_id(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    item = {"date": DATE, "title": api.authorizations[-1]}
    return _list_answer([item], has_more=False, cursor=None)


def _echo_id_without_date(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    return _list_answer([{"id": api.authorizations[-1], "date": "x"}], has_more=False, cursor=None)


def _echo_stuck_cursor(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    return _list_answer(TIES, has_more=True, cursor=api.authorizations[-1])


def _echo_fresh_cursor(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    # The same page whatever is asked, with a new cursor each time: nothing new arrives.
    cursor = f"{api.authorizations[-1]}#{len(api.requests)}"
    return _list_answer(SPREAD, has_more=True, cursor=cursor)


def _echo_empty_page(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    return _list_answer([], has_more=True, cursor=api.authorizations[-1])


def _echo_date_value(api: CraftedApi, path: str) -> Answer:
    detail = conversation_detail(date=api.authorizations[-1])
    return one_conversation_api(detail)(path, {})


def _echo_error_body(api: CraftedApi, path: str) -> Answer:  # noqa: ARG001
    return Answer(400, {"error": "bad_request", "message": f"rejected {api.authorizations[-1]}"})


#: (responder, what the message must still say), one per message that quotes the server.
ECHOES: dict[str, tuple[Callable[[CraftedApi, str], Answer], str]] = {
    "item-without-id": (_echo_item_without_id, "GET /conversations listed an item without an id"),
    "id-without-date": (_echo_id_without_date, "without a valid date"),
    "cursor-stuck": (_echo_stuck_cursor, "its cursor does not advance (next_cursor: 'Bearer "),
    "cursor-brings-nothing": (_echo_fresh_cursor, "stopped bringing new conversations"),
    "empty-page": (_echo_empty_page, "said has_more but listed nothing (next_cursor: 'Bearer "),
    "record-shape": (_echo_date_value, "field 'date' is 'Bearer [api_token]', not a date-time"),
    "error-body": (_echo_error_body, "GET /conversations answered HTTP 400: 'rejected Bearer "),
}


def assert_no_token_piece(text: str, where: str) -> None:
    """No piece of 6 or more characters of the token appears in `text`."""
    lines = [line for line in text.splitlines() if any(p in line for p in TOKEN_PIECES)]
    assert not lines, f"pieces of the token leaked into {where}: {lines}"


@pytest.fixture(params=sorted(ECHOES))
def echoing_api(
    request: pytest.FixtureRequest, crafted: Callable[..., CraftedApi]
) -> tuple[CraftedApi, str]:
    """A crafted API echoing the request's Authorization header where a message quotes it."""
    echo, says = ECHOES[request.param]
    api: CraftedApi = crafted(lambda path, _query: echo(api, path))
    return api, says


def test_a_200_answer_echoing_the_token_leaks_no_piece_into_the_logs(
    echoing_api: tuple[CraftedApi, str], tmp_path: Path
) -> None:
    api, says = echoing_api
    config = crafted_config(api, api_token=TOKEN)
    catalog = catalog_selecting(config, ["conversations"])
    result = run_cli(tmp_path, config, catalog=catalog, env=DEBUG, fast_retries=True)
    assert set(api.authorizations) == {f"Bearer {TOKEN}"}  # the echo really carried it
    assert result.returncode == 1, result.stderr[-3000:]
    assert_debug_logging(result)
    assert "Traceback" not in result.stderr
    assert any(says in line for line in result.error_lines), result.stderr[-3000:]
    assert "[api_token]" in result.stderr  # masked where it was quoted, not left out
    assert_no_token_piece(result.output, "the output")


def test_a_200_answer_echoing_the_token_leaks_no_piece_into_the_exception(
    echoing_api: tuple[CraftedApi, str],
) -> None:
    api, says = echoing_api
    with pytest.raises(TapConversationsError) as caught:
        run_sync(crafted_config(api, api_token=TOKEN), streams=["conversations"])
    assert set(api.authorizations) == {f"Bearer {TOKEN}"}
    texts = _exception_texts(caught.value)
    assert says in str(caught.value)
    assert_no_token_piece(texts, "the exception")


def test_quoting_masks_the_tokens_of_live_clients_only() -> None:
    """The client registers its token for masking while it lives; a cut comes after the mask."""
    from tap_conversations import redaction  # noqa: PLC0415
    from tap_conversations.client import ApiClient  # noqa: PLC0415
    from tap_conversations.rate_limit import RequestPacer  # noqa: PLC0415

    echo = {"note": f"{'x' * 190} Bearer {TOKEN}", "cursor": f"?cursor=Bearer%20{TOKEN}"}
    client = ApiClient(
        base_url="http://127.0.0.1:9/api/v1",
        token=TOKEN,
        pacer=RequestPacer(60),
        timeout_seconds=5,
        max_connections=1,
        user_agent="tests",
    )
    try:
        for text in (redaction.quote(echo), redaction.quote(echo["note"]), repr(echo)):
            assert_no_token_piece(redaction.excerpt(text, 10_000), "a quote")
        assert redaction.quote(echo["note"]).endswith("Bearer [a'")
        assert len(redaction.quote(echo, 50)) == 50
    finally:
        client.close()
    assert TOKEN in redaction.quote(echo["cursor"])  # no longer masked, nor any other text

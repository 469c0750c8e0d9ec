"""Shared test helpers: the real CLI, and a crafted API for answers the sandbox cannot give.

`run_cli` runs the real `tap-conversations` executable; `CraftedApi` is a loopback HTTP
server answering exactly the bodies a test crafts (a `responder(path, query)`), with
`/me` answered for it. The fixtures `crafted` and `fast_retries` are registered by
tests/conftest.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug.wrappers import Request, Response

from tap_conversations import client as client_module
from tap_conversations.conversation_fetch import ConversationFetcher

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tap_conversations.conversation_fetch import ConversationBundle
    from tap_conversations.conversation_filters import ListedConversation


ROOT = Path(__file__).resolve().parent.parent
_EXE = Path(sys.executable).with_name("tap-conversations")
TAP_EXE = str(_EXE) if _EXE.exists() else (shutil.which("tap-conversations") or "tap-conversations")
#: On a CLI run's PYTHONPATH: its sitecustomize.py shortens the waits between retries.
FAST_RETRIES_DIR = Path(__file__).resolve().parent / "fast_retries"
#: Environment variables that would change what the CLI does under test.
_ENV_DROP = ("LOGLEVEL", "TAP_CONVERSATIONS_LOGLEVEL", "SINGER_SDK_LOG_CONFIG")

CONVERSATION_ID = "0b7c2a4e-1111-4a2b-9c3d-000000000001"
INSIGHT_ID = "0b7c2a4e-2222-4a2b-9c3d-000000000001"
DATE = "2099-01-01T10:00:00.000Z"  # never below the 30-day floor
GIVE_UP = "crafted server: request limit reached"
UNKNOWN_TOKEN = "mt_00000000_ffffffffffffffff"  # noqa: S105  # a token no server knows
DETAIL_STREAMS = ["conversations", "transcripts", "transcript_segments", "insights"]


# --- Release files -------------------------------------------------------------------


def _load_check_dist() -> Any:  # a script's module, loaded by path
    """scripts/check_dist.py (a script, not a package module): build and try the release files."""
    spec = importlib.util.spec_from_file_location("check_dist", ROOT / "scripts/check_dist.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check_dist = _load_check_dist()


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The release wheel, built from the sdist, both checked (`twine check --strict`,
    contents): what tests/test_dist.py installs on each Python and what the new Meltano
    project of tests/test_meltano_new_project.py installs through its definition."""
    _sdist, built = check_dist.build(tmp_path_factory.mktemp("dist"))
    path: Path = built
    return path


# --- Meltano -------------------------------------------------------------------------


def find_meltano() -> Path | None:
    """The meltano executable: $MELTANO_BIN, the setup script's venv, or PATH."""
    env = os.environ.get("MELTANO_BIN")
    if env:
        return Path(env) if Path(env).is_file() else None
    local = ROOT / ".venv" / "meltano" / "bin" / "meltano"
    if local.is_file():
        return local
    found = shutil.which("meltano")
    return Path(found) if found else None


def required_meltano() -> Path:
    """The meltano executable; fails under CI=true, skips elsewhere, when there is none."""
    from tests.postgres import unavailable  # noqa: PLC0415 - postgres.py registers fixtures

    exe = find_meltano()
    if exe is None:
        unavailable(
            "meltano not found: run scripts/setup.sh (puts it in .venv/meltano) or set MELTANO_BIN"
        )
    return exe


def meltano_environ() -> dict[str, str]:
    """This process's environment without settings that would steer meltano elsewhere."""
    prefixes = ("MELTANO_", "TAP_CONVERSATIONS_", "TARGET_POSTGRES_", "TARGET_DUCKDB_", "DBT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


#: How long one meltano command may take.
MELTANO_TIMEOUT_SECONDS = 300


@dataclass(kw_only=True)
class MeltanoRunner:
    """The real meltano CLI in a project directory; a failed command fails the test.

    Every Meltano test runs it through :meth:`run`; they differ in the project directory
    (`project`), the system database (:meth:`environ` adds what a subclass needs) and how
    many lines of the output's tail a failure shows (`tail_lines`).
    """

    exe: Path
    env: dict[str, str]
    project: Path = ROOT
    tail_lines: int = 80

    def environ(self, project: Path) -> dict[str, str]:  # noqa: ARG002 - for subclasses
        """The environment of a command run in `project` (before a run's `extra_env`)."""
        return self.env

    def run(
        self,
        *args: str,
        project: Path | None = None,
        extra_env: dict[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """``meltano ARGS`` in `project` (default: this one's); with `check` a non-zero
        exit fails the test with the output's last `tail_lines` lines."""
        where = project or self.project
        started = time.monotonic()
        result = subprocess.run(  # noqa: S603 - the meltano CLI with fixed arguments
            [str(self.exe), *args],
            cwd=where,
            env={**self.environ(where), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=MELTANO_TIMEOUT_SECONDS,
            check=False,
        )
        if check and result.returncode != 0:
            tail = "\n".join((result.stderr + result.stdout).splitlines()[-self.tail_lines :])
            pytest.fail(
                f"`meltano {' '.join(args)}` in {where} exited {result.returncode} after "
                f"{time.monotonic() - started:.1f}s:\n{tail}",
                pytrace=False,
            )
        return result


@pytest.fixture(scope="session")
def meltano_plugins(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The meltano executable, with the project's tap and target-postgres installed.

    Installed once per session into the project's `.meltano/` (every test that runs the
    project's plugins runs these same venvs); a test of a fresh project or clone
    installs its own. Up to date after scripts/setup.sh: then this only checks them.
    """
    exe = required_meltano()
    system_dir = tmp_path_factory.mktemp("meltano-install")
    installer = MeltanoRunner(
        exe=exe,
        env={
            **meltano_environ(),
            "MELTANO_PROJECT_ROOT": str(ROOT),
            "MELTANO_ENVIRONMENT": "dev",
            "MELTANO_DATABASE_URI": f"sqlite:///{system_dir}/meltano.db",
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "NO_COLOR": "1",
        },
    )
    installer.run("install", "tap-conversations", "target-postgres")
    return exe


# --- the CLI -------------------------------------------------------------------------


@dataclass
class CliResult:
    """What one run of the executable printed and returned."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Complete Singer messages on stdout (a line cut by a kill is dropped)."""
        out = []
        for line in self.stdout.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                out.append(message)
        return out

    def records(self, stream: str) -> list[dict[str, Any]]:
        """Records of one stream."""
        return [
            m["record"]
            for m in self.messages
            if m.get("type") == "RECORD" and m["stream"] == stream
        ]

    @property
    def error_lines(self) -> list[str]:
        """stderr lines logged at ERROR level."""
        return [line for line in self.stderr.splitlines() if "| ERROR" in line]

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + "\n" + self.stderr


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for a CLI run: ours, minus log settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
    env.update(extra)
    return env


def run_cli(  # noqa: PLR0913
    workdir: Path,
    config: dict[str, Any] | None,
    *args: str,
    catalog: dict[str, Any] | None = None,
    state: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    fast_retries: bool = False,
) -> CliResult:
    """Run `tap-conversations --config <file> [--catalog] [--state] *args` to its end.

    With `fast_retries` the run's transient retries wait milliseconds, not seconds
    (tests/fast_retries/sitecustomize.py): as many retries, the same last line.
    """
    command = [TAP_EXE]
    run_env = env or cli_env()
    if fast_retries:
        paths = [str(FAST_RETRIES_DIR), run_env.get("PYTHONPATH", "")]
        run_env = {**run_env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    for name, value in (("config", config), ("catalog", catalog), ("state", state)):
        if value is not None:
            path = workdir / f"{name}.json"
            path.write_text(json.dumps(value), encoding="utf-8")
            command += [f"--{name}", str(path)]
    completed = subprocess.run(  # noqa: S603  # our own executable
        [*command, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=run_env,
        cwd=workdir,
        check=False,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


# --- a crafted API -------------------------------------------------------------------


@dataclass
class Answer:
    """One crafted HTTP answer."""

    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | str = b"{}"
    content_type: str = "application/json"

    def raw(self) -> bytes:
        """The body as bytes."""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


CRAFTED_ACCOUNT = {
    "id": "6f1c2d3e-0000-4000-8000-00000000ac01",
    "name": "Crafted account",
    "created_at": "2026-01-01T00:00:00.000Z",
    "updated_at": "2026-01-01T00:00:00.000Z",
    "brand_name": None,
    "brand_logo_url": None,
}


@dataclass
class CraftedApi:
    """pytest-httpserver answering `responder(path, query)` for every GET.

    Paths are relative to the base URL (`/api/v1`). Every request is logged in
    `requests` as (path, query). Past `limit` requests it answers 400 `GIVE_UP`, so
    that a tap caught in a loop fails its test instead of hanging it. A responder is
    a plain function of path and query, so that a test crafts a whole API in a few
    lines; pytest-httpserver serves it.
    """

    responder: Callable[[str, dict[str, str]], Answer]
    limit: int = 40
    #: The answer to GET /me (every sync reads the account); None: ask the responder.
    account: dict[str, Any] | None = field(default_factory=lambda: dict(CRAFTED_ACCOUNT))
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)
    _server: HTTPServer | None = None

    @property
    def base_url(self) -> str:
        """The API base URL."""
        assert self._server is not None
        return self._server.url_for("/api/v1")

    def start(self) -> CraftedApi:
        """Serve on a free loopback port."""
        self._server = HTTPServer(host="127.0.0.1", port=0)
        self._server.expect_request(re.compile(".*"), method="GET").respond_with_handler(
            self._answer
        )
        self._server.start()
        return self

    def _answer(self, request: Request) -> Response:
        path = request.path.removeprefix("/api/v1")
        query = {key: request.args[key] for key in request.args}
        self.requests.append((path, query))
        self.authorizations.append(request.headers.get("Authorization", ""))
        if len(self.requests) > self.limit:
            answer = Answer(400, {"error": "stop", "message": GIVE_UP})
        elif path == "/me" and self.account is not None:
            answer = Answer(body=self.account)
        else:
            answer = self.responder(path, query)
        return Response(answer.raw(), status=answer.status, content_type=answer.content_type)

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None and self._server.is_running():
            self._server.stop()

    def paths(self) -> list[str]:
        """Requested paths, in order."""
        return [path for path, _ in self.requests]


@pytest.fixture(name="crafted")
def crafted_fixture() -> Iterator[Callable[[Callable[[str, dict[str, str]], Answer]], CraftedApi]]:
    """Start crafted APIs; all are stopped at teardown."""
    started: list[CraftedApi] = []

    def make(responder: Callable[[str, dict[str, str]], Answer]) -> CraftedApi:
        api = CraftedApi(responder).start()
        started.append(api)
        return api

    yield make
    for api in started:
        api.stop()


def conversation_detail(**changes: Any) -> dict[str, Any]:
    """A valid conversation detail with transcript and insights; `changes` applied.

    A change to the value `...` (Ellipsis) removes the key.
    """
    detail: dict[str, Any] = {
        "id": CONVERSATION_ID,
        "title": "Renewal call",
        "company": "Acme",
        "date": DATE,
        "duration": 300,
        "medium": "call",
        "sentiment": "positive",
        "conversation_type": "sales",
        "summary": "They renewed.",
        "department": None,
        "user": None,
        "participants": [{"name": "Ann", "email": "ann@example.com", "role": "customer"}],
        "transcript": {"segments": [{"speaker": "A", "text": "Hi", "start": 0.0, "end": 1.5}]},
        "insights": [
            {
                "id": INSIGHT_ID,
                "insight_type": "kpi",
                "insight_text": "Renewed",
                "kpi_slug": None,
                "kpi_label": None,
                "impact": "high",
                "start_time_seconds": 0.0,
                "end_time_seconds": 1.0,
                "message_index": 0,
            }
        ],
    }
    for key, value in changes.items():
        if value is ...:
            detail.pop(key, None)
        else:
            detail[key] = value
    return detail


def one_conversation_api(
    detail: dict[str, Any] | Answer, listed: dict[str, Any] | None = None
) -> Callable[[str, dict[str, str]], Answer]:
    """A responder listing one conversation and answering `detail` for it."""
    item = listed or {"id": CONVERSATION_ID, "date": DATE}

    def respond(path: str, query: dict[str, str]) -> Answer:  # noqa: ARG001
        if path == "/conversations":
            return Answer(
                body={"conversations": [item], "pagination": {"has_more": False, "limit": 25}}
            )
        if path == f"/conversations/{CONVERSATION_ID}":
            return detail if isinstance(detail, Answer) else Answer(body=detail)
        return Answer(404, {"error": "not_found", "message": "No such thing."})

    return respond


def crafted_config(api: CraftedApi, **overrides: Any) -> dict[str, Any]:
    """A config for a crafted API: fast pace, the clock's 30-day floor irrelevant."""
    return {
        "api_token": "mt_crafted_token_0000",
        "api_url": api.base_url,
        "max_requests_per_minute": 100_000,
        **overrides,
    }


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Transient retries without the waits (same count of tries)."""
    monkeypatch.setattr(client_module, "TRANSIENT_BASE_SECONDS", 0.001)
    monkeypatch.setattr(client_module, "TRANSIENT_MAX_WAIT_SECONDS", 0.002)


def assert_no_traceback(result: CliResult) -> None:
    """No Python traceback anywhere in the output."""
    assert "Traceback" not in result.output, result.stderr[-3000:]


# --- ordering the fetch pool ----------------------------------------------------------

#: How long a held detail waits at most for what should happen meanwhile (seconds).
DETAIL_HOLD_SECONDS = 10.0


def hold_detail(
    monkeypatch: pytest.MonkeyPatch,
    conversation_id: str,
    until: Callable[[], bool],
    failing: str,
    *,
    then_wait: float = 0.0,
) -> None:
    """Hold one conversation's detail request back until `until()` holds, then `then_wait`.

    The fetch pool's threads race; holding one back is how a test orders them. Held
    once; `failing` is the assertion's message when `until()` never holds.
    """
    detail_of = ConversationFetcher._detail_of
    held = {conversation_id}

    def held_back(
        fetcher: ConversationFetcher, conversation: ListedConversation
    ) -> ConversationBundle:
        if conversation.id in held:
            held.discard(conversation.id)
            deadline = time.monotonic() + DETAIL_HOLD_SECONDS
            while not until():
                assert time.monotonic() < deadline, failing
                time.sleep(0.005)
            time.sleep(then_wait)
        return detail_of(fetcher, conversation)

    monkeypatch.setattr(ConversationFetcher, "_detail_of", held_back)

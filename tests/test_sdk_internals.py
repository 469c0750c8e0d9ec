"""The private singer-sdk members the tap relies on: present, same shape, used in one place.

An SDK upgrade that renames or reshapes one of them fails here, loudly, instead of
silently changing the tap's behaviour (a second SCHEMA per chunk, a per-record bookmark,
a run that exits 0 on SIGTERM).
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from singer_sdk import Stream, Tap

from tap_conversations import pooled_get, sdk_internals
from tap_conversations.tap import TapConversations, installed_version

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Each private member with the parameters the fence was written against (singer-sdk 0.54).
EXPECTED_PARAMETERS: dict[tuple[type, str], list[str]] = {
    (Stream, "_write_schema_message"): ["self"],
    (Stream, "_increment_stream_state"): ["self", "latest_record", "context"],
    (Stream, "_sync_children"): ["self", "child_context"],
    (Stream, "_write_state_message"): ["self"],
    (Tap, "_validate_config"): ["self", "raise_errors"],
    (Tap, "_handle_termination"): ["self", "signum", "frame"],
    (Stream, "_write_activate_version_message"): ["self", "full_table_version"],
}
PACKAGE = Path(sdk_internals.__file__).parent


def test_the_fence_lists_exactly_the_members_checked_here() -> None:
    assert set(sdk_internals.SDK_PRIVATE_MEMBERS) == set(EXPECTED_PARAMETERS)


@pytest.mark.parametrize(("owner", "name"), list(EXPECTED_PARAMETERS), ids=str)
def test_each_private_member_exists_with_the_same_parameters(owner: type, name: str) -> None:
    member = getattr(owner, name, None)
    assert callable(member), f"singer-sdk no longer has {owner.__name__}.{name}"
    parameters = list(inspect.signature(member).parameters)
    assert parameters == EXPECTED_PARAMETERS[owner, name], (
        f"singer-sdk changed {owner.__name__}.{name}{inspect.signature(member)}; "
        "review tap_conversations/sdk_internals.py"
    )


def test_pyproject_lists_the_members_next_to_the_pin() -> None:
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    for owner, name in EXPECTED_PARAMETERS:
        assert f"{owner.__name__}.{name}" in pyproject


def private_sdk_names_used(path: Path) -> set[str]:
    """Private attribute names used in a module that the SDK's Stream or Tap defines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        name = ""
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.FunctionDef):
            name = node.name
        private = name.startswith("_") and not name.startswith("__")
        if private and (hasattr(Stream, name) or hasattr(Tap, name)):
            names.add(name)
    return names


def test_no_other_module_names_a_private_sdk_member() -> None:
    offenders = {
        path.name: used
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != "sdk_internals.py" and (used := private_sdk_names_used(path))
    }
    assert offenders == {}
    assert private_sdk_names_used(PACKAGE / "sdk_internals.py") == {
        name for _, name in EXPECTED_PARAMETERS
    }


def _sdk_function(dotted: str) -> object:
    """The function a dotted path names (a property's getter for a property)."""
    owner_path, name = dotted.rsplit(".", 1)
    try:
        owner: object = importlib.import_module(owner_path)
    except ModuleNotFoundError:
        module_path, class_name = owner_path.rsplit(".", 1)
        owner = getattr(importlib.import_module(module_path), class_name)
    member = inspect.getattr_static(owner, name)
    return member.fget if isinstance(member, property) else getattr(owner, name)


@pytest.mark.parametrize(("message", "where"), list(sdk_internals.SDK_NOISE.items()))
def test_each_demoted_sdk_line_is_still_logged_by_the_sdk(message: str, where: str) -> None:
    """An SDK upgrade that rewords a line would bring it back at INFO: fail here instead."""
    source = inspect.getsource(_sdk_function(where))  # type: ignore[arg-type]
    assert repr(message)[1:-1] in source or message in source, (
        f"singer-sdk no longer logs {message!r} in {where}; update SDK_NOISE in "
        "tap_conversations/sdk_internals.py"
    )


def test_state_writes_only_when_the_state_changed_without_copying_it() -> None:
    """The tap's replacement of `state_writer.write_state` keeps the SDK's condition."""
    written: list[dict] = []
    write = sdk_internals.StateOnChange(lambda message: written.append(message.to_dict()))
    state = {"bookmarks": {"conversations": {"pending": {"a": {"date": "x"}}, "seen": {}}}}
    write(state)
    write(state)
    assert len(written) == 1
    state["bookmarks"]["conversations"]["pending"]["a"]["date"] = "y"  # changed in place
    write(state)
    assert len(written) == 2
    assert written[-1]["value"]["bookmarks"]["conversations"]["pending"]["a"]["date"] == "y"
    # The same content with its keys in another order is the same state.
    write({"bookmarks": {"conversations": {"seen": {}, "pending": {"a": {"date": "y"}}}}})
    assert len(written) == 2


# --- requests and urllib3 below Session.get (tap_conversations/pooled_get.py) ------------


@pytest.mark.parametrize(("owner", "name", "parameters"), pooled_get.FENCED_MEMBERS)
def test_each_requests_member_the_pooled_get_uses_has_the_same_parameters(
    owner: str, name: str, parameters: tuple[str, ...]
) -> None:
    module_name, class_name = owner.rsplit(".", 1)
    member = getattr(getattr(importlib.import_module(module_name), class_name), name, None)
    assert callable(member), f"requests no longer has {owner}.{name}"
    assert tuple(inspect.signature(member).parameters) == parameters, (
        f"requests changed {owner}.{name}{inspect.signature(member)}; "
        "review tap_conversations/pooled_get.py"
    )


class RecordingServer:
    """Answers every GET with `{}` and keeps each request's bytes as they arrived."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    received += chunk
                self.requests.append(received)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                )

    def close(self) -> None:
        self._listener.close()


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("base_path", "path", "params"),
    [
        ("/api/v1", "/me", None),
        (
            "/api/v1",
            "/conversations",
            {"limit": "25", "date_from": "2026-11-27T10:00:00.000+01:00", "medium": "a b&c"},
        ),
        ("/api/v1", "/conversations/3fa85f64-5717-4562-b3fc-2c963f66afa6", {"x": "1"}),
        ("/api/v1", "/conversations/odd id %41/ä?/summary", None),  # requests re-quotes it
        ("", "/users", {}),
    ],
)
def test_a_pooled_get_sends_the_bytes_session_get_sends(
    recording_server: RecordingServer, base_path: str, path: str, params: dict[str, str] | None
) -> None:
    base_url = f"http://127.0.0.1:{recording_server.port}{base_path}"
    session = requests.Session()
    session.trust_env = False
    session.headers.update({"Authorization": "Bearer mt_x", "Accept": "application/json"})
    session.get(base_url + path, params=params, timeout=(5, 5), allow_redirects=False).close()
    answer = pooled_get.PooledGet(session, base_url, (5, 5)).get(path, params)
    assert answer.status == 200
    answer.read()
    answer.release_conn()
    session.close()
    by_session, pooled = recording_server.requests
    assert pooled == by_session


def test_a_refused_connection_is_the_requests_error_session_get_raises() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/api/v1"
    session = requests.Session()
    with pytest.raises(requests.exceptions.ConnectionError) as by_session:
        session.get(base_url + "/me", timeout=(5, 5))
    with pytest.raises(requests.exceptions.ConnectionError) as pooled:
        pooled_get.PooledGet(session, base_url, (5, 5)).get("/me", None)
    assert type(pooled.value) is type(by_session.value)
    assert type(pooled.value.args[0]) is type(by_session.value.args[0])


@pytest.mark.parametrize("package", ["tap-conversations", "singer_sdk", "singer-sdk", "requests"])
def test_the_version_read_from_the_metadata_headers_is_importlib_metadatas(package: str) -> None:
    assert installed_version(package) == importlib.metadata.version(package)


def test_the_versions_the_sdk_logs_are_its_own() -> None:
    assert TapConversations.plugin_version == importlib.metadata.version("tap-conversations")
    assert TapConversations.get_sdk_version() == importlib.metadata.version("singer-sdk")
    assert installed_version("no-such-distribution-here") is None

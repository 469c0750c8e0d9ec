"""The private singer-sdk members the tap relies on: present, same shape, used in one place.

An SDK upgrade that renames or reshapes one of them fails here, loudly, instead of
silently changing the tap's behaviour (a second SCHEMA per chunk, a per-record bookmark,
a run that exits 0 on SIGTERM).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from singer_sdk import Stream, Tap

from tap_conversations import sdk_internals

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

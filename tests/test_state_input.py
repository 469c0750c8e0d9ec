"""Every form of state input through the real CLI: it resumes, or it ends with one line.

None of them may turn into a silent sync of everything again (on the sandbox: every
listed conversation fetched again, one request and one quota unit each).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from tap_conversations.errors import StateError
from tests.harness import catalog_selecting, tap_config
from tests.helpers import CliResult, assert_no_traceback, run_cli

if TYPE_CHECKING:
    from pathlib import Path

    from tests.sandbox import Sandbox

DETAILS = "/conversations/{id}"
STREAMS = ["conversations", "transcripts"]


def sync(sandbox: Sandbox, workdir: Path, state_text: str | None = None) -> CliResult:
    """`tap-conversations --config --catalog [--state]`, the state file holding `state_text`."""
    args: list[str] = []
    if state_text is not None:
        path = workdir / "state-input.json"
        path.write_text(state_text, encoding="utf-8")
        args = ["--state", str(path)]
    config = tap_config(sandbox)
    return run_cli(workdir, config, *args, catalog=catalog_selecting(config, STREAMS))


def last_state(result: CliResult) -> dict[str, Any]:
    states = [m["value"] for m in result.messages if m.get("type") == "STATE"]
    assert states, result.stderr[-2000:]
    value: dict[str, Any] = states[-1]
    return value


def test_meltano_state_get_output_resumes_without_a_resync(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """`meltano state get <id> > state.json` prints `{"singer_state": {...}}`."""
    first = sync(sandbox, tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    listed = len(sandbox.listed_conversations())
    assert sandbox.counters.requests(endpoint=DETAILS) == listed  # every one, once
    state = last_state(first)

    sandbox.reset_counters()
    plain = sync(sandbox, tmp_path, json.dumps(state))
    assert plain.returncode == 0, plain.stderr[-2000:]
    resumed = sandbox.counters.by_endpoint()

    sandbox.reset_counters()
    wrapped = sync(sandbox, tmp_path, json.dumps({"singer_state": state}))
    assert wrapped.returncode == 0, wrapped.stderr[-2000:]
    assert_no_traceback(wrapped)
    assert sandbox.counters.requests(endpoint=DETAILS) == 0  # no conversation again
    assert wrapped.records("conversations") == []
    # Exactly what the same state unwrapped costs, request for request.
    assert sandbox.counters.by_endpoint() == resumed
    # The same state comes out, but for the coverage's settled end, which is the run's
    # clock minus the late-data window (the two runs are a moment apart).
    assert without_coverage(last_state(wrapped)) == without_coverage(last_state(plain))


def without_coverage(state: dict[str, Any]) -> dict[str, Any]:
    conversations = dict(state["bookmarks"]["conversations"])
    assert conversations.pop("coverage")
    return {**state, "bookmarks": {**state["bookmarks"], "conversations": conversations}}


#: (id, the state file's text, the important part of the one line)
REFUSED: list[tuple[str, str, str]] = [
    ("list", '[{"bookmarks": {}}]', "state-input.json holds a JSON list, not an object"),
    ("empty_list", "[]", "state-input.json holds a JSON list, not an object"),
    ("string", '"bookmarks"', "state-input.json holds a JSON string, not an object"),
    ("number", "42", "state-input.json holds a JSON number, not an object"),
    ("null", "null", "state-input.json holds a JSON null, not an object"),
    (
        "another_taps_state",
        '{"currently_syncing": null, "streams": {"orders": {"cursor": "s3cr3t-value"}}}',
        (
            "The state has no 'bookmarks' (its top-level keys: 'currently_syncing', 'streams'), "
            "so it is not a state of this tap (another tap's, or mistyped); read as empty it "
            "would sync everything again."
        ),
    ),
    (
        "mistyped_bookmarks",
        '{"bookmark": {"conversations": {}}}',
        "The state has no 'bookmarks' (its top-level keys: 'bookmark'), so it is not",
    ),
    (
        "foreign_state_inside_singer_state",
        '{"singer_state": {"orders": {"cursor": 1}}}',
        "The state's singer_state has no 'bookmarks' (its top-level keys: 'orders'),",
    ),
    ("singer_state_null", '{"singer_state": null}', "The state's singer_state is a JSON null"),
    (
        "state_message_without_value",
        '{"type": "STATE"}',
        "The state has no 'bookmarks' (its top-level keys: 'type'),",
    ),
]


@pytest.mark.parametrize(
    ("state_text", "says"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_an_unusable_state_is_one_line_and_nothing_is_requested(
    sandbox: Sandbox, tmp_path: Path, state_text: str, says: str
) -> None:
    result = sync(sandbox, tmp_path, state_text)
    assert result.returncode == StateError.exit_code
    assert_no_traceback(result)
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    line = result.error_lines[0]
    assert says in line, line
    assert line.endswith(StateError.FIX), line
    assert "s3cr3t" not in result.output  # the keys only, never a value
    assert result.stdout.strip() == ""
    assert sandbox.counters.requests() == 0


def test_a_foreign_states_keys_are_cut_short_on_one_line(sandbox: Sandbox, tmp_path: Path) -> None:
    state = {f"key{n:02d}": n for n in range(20)} | {"a\nlong " + "x" * 100: 0}
    result = sync(sandbox, tmp_path, json.dumps(state))
    assert result.returncode == StateError.exit_code
    assert len(result.error_lines) == 1, result.stderr[-3000:]
    assert (
        "(its top-level keys: 'a\\nlong xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 'key00', 'key01', "
        "'key02', 'key03', 'key04', 'key05', 'key06', … (21 in all))"
    ) in result.error_lines[0]
    assert sandbox.counters.requests() == 0


@pytest.mark.parametrize("state_text", ["", "  \n", "{}", '{"singer_state": {}}'])
def test_an_empty_state_is_a_first_run(sandbox: Sandbox, tmp_path: Path, state_text: str) -> None:
    result = sync(sandbox, tmp_path, state_text)
    assert result.returncode == 0, result.stderr[-2000:]
    assert_no_traceback(result)
    assert result.error_lines == []
    assert sandbox.counters.requests(endpoint=DETAILS) == len(sandbox.listed_conversations())

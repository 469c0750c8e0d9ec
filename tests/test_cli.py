"""The executable's start: the tap imported with the collector paused, its objects frozen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Counts the collector's runs while the tap is imported the executable's way.
IMPORT_AS_THE_EXECUTABLE_DOES = """
import gc, json, sys
from tap_conversations import cli
collections = []


def importing():
    tap = sys.modules.get("tap_conversations.tap")
    return getattr(tap, "TapConversations", None) is None


gc.callbacks.append(lambda phase, info: phase == "start" and importing() and collections.append(1))
tap = cli.import_tap()
print(json.dumps({
    "collections": len(collections),
    "frozen": gc.get_freeze_count(),
    "enabled": gc.isenabled(),
    "tap": tap.name,
    "sdk_imported": "singer_sdk" in sys.modules,
}))
"""


def test_the_tap_is_imported_without_a_collection_and_its_objects_are_frozen() -> None:
    out = subprocess.run(  # noqa: S603  # this interpreter, a fixed script
        [sys.executable, "-c", IMPORT_AS_THE_EXECUTABLE_DOES],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    found = json.loads(out.stdout)
    assert found["tap"] == "tap-conversations"
    assert found["sdk_imported"]
    assert found["collections"] == 0, found
    # The SDK's import alone makes more than this; left unfrozen, it would be 0.
    assert found["frozen"] > 50_000, found
    assert found["enabled"], found


def test_the_executable_and_python_m_run_the_same_entry_point() -> None:
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'tap-conversations = "tap_conversations.cli:main"' in scripts
    about = subprocess.run(
        [sys.executable, "-m", "tap_conversations", "--about", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert json.loads(about.stdout)["name"] == "tap-conversations"

"""The README says what the code does: its tables are generated, its examples run."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tests.harness import run_sync, tap_config

if TYPE_CHECKING:
    from tests.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _readme_tables_module():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location(
        "readme_tables", ROOT / "scripts/readme_tables.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_settings_and_streams_tables_match_the_code() -> None:
    tables = _readme_tables_module()
    assert tables.render(README) == README, "run: python scripts/readme_tables.py"
    assert tables.settings_table() in README
    assert "| transcript_segments | conversation_id, segment_index |" in README


def test_stream_maps_example_hashes_participant_emails(sandbox: Sandbox) -> None:
    block = re.search(r"### Stream maps.*?```yaml\n(.*?)```", README, re.DOTALL)
    assert block is not None
    stream_maps = yaml.safe_load(block.group(1))["config"]["stream_maps"]
    out = run_sync(tap_config(sandbox, stream_maps=stream_maps), streams=["conversations"])
    participants = [p for r in out.records("conversations") for p in r["participants"]]
    assert participants
    truth = {
        c["id"]: sandbox.conversation_detail(c["id"])["participants"]
        for c in sandbox.listed_conversations()
    }
    for record in out.records("conversations"):
        expected = [
            hashlib.sha256(p["email"].encode()).hexdigest() if p["email"] else None
            for p in truth[record["id"]]
        ]
        assert [p["email_hash"] for p in record["participants"]] == expected
        assert all("email" not in p for p in record["participants"])


def test_architecture_names_every_module() -> None:
    """docs/ARCHITECTURE.md stays true: a module it does not name fails this test."""
    root = Path(__file__).resolve().parent.parent
    text = (root / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = sorted(
        path.name
        for path in (root / "tap_conversations").glob("*.py")
        if path.name not in {"__init__.py", "__main__.py"}
    )
    assert [name for name in modules if f"`{name}`" not in text and name not in text] == []

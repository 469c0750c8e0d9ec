"""meltano.yml repeats the tap's settings for Meltano; they must agree with the code."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml

from tap_conversations.settings import CONFIG_SCHEMA
from tap_conversations.tap import TapConversations

ROOT = Path(__file__).resolve().parent.parent


def _meltano_kind(property_schema: dict) -> str:
    types = [t for t in property_schema["type"] if t != "null"]
    if property_schema.get("format") == "date-time":
        return "date_iso8601"
    return {"string": "string", "integer": "integer", "boolean": "boolean", "array": "array"}[
        types[0]
    ]


def test_meltano_yml_declares_exactly_the_taps_settings() -> None:
    project = yaml.safe_load((ROOT / "meltano.yml").read_text(encoding="utf-8"))
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-conversations")
    declared = {setting["name"]: setting for setting in tap["settings"]}
    with_builtins = copy.deepcopy(CONFIG_SCHEMA)
    TapConversations.append_builtin_config(with_builtins)  # stream maps, flattening, ...
    assert set(CONFIG_SCHEMA["properties"]) <= set(declared) <= set(with_builtins["properties"])
    for name, property_schema in CONFIG_SCHEMA["properties"].items():
        assert declared[name]["kind"] == _meltano_kind(property_schema), name
        assert bool(declared[name].get("sensitive")) == bool(property_schema.get("secret")), name
        if "default" in property_schema:
            assert declared[name].get("value") == property_schema["default"], name

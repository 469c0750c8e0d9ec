"""A cheap guard against schema drift: a changed type stops the sync with a clear line.

Date-time fields are also parsed: a loader would fail on them, or worse, guess.

A field whose type changed (say `duration` arriving as a string) would otherwise
crash deep in a loader, or worse, load. Only top-level fields are checked: that is
where a type change shows first, and it costs a few dict lookups per record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tap_conversations.errors import RecordShapeError
from tap_conversations.redaction import quote
from tap_conversations.timestamps import is_timestamp

if TYPE_CHECKING:
    from collections.abc import Sequence

_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def _allowed(property_schema: dict[str, Any]) -> tuple[list[str], bool]:
    declared = property_schema.get("type", [])
    types = [declared] if isinstance(declared, str) else list(declared)
    return [t for t in types if t != "null"], "null" in types


def _matches(value: object, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in {"integer", "number"}:
        return False
    return isinstance(value, _PYTHON_TYPES.get(json_type, (object,)))


def _key_of(record: dict[str, Any], keys: Sequence[str]) -> str:
    """The record's key fields as the message quotes them (server content: masked)."""
    return ", ".join(f"{k}={quote(record.get(k))}" for k in keys)


def check_record_shape(
    stream: str, record: dict[str, Any], schema: dict[str, Any], keys: Sequence[str]
) -> None:
    """Raise `RecordShapeError` when a top-level field has a type the schema forbids."""
    for name, property_schema in schema["properties"].items():
        value = record.get(name)
        types, nullable = _allowed(property_schema)
        if value is None:
            if nullable or not types:
                continue
        elif not types or any(_matches(value, json_type) for json_type in types):
            if property_schema.get("format") != "date-time" or is_timestamp(value):
                continue
            key = _key_of(record, keys)
            msg = (
                f"Stream {stream}, record {key}: field '{name}' is {quote(value, 60)}, not a "
                "date-time. The API changed this field's format; upgrade tap-conversations "
                "or report it with this line."
            )
            raise RecordShapeError(msg)
        key = _key_of(record, keys)
        got = "null" if value is None else type(value).__name__
        msg = (
            f"Stream {stream}, record {key}: field '{name}' is {got}, but its schema allows "
            f"{' or '.join(types + (['null'] if nullable else []))}. The API changed this "
            "field's type; upgrade tap-conversations or report it with this line."
        )
        raise RecordShapeError(msg)

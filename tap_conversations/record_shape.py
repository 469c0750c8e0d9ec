"""A cheap guard against schema drift: a changed type stops the sync with a clear line.

Date-time fields are also checked: a loader would fail on them, or worse, guess.

A field whose type changed (say `duration` arriving as a string) would otherwise
crash deep in a loader, or worse, load. Only top-level fields are checked: that is
where a type change shows first. The check agrees with JSON Schema as a target's
validator reads the schema (Draft 2020-12, `jsonschema` with its date-time format
checker): `0.0` is an integer, a boolean is not a number, a format applies to strings
only. Each schema is compiled once into a table of exact Python types per field, so a
record costs a dict lookup and a set membership per field; only a value outside the
table (a float where an integer is declared, a type that will be refused) takes the
slow path through `jsonschema`'s own type checker.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from jsonschema import Draft202012Validator
from jsonschema.exceptions import UnknownType

from tap_conversations.errors import RecordShapeError
from tap_conversations.redaction import quote

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The Python types a decoded JSON value of each JSON type has, exactly (no subclasses).
_EXACT_TYPES: dict[str, frozenset[type]] = {
    "string": frozenset({str}),
    "integer": frozenset({int}),
    "number": frozenset({int, float}),
    "boolean": frozenset({bool}),
    "object": frozenset({dict}),
    "array": frozenset({list}),
    "null": frozenset({type(None)}),
}
_TYPE_CHECKER = Draft202012Validator.TYPE_CHECKER

#: RFC 3339 date-time as `jsonschema`'s "date-time" format checker reads it (the
#: rfc3339-validator package on the upper-cased value): ASCII digits, hours 00-23, no
#: leap second, an offset of at most 23:59, `T` and `Z` in either case. Its `$` also
#: lets one trailing newline through; so does this one, to agree.
_DATE_TIME = re.compile(
    r"(\d{4})-(0[1-9]|1[0-2])-(\d{2})[Tt](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?"
    r"(?:[Zz]|[+-](?:[01]\d|2[0-3]):[0-5]\d)$",
    re.ASCII,
)
#: Every month has at least this many days: a smaller day needs no calendar.
_SHORTEST_MONTH = 28


def is_date_time(value: str) -> bool:
    """Whether `value` is a date-time by JSON Schema's "date-time" format (RFC 3339)."""
    match = _DATE_TIME.match(value)
    if match is None:
        return False
    year, month, day = int(match[1]), int(match[2]), int(match[3])
    if year == 0:
        return False
    return 1 <= day <= _SHORTEST_MONTH or 1 <= day <= calendar.monthrange(year, month)[1]


@dataclass(frozen=True)
class _Field:
    """One top-level property, compiled."""

    name: str
    #: Declared JSON types, "null" excepted, in the schema's order (for the message).
    types: tuple[str, ...]
    nullable: bool
    #: False when the property declares no type: every value fits.
    typed: bool
    #: Exact Python types that fit at once (the fast path).
    exact: frozenset[type]
    date_time: bool

    @classmethod
    def of(cls, name: str, schema: dict[str, Any]) -> _Field:
        declared = schema.get("type", [])
        all_types = [declared] if isinstance(declared, str) else list(declared)
        types = tuple(t for t in all_types if t != "null")
        nullable = "null" in all_types
        typed = bool(all_types)
        exact = frozenset().union(
            *(_EXACT_TYPES.get(t, frozenset()) for t in all_types)
            if typed
            else _EXACT_TYPES.values()  # no type declared: every JSON value fits
        )
        date_time = schema.get("format") == "date-time"
        return cls(name, types, nullable, typed, exact, date_time)

    def fits_type(self, value: object) -> bool:
        """Whether `value` has one of the declared types, as JSON Schema decides."""
        if not self.typed:
            return True
        if value is None:
            return self.nullable
        try:
            return any(_TYPE_CHECKER.is_type(value, json_type) for json_type in self.types)
        except UnknownType:
            return True  # a type JSON Schema does not know constrains nothing here


class RecordShape:
    """The top-level check of one stream schema, compiled once."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.fields = tuple(
            _Field.of(name, property_schema)
            for name, property_schema in schema["properties"].items()
        )

    def check(self, stream: str, record: dict[str, Any], keys: Sequence[str]) -> None:
        """Raise `RecordShapeError` when a top-level field has a type the schema forbids."""
        get = record.get
        for field in self.fields:
            value = get(field.name)
            if type(value) not in field.exact and not field.fits_type(value):
                self._refuse_type(stream, record, keys, field, value)
            if not field.date_time or not isinstance(value, str) or is_date_time(value):
                continue
            key = _key_of(record, keys)
            msg = (
                f"Stream {stream}, record {key}: field '{field.name}' is {quote(value, 60)}, "
                "not a date-time. The API changed this field's format; upgrade "
                "tap-conversations or report it with this line."
            )
            raise RecordShapeError(msg)

    @staticmethod
    def _refuse_type(
        stream: str, record: dict[str, Any], keys: Sequence[str], field: _Field, value: object
    ) -> NoReturn:
        key = _key_of(record, keys)
        got = "null" if value is None else type(value).__name__
        allowed = [*field.types, *(["null"] if field.nullable else [])]
        msg = (
            f"Stream {stream}, record {key}: field '{field.name}' is {got}, but its schema "
            f"allows {' or '.join(allowed)}. The API changed this field's type; upgrade "
            "tap-conversations or report it with this line."
        )
        raise RecordShapeError(msg)


def _key_of(record: dict[str, Any], keys: Sequence[str]) -> str:
    """The record's key fields as the message quotes them (server content: masked)."""
    return ", ".join(f"{k}={quote(record.get(k))}" for k in keys)


#: Compiled shapes by schema object (the object kept, so that its id is not reused).
_SHAPES: dict[int, tuple[dict[str, Any], RecordShape]] = {}
#: A run has a dozen schemas; a process making many taps (tests) starts afresh past this.
_MAX_SHAPES = 256


def shape_of(schema: dict[str, Any]) -> RecordShape:
    """The compiled check of `schema` (a stream's schema object, compiled on first use)."""
    known = _SHAPES.get(id(schema))
    if known is None or known[0] is not schema:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        known = _SHAPES[id(schema)] = (schema, RecordShape(schema))
    return known[1]


def check_record_shape(
    stream: str, record: dict[str, Any], schema: dict[str, Any], keys: Sequence[str]
) -> None:
    """Raise `RecordShapeError` when a top-level field has a type the schema forbids."""
    shape_of(schema).check(stream, record, keys)

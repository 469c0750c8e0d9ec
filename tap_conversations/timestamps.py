"""The API's timestamps: RFC 3339 in, aware UTC datetimes inside, the API's format out.

Parsed by hand around `datetime.fromisoformat`, whose accepted forms differ between
Python 3.10 (three or six fraction digits, no `Z`) and 3.11+ (almost any ISO 8601):
the same input must mean the same on every supported Python.
"""

from __future__ import annotations

import datetime as dt
import re

#: The API's dates have millisecond precision: a microsecond below one is before it,
#: and the next date the API can write is a millisecond after it (a state keeps
#: milliseconds, so a microsecond after would read back as the same date).
JUST_BELOW = dt.timedelta(microseconds=1)
NEXT_DATE = dt.timedelta(milliseconds=1)

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt](?P<time>\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?"
    r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})"
)


def parse_timestamp(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp (`Z` or offset, any fraction) into an aware datetime.

    Raises:
        ValueError: `value` is not such a timestamp.
    """
    match = _RFC3339.fullmatch(value)
    if match is None:
        msg = f"not an RFC 3339 date-time: {value!r:.60}"
        raise ValueError(msg)
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    zone = "+00:00" if match["zone"] in {"Z", "z"} else match["zone"]
    return dt.datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}{zone}")


def is_timestamp(value: object) -> bool:
    """Whether `value` is a timestamp `parse_timestamp` reads."""
    if not isinstance(value, str):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def format_timestamp(value: dt.datetime) -> str:
    """Format as the API does: UTC, milliseconds, `Z`."""
    utc = value.astimezone(dt.timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def utc_day(moment: dt.datetime) -> str:
    """The UTC day of a moment, `YYYY-MM-DD` (the quota's day, the ledger's day)."""
    return moment.astimezone(dt.timezone.utc).date().isoformat()

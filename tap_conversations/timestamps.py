"""The API's timestamps: ISO 8601 in, aware UTC datetimes inside, the API's format out."""

from __future__ import annotations

import datetime as dt


def parse_timestamp(value: str) -> dt.datetime:
    """Parse the API's ISO 8601 timestamps (`Z` or offset) into aware datetimes."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


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

"""The tap's settings: their JSON schema (for `--about` and Meltano) and their checks.

Every setting is described once, here. `Settings.from_config` turns a config dict
into typed values or raises `ConfigError` with one line naming the setting, before
any request is sent.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from singer_sdk import typing as th

from tap_conversations.bookmarks import parse_timestamp
from tap_conversations.errors import ConfigError
from tap_conversations.schemas import MEDIUMS

#: The API lists at most this far back.
HISTORY_DAYS = 30
MAX_PARALLEL_REQUESTS = 32
MAX_LATE_DATA_WINDOW_HOURS = 24 * HISTORY_DAYS

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_token",
        th.StringType,
        required=True,
        secret=True,
        title="API token",
        description=(
            "API token (starts with `mt_`), sent as `Authorization: Bearer …`. Create it in "
            "the app under Settings → REST API and give it the scopes of the streams you want."
        ),
    ),
    th.Property(
        "api_url",
        th.URIType,
        required=True,
        title="API base URL",
        description=(
            "Base URL including the version path, e.g. `https://<host>/api/v1`, as shown "
            "under Settings → REST API. Plain `http://` only for loopback hosts."
        ),
    ),
    th.Property(
        "start_date",
        th.DateTimeType,
        title="Start date",
        description=(
            "Earliest conversation date to extract. Default: 30 days ago. The API keeps "
            "30 days of history; an older date is clamped with one warning."
        ),
    ),
    th.Property(
        "max_requests_per_minute",
        th.IntegerType,
        default=60,
        title="Max requests per minute",
        description=(
            "The token's rate limit (60 unless the vendor raised it). Requests are spaced "
            "evenly at this pace across all streams and threads."
        ),
    ),
    th.Property(
        "max_parallel_requests",
        th.IntegerType,
        default=8,
        title="Max parallel requests",
        description=(
            f"Per-conversation requests in flight at once (1-{MAX_PARALLEL_REQUESTS}). Only "
            "matters when latency x rate exceeds one request; the pace stays the same."
        ),
    ),
    th.Property(
        "late_data_window_hours",
        th.IntegerType,
        default=24,
        title="Late-data window (hours)",
        description=(
            "How far below the bookmark each run looks again, for conversations listed "
            "after their date and ones still processing (summary, transcript, insights "
            "filled in later). Costs one list request per 25 conversations in the window."
        ),
    ),
    th.Property(
        "department_ids",
        th.ArrayType(th.UUIDType),
        title="Department ids",
        description="Only conversations of these departments (default: all).",
    ),
    th.Property(
        "mediums",
        th.ArrayType(th.StringType),
        title="Mediums",
        description=f"Only conversations of these mediums: {', '.join(MEDIUMS)} (default: all).",
    ),
    th.Property(
        "user_ids",
        th.ArrayType(th.UUIDType),
        title="User ids",
        description="Only conversations of these users (default: all).",
    ),
    th.Property(
        "request_timeout_seconds",
        th.IntegerType,
        default=60,
        title="Request timeout (seconds)",
        description="Read timeout of one request; a timed-out request is retried.",
    ),
).to_dict()


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings."""

    api_token: str = field(repr=False)
    api_url: str
    start_date: dt.datetime | None
    max_requests_per_minute: int
    max_parallel_requests: int
    late_data_window: dt.timedelta
    department_ids: tuple[str, ...]
    mediums: tuple[str, ...]
    user_ids: tuple[str, ...]
    request_timeout_seconds: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        """Check a config dict; raise `ConfigError` naming the first bad setting."""
        token = config.get("api_token")
        if not isinstance(token, str) or not token.strip():
            msg = (
                "Setting api_token is missing: create a token in the app under Settings → "
                "REST API and set api_token (TAP_CONVERSATIONS_API_TOKEN)."
            )
            raise ConfigError(msg)
        return cls(
            api_token=token.strip(),
            api_url=_check_api_url(config.get("api_url")),
            start_date=_check_start_date(config.get("start_date")),
            max_requests_per_minute=_check_int(config, "max_requests_per_minute", 60, 1, 100_000),
            max_parallel_requests=_check_int(
                config, "max_parallel_requests", 8, 1, MAX_PARALLEL_REQUESTS
            ),
            late_data_window=dt.timedelta(
                hours=_check_int(
                    config, "late_data_window_hours", 24, 0, MAX_LATE_DATA_WINDOW_HOURS
                )
            ),
            department_ids=_check_uuids(config, "department_ids"),
            mediums=_check_mediums(config.get("mediums")),
            user_ids=_check_uuids(config, "user_ids"),
            request_timeout_seconds=_check_int(config, "request_timeout_seconds", 60, 1, 600),
        )


def _check_api_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = "Setting api_url is missing: set it to the base URL shown under Settings → REST API."
        raise ConfigError(msg)
    try:
        parts = urlsplit(value.strip())
        hostname = parts.hostname
    except ValueError:
        hostname = None
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not hostname:
        msg = f"Setting api_url must be an http(s) URL like https://<host>/api/v1, not {value!r}."
        raise ConfigError(msg)
    if parts.scheme == "http" and not _is_loopback(hostname):
        msg = (
            f"Setting api_url uses plain http:// for {hostname}; the token would travel "
            "unencrypted. Use https:// (plain http is allowed for loopback hosts only)."
        )
        raise ConfigError(msg)
    return value.strip().rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_start_date(value: object) -> dt.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        text = value.strip()
        # A date alone, or a date-time without a zone, is taken as UTC.
        if len(text) == len("2026-01-31"):
            text += "T00:00:00"
        if text[-1:].isdigit() and text[-6:-5] not in {"+", "-"}:
            text += "Z"
        try:
            return parse_timestamp(text)
        except ValueError:
            pass
    msg = (
        "Setting start_date must be an ISO 8601 date-time like 2026-01-31T00:00:00Z, "
        f"not {value!r}."
    )
    raise ConfigError(msg)


def _check_int(config: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = config.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        msg = f"Setting {name} must be a whole number from {low} to {high}, not {value!r}."
        raise ConfigError(msg)
    return value


def _check_list(value: object, name: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = f'Setting {name} must be a list of strings like ["a", "b"], not {value!r}.'
        raise ConfigError(msg)
    return tuple(dict.fromkeys(value))


def _check_uuids(config: dict[str, Any], name: str) -> tuple[str, ...]:
    values = _check_list(config.get(name), name)
    bad = [value for value in values if not _is_uuid(value)]
    if bad:
        msg = f"Setting {name} holds {bad}, which are not ids (UUIDs)."
        raise ConfigError(msg)
    return values


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _check_mediums(value: object) -> tuple[str, ...]:
    mediums = _check_list(value, "mediums")
    unknown = [medium for medium in mediums if medium not in MEDIUMS]
    if unknown:
        msg = f"Setting mediums holds unknown values {unknown}; allowed: {', '.join(MEDIUMS)}."
        raise ConfigError(msg)
    return mediums

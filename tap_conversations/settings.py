"""The tap's settings: their JSON schema (for `--about` and Meltano) and their checks.

Every setting and its limits (minimum, maximum, allowed values, formats) are declared
once, in the JSON schema below, which `--about`, Meltano and the SDK's validation see.
`Settings.from_config` reads the limits from there and turns a config dict into typed
values, or raises `ConfigError` with one line naming the setting, before any request.
It also checks what JSON Schema cannot say: where `api_url` sends the token.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from tap_conversations.errors import ConfigError
from tap_conversations.removals import SWEEP_COST
from tap_conversations.schemas import MEDIUMS
from tap_conversations.timestamps import format_timestamp, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

#: The API lists at most this far back.
HISTORY_DAYS = 30
MAX_PARALLEL_REQUESTS = 32
MAX_LATE_DATA_WINDOW_HOURS = 24 * HISTORY_DAYS

#: A token as the app shows it: printable ASCII, no whitespace.
TOKEN_PATTERN = r"^[!-~]+$"  # noqa: S105  # a pattern, not a secret

CONFIG_SCHEMA = th.PropertiesList(
    th.Property(
        "api_token",
        th.StringType(pattern=TOKEN_PATTERN),
        required=True,
        secret=True,
        title="API token",
        description=(
            "API token (starts with `mt_`), sent as `Authorization: Bearer …` to api_url's "
            "host only. Create it in the app under Settings → REST API and give it the scopes "
            "of the streams you want."
        ),
    ),
    th.Property(
        "api_url",
        th.URIType,
        required=True,
        title="API base URL",
        description=(
            "Base URL including the version path, e.g. `https://<host>/api/v1`, as shown "
            "under Settings → REST API. Plain `http://` only for loopback hosts; no user "
            "or password in the URL."
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
        th.IntegerType(minimum=1, maximum=100_000),
        default=60,
        title="Max requests per minute",
        description=(
            "The token's rate limit (60 unless the vendor raised it). Requests are spaced "
            "evenly at this pace across all streams and threads."
        ),
    ),
    th.Property(
        "max_parallel_requests",
        th.IntegerType(minimum=1, maximum=MAX_PARALLEL_REQUESTS),
        default=8,
        title="Max parallel requests",
        description=(
            "Per-conversation requests in flight at once. Only matters when latency x rate "
            "exceeds one request; the pace stays the same."
        ),
    ),
    th.Property(
        "late_data_window_hours",
        th.IntegerType(minimum=0, maximum=MAX_LATE_DATA_WINDOW_HOURS),
        default=24,
        title="Late-data window (hours)",
        description=(
            "How far below the bookmark each run lists again, for conversations listed "
            "after their date. Costs one list request per 25 conversations in the window. "
            "Conversations still processing are followed until complete, whatever the window."
        ),
    ),
    th.Property(
        "daily_conversation_quota",
        th.IntegerType(minimum=1, maximum=10_000_000),
        default=1000,
        title="Daily conversation quota",
        description=(
            "The token's daily quota of conversations (1000 unless the vendor raised it). "
            "Re-checks of conversations still processing spend at most a tenth of it a day, "
            "after every new conversation; a run the quota stops resumes the next day."
        ),
    ),
    th.Property(
        "removal_sweep_hours",
        th.IntegerType(minimum=0, maximum=HISTORY_DAYS * 24),
        default=7 * 24,
        title="Removal sweep interval (hours)",
        description=(
            "How often a run lists the API's 30 days again to find conversations removed "
            "at the source since they were loaded (emitted on removed_conversations). A "
            f"sweep costs {SWEEP_COST}. 0: never."
        ),
    ),
    th.Property(
        "summary_reread_days",
        th.IntegerType(minimum=0, maximum=HISTORY_DAYS),
        default=0,
        title="Re-read summaries for (days)",
        description=(
            "Fetch conversations younger than this many days again, so that a summary "
            "edited in the app arrives (with its updated_at). Each re-read costs the "
            "requests of a new conversation and one unit of the daily quota; they come "
            "after every new conversation and re-check, oldest first, and spend at most a "
            "tenth of daily_conversation_quota a day. 0 (default): never."
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
        th.ArrayType(th.StringType(allowed_values=MEDIUMS)),
        title="Mediums",
        description="Only conversations of these mediums (default: all).",
    ),
    th.Property(
        "user_ids",
        th.ArrayType(th.UUIDType),
        title="User ids",
        description="Only conversations of these users (default: all).",
    ),
    th.Property(
        "log_metrics",
        th.BooleanType,
        default=False,
        title="Log the SDK's metrics",
        description=(
            "Log the Singer SDK's METRIC lines (timers and counters per stream and chunk) "
            "at INFO. Off: a sync logs progress every 15 s and one closing summary."
        ),
    ),
    th.Property(
        "request_timeout_seconds",
        th.IntegerType(minimum=1, maximum=600),
        default=60,
        title="Request timeout (seconds)",
        description=("Longest one request may take, body included; a request past it is retried."),
    ),
).to_dict()
PROPERTIES: dict[str, dict[str, Any]] = CONFIG_SCHEMA["properties"]
#: Settings the Singer SDK reads without declaring them in the config schema.
SDK_UNDECLARED_SETTINGS = frozenset({"emit_activate_version_messages"})
#: How much of an unknown key a warning shows.
SHOWN_KEY_CHARS = 60


def unknown_settings(config: Mapping[str, Any], known: Iterable[str]) -> list[str]:
    """One warning line per key no one reads, with the closest known name.

    `known` is every setting the tap declares plus the SDK's built-in ones (stream_maps,
    flattening_*, batch_config, ...). Keys starting with `_` are left alone: Meltano
    keeps its plugin extras (`_select`, `_metadata`, ...) under such names.
    """
    names = sorted(set(known) | SDK_UNDECLARED_SETTINGS)
    lines = []
    for key in sorted(str(key) for key in config):
        if key in names or key.startswith("_"):
            continue
        shown = repr(key[:SHOWN_KEY_CHARS])
        import difflib  # noqa: PLC0415  # only a misspelled setting needs it

        close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
        hint = (
            f"did you mean {close[0]}?"
            if close
            else "tap-conversations --about lists the settings."
        )
        lines.append(f"Setting {shown} is unknown and ignored; {hint}")
    return lines


def check_start_date_not_after(settings: Settings, now: dt.datetime) -> None:
    """Refuse a start_date in the future: it would sync nothing, silently, until then.

    An error rather than a warning: a future date is a typo (the year, or day and month
    swapped) far more often than a plan, and a warning in a scheduled job's log is read
    after days of empty syncs; the error costs nothing (no request was sent).

    Raises:
        ConfigError: start_date is later than now.
    """
    start = settings.start_date
    if start is not None and start > now:
        msg = (
            f"Setting start_date {format_timestamp(start)} is in the future (now "
            f"{format_timestamp(now)}): a sync would fetch nothing until then. Set a date in "
            f"the past, or remove start_date to sync the API's {HISTORY_DAYS} days."
        )
        raise ConfigError(msg)


@dataclass(frozen=True)
class Settings:
    """Validated, typed settings."""

    api_token: str = field(repr=False)
    api_url: str
    start_date: dt.datetime | None
    max_requests_per_minute: int
    max_parallel_requests: int
    late_data_window: dt.timedelta
    daily_conversation_quota: int
    removal_sweep_interval: dt.timedelta
    summary_reread_days: int
    department_ids: tuple[str, ...]
    mediums: tuple[str, ...]
    user_ids: tuple[str, ...]
    request_timeout_seconds: int

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Settings:
        """Check a config dict; raise `ConfigError` naming the first bad setting."""
        return cls(
            api_token=_check_token(config.get("api_token")),
            api_url=_check_api_url(config.get("api_url")),
            start_date=_check_start_date(config.get("start_date")),
            max_requests_per_minute=_check_int(config, "max_requests_per_minute"),
            max_parallel_requests=_check_int(config, "max_parallel_requests"),
            late_data_window=dt.timedelta(hours=_check_int(config, "late_data_window_hours")),
            daily_conversation_quota=_check_int(config, "daily_conversation_quota"),
            removal_sweep_interval=dt.timedelta(hours=_check_int(config, "removal_sweep_hours")),
            summary_reread_days=_check_int(config, "summary_reread_days"),
            department_ids=_check_uuids(config, "department_ids"),
            mediums=_check_mediums(config.get("mediums")),
            user_ids=_check_uuids(config, "user_ids"),
            request_timeout_seconds=_check_int(config, "request_timeout_seconds"),
        )


def _check_token(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        msg = (
            "Setting api_token is missing: create a token in the app under Settings → "
            "REST API and set api_token (TAP_CONVERSATIONS_API_TOKEN)."
        )
        raise ConfigError(msg)
    if not re.fullmatch(TOKEN_PATTERN, value):
        # Never quote the token: say where the odd character is, not what the token is.
        position = next(i for i, char in enumerate(value) if not "!" <= char <= "~")
        msg = (
            "Setting api_token looks mis-pasted: character "
            f"{position + 1} of {len(value)} is whitespace or not printable ASCII "
            f"({unicodedata.name(value[position], 'a control character').lower()}). "
            "Copy the token again from Settings → REST API."
        )
        raise ConfigError(msg)
    return value


def _check_api_url(value: object) -> str:
    """The URL the HTTP client will send the token to, checked with the client's parser.

    `requests` sends to the host that urllib3's `parse_url` finds, so that parser
    decides: a check with another parser (urllib.parse) can see a different host.
    """
    if not isinstance(value, str) or not value.strip():
        msg = "Setting api_url is missing: set it to the base URL shown under Settings → REST API."
        raise ConfigError(msg)
    url = value.strip()
    if any(char.isspace() or not char.isprintable() or char == "\\" for char in url):
        msg = (
            "Setting api_url holds whitespace, a control character or a backslash; "
            "set it to the base URL shown under Settings → REST API, like https://<host>/api/v1."
        )
        raise ConfigError(msg)
    try:
        parts = parse_url(url)
    except LocationParseError:
        parts = None
    if parts is None or parts.scheme not in {"http", "https"} or not parts.host:
        msg = f"Setting api_url must be an http(s) URL like https://<host>/api/v1, not {url!r}."
        raise ConfigError(msg)
    if parts.auth is not None:
        msg = (
            "Setting api_url holds a user name or password (user:password@host): credentials "
            "in a URL end up in logs. Remove them; the tap authenticates with api_token only."
        )
        raise ConfigError(msg)
    if parts.scheme == "http" and not _is_loopback(parts.host):
        msg = (
            f"Setting api_url uses plain http:// for {parts.host}; the token would travel "
            "unencrypted. Use https:// (plain http is allowed for loopback hosts only)."
        )
        raise ConfigError(msg)
    return url.rstrip("/")


def is_loopback_url(url: str) -> bool:
    """Whether a checked api_url points at this machine."""
    host = parse_url(url).host
    return host is not None and _is_loopback(host)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
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


def _check_int(config: dict[str, Any], name: str) -> int:
    """An integer setting within the minimum and maximum its schema declares."""
    declared = PROPERTIES[name]
    default, low, high = declared["default"], declared["minimum"], declared["maximum"]
    value = config.get(name, default)
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        msg = f"Setting {name} must be a whole number from {low} to {high}, not {value!r}."
        raise ConfigError(msg)
    return value


def _check_list(value: object, name: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        msg = f'Setting {name} must be a list of strings like ["a", "b"], not {value!r}.'
        if isinstance(value, str) and value.lstrip().startswith("["):
            # What a Meltano project without `kind: array` for the setting passes on.
            msg += (
                " That is a list written as text, as Meltano passes it when the setting's "
                f"definition lacks `kind: array`: add `kind: array` to {name} in meltano.yml, "
                "or add the tap from plugin/tap-conversations.yml, which has it."
            )
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
    allowed = PROPERTIES["mediums"]["items"]["enum"]
    unknown = [medium for medium in mediums if medium not in allowed]
    if unknown:
        msg = f"Setting mediums holds unknown values {unknown}; allowed: {', '.join(allowed)}."
        raise ConfigError(msg)
    return mediums

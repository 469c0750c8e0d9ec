"""Run the tap in-process against a sandbox and read what it wrote."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_conversations.tap import TapConversations

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_conversations.clock import Clock
    from tests.sandbox import Sandbox

ALL_STREAMS = (
    "account",
    "users",
    "teams",
    "departments",
    "conversations",
    "transcripts",
    "transcript_segments",
    "insights",
    "summaries",
    "recordings",
    "webhook_deliveries",
    "removed_conversations",
    "sync_ledger",
)


def tap_config(sandbox: Sandbox, token: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A config pointing at the sandbox, unthrottled unless overridden."""
    return {
        "api_token": token or sandbox.token,
        "api_url": sandbox.base_url,
        "max_requests_per_minute": 100_000,
        **overrides,
    }


def catalog_selecting(config: dict[str, Any], streams: Iterable[str]) -> dict[str, Any]:
    """The tap's catalog (no request is sent) with exactly `streams` selected."""
    catalog = TapConversations(config=config, validate_config=False).catalog_dict
    wanted = set(streams)
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = entry["tap_stream_id"] in wanted
    return catalog


@dataclass
class SyncOutput:
    """The Singer messages of one sync."""

    messages: list[dict[str, Any]]

    def records(self, stream: str) -> list[dict[str, Any]]:
        """The records of one stream, in order."""
        return [
            m["record"] for m in self.messages if m["type"] == "RECORD" and m["stream"] == stream
        ]

    def ids(self, stream: str, key: str = "id") -> list[str]:
        """One field of each record of a stream, in order."""
        return [record[key] for record in self.records(stream)]

    def schema_count(self, stream: str) -> int:
        """How many SCHEMA messages the stream got."""
        return sum(1 for m in self.messages if m["type"] == "SCHEMA" and m["stream"] == stream)

    @property
    def streams_with_records(self) -> set[str]:
        """Streams that got at least one record."""
        return {m["stream"] for m in self.messages if m["type"] == "RECORD"}

    @property
    def state(self) -> dict[str, Any]:
        """The last STATE message's value."""
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else {}


def run_sync(
    config: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    streams: Iterable[str] | None = None,
    clock: Clock | None = None,
) -> SyncOutput:
    """Sync in-process (as `tap-conversations --config --state --catalog` would).

    `clock` replaces the tap's notion of now (a simulated one shared with the sandbox).
    """
    catalog = catalog_selecting(config, streams) if streams is not None else None
    tap = TapConversations(config=config, state=state, catalog=catalog)
    if clock is not None:
        tap.clock = clock
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    with contextlib.redirect_stdout(stdout):
        try:
            tap.sync_all()
        finally:
            stdout.flush()
            tap.api.close()
    lines = raw.getvalue().decode("utf-8").splitlines()
    return SyncOutput([json.loads(line) for line in lines if line.strip()])


class Warehouse:
    """Tables upserted by primary key, as a Singer loader keeps them."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
        self._keys: dict[str, list[str]] = {}

    def load(self, out: SyncOutput) -> None:
        """Load one sync's messages."""
        self.load_messages(out.messages)

    def load_messages(self, messages: Iterable[dict[str, Any]]) -> None:
        """Upsert the RECORD messages by the key their stream's SCHEMA declares."""
        for message in messages:
            if message["type"] == "SCHEMA":
                self._keys[message["stream"]] = message["key_properties"]
            elif message["type"] == "RECORD":
                record = message["record"]
                key = tuple(record[k] for k in self._keys[message["stream"]])
                self.tables.setdefault(message["stream"], {})[key] = record

    def ids(self, stream: str, key: str = "id") -> set[str]:
        """One field of every row of a table."""
        return {row[key] for row in self.tables.get(stream, {}).values()}

    def row(self, stream: str, key: str) -> dict[str, Any]:
        """The row of a single-key table (KeyError when absent)."""
        return self.tables[stream][(key,)]

    def get(self, stream: str, key: str) -> dict[str, Any] | None:
        """The row of a single-key table, or None."""
        return self.tables.get(stream, {}).get((key,))

    def rows(self, stream: str) -> list[dict[str, Any]]:
        """Every row of a table."""
        return list(self.tables.get(stream, {}).values())

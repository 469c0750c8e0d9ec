"""Every private singer-sdk member the tap relies on, fenced in this one module.

The SDK's public hooks do not cover four things this tap needs, so it overrides or
calls these private members (singer-sdk 0.54.x; `tests/test_sdk_internals.py` fails
loudly when an upgrade renames one or changes its signature, and pyproject.toml lists
them next to the pin):

* `Stream._write_schema_message`: the SDK writes a child's SCHEMA again each time the
  child is synced for a parent (meltano/sdk#1061); one per stream and run is enough.
* `Stream._increment_stream_state`: the conversations bookmark is a checkpoint
  advanced once per chunk, after the children's records are out, not per record.
* `Stream._sync_children`: children are synced once per fetched chunk, not once per
  parent record (which would cost a context, a log line and a metric per record).
* `Stream._write_state_message`: the checkpoint is written as soon as a chunk is done,
  so an interrupted run resumes there.
* `PluginBase._validate_config`: our one-line setting errors come first, before the
  SDK's JSON-schema messages, and before any request.
* `Tap._handle_termination`: on SIGTERM/SIGINT the SDK writes its state from inside
  the handler, possibly onto a line being written, and exits 0; the tap defers to a
  safe point and fails the run (see `termination.py`).
* `Stream._write_activate_version_message` and `Stream._stream_version`: the SDK
  writes ACTIVATE_VERSION before a full-table stream's records (a loader then marks
  every row deleted before the new version arrives, and a run that fails midway
  leaves them so), and for every full-table stream, children of an incremental parent
  included. The reference streams write it after their last record, and only they do.

Also fenced here: the SDK's log lines the tap demotes to DEBUG (`SDK_NOISE`), matched
by their format strings, which are the SDK's own, not an interface; the tests check
each one is still in the SDK's source, so an upgrade that rewords one fails loudly.

One public member is replaced on the tap's instance, here too: the tap's
`state_writer.write_state`. The SDK's writes a STATE when the state differs from the
last one written, and keeps a `copy.deepcopy` of the whole state to tell; the tap's
state (the conversations checkpoint: `seen`, `pending`) is written after every chunk,
and that copy, object by object, cost more than writing the line. The replacement
keeps the last state as its JSON, keys sorted (msgspec, in C), and writes on the same
condition.

Nothing outside this module names a private SDK member.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import msgspec
from singer_sdk import Stream, Tap
from singer_sdk.contrib.msgspec import enc_hook
from singer_sdk.singerlib import StateMessage

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from types import FrameType

    from singer_sdk.helpers.types import Context
    from singer_sdk.singerlib import Message

#: (class, member) pairs this module overrides or calls; checked by the tests.
SDK_PRIVATE_MEMBERS: tuple[tuple[type, str], ...] = (
    (Stream, "_write_schema_message"),
    (Stream, "_increment_stream_state"),
    (Stream, "_sync_children"),
    (Stream, "_write_state_message"),
    (Tap, "_validate_config"),
    (Tap, "_handle_termination"),
    (Stream, "_write_activate_version_message"),
)


#: The SDK's INFO and ERROR lines that say nothing a user acts on, by format string,
#: with the SDK function that logs each (checked by the tests): shown at DEBUG only.
SDK_NOISE: dict[str, str] = {
    # PluginBase.__init__, every run: whether settings come from the environment.
    "Skipping parse of env var settings...": "singer_sdk.plugin_base.PluginBase.__init__",
    "Parsing env var for settings config...": "singer_sdk.plugin_base.PluginBase.__init__",
    # Tap.load_streams: one line per child stream, five every run.
    "Added '%s' as child stream to '%s'": "singer_sdk.tap_base.Tap.load_streams",
    # Stream.sync, just before the exception reaches the tap, which logs the one line
    # that says what happened (TapConversations.invoke); a bug's traceback names the
    # stream anyway.
    "An unhandled error occurred while syncing '%s'": "singer_sdk.streams.core.Stream.sync",
    # StreamStateManager, under "<executable>.<stream>": the SDK's bookmark, which the
    # conversations checkpoint replaces (the tap says what it resumes from).
    "Starting incremental sync of '%s' with bookmark value: %s": (
        "singer_sdk.streams._state.StreamStateManager.write_starting_replication_value"
    ),
}


class DemoteSdkNoise(logging.Filter):
    """Shows the SDK_NOISE lines as DEBUG lines, and only when DEBUG is on."""

    def filter(self, record: logging.LogRecord) -> bool:
        """True to keep the record (demoted when it is noise)."""
        if not isinstance(record.msg, str) or record.msg not in SDK_NOISE:
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_DEMOTE = DemoteSdkNoise()


def quiet_sdk_logs(loggers: list[logging.Logger], stream_names: list[str]) -> None:
    """Demote SDK_NOISE on these loggers and their streams' (filters do not inherit).

    The tap's logger, and the executable's name, which the SDK's state manager still
    logs under.
    """
    for logger in loggers:
        for target in (logger, *(logger.getChild(name) for name in stream_names)):
            if _DEMOTE not in target.filters:
                target.addFilter(_DEMOTE)


class SdkStream(Stream):
    """A stream that writes its SCHEMA once per run and can checkpoint on demand."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._schema_written = False

    def before_first_message(self) -> None:
        """Called once per run, before the stream writes its first message (its SCHEMA).

        The SDK writes a stream's SCHEMA before its ACTIVATE_VERSION and its records, and
        its `sync_all` (final) has no hook before the first stream: this is that hook.
        """

    def _write_schema_message(self) -> None:
        if self._schema_written:
            return
        self.before_first_message()
        self._schema_written = True
        super()._write_schema_message()

    def write_state_now(self) -> None:
        """Write this stream's state as a STATE message now."""
        self._write_state_message()


class VersionedFullTableStream(SdkStream):
    """A full-table stream whose every read is a version: rows not in it are gone.

    `begin_version` before the first record (records then carry the version), and
    `activate_version` after the last one; a read that fails in between activates
    nothing, so a loader keeps the previous version whole.
    """

    @property
    def emit_activate_version_messages(self) -> bool:
        """Never the SDK's own (before the records); see `activate_version`."""
        return False

    def begin_version(self, version: int) -> None:
        """Tag the records that follow with `version`."""
        self._stream_version = version

    def activate_version(self) -> None:
        """Tell the loader the version is complete (ACTIVATE_VERSION)."""
        if self._stream_version is not None:
            self._write_activate_version_message(self._stream_version)


class ChunkedParentStream(SdkStream):
    """A parent that syncs its children per chunk and keeps its own bookmark."""

    #: Children are synced by `sync_children_now`, never per record.
    def generate_child_contexts(
        self,
        record: dict,  # noqa: ARG002
        context: Context | None,  # noqa: ARG002
    ) -> tuple[Context | None, ...]:
        """No per-record child syncs."""
        return ()

    def _increment_stream_state(
        self, latest_record: dict, *, context: Context | None = None
    ) -> None:
        # The bookmark is the subclass's checkpoint, advanced per chunk.
        pass

    def sync_children_now(self, context: Context) -> None:
        """Sync every selected child now, with `context`."""
        self._sync_children(context)


class StateOnChange:
    """`StateWriter.write_state` without the deep copy: a STATE when the state changed.

    The last state written is kept as its JSON with sorted keys, so "changed" means what
    the SDK's dict comparison means, and nothing later done to the state's objects can
    change the copy.
    """

    def __init__(self, write_message: Callable[[Message], None]) -> None:
        self._write_message = write_message
        self._encoder = msgspec.json.Encoder(enc_hook=enc_hook, order="sorted")
        self._last: bytes | None = None

    def __call__(self, state: Mapping[str, Any]) -> None:
        """Write `state` as a STATE message unless it equals the last one written."""
        encoded = self._encoder.encode(state)
        if encoded != self._last:
            self._write_message(StateMessage(value=state))
            self._last = encoded


class SdkTap(Tap):
    """A tap whose own setting checks run first and which handles its signals itself."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.state_writer.write_state = StateOnChange(self.write_message)  # type: ignore[method-assign]

    def check_settings(self) -> None:
        """Check the settings with one-line errors; runs before the SDK's checks."""

    def on_termination(self, signum: int) -> None:
        """Called on SIGTERM/SIGINT instead of the SDK's handler (which exits 0)."""
        raise SystemExit(128 + signum)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        if raise_errors:
            self.check_settings()
        return super()._validate_config(raise_errors=raise_errors)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.on_termination(signum)

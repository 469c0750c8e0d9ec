"""The tap: settings, discovery (scope-aware when a token is given), the CLI's errors."""

from __future__ import annotations

import atexit
import copy
import datetime as dt
import functools
import gc
import io
import json
import logging
import sys
import threading
from collections import defaultdict
from functools import cached_property
from importlib.metadata import PackageNotFoundError, distribution, version
from typing import TYPE_CHECKING, Any

from singer_sdk.singerlib import StateMessage

from tap_conversations.bookmarks import ConversationCheckpoint
from tap_conversations.client import ApiClient
from tap_conversations.clock import Clock, utc_now
from tap_conversations.early_reads import MAX_EARLY_READS, EarlyReads
from tap_conversations.errors import AuthenticationError, StateError, TapConversationsError
from tap_conversations.ledger import RunLedger
from tap_conversations.rate_limit import RequestPacer
from tap_conversations.run_summary import RunSummary
from tap_conversations.scopes import ScopeTracker, describe_missing, probe_scopes
from tap_conversations.sdk_internals import SdkTap, quiet_sdk_logs
from tap_conversations.settings import (
    CONFIG_SCHEMA,
    HISTORY_DAYS,
    Settings,
    check_start_date_not_after,
    unknown_settings,
)
from tap_conversations.streams import (
    STREAM_TYPES,
    ConversationsApiStream,
    ConversationsStream,
    ListEndpointStream,
    WebhookDeliveriesStream,
    records_in,
)
from tap_conversations.termination import STOPPER, LineSafeWriter
from tap_conversations.timestamps import format_timestamp

if TYPE_CHECKING:
    import click

#: The one logger of the tap, the SDK's lines included (`TapConversations.logger`);
#: each stream logs under `tap_conversations.<stream>`.
LOGGER = logging.getLogger("tap_conversations")
quiet_sdk_logs(
    [LOGGER, logging.getLogger("tap-conversations")],
    [stream_type.name for stream_type in STREAM_TYPES],  # type: ignore[misc]  # declared
)


@functools.cache
def installed_version(package: str) -> str | None:
    """The installed distribution's version, read from its metadata's headers alone.

    `importlib.metadata.version` parses the whole METADATA file as an e-mail message,
    the long description (the README) included: some 20 M instructions a call, three
    calls a run (the SDK's start-up line names the tap's and the SDK's version, the
    User-Agent the tap's). The headers end at the first blank line.
    """
    try:
        text = distribution(package).read_text("METADATA") or ""
    except PackageNotFoundError:
        return None
    for line in text.partition("\n\n")[0].splitlines():
        if line.startswith("Version:"):
            return line.partition(":")[2].strip()
    return version(package)


def _package_version() -> str:
    return installed_version("tap-conversations") or "0+unknown"


class TapConversations(SdkTap):
    """Singer tap for the conversational-intelligence REST API."""

    name = "tap-conversations"
    package_name = "tap-conversations"
    # The SDK would log under "tap-conversations" (the executable's name) beside the
    # modules' "tap_conversations": one name for every line, the package's.
    logger = LOGGER
    # A copy: the SDK adds its built-in settings (stream maps, ...) to this dict.
    config_jsonschema = copy.deepcopy(CONFIG_SCHEMA)
    # msgspec serialises records several times faster than the stdlib json writer; this
    # one also keeps a signal from cutting a line (see termination.py).
    message_writer_class = LineSafeWriter
    #: The run's clock (see clock.py); a simulation replaces it before the sync.
    clock: Clock = staticmethod(utc_now)
    _deliveries: list[dict[str, Any]] | None
    _state_account_checked: bool
    _settings_warned: bool

    def check_settings(self) -> None:
        """Our checks first: they name the setting and say what to do in one line.

        The SDK's JSON-schema errors are terse and come two lines at a time. Runs in
        the SDK's __init__, so a bad setting fails before any request. A misspelled
        setting is named first: it may be why a setting is missing.
        """
        self.warn_unknown_settings()
        self.settings = Settings.from_config(dict(self.config))
        check_start_date_not_after(self.settings, self.clock())

    def warn_unknown_settings(self) -> None:
        """One warning per setting no one reads, with the closest known name (once a run)."""
        if self._settings_warned:
            return
        self._settings_warned = True
        schema = copy.deepcopy(self.config_jsonschema)
        self.append_builtin_config(schema)
        for line in unknown_settings(self.config, schema["properties"]):
            LOGGER.warning("%s", line)

    def on_termination(self, signum: int) -> None:
        """Stop at the next safe point with the final state; exit 128 + signal."""
        STOPPER.write_final_state = self._write_final_state
        STOPPER.on_signal(signum)

    def _write_final_state(self) -> None:
        # Written even when equal to the last STATE: the run's last line is then a
        # STATE, and it covers only what came before it.
        self.write_message(StateMessage(value=self.state))

    def load_state(self, state: dict[str, Any]) -> None:
        """Take the state in any form it is handed over; refuse one this tap cannot use.

        Accepted: the state's value (`{"bookmarks": ...}`), a whole STATE message (the
        last line of a target's output), Meltano's `{"singer_state": ...}` (what
        `meltano state get` prints), and `{}` for a first run. Anything else would be
        read as empty, a silent sync of everything again, so it is refused. Every
        stream's state is checked here, before any request or record, so a damaged
        state ends the run with one line instead of a traceback midway.

        Raises:
            StateError: The state is not one this tap wrote.
        """
        state = _resumable_state(state)
        if not isinstance(state.get("bookmarks", {}), dict):
            msg = (
                "The state is not a Singer state (an object with 'bookmarks'), so this tap "
                f"cannot resume from it. {StateError.FIX}"
            )
            raise StateError(msg)
        for name, stream_state in state.get("bookmarks", {}).items():
            if not isinstance(stream_state, dict):
                msg = f"The state of stream {name} is not an object. {StateError.FIX}"
                raise StateError(msg)
        ConversationCheckpoint.from_state(
            state.get("bookmarks", {}).get(ConversationsStream.name, {})
        )
        super().load_state(state)

    def refuse_a_state_of_another_account(self) -> None:
        """Before the first stream writes anything: a state of another account ends the run.

        The conversations stream ties its state to the token's account, but the
        full-table streams (account, users, teams, departments) sync before it: without
        this check their rows would reach the other account's tables first (one plugin
        definition for many accounts makes a token next to the wrong state id one typo
        away). `/me` is read once per run either way; the account stream shares it.

        Raises:
            StateError: The state was written for another account.
        """
        if self._state_account_checked:
            return
        self._state_account_checked = True
        stream_state = self.state.get("bookmarks", {}).get(ConversationsStream.name)
        conversations = self.streams[ConversationsStream.name]
        if stream_state and isinstance(conversations, ConversationsStream):
            checkpoint = ConversationCheckpoint.from_state(stream_state)
            if checkpoint.account_id is not None:
                conversations._claim_account(checkpoint)  # noqa: SLF001 - the stream's own check, early

    @cached_property
    def account(self) -> dict[str, Any]:
        """The account the token reads (GET /me), once per run."""
        return self.api.get("/me")

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """The webhook deliveries of the last 7 days, read once per run."""
        with self._deliveries_lock:
            if self._deliveries is None:
                path = WebhookDeliveriesStream.path
                self._deliveries = records_in(self.early_reads.answer(path), path, "deliveries")
            return self._deliveries

    @cached_property
    def early_reads(self) -> EarlyReads:
        """The one-off reads of the run's list streams, sent ahead of their turn."""
        return EarlyReads(self.api)

    def start_early_reads(self) -> None:
        """The token works and the state is this account's: the one-off reads go now.

        Called once `/me` has answered and a state's account was checked (the account
        stream, the conversations stream's claim); the reads are those of the selected
        list streams that read early, each stream takes its answer in its turn.
        """
        self.early_reads.start(
            stream.path
            for stream in self.streams.values()
            if isinstance(stream, ListEndpointStream)
            and stream.read_early
            and stream.selected
            and not self.scopes.is_missing(stream.scope)
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._deliveries_lock = threading.Lock()
        self._deliveries = None
        self._state_account_checked = False
        self._settings_warned = False
        self.summary = RunSummary()
        self.ledger = RunLedger()
        super().__init__(*args, **kwargs)
        if not self.config.get("log_metrics") and self.metrics_logger.level <= logging.INFO:
            # The SDK's METRIC lines are half of a sync's log at INFO; the progress
            # lines and the closing summary say what a person needs. log_metrics: true
            # (or DEBUG) brings them back.
            self.metrics_logger.setLevel(logging.WARNING)

    def log_summary(self) -> None:
        """The sync's closing line (called once, after every stream)."""
        LOGGER.info("%s", self.summary.line(self.api.stats))

    @classmethod
    def get_plugin_version(cls) -> str:
        """The tap's version, as the SDK's, read once (see `installed_version`)."""
        return installed_version(cls.package_name or cls.name) or super().get_plugin_version()

    @classmethod
    def get_sdk_version(cls) -> str:
        """The SDK's version, as the SDK reads it, read once (see `installed_version`)."""
        return installed_version("singer_sdk") or super().get_sdk_version()

    @cached_property
    def settings(self) -> Settings:
        """The validated settings (raises ConfigError with one line)."""
        return Settings.from_config(dict(self.config))

    @cached_property
    def api(self) -> ApiClient:
        """The one API client of this run: every stream and thread shares its pace."""
        settings = self.settings
        return ApiClient(
            base_url=settings.api_url,
            token=settings.api_token,
            pacer=RequestPacer(
                settings.max_requests_per_minute,
                burst_in_flight=settings.max_parallel_requests,
            ),
            timeout_seconds=settings.request_timeout_seconds,
            # One per parallel request, one for the thread that starts them, one per
            # early read (early_reads.py).
            max_connections=settings.max_parallel_requests + 1 + MAX_EARLY_READS,
            user_agent=f"tap-conversations/{_package_version()}",
        )

    @cached_property
    def scopes(self) -> ScopeTracker:
        """Which scopes this run found missing, with one warning each."""
        streams_by_scope: dict[str, list[str]] = defaultdict(list)
        for stream in self.streams.values():
            scope = getattr(stream, "scope", None)
            if scope and stream.selected:
                streams_by_scope[scope].append(stream.name)
        return ScopeTracker(streams_by_scope)

    @cached_property
    def history_floor(self) -> dt.datetime:
        """The oldest date the API lists; warns once if start_date is older."""
        floor = self.clock() - dt.timedelta(days=HISTORY_DAYS)
        start = self.settings.start_date
        if start is not None and start < floor:
            LOGGER.warning(
                "start_date %s is older than the %d days the API keeps; starting at %s.",
                format_timestamp(start),
                HISTORY_DAYS,
                format_timestamp(floor),
            )
        return floor

    def discover_streams(self) -> list[ConversationsApiStream]:
        """Every stream; works offline."""
        return [stream_type(tap=self) for stream_type in STREAM_TYPES]

    def run_discovery(self) -> str:
        """Write the catalog; with a token, streams it cannot read are not selected."""
        self.warn_unknown_settings()
        if self.config.get("api_token") and self.config.get("api_url"):
            try:
                self.account  # noqa: B018  # GET /me: a wrong api_url shows here, not as "no scope"
                granted = probe_scopes(self.api)
            except TapConversationsError as error:
                LOGGER.warning("Could not check the token's scopes (%s); catalog as is.", error)
            else:
                for stream in self.streams.values():
                    scope = getattr(stream, "scope", None)
                    if scope and granted.get(scope) is not None:
                        stream.selected_by_default = False
                        stream.metadata.root.selected_by_default = False
                        stream.metadata.root.selected = False
                        LOGGER.warning(
                            "Stream %s not selected by default: token %s",
                            stream.name,
                            describe_missing(scope, granted[scope]),
                        )
        return super().run_discovery()

    @classmethod
    def invoke(cls, *args: Any, **kwargs: Any) -> None:
        """Run a sync; a failure the user can act on ends with its one line, no traceback."""
        # What is left after the run is the interpreter's teardown, whose collections
        # walk every object the SDK's imports made (0.1 s a run, more than the sync of a
        # dozen conversations costs). Frozen objects are skipped; the OS frees them. A
        # file in a reference cycle would go unflushed: the tap writes through stdout
        # and logging only, which the teardown flushes anyway.
        atexit.unregister(gc.freeze)
        atexit.register(gc.freeze)
        try:
            if kwargs.get("state") is not None:
                kwargs["state"] = _checked_state_file(kwargs["state"])
            super().invoke(*args, **kwargs)
        except TapConversationsError as error:
            cls.logger.error("%s", error)  # noqa: TRY400  # the traceback is noise here
            sys.exit(error.exit_code)

    @classmethod
    def get_singer_command(cls: type[TapConversations]) -> click.Command:
        """The SDK's command, with `--test` described as this tap does it."""
        command = super().get_singer_command()
        for param in command.params:
            if "--test" in getattr(param, "opts", ()):
                param.help = (
                    "Check the connection: read the token's account (GET /me) and report "
                    "the scopes it lacks, with no records written. Exit 0 when the token "
                    "works. --test=schema writes the SCHEMA messages only."
                )
        return command

    @classmethod
    def cb_test(cls, ctx: click.Context, param: click.Option, value: str) -> None:
        """`--test`: check the token with GET /me and report the scopes it lacks."""
        if value != "all":
            super().cb_test(ctx, param, value)
            return
        config = ctx.params.get("config")
        try:
            tap = cls(
                config=config.config if config else None,
                parse_env_config=bool(config and config.parse_env),
                validate_config=True,
            )
            account = tap.account
            granted = probe_scopes(tap.api)
        except AuthenticationError as error:
            cls.logger.error("Connection test failed: %s", error)  # noqa: TRY400
            ctx.exit(1)
        except TapConversationsError as error:
            cls.logger.error("Connection test failed: %s", error)  # noqa: TRY400
            ctx.exit(error.exit_code)
        cls.logger.info(
            "Connection test passed: the token reads account %r (%s).",
            account.get("name"),
            account.get("id"),
        )
        for scope, missing in sorted(granted.items()):
            if missing is not None:
                cls.logger.warning("Token %s", describe_missing(scope, missing))
        ctx.exit(0)


def _checked_state_file(state_file: io.TextIOBase) -> io.StringIO:
    """The state file's JSON object, or one line that says the file is unusable.

    An empty file is a first run's state (what a scheduler may create before one).
    Checked here, not only in `load_state`: the SDK reads a JSON null as no state.
    """
    name = getattr(state_file, "name", "the state file")
    text = state_file.read()
    if not text.strip():
        return io.StringIO("{}")
    try:
        parsed = json.loads(text)
    except ValueError as error:
        msg = (
            f"The state file {name} is not valid JSON ({error}); it may be truncated. "
            f"{StateError.FIX}"
        )
        raise StateError(msg) from None
    if not isinstance(parsed, dict):
        raise StateError(_not_an_object(f"The state file {name} holds", parsed))
    return io.StringIO(text)


#: How many of a refused state's top-level keys its error line names.
SHOWN_KEYS = 8
#: How much of each key the line shows.
SHOWN_KEY_CHARS = 40


def _resumable_state(state: object, where: str = "The state") -> dict[str, Any]:
    """The state's value (`{"bookmarks": ...}` or `{}`), unwrapped from any accepted form.

    Raises:
        StateError: Not an object, or an object of none of the accepted forms.
    """
    if not isinstance(state, dict):
        raise StateError(_not_an_object(f"{where} is", state))
    if state.get("type") == "STATE" and "value" in state:
        return _resumable_state(state["value"], "The STATE message's value")
    if "singer_state" in state and "bookmarks" not in state:
        return _resumable_state(state["singer_state"], "The state's singer_state")
    if state and "bookmarks" not in state:
        msg = (
            f"{where} has no 'bookmarks' (its top-level keys: {_described_keys(state)}), so "
            "it is not a state of this tap (another tap's, or mistyped); read as empty it "
            f"would sync everything again. {StateError.FIX}"
        )
        raise StateError(msg)
    return state


def _not_an_object(what: str, value: object) -> str:
    return (
        f"{what} a JSON {_json_kind(value)}, not an object with 'bookmarks', so this tap "
        f"cannot resume from it. {StateError.FIX}"
    )


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "number"


def _described_keys(state: dict[Any, Any]) -> str:
    """The keys only, never a value: quoted, cut short, on one line."""
    keys = sorted(str(key) for key in state)
    shown = ", ".join(repr(key[:SHOWN_KEY_CHARS]) for key in keys[:SHOWN_KEYS])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > SHOWN_KEYS else "")


if __name__ == "__main__":
    from tap_conversations.cli import main

    main()

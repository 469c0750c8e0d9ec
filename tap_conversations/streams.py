"""Stream definitions.

Each stream declares its name, key, schema, the token scope it needs and what it
costs in requests; the README's streams table is generated from these declarations.
The children of `conversations` make no requests of their own for what the detail
response already holds: `conversations` fetches a chunk of conversations and each
child reads its part of the same responses.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk import Stream
from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_conversations import schemas
from tap_conversations.bookmarks import (
    ConversationCheckpoint,
    format_timestamp,
    is_timestamp,
    parse_timestamp,
)
from tap_conversations.conversation_fetch import (
    ChunkResult,
    ConversationBundle,
    ConversationFetcher,
    FetchPlan,
    PendingChunk,
)
from tap_conversations.conversation_listing import PAGE_SIZE, ConversationLister
from tap_conversations.errors import ApiResponseError, MissingScopeError, RecordShapeError
from tap_conversations.progress import ProgressReporter
from tap_conversations.record_shape import check_record_shape

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_conversations.tap import TapConversations

LOGGER = logging.getLogger("tap_conversations")

#: Detail keys that belong to child streams, not to the conversation record.
CHILD_PARTS = frozenset({"transcript", "insights", "_meta"})


class ConversationsApiStream(Stream):
    """Base of every stream: scope and cost declarations, shared record hygiene."""

    #: The token scope this stream needs (None: any valid token).
    scope: ClassVar[str | None] = None
    #: What the stream costs, in the README's words.
    cost: ClassVar[str] = ""
    # Values arrive as decoded JSON, already of JSON types; walking every nested
    # transcript segment to "conform" them was a third of the tap's CPU.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, tap: TapConversations, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        self.conversations_tap = tap
        self._schema_written = False

    def _write_schema_message(self) -> None:
        # The SDK writes a child's SCHEMA again each time the child is synced for a
        # parent (meltano/sdk#1061); one per stream and run is all a target needs.
        if self._schema_written:
            return
        self._schema_written = True
        super()._write_schema_message()

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:  # noqa: ARG002
        """Drop the API envelope, make absent fields null, refuse changed types."""
        row.pop("_meta", None)
        for name in self.schema["properties"]:
            row.setdefault(name, None)
        check_record_shape(self.name, row, self.schema, self.primary_keys)
        return row


class ListEndpointStream(ConversationsApiStream):
    """A stream read with one GET of a list (or single-object) endpoint."""

    path: ClassVar[str]
    #: Key of the records array in the response; None when the response is the record.
    records_key: ClassVar[str | None] = None
    cost = "1 request per sync"

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002
        """Yield the endpoint's records."""
        tap = self.conversations_tap
        if tap.scopes.is_missing(self.scope):
            return
        try:
            payload = tap.api.get(self.path)
        except MissingScopeError as error:
            tap.scopes.missing(self.scope or "", error)
            return
        if self.records_key is None:
            yield payload
            return
        records = payload.get(self.records_key)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            msg = f"GET {self.path} answered without a '{self.records_key}' list of objects."
            raise ApiResponseError(msg)
        yield from records


class AccountStream(ListEndpointStream):
    """The account the token belongs to."""

    name = "account"
    path = "/me"
    primary_keys = ("id",)
    schema = schemas.ACCOUNT


class UsersStream(ListEndpointStream):
    """Active users."""

    name = "users"
    path = "/users"
    records_key = "users"
    primary_keys = ("id",)
    scope = "users"
    schema = schemas.USER


class TeamsStream(ListEndpointStream):
    """Teams with their members nested."""

    name = "teams"
    path = "/teams"
    records_key = "teams"
    primary_keys = ("id",)
    scope = "teams"
    schema = schemas.TEAM


class DepartmentsStream(ListEndpointStream):
    """Enabled departments."""

    name = "departments"
    path = "/departments"
    records_key = "departments"
    primary_keys = ("id",)
    scope = "departments"
    schema = schemas.DEPARTMENT


class WebhookDeliveriesStream(ListEndpointStream):
    """Webhook deliveries of the last 7 days (the API keeps no more)."""

    name = "webhook_deliveries"
    path = "/webhooks/deliveries"
    records_key = "deliveries"
    primary_keys = ("id",)
    replication_key = "created_at"
    is_sorted = True  # get_records sorts the (small) answer, so the bookmark is resumable
    schema = schemas.WEBHOOK_DELIVERY

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield deliveries created at or after the bookmark, oldest first."""
        start = self.get_starting_timestamp(context)
        dated = []
        for record in super().get_records(context):
            created = record.get("created_at")
            if not is_timestamp(created):
                msg = (
                    f"Stream webhook_deliveries, record id={record.get('id')!r}: field "
                    f"'created_at' is {created!r:.60}, not a date-time."
                )
                raise RecordShapeError(msg)
            moment = parse_timestamp(str(created))
            if start is None or moment >= start:
                dated.append((moment, record))
        dated.sort(key=lambda pair: pair[0])
        for _, record in dated:
            yield record


class ConversationsStream(ConversationsApiStream):
    """Conversations, incremental on `date`; the parent of every per-conversation stream."""

    name = "conversations"
    primary_keys = ("id",)
    replication_key = "date"
    scope = "conversations"
    schema = schemas.CONVERSATION
    cost = "1 request per conversation (detail) + 1 per 25 listed"

    def __init__(self, tap: TapConversations, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        #: The chunk being emitted; the children read their parts from it.
        self.current_chunk: list[ConversationBundle] = []

    def _increment_stream_state(
        self, latest_record: dict, *, context: Context | None = None
    ) -> None:
        # The bookmark is a ConversationCheckpoint, advanced once per chunk after the
        # children's records are out, not per record.
        pass

    def generate_child_contexts(
        self,
        record: dict,  # noqa: ARG002
        context: Context | None,  # noqa: ARG002
    ) -> Iterable[Context | None]:
        """No per-record child syncs: children run once per chunk (see get_records)."""
        return ()

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """List the window, then fetch and emit chunk by chunk, oldest first."""
        tap = self.conversations_tap
        settings = tap.settings
        checkpoint = ConversationCheckpoint.from_state(self.stream_state)
        start = self._start(checkpoint)
        try:
            listed = ConversationLister(tap.api, settings).since(start, checkpoint.needs_fetch)
        except MissingScopeError as error:
            tap.scopes.missing("conversations", error)
            return
        if not listed:
            LOGGER.info("conversations: nothing new since %s.", format_timestamp(start))
            self._save(checkpoint)
            return
        fetcher = ConversationFetcher(
            tap.api, tap.scopes, self._fetch_plan(), settings.max_parallel_requests
        )
        progress = ProgressReporter(tap.api, total=len(listed))
        chunks = [listed[i : i + PAGE_SIZE] for i in range(0, len(listed), PAGE_SIZE)]
        try:
            upcoming: PendingChunk | None = fetcher.submit(chunks[0])
            for index, chunk in enumerate(chunks):
                if upcoming is None:
                    break  # the previous chunk stopped early and raised; not reached
                pending = upcoming
                more = index + 1 < len(chunks) and not pending.stopped
                upcoming = fetcher.submit(chunks[index + 1]) if more else None
                result = fetcher.collect(pending)
                if result.quota_error is not None and upcoming is not None:
                    # The next chunk ran alongside: what it got is charged, so emit it.
                    result.bundles += fetcher.collect(upcoming).bundles
                yield from self._emit_chunk(result, index, checkpoint)
                if result.done_prefix:
                    checkpoint.advance(chunk[result.done_prefix - 1][0])
                self._save(checkpoint)
                progress.advance(len(result.bundles))
                if result.quota_error is not None:
                    remaining = len(listed) - index * PAGE_SIZE - result.done_prefix
                    LOGGER.warning(
                        "%s Stopped with %d of %d listed conversations left; the state "
                        "saved lets the next run resume there without fetching the others "
                        "again. Other streams continue; the run exits 0.",
                        result.quota_error,
                        remaining,
                        len(listed),
                    )
                    return
        finally:
            self.current_chunk = []
            fetcher.close()
            progress.finish()

    def _emit_chunk(
        self, result: ChunkResult, index: int, checkpoint: ConversationCheckpoint
    ) -> Iterator[dict[str, Any]]:
        """Yield the chunk's conversations, sync the children, then checkpoint."""
        self.current_chunk = [b for b in result.bundles if b.detail is not None]
        for bundle in self.current_chunk:
            yield {k: v for k, v in (bundle.detail or {}).items() if k not in CHILD_PARTS}
        self._sync_children({"chunk": index})
        for bundle in result.bundles:
            checkpoint.mark_emitted(bundle.conversation_id, bundle.date, complete=bundle.complete)

    def _save(self, checkpoint: ConversationCheckpoint) -> None:
        checkpoint.prune(self.conversations_tap.settings.late_data_window)
        checkpoint.write_to(self.stream_state)
        self._write_state_message()

    def _start(self, checkpoint: ConversationCheckpoint) -> dt.datetime:
        settings = self.conversations_tap.settings
        history_floor = self.conversations_tap.history_floor
        start = settings.start_date or history_floor
        relist_from = checkpoint.relist_from(settings.late_data_window)
        if relist_from is not None:
            start = max(start, relist_from)
        return max(start, history_floor)

    def _fetch_plan(self) -> FetchPlan:
        wanted = {
            child.name
            for child in self.child_streams
            if child.selected
            and not self.conversations_tap.scopes.is_missing(getattr(child, "scope", None))
        }
        return FetchPlan(
            detail=self.selected or bool(wanted - {"recordings"}),
            transcript=bool(wanted & {"transcripts", "transcript_segments"}),
            insights="insights" in wanted,
            recording="recordings" in wanted,
            summary="summaries" in wanted,
        )


class ConversationPartStream(ConversationsApiStream):
    """A child of conversations whose records come from the chunk being emitted."""

    parent_stream_type = ConversationsStream
    # One state entry, not one partition per conversation: the parent's checkpoint
    # already says which conversations (and so which children) are done.
    state_partitioning_keys: ClassVar[list[str]] = []

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """Yield this stream's part of every conversation in the parent's chunk."""
        if self.conversations_tap.scopes.is_missing(self.scope):
            return
        parent = self.conversations_tap.streams[ConversationsStream.name]
        assert isinstance(parent, ConversationsStream)  # noqa: S101  # declared parent
        for bundle in parent.current_chunk:
            yield from self.records_of(bundle)

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """This stream's records for one conversation."""
        raise NotImplementedError

    def objects_in(self, bundle: ConversationBundle, part: str, value: object) -> list[dict]:
        """`value` as a list of objects, or a clear error naming stream, record and part."""
        if value is None:
            return []
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            return value
        msg = (
            f"Stream {self.name}, conversation_id={bundle.conversation_id!r}: field '{part}' is "
            f"{type(value).__name__}, but the API promises a list of objects. The API changed "
            "this field's type; upgrade tap-conversations or report it with this line."
        )
        raise RecordShapeError(msg)

    def transcript_segments(self, bundle: ConversationBundle) -> list[dict] | None:
        """The transcript's segments; None when there is no transcript (yet)."""
        transcript = (bundle.detail or {}).get("transcript")
        if transcript is None:
            return None
        if not isinstance(transcript, dict):
            return self.objects_in(bundle, "transcript", transcript)
        return self.objects_in(bundle, "segments", transcript.get("segments"))


class TranscriptsStream(ConversationPartStream):
    """One record per conversation with its whole transcript."""

    name = "transcripts"
    primary_keys = ("conversation_id",)
    scope = "transcripts"
    schema = schemas.TRANSCRIPT
    cost = "0 (in the conversation detail)"

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """The transcript, when one exists (yet)."""
        segments = self.transcript_segments(bundle)
        if segments is not None:
            yield {"conversation_id": bundle.conversation_id, "segments": segments}


class TranscriptSegmentsStream(ConversationPartStream):
    """One record per transcript segment (not selected by default)."""

    name = "transcript_segments"
    primary_keys = ("conversation_id", "segment_index")
    scope = "transcripts"
    schema = schemas.TRANSCRIPT_SEGMENT
    selected_by_default = False
    cost = "0 (in the conversation detail)"

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """Each segment with its position."""
        for index, segment in enumerate(self.transcript_segments(bundle) or []):
            yield {"conversation_id": bundle.conversation_id, "segment_index": index, **segment}


class InsightsStream(ConversationPartStream):
    """One record per insight."""

    name = "insights"
    primary_keys = ("id",)
    scope = "insights"
    schema = schemas.INSIGHT
    cost = "0 (in the conversation detail)"

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """The conversation's insights."""
        for insight in self.objects_in(bundle, "insights", (bundle.detail or {}).get("insights")):
            yield {**insight, "conversation_id": bundle.conversation_id}


class SummariesStream(ConversationPartStream):
    """The stored AI summary with its timestamps."""

    name = "summaries"
    primary_keys = ("conversation_id",)
    scope = "conversations"
    schema = schemas.SUMMARY
    cost = "1 request per conversation with a summary"

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """The summary, when one exists (yet)."""
        if bundle.summary is not None:
            yield {**bundle.summary, "conversation_id": bundle.conversation_id}


class RecordingsStream(ConversationPartStream):
    """The recording's signed URL."""

    name = "recordings"
    primary_keys = ("conversation_id",)
    scope = "recordings"
    schema = schemas.RECORDING
    cost = "1 request per conversation"

    def records_of(self, bundle: ConversationBundle) -> Iterable[dict[str, Any]]:
        """The recording answer."""
        if bundle.recording is not None:
            yield {**bundle.recording, "conversation_id": bundle.conversation_id}


STREAM_TYPES: tuple[type[ConversationsApiStream], ...] = (
    AccountStream,
    UsersStream,
    TeamsStream,
    DepartmentsStream,
    ConversationsStream,
    TranscriptsStream,
    TranscriptSegmentsStream,
    InsightsStream,
    SummariesStream,
    RecordingsStream,
    WebhookDeliveriesStream,
)

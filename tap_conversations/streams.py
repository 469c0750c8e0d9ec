"""Stream definitions.

Each stream declares its name, key, schema, the token scope it needs and what it
costs in requests; the README's streams table is generated from these declarations.
The children of `conversations` make no requests of their own for what the detail
response already holds: `conversations` fetches a chunk of conversations and each
child reads its part of the same responses.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from singer_sdk.helpers.conform import TypeConformanceLevel

from tap_conversations import schemas
from tap_conversations.bookmarks import (
    PENDING_REASONS,
    PROCESSING,
    PROCESSING_ALLOWANCE,
    ConversationCheckpoint,
)
from tap_conversations.conversation_fetch import (
    ConversationBundle,
    ConversationFetcher,
    FetchedChunk,
    FetchPlan,
)
from tap_conversations.conversation_filters import ConversationFilters, ListedConversation
from tap_conversations.conversation_listing import PAGE_SIZE, ConversationLister
from tap_conversations.coverage import CoveredSpan
from tap_conversations.errors import (
    ApiResponseError,
    MissingScopeError,
    NotFoundError,
    QuotaExceededError,
    RecordShapeError,
    StateError,
)
from tap_conversations.ledger import COMPLETE, QUOTA
from tap_conversations.planner import FetchList, RunPlanner, recheck_budget
from tap_conversations.progress import ProgressReporter
from tap_conversations.record_shape import check_record_shape
from tap_conversations.redaction import mask, quote
from tap_conversations.removals import SWEEP_COST, Removal, RemovalSweep
from tap_conversations.scopes import probe_missing
from tap_conversations.sdk_internals import (
    ChunkedParentStream,
    SdkStream,
    VersionedFullTableStream,
)
from tap_conversations.settings import HISTORY_DAYS
from tap_conversations.timestamps import JUST_BELOW, format_timestamp

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    from singer_sdk.helpers.types import Context

    from tap_conversations.tap import TapConversations

LOGGER = logging.getLogger("tap_conversations")

#: Detail keys that belong to child streams, not to the conversation record.
CHILD_PARTS = frozenset({"transcript", "insights", "_meta"})
#: Conversations fetched and emitted between two checkpoints (STATE messages).
FETCH_CHUNK_SIZE = 25


class ConversationsApiStream(SdkStream):
    """Base of every stream: scope and cost declarations, shared record hygiene."""

    #: The token scope this stream needs (None: any valid token).
    scope: ClassVar[str | None] = None
    #: What the stream costs, in the README's words.
    cost: ClassVar[str] = ""
    #: False for a stream the tap derives itself (its schema is not the API's).
    in_the_api: ClassVar[bool] = True
    # Values arrive as decoded JSON, already of JSON types; walking every nested
    # transcript segment to "conform" them was a third of the tap's CPU. The SDK's
    # top-level pass is skipped, record by record, where it would change nothing (see
    # `post_process`).
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.ROOT_ONLY

    def __init__(self, tap: TapConversations, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        self.conversations_tap = tap

    def before_first_message(self) -> None:
        """Refuse a state of another account before this stream writes anything."""
        self.conversations_tap.refuse_a_state_of_another_account()

    def post_process(self, row: dict, context: Context | None = None) -> dict | None:  # noqa: ARG002
        """Drop the API envelope, make absent fields null, refuse changed types."""
        if not self.selected:
            # A parent synced only for its children: its record is never written.
            return row
        row.pop("_meta", None)
        properties = self.schema["properties"]
        for name in properties:
            row.setdefault(name, None)
        check_record_shape(self.name, row, self.schema, self.primary_keys)
        # The SDK conforms this record next (TYPE_CONFORMANCE_LEVEL, read per record).
        # At the top level it drops (and names) fields the schema lacks, and turns
        # values that are not JSON (dates, bytes, NaN) into JSON. A record that passed
        # the shape check with exactly the schema's fields holds JSON values of the
        # declared types (msgspec decodes no NaN), so that pass would return it as it
        # is: skipped, 6 % of the tap's instructions. Any other record, or a catalog
        # whose schema differs from the stream's, is conformed by the SDK as before.
        exact = len(row) == len(properties) and self._conformed_as_declared
        self.TYPE_CONFORMANCE_LEVEL = (
            TypeConformanceLevel.NONE if exact else TypeConformanceLevel.ROOT_ONLY
        )
        self.conversations_tap.summary.count(self.name)
        return row

    @cached_property
    def _conformed_as_declared(self) -> bool:
        """Whether a record of exactly this schema's fields needs no top-level conforming.

        True when the schema the SDK conforms to (the catalog's, when one is given) has
        the stream's own properties and every property declares a type (the shape check
        then admits JSON values only).
        """
        properties = self.schema["properties"]
        return self.effective_schema.get("properties") == properties and all(
            schema.get("type") for schema in properties.values()
        )

    def log_sync_costs(self) -> None:
        """The SDK's last call on every stream: the last stream closes the run's log."""
        super().log_sync_costs()
        if self is list(self.conversations_tap.streams.values())[-1]:
            self.conversations_tap.log_summary()


class ListEndpointStream(VersionedFullTableStream, ConversationsApiStream):
    """A stream read with one GET of a list (or single-object) endpoint."""

    path: ClassVar[str]
    #: Key of the records array in the response; None when the response is the record.
    records_key: ClassVar[str | None] = None
    cost = "1 request per sync"
    #: Read ahead of this stream's turn, once the token and the state's account are
    #: proven (early_reads.py); the stream takes the answer when the SDK reaches it.
    read_early: ClassVar[bool] = True
    #: Each read is the whole current list: a row missing from it was removed at the
    #: source (a user who left, a department switched off), and ACTIVATE_VERSION tells
    #: the loader so (target-postgres marks it in `_sdc_deleted_at`).
    removals_reach_the_loader: ClassVar[bool] = True

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002
        """Yield the endpoint's records; then, when the read was whole, activate them."""
        tap = self.conversations_tap
        if tap.scopes.is_missing(self.scope):
            return
        versioned = self.removals_reach_the_loader and self.config.get(
            "emit_activate_version_messages", True
        )
        if versioned:
            self.begin_version(time.time_ns() // 1_000_000)
        try:
            records = self.read()
        except MissingScopeError as error:
            tap.scopes.missing(self.scope or "", error)
            return
        yield from records
        if versioned:
            self.activate_version()

    def read(self) -> list[dict[str, Any]]:
        """The endpoint's records (one request, perhaps sent early)."""
        payload = self.conversations_tap.early_reads.answer(self.path)
        if self.records_key is None:
            return [payload]
        return records_in(payload, self.path, self.records_key)


def records_in(payload: dict[str, Any], path: str, key: str) -> list[dict[str, Any]]:
    """The list of objects under `key` of an answer, or a clear error."""
    records = payload.get(key)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        msg = f"GET {path} answered without a '{key}' list of objects."
        raise ApiResponseError(msg)
    return records


class AccountStream(ListEndpointStream):
    """The account the token belongs to."""

    name = "account"
    path = "/me"
    primary_keys = ("id",)
    schema = schemas.ACCOUNT
    # Its answer proves the token: the early reads start after it.
    read_early = False

    def read(self) -> list[dict[str, Any]]:
        """The account, read once per run (the conversations state is tied to it)."""
        account = self.conversations_tap.account
        self.conversations_tap.start_early_reads()
        return [account]


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
    """Webhook deliveries of the last 7 days, each with its latest status.

    Read whole every run (one request: the API keeps 7 days): a delivery first read as
    `pending` and later `delivered` is emitted again with its new status, and the
    loader's upsert on `id` keeps the latest.
    """

    name = "webhook_deliveries"
    path = "/webhooks/deliveries"
    records_key = "deliveries"
    # The endpoint keeps 7 days: a delivery that leaves it aged out, it was not removed.
    removals_reach_the_loader = False
    primary_keys = ("id",)
    schema = schemas.WEBHOOK_DELIVERY

    def read(self) -> list[dict[str, Any]]:
        """The deliveries, read once per run (the conversations stream uses them too)."""
        return self.conversations_tap.webhook_deliveries()


class ConversationsStream(ChunkedParentStream, ConversationsApiStream):
    """Conversations, incremental on `date`; the parent of every per-conversation stream.

    The path of one conversation: listed (`conversation_listing`), chosen for this run
    by the checkpoint (`bookmarks`, `coverage`), fetched in a chunk
    (`conversation_fetch`), emitted with its children's records, then recorded in the
    checkpoint, which is written as this stream's state after every chunk.
    """

    name = "conversations"
    primary_keys = ("id",)
    replication_key = "date"
    scope = "conversations"
    schema = schemas.CONVERSATION
    cost = "1 request per conversation (detail) + 1 per 25 listed"

    def __init__(self, tap: TapConversations, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        #: The chunk whose children are being synced: (its index, its bundles).
        self._emitting: tuple[int, list[ConversationBundle]] | None = None

    def bundles_for(self, context: Context | None) -> list[ConversationBundle]:
        """The fetched conversations of the chunk a child sync was started for.

        Raises:
            RuntimeError: The child was synced outside its parent's chunk.
        """
        chunk = (context or {}).get("chunk")
        if self._emitting is None or self._emitting[0] != chunk:
            msg = f"child streams read chunk {chunk!r} outside its sync"
            raise RuntimeError(msg)
        return self._emitting[1]

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:  # noqa: ARG002
        """List, choose, fetch chunk by chunk, emit, checkpoint; oldest first.

        One progress reporter covers the run, from the first list page to the last fetch
        (which closes it; `finish` again here stops it on every other way out).
        """
        tap = self.conversations_tap
        progress = ProgressReporter(
            tap.api, parts=self._fetch_plan(), daily_quota=tap.settings.daily_conversation_quota
        )
        try:
            yield from self._sync(progress)
        finally:
            progress.finish()

    def _sync(self, progress: ProgressReporter) -> Iterator[dict[str, Any]]:
        """`get_records`, its progress told of the listing and the fetch."""
        tap = self.conversations_tap
        checkpoint = ConversationCheckpoint.from_state(self.stream_state)
        self._claim_account(checkpoint)
        planner = RunPlanner(
            checkpoint,
            tap.settings,
            history_floor=tap.history_floor,
            streams=self._streams_to_cover(checkpoint),
            filters=ConversationFilters.from_settings(tap.settings),
            now=tap.clock(),
        )
        start = planner.listing_start()
        following = self._follow_loaded_ids(planner)
        sweep = self._removal_sweep(planner) if following else None
        # A sweep lists the window below `start` too; only its comparison reads that part.
        list_from = min(start, sweep.compared_from) if sweep is not None else start
        lister = ConversationLister(tap.api, tap.settings, tap.clock, progress.listing)
        try:
            everything = lister.since(
                list_from, planner.filters, tie_dates=checkpoint.unproven_ties
            )
        except MissingScopeError as error:
            tap.scopes.missing("conversations", error)
            return
        listed = [
            item
            for item in everything
            if item.date >= start or format_timestamp(item.date) in checkpoint.unproven_ties
        ]
        tap.ledger.record_listing(planner.now, planner.filters, start, listed)
        # Conversations at a date unproven before this run, or found unproven now, were
        # never claimed by a span: the choice sees both; the state keeps what stays.
        unproven = {ties.date for ties in lister.unlisted_ties}
        checkpoint.record_ties(unproven, filtered=True)
        plan = planner.choose(listed, self._completed_per_webhooks(planner))
        tap.ledger.record_fetched(plan.rechecks)
        stopped = False
        if plan.conversations:
            stopped = yield from self._fetch_and_emit(plan, planner, start, progress)
        else:
            LOGGER.info(
                "conversations: nothing to fetch (%d listed since %s).",
                len(listed),
                format_timestamp(start),
            )
            self._cover(planner, start, checkpoint.high_water)
        if not stopped:
            # Every conversation listed is fetched: a date this run proved whole leaves.
            checkpoint.record_ties(unproven, filtered=planner.filters != ConversationFilters())
            if sweep is not None:
                self._find_removals(sweep, planner, everything, unproven)
        checkpoint.missing_scopes = frozenset(
            scope for scope in self._selected_scopes() if tap.scopes.is_missing(scope)
        )
        self._save(planner)
        tap.ledger.finish(
            checkpoint,
            ended=QUOTA if stopped else COMPLETE,
            requests=tap.api.stats.requests - tap.early_reads.sent_ahead(),
            quota_used=tap.api.stats.conversations_touched,
        )
        self._warn_unlisted_ties(lister)

    def _fetch_and_emit(
        self, plan: FetchList, planner: RunPlanner, start: dt.datetime, progress: ProgressReporter
    ) -> Generator[dict[str, Any], None, bool]:
        """Fetch, emit and checkpoint chunk by chunk; True when the quota stopped it.

        Every STATE message covers exactly what came before it: the coverage grows with
        each chunk, so a run stopped after any chunk leaves a state that proves no more
        than it emitted.
        """
        tap = self.conversations_tap
        checkpoint, now = planner.checkpoint, planner.now
        to_fetch = plan.conversations
        fetcher = ConversationFetcher(
            tap.api, tap.scopes, self._fetch_plan(), tap.settings.max_parallel_requests
        )
        progress.fetching(len(to_fetch), rechecks=len(plan.rechecks), parts=self._fetch_plan())
        asked = {conversation.id: conversation for conversation in to_fetch}
        new_ids = {conversation.id for conversation in plan.dated}
        done = 0
        try:
            for index, chunk in enumerate(fetcher.in_order(to_fetch, FETCH_CHUNK_SIZE)):
                yield from self._emit_chunk(chunk, index)
                # Read per chunk: the first fetch settles which scopes the token has.
                synced = self._synced(planner)
                new = []  # not re-checks: what the bookmark and the coverage are about
                for bundle in chunk.bundles:
                    if bundle.conversation_id in plan.reread_ids:
                        # Complete already: a re-read changes what was loaded, not the state.
                        reread = asked[bundle.conversation_id]
                        checkpoint.rereads.add(now)
                        checkpoint.rereads.after = f"{reread.date.date()} {reread.id}"
                        continue
                    listed = asked[bundle.conversation_id]
                    checkpoint.mark_emitted(
                        listed, streams=synced, pending_reason=bundle.pending_reason, now=now
                    )
                    if bundle.conversation_id in plan.guesses:
                        checkpoint.rechecks.add(now)
                    if bundle.conversation_id in new_ids:
                        new.append(listed)
                done = index * FETCH_CHUNK_SIZE + chunk.done_prefix
                fetched_until = plan.fetched_until(done)
                checkpoint.hold_ahead(
                    new, start - JUST_BELOW if fetched_until is None else fetched_until
                )
                if fetched_until is not None:
                    checkpoint.advance(fetched_until, now)
                    self._cover(planner, start, fetched_until)
                self._save(planner)
                progress.advance(len(chunk.bundles))
                if chunk.quota_error is not None:
                    LOGGER.warning(
                        "%s Stopped with %d of %d conversations to fetch left; the state "
                        "saved lets the next run resume there without fetching the others "
                        "again. Other streams continue; the run exits 0.",
                        chunk.quota_error,
                        len(to_fetch) - done,
                        len(to_fetch),
                    )
                    return True
            self._cover(planner, start, checkpoint.high_water)
        finally:
            fetcher.close()
            progress.finish()
        return False

    def _follow_loaded_ids(self, planner: RunPlanner) -> bool:
        """Whether the checkpoint records the ids this run loads (see removals.LoadedIds).

        Only while `removed_conversations` is selected (a sweep compares against them),
        or summaries are re-read (`summary_reread_days` walks them); otherwise the ids
        kept so far are dropped.
        """
        tap = self.conversations_tap
        loaded = planner.checkpoint.loaded
        removals = tap.streams[RemovedConversationsStream.name].selected
        rereads = bool(tap.settings.summary_reread_days) and "summaries" in planner.streams
        if not removals and not rereads:
            loaded.stop()
            return False
        if not loaded.follow(planner.filters.to_state(), planner.now):
            LOGGER.info(
                "conversations: the filters changed; removals are found again for the "
                "conversations loaded from this run on."
            )
        return True

    def _removal_sweep(self, planner: RunPlanner) -> RemovalSweep | None:
        """This run's re-list of the window to find removals; None when none is due.

        Call it only while the loaded ids are followed (`_follow_loaded_ids`).
        """
        tap = self.conversations_tap
        loaded = planner.checkpoint.loaded
        sweep = RemovalSweep(
            loaded, tap.settings.removal_sweep_interval, tap.history_floor, planner.now
        )
        if not tap.streams[RemovedConversationsStream.name].selected or not sweep.due:
            return None
        LOGGER.info(
            "conversations: listing the 30 days again from %s to find conversations removed "
            "since they were loaded (%d loaded; removal_sweep_hours: %d).",
            format_timestamp(sweep.compared_from),
            len(loaded),
            tap.settings.removal_sweep_interval // dt.timedelta(hours=1),
        )
        return sweep

    def _find_removals(
        self,
        sweep: RemovalSweep,
        planner: RunPlanner,
        listed: list[ListedConversation],
        unproven: set[str],
    ) -> None:
        """Fetch each loaded conversation the sweep did not list; a 404 is a removal.

        The fetches come after every new conversation and re-check, and at most the
        re-check budget of them a run: many at once means something else happened (a
        listing the server cut short), and the rest wait for the next run.
        """
        tap = self.conversations_tap
        checkpoint = planner.checkpoint
        missing = sweep.missing(listed, unproven | checkpoint.unproven_ties)
        budget = recheck_budget(tap.settings.daily_conversation_quota)
        previous = checkpoint.loaded.swept_at
        checked = 0
        try:
            for day, cid in missing[:budget]:
                if self._detail_answers(cid):
                    LOGGER.info(
                        "conversations: %s no longer lists, but its detail answers: kept.",
                        mask(cid),
                    )
                else:
                    tap.ledger.removals.append(Removal(cid, day, planner.now, previous))
                    checkpoint.loaded.discard(cid, day)
                    checkpoint.pending.pop(cid, None)
                checked += 1
        except (QuotaExceededError, ApiResponseError) as error:
            LOGGER.warning(
                "conversations: %d loaded conversations no longer list; could not check "
                "whether they were removed (%s). The next run lists the 30 days again.",
                len(missing) - checked,
                error,
            )
        else:
            if len(missing) > budget:
                LOGGER.warning(
                    "conversations: %d loaded conversations no longer list, more than a "
                    "run checks (%d); the next run lists the 30 days again for the rest.",
                    len(missing),
                    budget,
                )
            else:
                checkpoint.loaded.swept_at = planner.now

    def _detail_answers(self, conversation_id: str) -> bool:
        """Whether the conversation's detail answers (False: 404)."""
        try:
            self.conversations_tap.api.get(f"/conversations/{conversation_id}")
        except NotFoundError:
            return False
        return True

    def _cover(self, planner: RunPlanner, start: dt.datetime, until: dt.datetime | None) -> None:
        """Record that this run's wishes are proven from `start` to `until`, where settled."""
        if until is None:
            return
        planner.checkpoint.proven(start, until)
        span = CoveredSpan(start, planner.settled(until), planner.filters, self._synced(planner))
        planner.checkpoint.coverage.add(span)

    def _synced(self, planner: RunPlanner) -> frozenset[str]:
        """The streams this run emits: selected, and readable with the token."""
        tap = self.conversations_tap
        return frozenset(s for s in planner.streams if not tap.scopes.is_missing(self._scope_of(s)))

    def _emit_chunk(self, chunk: FetchedChunk, index: int) -> Iterator[dict[str, Any]]:
        """Yield the chunk's conversations, then sync the children on the same chunk."""
        fetched = [b for b in chunk.bundles if b.detail is not None]
        for bundle in fetched:
            yield {k: v for k, v in (bundle.detail or {}).items() if k not in CHILD_PARTS}
        self._emitting = (index, fetched)
        try:
            self.sync_children_now({"chunk": index})
        finally:
            self._emitting = None

    def _claim_account(self, checkpoint: ConversationCheckpoint) -> None:
        """Tie the state to the token's account; refuse a state of another account."""
        account = self.conversations_tap.account
        account_id = str(account.get("id"))
        if checkpoint.account_id not in (None, account_id):
            msg = (
                f"The state was written for account {mask(str(checkpoint.account_id))}, but the "
                f"token reads account {mask(account_id)} ({quote(account.get('name'))}): "
                f"continuing from it would skip that account's conversations. {StateError.FIX}"
            )
            raise StateError(msg)
        checkpoint.account_id = account_id
        self.conversations_tap.start_early_reads()

    def _selected_scopes(self) -> set[str]:
        """The scopes of the selected streams of the conversations family."""
        return {self._scope_of(name) for name in self._selected_family()}

    def _selected_family(self) -> set[str]:
        """This stream and its children, those selected."""
        family = {child.name for child in self.child_streams if child.selected}
        return family | ({self.name} if self.selected else set())

    def _scope_of(self, stream_name: str) -> str:
        stream = self.conversations_tap.streams[stream_name]
        return getattr(stream, "scope", None) or self.scope or ""

    def _streams_to_cover(self, checkpoint: ConversationCheckpoint) -> frozenset[str]:
        """The streams this run emits, for the coverage: selected, and readable.

        A scope the last run found missing is probed again (two requests, one unit of
        the daily quota), so that a scope granted since is noticed and its streams
        backfilled, while a scope still missing costs no backfill.
        """
        tap = self.conversations_tap
        recheck = checkpoint.missing_scopes & self._selected_scopes()
        if recheck:
            still_missing = probe_missing(tap.api, set(recheck))
            for scope in recheck:
                if scope in still_missing:
                    tap.scopes.missing(scope, still_missing[scope])
                else:
                    tap.scopes.granted(scope)
        return frozenset(
            name
            for name in self._selected_family()
            if not tap.scopes.is_missing(self._scope_of(name))
        )

    def _completed_per_webhooks(self, planner: RunPlanner) -> frozenset[str]:
        """Pending ids that a `conversation.completed` delivery reports done since checked.

        Read only when some pending conversation is not due by the schedule anyway: one
        request, none when webhook_deliveries is selected too (the answer is shared).
        """
        if not planner.waiting():
            return frozenset()
        try:
            deliveries = self.conversations_tap.webhook_deliveries()
        except (ApiResponseError, MissingScopeError) as error:
            LOGGER.warning(
                "conversations: could not read webhook deliveries (%s); conversations still "
                "processing are fetched again on their schedule only.",
                error,
            )
            return frozenset()
        return planner.completed_per(deliveries)

    def _save(self, planner: RunPlanner) -> None:
        """Prune, warn about what is given up, write the state and one STATE message."""
        tap = self.conversations_tap
        checkpoint = planner.checkpoint
        given_up = checkpoint.prune(tap.settings.late_data_window, tap.history_floor, planner.now)
        for (reason, aged_out), entries in itertools.groupby(
            sorted(given_up, key=lambda g: (g.reason, g.aged_out)),
            key=lambda g: (g.reason, g.aged_out),
        ):
            ids = [entry.conversation_id for entry in entries]
            LOGGER.warning(
                "conversations: %d conversations %s %s; no longer fetched again, their "
                "records as loaded stand: %s.%s",
                len(ids),
                PENDING_REASONS[reason],
                f"when they left the API's {HISTORY_DAYS} days of history"
                if aged_out
                else f"when fetched {PROCESSING_ALLOWANCE.days} days after their date",
                mask(", ".join(ids)),
                "" if reason == PROCESSING else " Ask the vendor's support about them.",
            )
        checkpoint.write_to(self.stream_state)
        self.write_state_now()
        tap.summary.pending = len(checkpoint.pending)

    def _warn_unlisted_ties(self, lister: ConversationLister) -> None:
        """One warning per date whose tie group could not be proven listed whole."""
        by_date: dict[str, list[dict[str, str]]] = {}
        for ties in lister.unlisted_ties:
            filters = {
                k: v for k, v in ties.query.items() if k not in {"date_from", "date_to", "limit"}
            }
            by_date.setdefault(ties.date, []).append(filters)
        for date, all_queries in sorted(by_date.items()):
            # The widest groups say it: their parts are parts of the same gap.
            fewest = min(len(q) for q in all_queries)
            groups = [q for q in all_queries if len(q) == fewest]
            LOGGER.warning(
                "conversations: more than %d conversations share the date %s (%s); could not "
                "prove every conversation at this instant was listed: the API's filters "
                "cannot split them into pages, and conversations without a department or "
                "user, or of a disabled department or an inactive user, are reachable by no "
                "filter. The state keeps this date and later runs list it again. Report it "
                "to the vendor with this line.",
                PAGE_SIZE,
                date,
                mask(
                    "; ".join(", ".join(f"{k}={v}" for k, v in q.items()) or "all" for q in groups)
                ),
            )

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

    def __init__(self, tap: TapConversations, **kwargs: Any) -> None:
        super().__init__(tap, **kwargs)
        # The SDK logs "Beginning sync" for every chunk a child is synced for; the
        # progress lines say where the sync is. DEBUG still shows them.
        if self.logger.getEffectiveLevel() == logging.INFO:
            self.logger.setLevel(logging.WARNING)

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        """Yield this stream's part of every conversation in the parent's chunk."""
        if self.conversations_tap.scopes.is_missing(self.scope):
            return
        parent = self.conversations_tap.streams[ConversationsStream.name]
        assert isinstance(parent, ConversationsStream)  # noqa: S101  # declared parent
        for bundle in parent.bundles_for(context):
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
            f"Stream {self.name}, conversation_id={quote(bundle.conversation_id)}: field "
            f"'{part}' is {type(value).__name__}, but the API promises a list of objects. The API "
            "changed this field's type; upgrade tap-conversations or report it with this line."
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


class RemovedConversationsStream(ConversationsApiStream):
    """Loaded conversations found removed at the source (removals.py).

    Synced after the conversations family, from what its sweep found: a conversation
    that no longer lists inside the 30 days and whose detail answers 404. One that
    merely ages out of the 30 days is never here.
    """

    # The SDK syncs streams in the order of their names: this one after `conversations`.
    name = "removed_conversations"
    primary_keys = ("conversation_id",)
    schema = schemas.CONVERSATION_REMOVAL
    cost = f"every removal_sweep_hours: {SWEEP_COST}"
    in_the_api = False

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002
        """The removals this run found."""
        yield from self.conversations_tap.ledger.removal_records()


class SyncLedgerStream(ConversationsApiStream):
    """What the run proved, per conversation day: the completeness ledger (ledger.py).

    Synced last, from the counts the conversations stream kept; no request.
    """

    name = "sync_ledger"
    primary_keys = ("run_id", "row_key")
    schema = schemas.SYNC_LEDGER
    cost = "0 (counted during the run)"
    in_the_api = False

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:  # noqa: ARG002
        """The run's rows (none when the conversations family was not synced)."""
        yield from self.conversations_tap.ledger.rows()


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
    RemovedConversationsStream,
    SyncLedgerStream,
)

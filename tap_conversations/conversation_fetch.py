"""Fetching conversations: one detail request carries four streams' data.

`GET /conversations/{id}?include_transcript=true&include_insights=true` returns the
conversation, participants, summary text, transcript and insights at once. Only the
recording and the summary's timestamps need requests of their own, and only when
their streams are selected. `ConversationFetcher.in_order` turns a list of
conversations into an iterator of fetched chunks: conversations are fetched in
parallel (bounded pool, shared pacer), the next chunk already submitted while the
current one is emitted, and handed back in the order asked for.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_conversations.bookmarks import (
    DETAIL_UNAVAILABLE,
    PROCESSING,
    RECORDING_UNAVAILABLE,
    SUMMARY_UNAVAILABLE,
)
from tap_conversations.errors import (
    MissingScopeError,
    NotFoundError,
    QuotaExceededError,
)
from tap_conversations.redaction import mask
from tap_conversations.scopes import PER_CONVERSATION_PROBES
from tap_conversations.timestamps import format_timestamp

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator

    from tap_conversations.client import ApiClient
    from tap_conversations.conversation_filters import ListedConversation
    from tap_conversations.scopes import ScopeTracker


LOGGER = logging.getLogger("tap_conversations")


@dataclass(frozen=True)
class FetchPlan:
    """Which parts of a conversation the selected streams need."""

    #: The detail request itself; only a recordings-only selection can skip it.
    detail: bool
    transcript: bool
    insights: bool
    recording: bool
    summary: bool


@dataclass
class ConversationBundle:
    """Everything fetched for one conversation."""

    conversation_id: str
    date: dt.datetime
    detail: dict[str, Any] | None
    recording: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    detail_fetched: bool = True
    #: Set when a part the selected streams need was not available (a 404, or an
    #: answer for another conversation): the conversation stays pending.
    unavailable: str | None = None

    @property
    def pending_reason(self) -> str | None:
        """Why the conversation is not complete yet (see bookmarks.PENDING_REASONS); None.

        A listed conversation whose detail answers 404 is not deleted on first sight:
        lists and details are not always consistent for a moment. Processing is taken
        as finished once the AI summary exists (it is written last); a conversation
        that never gets one is bounded by bookmarks.PROCESSING_ALLOWANCE. Without a
        detail request (recordings only) there is nothing to wait for.
        """
        if self.unavailable is not None:
            return self.unavailable
        if not self.detail_fetched or self.detail is None:
            return None
        return None if self.detail.get("summary") is not None else PROCESSING


@dataclass
class FetchedChunk:
    """The bundles of one chunk, in order, and whether the daily quota stopped it."""

    bundles: list[ConversationBundle]
    quota_error: QuotaExceededError | None = None
    #: How many of the asked conversations, from the start, were fetched completely.
    done_prefix: int = 0


@dataclass
class PendingChunk:
    """A chunk whose fetches are submitted, in the chunk's order."""

    futures: list[Future[ConversationBundle]]


class ConversationFetcher:
    """Fetches the parts a `FetchPlan` asks for, overlapping conversations.

    Args:
        api: The API client.
        scopes: The run's scope tracker.
        plan: The parts to fetch.
        max_parallel: Conversations in flight at once.
    """

    def __init__(
        self, api: ApiClient, scopes: ScopeTracker, plan: FetchPlan, max_parallel: int
    ) -> None:
        self._api = api
        self._scopes = scopes
        self._plan = plan
        self._pool = ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="fetch")
        #: The run's first conversation: its detail settles the transcripts and insights
        #: scopes, and its recording is the run's first, asked for with the first details.
        self._first_id: str | None = None
        #: Held by the run's first recording request until it has answered.
        self._first_recording = threading.Lock()
        self._first_recording_answered = threading.Event()
        #: The first conversation's recording, asked for alongside the first details
        #: (see `submit`): the conversation's placeholder bundle, and the request's end.
        self._early_recording: tuple[ConversationBundle, Future[None]] | None = None

    def close(self) -> None:
        """Stop the worker threads."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def in_order(
        self, conversations: list[ListedConversation], chunk_size: int
    ) -> Iterator[FetchedChunk]:
        """Fetch the conversations chunk by chunk; stops after a chunk the quota cut.

        The next chunk is submitted before the current one is handed back, so the pool
        stays busy while the caller emits. When the quota cuts a chunk, what the next
        chunk already fetched is charged, so it comes with the cut chunk.
        """
        chunks = [
            conversations[i : i + chunk_size] for i in range(0, len(conversations), chunk_size)
        ]
        upcoming = self.submit(chunks[0]) if chunks else None
        for index in range(len(chunks)):
            current, upcoming = upcoming, None
            assert current is not None  # noqa: S101  # submitted one step earlier
            if index + 1 < len(chunks):
                upcoming = self.submit(chunks[index + 1])
            result = self.collect(current)
            if result.quota_error is not None:
                if upcoming is not None:
                    result.bundles += self.collect(upcoming).bundles
                yield result
                return
            yield result

    def submit(self, listed: list[ListedConversation]) -> PendingChunk:
        """Start fetching the conversations of one chunk.

        Submitting the next chunk before collecting this one keeps the pool busy
        across chunk boundaries; the pool's queue is first in, first out, so chunks
        still finish in order.
        """
        if listed and self._first_id is None:
            self._first_id = listed[0].id
            if self._plan.detail and self._plan.recording:
                # The run's first recording request goes alone (see _fetch_recording).
                # Asked for after its conversation's detail, it would be answered a round
                # trip after every detail in flight, and their recordings would all wait
                # for it; sent now, with the first details, it has answered when they have.
                first = listed[0]
                early = ConversationBundle(first.id, first.date, None)
                self._early_recording = (early, self._pool.submit(self._fetch_recording, early))
        return PendingChunk([self._pool.submit(self._fetch_one, item) for item in listed])

    def collect(self, chunk: PendingChunk) -> FetchedChunk:
        """Wait for a submitted chunk; its bundles in order, or its first failure."""
        result = FetchedChunk(bundles=[])
        failure: BaseException | None = None
        for future in chunk.futures:
            if future.cancelled():
                continue  # after a failure; the chunk is not emitted anyway
            error = future.exception()
            if error is None:
                result.bundles.append(future.result())
                if result.quota_error is None and failure is None:
                    result.done_prefix += 1
            elif isinstance(error, QuotaExceededError):
                result.quota_error = result.quota_error or error
            else:
                failure = failure or error
                for pending in chunk.futures:
                    pending.cancel()  # not started yet: nothing more to spend on a failed chunk
        if failure is not None:
            raise failure
        # Where the run's first conversation could not settle the scopes (refused by
        # the quota, or answered 404, while later ones were answered), the first answer
        # handed back does, before anything is emitted: its streams' state depends on them.
        settler = next((bundle for bundle in result.bundles if bundle.detail is not None), None)
        if settler is not None:
            self._settle_scopes(settler)
        return result

    def _settle_scopes(self, bundle: ConversationBundle) -> None:
        """The transcripts and insights scopes, from the run's first detail; probed where not.

        The details of the pool's first conversations go out together, each asking for
        the transcript and the insights: a token without a scope gets an answer without
        that part, no error, and no request more than one asking only for what the
        token may read. The run's first conversation (the oldest, as before) settles
        the scopes: where its answer lacks a part, one probe tells "none yet" from "not
        allowed". Any other answer could lack it only because that conversation is
        still processing, and would cost a probe the first one does not.
        Sending the first detail alone instead cost a round trip before the pool
        started (0.1 s of a 10 s sync at 3000/min); what sending them together costs is
        paid only when the first details fail: those already in flight (up to
        max_parallel_requests; each answered 429 when the day's quota is spent, 401
        for a token revoked since `/me`, and each retried on a 5xx until the first of
        them gives up).
        """
        detail = bundle.detail or {}
        for scope, wanted, key in (
            ("transcripts", self._plan.transcript, "transcript"),
            ("insights", self._plan.insights, "insights"),
        ):
            if not wanted or self._scopes.is_known(scope):
                continue
            if key in detail:
                self._scopes.granted(scope)
            else:
                self._probe(scope, bundle.conversation_id)

    def _probe(self, scope: str, conversation_id: str) -> None:
        try:
            self._api.get(f"/conversations/{conversation_id}{PER_CONVERSATION_PROBES[scope]}")
        except MissingScopeError as error:
            self._scopes.missing(scope, error)
        except NotFoundError:
            self._scopes.granted(scope)
        else:
            self._scopes.granted(scope)

    def _fetch_one(self, conversation: ListedConversation) -> ConversationBundle:
        bundle = self._detail_of(conversation)
        if bundle.detail is not None and conversation.id == self._first_id:
            # Not from a 404 or another conversation's answer: a probe of a conversation
            # that is gone answers 404 whatever the scope (collect() settles them then).
            self._settle_scopes(bundle)
        return self._with_parts(bundle)

    def _detail_of(self, conversation: ListedConversation) -> ConversationBundle:
        """The conversation's detail (or, recordings only, its listed key): the first step."""
        conversation_id, date = conversation.id, conversation.date
        if not self._plan.detail:
            # The parent's record is not emitted (not selected); it needs only its key.
            listed = {"id": conversation_id, "date": format_timestamp(date)}
            return ConversationBundle(conversation_id, date, listed, detail_fetched=False)
        params = {}
        if self._plan.transcript and not self._scopes.is_missing("transcripts"):
            params["include_transcript"] = "true"
        if self._plan.insights and not self._scopes.is_missing("insights"):
            params["include_insights"] = "true"
        try:
            detail = self._api.get(f"/conversations/{conversation_id}", params)
        except NotFoundError:
            return ConversationBundle(conversation_id, date, None, unavailable=DETAIL_UNAVAILABLE)
        answered = detail.get("id")
        if isinstance(answered, str) and answered != conversation_id:
            # A string id of another conversation (a replica or cache mixing answers);
            # an id of another type is a changed type, which the record check names.
            LOGGER.warning(
                "conversations: GET /conversations/%s answered another conversation; it "
                "stays pending and is fetched again on a later run.",
                mask(conversation_id),
            )
            return ConversationBundle(conversation_id, date, None, unavailable=DETAIL_UNAVAILABLE)
        return ConversationBundle(conversation_id, date, detail)

    def _with_parts(self, bundle: ConversationBundle) -> ConversationBundle:
        """The recording and the summary the plan asks for, after the detail."""
        if not bundle.detail_fetched:
            self._fetch_recording(bundle)
            return bundle
        if bundle.detail is None:
            return bundle  # the detail is not available: nothing more to ask now
        if self._plan.recording:
            early = self._early_recording
            if (
                early is not None
                and early[0].conversation_id == bundle.conversation_id
                and early[1].exception() is None
            ):
                bundle.recording = early[0].recording
                bundle.unavailable = bundle.unavailable or early[0].unavailable
            else:
                # An early request that failed is asked again, now that the detail has
                # answered: a quota cut meanwhile refuses conversations not yet touched,
                # and this one is, so what the quota already paid for is not dropped.
                self._fetch_recording(bundle)
        if self._plan.summary and bundle.detail.get("summary") is not None:
            path = f"/conversations/{bundle.conversation_id}/summary"
            bundle.summary = self._optional(path, "conversations")
            if bundle.summary is None:
                bundle.unavailable = SUMMARY_UNAVAILABLE
        return bundle

    def _fetch_recording(self, bundle: ConversationBundle) -> None:
        """The recording; the run's first recording request alone, the others after it.

        Until one recording request has answered, the recordings scope is not known:
        the first goes alone, so that a token without it (or with include_recordings
        off) costs one 403, not one per conversation in flight.
        """
        if not self._first_recording_answered.is_set():
            with self._first_recording:
                if not self._first_recording_answered.is_set():
                    try:
                        self._recording(bundle)
                    finally:
                        self._first_recording_answered.set()
                    return
        self._recording(bundle)

    def _recording(self, bundle: ConversationBundle) -> None:
        if self._scopes.is_missing("recordings"):
            return
        path = f"/conversations/{bundle.conversation_id}/recording"
        bundle.recording = self._optional(path, "recordings")
        if bundle.recording is None and not self._scopes.is_missing("recordings"):
            # The endpoint answers `has_recording: false` when there is none: a 404
            # means not available (yet), not "no recording".
            bundle.unavailable = bundle.unavailable or RECORDING_UNAVAILABLE

    def _optional(self, path: str, scope: str) -> dict[str, Any] | None:
        try:
            payload = self._api.get(path)
        except NotFoundError:
            return None
        except MissingScopeError as error:
            self._scopes.missing(scope, error)
            return None
        self._scopes.granted(scope)
        return payload

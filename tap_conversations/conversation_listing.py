"""Listing conversations: every one listed since a date, each once, oldest first.

Listing is where the API's pagination differs from what a loader needs: its cursor
loses conversations that share a page's last date, pages can only follow one
another, and filters take one value per request. This module turns that into one
list of `ListedConversation`, oldest first, at about one request per 25.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_conversations.conversation_filters import ConversationFilters, ListedConversation
from tap_conversations.errors import ApiResponseError, MissingScopeError, RecordShapeError
from tap_conversations.redaction import excerpt, quote
from tap_conversations.schemas import MEDIUMS
from tap_conversations.timestamps import format_timestamp, is_timestamp, parse_timestamp

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    from tap_conversations.client import ApiClient
    from tap_conversations.clock import Clock
    from tap_conversations.progress import ListingProgress
    from tap_conversations.settings import Settings

#: The API's page size (its maximum).
PAGE_SIZE = 25
#: Listing in concurrent date slices pays when this many requests could be in flight
#: (latency x rate): never at 60/min, from about 80 ms of latency at 3000/min.
SLICE_MIN_IN_FLIGHT = 4
#: ... and when each slice can expect at least this many pages. Not 2: 125 conversations
#: below a first page are then three slices of two pages, listed in two rounds, where
#: two slices of three pages take three rounds for the same six requests.
SLICE_MIN_PAGES = 1.5
#: How a tie group larger than a page is split, in order: (list parameter, where its
#: values come from: a fixed list or the endpoint that lists them).
TIE_SPLITS: tuple[tuple[str, tuple[str, ...] | tuple[str, str]], ...] = (
    ("medium", tuple(MEDIUMS)),
    ("department_id", ("/departments", "departments")),
    ("user_id", ("/users", "users")),
)


@dataclass(frozen=True)
class UnlistedTies:
    """A tie group the API's filters could not split into pages: some were not listed."""

    date: str
    query: dict[str, str]
    listed: int


class ConversationLister:
    """Lists conversations through the shared API client.

    Args:
        api: The API client.
        settings: The tap's settings (filters, pace, parallelism).
        clock: The run's clock.
        progress: Told of each page and the dates it covered (for the progress ETA).
    """

    def __init__(
        self,
        api: ApiClient,
        settings: Settings,
        clock: Clock,
        progress: ListingProgress | None = None,
    ) -> None:
        self._api = api
        self._settings = settings
        self._clock = clock
        self._progress = progress
        self._lock = threading.Lock()
        self._split_values: dict[str, tuple[str, ...]] = {}
        #: Tie groups that could not be listed whole (warned about by the stream).
        self.unlisted_ties: list[UnlistedTies] = []

    def since(
        self,
        start: dt.datetime,
        filters: ConversationFilters,
        tie_dates: Iterable[str] = (),
    ) -> list[ListedConversation]:
        """Every conversation the filters admit, listed since `start`, oldest first.

        The API takes one value per filter, so every combination of the configured
        filters is listed, and the union kept. `tie_dates` are dates an earlier run
        could not list provably whole: each is listed again, whatever `start` is.
        """
        found: dict[str, ListedConversation] = {}
        queries = list(filters.queries())
        if self._progress is not None:
            self._progress.begin(start, self._clock(), len(queries))
        for query in queries:
            params = {"limit": str(PAGE_SIZE), "date_from": format_timestamp(start), **query}
            listed = (ListedConversation.from_item(item) for item in self._listing(params))
            # `date >= start` is kept client-side: correctness must not depend on the
            # server honouring date_from.
            found.update((item.id, item) for item in listed if item.date >= start)
            for date in sorted(tie_dates):
                if parse_timestamp(date) < start:
                    ties = (ListedConversation.from_item(i) for i in self._tie_group(params, date))
                    found.update((item.id, item) for item in ties)
        return sorted(found.values())

    def _listing(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """The whole listing from `date_from`: one walk, or date slices walked at once.

        Pages follow one another, each waiting for the previous answer. At the usual
        pace that wait hides inside the interval between requests; but when latency x
        rate allows several requests in flight, a long listing would leave that budget
        idle. Then the range below the first page is cut into date slices walked
        concurrently (emitting stays oldest first: everything is listed before any
        detail is fetched). A slice costs at most one extra (partial) page.
        """
        api = self._api
        newest = self._clock()
        items, has_more, _ = page_of(api.get("/conversations", params))
        start = parse_timestamp(params["date_from"])
        reached = parse_timestamp(_oldest_date(items)) if has_more else start
        self._covered(len(items), newest, reached)
        yield from items
        if not has_more:
            return
        oldest = _oldest_date(items)
        slices = self._slice_count(start, parse_timestamp(oldest))
        if slices < 2:  # noqa: PLR2004
            yield from self._pages(dict(params, date_to=oldest))
            return
        step = (parse_timestamp(oldest) - start) / slices
        bounds = [params["date_from"]]
        bounds += [format_timestamp(start + step * i) for i in range(1, slices)]
        bounds += [oldest]
        walks = [
            dict(params, date_from=low, date_to=high) for low, high in itertools.pairwise(bounds)
        ]
        with ThreadPoolExecutor(max_workers=slices, thread_name_prefix="list") as pool:
            for listed in pool.map(lambda walk: list(self._pages(walk)), walks):
                yield from listed

    def _slice_count(self, start: dt.datetime, oldest: dt.datetime) -> int:
        """How many date slices to list `start`..`oldest` in (1: one walk)."""
        settings = self._settings
        in_flight = self._api.stats.last_latency * settings.max_requests_per_minute / 60
        first_page_span = (self._clock() - oldest).total_seconds()
        if in_flight < SLICE_MIN_IN_FLIGHT or first_page_span <= 0:
            return 1
        pages_left = (oldest - start).total_seconds() / first_page_span
        return max(
            1,
            min(
                settings.max_parallel_requests,
                math.ceil(in_flight),
                int(pages_left // SLICE_MIN_PAGES),
            ),
        )

    def _pages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every conversation the listing holds, each once.

        The API's cursor continues strictly below the last date of a page, so
        conversations sharing that date but not fitting on the page would never be
        listed. Paging with an inclusive `date_to` at the page's oldest date instead
        lists them, at the price of re-listing the boundary item. The cursor is used
        only to step past a page that is all one date (more ties than a page holds)
        or when `date_to` brings nothing new (a server that ignores it). A walk that
        stops bringing new conversations ends with an error, never a loop.
        """
        api = self._api
        page_params = params
        listed: set[str] = set()
        cursors: set[str] = set()
        cursor_only = False  # set once date_to proves ignored
        edge, low = parse_timestamp(params["date_to"]), parse_timestamp(params["date_from"])
        while True:
            payload = api.get("/conversations", page_params)
            items, has_more, next_cursor = page_of(payload)
            new = [item for item in items if item["id"] not in listed]
            listed.update(item["id"] for item in new)
            reached = parse_timestamp(_oldest_date(items)) if has_more else low
            self._covered(len(new), edge, reached)
            edge = min(edge, reached)
            yield from new
            if not has_more:
                return
            oldest = _oldest_date(items)
            all_ties = page_params.get("date_to") == oldest and all(
                item["date"] == oldest for item in items
            )
            if new and not all_ties and not cursor_only:
                page_params = {k: v for k, v in params.items() if k != "cursor"}
                page_params["date_to"] = oldest
                continue
            if all_ties:
                # More conversations share this date than a page holds; the cursor
                # would step below the date and lose the rest.
                for item in self._tie_group(params, oldest):
                    if item["id"] not in listed:
                        listed.add(item["id"])
                        yield item
            cursor_only = cursor_only or (not new and not all_ties)
            if not isinstance(next_cursor, str) or next_cursor in cursors:
                msg = (
                    "GET /conversations said has_more but its cursor does not advance "
                    f"(next_cursor: {quote(next_cursor)}); stopping rather than looping."
                )
                raise ApiResponseError(msg)
            if not new and "cursor" in page_params:
                msg = (
                    "GET /conversations said has_more but its pages stopped bringing new "
                    f"conversations (next_cursor: {quote(next_cursor)}); stopping rather than "
                    "looping."
                )
                raise ApiResponseError(msg)
            cursors.add(next_cursor)
            page_params = {k: v for k, v in params.items() if k != "date_to"}
            page_params["cursor"] = next_cursor

    def _covered(self, listed: int, edge: dt.datetime, reached: dt.datetime) -> None:
        """Tell the progress a page listed `listed` new ones, from `edge` down to `reached`."""
        if self._progress is not None:
            self._progress.page(listed, max(edge - reached, dt.timedelta(0)))

    def _tie_group(self, params: dict[str, str], date: str) -> Iterator[dict[str, Any]]:
        """Every conversation of `date` some filter reaches, split until each part fits.

        `medium` partitions a group: every conversation has one of its five values, so
        parts that each fit a page list the group provably whole. Departments and users
        do not: `department` and `user` are nullable, and `/departments` and `/users`
        list enabled departments and active users only. So a group that needs them is
        split by both (a conversation without a department may have a user), which
        reaches every conversation some filter reaches; but the rest cannot be proven
        listed, and the group is recorded in `unlisted_ties` for the run's warning and
        the state, so that later runs list it again.
        """
        query = {k: v for k, v in params.items() if k not in {"cursor", "date_from", "date_to"}}
        query.update(date_from=date, date_to=date)
        items, has_more, _ = page_of(self._api.get("/conversations", query))
        yield from items
        if not has_more:
            return
        if not all(_admitted(item, query) for item in items):
            # The server ignores a filter: splitting by it cannot help, and would only
            # repeat the same page once per value.
            raise _FilterIgnoredError(query)
        for param, source in TIE_SPLITS:
            values = None if param in query else self._values_of(param, source)
            if not values:
                continue
            honoured = yield from self._split(query, param, values, date)
            if not honoured:
                break  # a server that ignores one filter: splitting cannot help
            if param == "medium":
                return
        with self._lock:
            self.unlisted_ties.append(UnlistedTies(date, query, len(items)))

    def _split(
        self, query: dict[str, str], param: str, values: tuple[str, ...], date: str
    ) -> Generator[dict[str, Any], None, bool]:
        """The tie group listed once per value of `param`; False if the server ignores it."""
        try:
            for value in values:
                yield from self._tie_group({**query, param: value}, date)
        except _FilterIgnoredError:
            return False
        return True

    def _values_of(
        self, param: str, source: tuple[str, ...] | tuple[str, str]
    ) -> tuple[str, ...] | None:
        """The values a tie group can be split by; None when the token may not list them."""
        if param == "medium":
            return source
        if param not in self._split_values:
            path, key = source
            try:
                records = self._api.get(path).get(key)
            except MissingScopeError:
                return None
            ids = [r.get("id") for r in records or [] if isinstance(r, dict)]
            self._split_values[param] = tuple(i for i in ids if isinstance(i, str))
        return self._split_values[param]


class _FilterIgnoredError(Exception):
    """A split page holds conversations its filter excludes."""


def _admitted(item: dict[str, Any], query: dict[str, str]) -> bool:
    """Whether a listed item has the values the query's filters asked for."""
    conversation = ListedConversation.from_item(item)
    return all(
        getattr(conversation, param) == query[param]
        for param in ("medium", "department_id", "user_id")
        if param in query
    )


def page_of(payload: dict[str, Any]) -> tuple[list[dict[str, Any]], bool, object]:
    """(items, has_more, next_cursor) of a list answer, each item checked for id and date.

    A page that claims more but lists nothing is an error: following it would loop.
    """
    items = payload.get("conversations")
    pagination = payload.get("pagination")
    if not isinstance(items, list) or not isinstance(pagination, dict):
        msg = "GET /conversations answered without 'conversations' and 'pagination'."
        raise ApiResponseError(msg)
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str):
            msg = f"GET /conversations listed an item without an id: {quote(item)}"
            raise RecordShapeError(msg)
        if not is_timestamp(item.get("date")):
            msg = (
                f"GET /conversations listed conversation {excerpt(item['id'])} without a "
                "valid date."
            )
            raise RecordShapeError(msg)
    has_more = pagination.get("has_more") is True
    next_cursor = pagination.get("next_cursor")
    if has_more and not items:
        msg = (
            "GET /conversations said has_more but listed nothing "
            f"(next_cursor: {quote(next_cursor)}); stopping rather than looping."
        )
        raise ApiResponseError(msg)
    return items, has_more, next_cursor


def _oldest_date(items: list[dict[str, Any]]) -> str:
    """The `date` of the oldest item, as the API wrote it (items are checked)."""
    return min(items, key=lambda item: parse_timestamp(item["date"]))["date"]

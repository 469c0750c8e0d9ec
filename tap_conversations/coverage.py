"""What a state stands for: which conversations, filters and streams were synced.

The high-water mark alone says "everything up to here is done", which is only true
for the filters and streams of the runs that moved it. A state kept while a filter is
widened, a stream selected or a scope granted would otherwise hide a gap for good. So
the state keeps spans: from one date to another, these filters, these streams were
synced completely. A run whose wishes a span does not cover lists again from the
first uncovered date and fetches exactly the conversations no span covers.

A span claims only dates that were settled when it was recorded: older than the
late-data window at the run's clock, so no conversation can still be listed late
inside it. Above that, and for what a run emitted beyond its proof (a quota cut),
`seen` (bookmarks.py) says which conversations were emitted and for which streams. A
conversation emitted again for fewer streams than a span claimed for it (a pending one
completed while another selection was active) takes its date out of that span.

Spans with the same filters and streams merge, and spans older than the API's 30 days
are dropped, so in steady use the coverage is one span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tap_conversations.conversation_filters import ConversationFilters
from tap_conversations.timestamps import JUST_BELOW, NEXT_DATE, format_timestamp, parse_timestamp

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterable

    from tap_conversations.conversation_filters import ListedConversation


@dataclass(frozen=True)
class CoveredSpan:
    """From `start` to `end` (inclusive), these filters and streams were synced."""

    start: dt.datetime
    end: dt.datetime
    filters: ConversationFilters
    streams: frozenset[str]

    def admits(self, filters: ConversationFilters, streams: Iterable[str]) -> bool:
        """Whether the span holds everything a run with `filters` and `streams` wants."""
        return filters.within(self.filters) and set(streams) <= self.streams

    def covers(self, conversation: ListedConversation, streams: Iterable[str]) -> bool:
        """Whether the conversation's records of `streams` were emitted in this span."""
        return (
            self.start <= conversation.date <= self.end
            and self.filters.matches(conversation)
            and set(streams) <= self.streams
        )

    def missing(self, filters: ConversationFilters, streams: Iterable[str]) -> str:
        """What a run with `filters` and `streams` wants beyond this span, in words."""
        parts = []
        new_streams = sorted(set(streams) - self.streams)
        if new_streams:
            parts.append(f"streams {', '.join(new_streams)} were not synced before")
        widened = filters.widened_from(self.filters)
        if widened:
            parts.append(f"filters widened ({widened})")
        return "; ".join(parts)


@dataclass
class Coverage:
    """The spans of a state (empty for a first run or a state without coverage)."""

    spans: list[CoveredSpan] = field(default_factory=list)

    def covers(self, conversation: ListedConversation, streams: Iterable[str]) -> bool:
        """Whether some span holds the conversation's records of `streams`."""
        wanted = frozenset(streams)
        return any(span.covers(conversation, wanted) for span in self.spans)

    def first_gap(
        self,
        start: dt.datetime,
        end: dt.datetime,
        filters: ConversationFilters,
        streams: Iterable[str],
    ) -> tuple[dt.datetime, str] | None:
        """The earliest date from `start` to `end` no span admits, and why; None if none.

        Spans are inclusive, so a gap may begin exactly at a span's end; listing from
        there re-lists that date, which costs nothing but the list request.
        """
        wanted = frozenset(streams)
        cursor = start
        for span in sorted(self.spans, key=lambda span: span.start):
            if span.end < cursor:
                continue
            if span.start > cursor:
                break
            if not span.admits(filters, wanted):
                return cursor, span.missing(filters, wanted)
            cursor = span.end
        if cursor >= end:
            return None
        if self.spans and cursor == start:
            return cursor, "the state covers nothing from here (start_date moved earlier)"
        return cursor, f"the state covers nothing from {format_timestamp(cursor)}"

    def add(self, span: CoveredSpan) -> None:
        """Record a synced span; merge it with touching spans of the same wishes."""
        if span.end < span.start:
            return
        kept = []
        for other in self.spans:
            same = other.filters == span.filters and other.streams == span.streams
            if same and other.start <= span.end and span.start <= other.end:
                span = CoveredSpan(
                    min(span.start, other.start),
                    max(span.end, other.end),
                    span.filters,
                    span.streams,
                )
            else:
                kept.append(other)
        self.spans = sorted([*kept, span], key=lambda s: (s.start, s.end))

    def withdraw(self, conversation: ListedConversation, streams: Iterable[str]) -> None:
        """Take the conversation's date out of spans that claim more than `streams` for it."""
        emitted = frozenset(streams)
        # A conversation known by id and date only (a re-check of one older than the
        # listing) may be one the span claims: its date decides.
        known = conversation.medium is not None
        kept = []
        for span in self.spans:
            claims = span.start <= conversation.date <= span.end and (
                not known or span.filters.matches(conversation)
            )
            if span.streams <= emitted or not claims:
                kept.append(span)
                continue
            date = conversation.date
            if span.start < date:
                kept.append(CoveredSpan(span.start, date - JUST_BELOW, span.filters, span.streams))
            if date + NEXT_DATE <= span.end:
                kept.append(CoveredSpan(date + NEXT_DATE, span.end, span.filters, span.streams))
        self.spans = sorted(kept, key=lambda s: (s.start, s.end))

    def prune(self, history_floor: dt.datetime) -> None:
        """Drop spans that end before the API's history begins."""
        self.spans = [span for span in self.spans if span.end >= history_floor]

    def to_state(self) -> list[dict[str, object]]:
        """The spans as JSON."""
        return [
            {
                "start": format_timestamp(span.start),
                "end": format_timestamp(span.end),
                "filters": span.filters.to_state(),
                "streams": sorted(span.streams),
            }
            for span in self.spans
        ]

    @classmethod
    def from_state(cls, value: object) -> Coverage:
        """Read spans written by `to_state` (None: no coverage recorded).

        Raises:
            TypeError: `value` is not such a list.
            KeyError: A span lacks a field.
            ValueError: A date is not a timestamp.
        """
        if value is None:
            return cls()
        if not isinstance(value, list):
            msg = f"coverage is {type(value).__name__}, not a list"
            raise TypeError(msg)
        spans = []
        for entry in value:
            streams = entry["streams"]
            if not isinstance(streams, list) or not all(isinstance(s, str) for s in streams):
                msg = "a coverage span's streams are not a list of names"
                raise TypeError(msg)
            spans.append(
                CoveredSpan(
                    start=parse_timestamp(entry["start"]),
                    end=parse_timestamp(entry["end"]),
                    filters=ConversationFilters.from_state(entry["filters"]),
                    streams=frozenset(streams),
                )
            )
        return cls(spans)

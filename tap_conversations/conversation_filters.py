"""A listed conversation, and which conversations the configured filters admit.

The list endpoint takes one value per filter (`medium`, `department_id`,
`user_id`); the settings take lists. `ConversationFilters` is that list form: it
yields the API queries to send, says whether a listed conversation matches, and
whether one set of filters admits no more than another (a narrowed filter), which is
what the state's coverage needs to tell a widened filter from a kept one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tap_conversations.timestamps import parse_timestamp

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Iterator

    from tap_conversations.settings import Settings


@dataclass(frozen=True, order=True)
class ListedConversation:
    """One item of the conversation list, as far as syncing it needs; sorts by date, id."""

    date: dt.datetime
    id: str
    medium: str | None = None
    department_id: str | None = None
    user_id: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> ListedConversation:
        """From a list item whose `id` and `date` were checked (see `page_of`)."""
        department = item.get("department")
        user = item.get("user")
        return cls(
            date=parse_timestamp(item["date"]),
            id=item["id"],
            medium=item.get("medium") if isinstance(item.get("medium"), str) else None,
            department_id=department.get("id") if isinstance(department, dict) else None,
            user_id=user.get("id") if isinstance(user, dict) else None,
        )


#: The filter dimensions: (settings and state name, list query parameter, item field).
DIMENSIONS = (
    ("department_ids", "department_id", "department_id"),
    ("mediums", "medium", "medium"),
    ("user_ids", "user_id", "user_id"),
)


@dataclass(frozen=True)
class ConversationFilters:
    """Allowed values per dimension; an empty tuple admits every value."""

    department_ids: tuple[str, ...] = ()
    mediums: tuple[str, ...] = ()
    user_ids: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> ConversationFilters:
        """The filters the settings configure."""
        return cls(settings.department_ids, settings.mediums, settings.user_ids)

    def queries(self) -> Iterator[dict[str, str]]:
        """One list query per combination of values (the API takes one per filter)."""
        choices: list[list[tuple[str, str] | None]] = [
            [(param, value) for value in getattr(self, name)] or [None]
            for name, param, _ in DIMENSIONS
        ]
        for combination in itertools.product(*choices):
            yield dict(pair for pair in combination if pair is not None)

    def matches(self, conversation: ListedConversation) -> bool:
        """Whether these filters admit the conversation."""
        return all(
            not getattr(self, name) or getattr(conversation, field) in getattr(self, name)
            for name, _, field in DIMENSIONS
        )

    def within(self, other: ConversationFilters) -> bool:
        """Whether every conversation these filters admit, `other` admits too."""
        for name, _, _ in DIMENSIONS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs and (not mine or not set(mine) <= set(theirs)):
                return False
        return True

    def widened_from(self, other: ConversationFilters) -> str:
        """How these filters admit more than `other`, e.g. `mediums [call] → all`."""
        changes = []
        for name, _, _ in DIMENSIONS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if theirs and (not mine or not set(mine) <= set(theirs)):
                changes.append(f"{name} {list(theirs)} → {list(mine) if mine else 'all'}")
        return ", ".join(changes)

    def to_state(self) -> dict[str, list[str]]:
        """The filters as JSON (sorted, so equal filters write equal state)."""
        return {name: sorted(getattr(self, name)) for name, _, _ in DIMENSIONS}

    @classmethod
    def from_state(cls, value: object) -> ConversationFilters:
        """Read filters written by `to_state`.

        Raises:
            TypeError: `value` is not such an object.
        """
        if not isinstance(value, dict):
            msg = f"filters are {type(value).__name__}, not an object"
            raise TypeError(msg)
        lists = {name: value.get(name) or [] for name, _, _ in DIMENSIONS}
        if not all(
            isinstance(v, list) and all(isinstance(s, str) for s in v) for v in lists.values()
        ):
            msg = "filters hold something other than lists of strings"
            raise TypeError(msg)
        return cls(**{name: tuple(sorted(v)) for name, v in lists.items()})

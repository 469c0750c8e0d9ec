"""One model of the tap's listing walk, for tests that count list requests exactly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tap_conversations.conversation_listing import PAGE_SIZE

if TYPE_CHECKING:
    from tests.sandbox import Sandbox

#: The API's page size, as the tap uses it.
PAGE = PAGE_SIZE


def expected_list_requests(sb: Sandbox, **filters: Any) -> int:
    """Pages the tap's inclusive-`date_to` walk needs over the sandbox's listing.

    Each page after the first ends at the previous page's oldest date (inclusive), so
    a tie straddling a page boundary is listed whole. (Tie groups larger than a page
    cost more: tests that make them count those requests themselves.)
    """
    date_to: str | None = None
    boundary: set[str] = set()
    requests = 0
    while True:
        matching = sb.listed_conversations(date_to=date_to, **filters)
        page = matching[:PAGE]
        requests += 1
        if len(matching) <= PAGE:
            return requests
        oldest = min(item["date"] for item in page)
        assert {item["id"] for item in page} - boundary, "more ties than a page"
        boundary = {item["id"] for item in page if item["date"] == oldest}
        date_to = oldest

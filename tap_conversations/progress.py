"""Progress of a long sync on stderr: the tap's equivalent of a progress bar.

One line every 15 s by the clock, from the first list page on, also while a chunk is
being fetched (a timer thread writes it, not the chunk loop): while listing, the pages
and conversations listed and the share of the dates covered; then the conversations
done of those to fetch, requests spent, the daily quota used. Each with an ETA from the
work left. One closing line at the end of the fetch.

While listing, the work left is estimated from the dates covered so far (pages walk from
now back to the start date, each covering a stretch of dates): the list pages left are
the pages spent so far in proportion to the dates not covered yet (tie splits included),
and the conversations to fetch are those listed in proportion to all the dates, each at
its requests by the selected streams (every one with a summary, until the fetch learns
the share). Until the first page answers, the line says "listing" and gives no ETA.

The ETA counts requests, not conversations done: the conversations not started yet
(re-checks due among them) times what each costs by the selected streams (the detail,
the recording, the summary where the conversation has one: a share learnt as the run
goes), plus the parts of those in flight, at the token's pace (or slower, when the
answers come slower than the pace). When the daily quota left is smaller than the
conversations left, the ETA is when the quota stops the run, and the line says so.
Counting by request moves the ETA every request, not by 25 conversations at a chunk's
end, and a chunk fetched ahead (the next one is in flight while one is emitted) does not
inflate the cost of a conversation. Requests sent in the pacer's burst at the start
(`rate_limit`) take their slots of the pace all the same: the ETA counts from the slots
taken (`RequestPacer.seconds_until_sent`), so it never promises the burst's speed for
the rest of the run.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import datetime as dt
    from collections.abc import Callable

    from tap_conversations.client import ApiClient
    from tap_conversations.conversation_fetch import FetchPlan

LOGGER = logging.getLogger("tap_conversations")

#: Seconds between progress lines.
PROGRESS_INTERVAL_SECONDS = 15.0
#: The timer looks at the clock at least this often (seconds).
TICK_SECONDS = 1.0
#: Requests of the fetch before their measured pace is trusted over the token's.
MEASURED_PACE_AFTER = 20
#: Weight, in conversations, of the first guess that every conversation has a summary.
SUMMARY_PRIOR = 2.0


@dataclass(frozen=True)
class Estimate:
    """The work left and its time."""

    #: Conversations whose first request is not sent yet.
    conversations_left: int
    #: Re-checks among them (they come last).
    rechecks_left: int
    requests_left: int
    #: Requests one conversation costs, as estimated now.
    per_conversation: float
    seconds: float
    #: At most this many conversations fit in today's quota (None: quota not known).
    quota_left: int | None
    #: The daily quota, not the work, ends the run.
    quota_stops: bool
    #: List pages left (while listing; 0 once the fetch started).
    pages_left: int = 0


class ListingProgress:
    """How far the listing got, told by `ConversationLister` (from any of its threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: The first date listed, and the seconds of dates to cover (every query's range).
        self.start: dt.datetime | None = None
        self.span = 0.0
        self.covered = 0.0
        self.pages = 0
        self.listed = 0

    def begin(self, start: dt.datetime, end: dt.datetime, walks: int) -> None:
        """The listing covers `start`..`end` once per filter combination (`walks`)."""
        with self._lock:
            self.start = start
            self.span = max(0.0, (end - start).total_seconds()) * max(1, walks)

    def page(self, listed: int, covered: dt.timedelta) -> None:
        """A page answered: `listed` conversations new to it; `covered` more of the dates."""
        with self._lock:
            self.pages += 1
            self.listed += listed
            self.covered += max(0.0, covered.total_seconds())

    def share_covered(self) -> float | None:
        """The share of the dates listed so far; None before a page covered any."""
        with self._lock:
            if self.span <= 0 or self.covered <= 0:
                return None
            return min(1.0, self.covered / self.span)


def _fetch_requests(api: ApiClient) -> int:
    """Requests sent so far to one conversation's endpoints (its detail and parts).

    The fetch's requests, not the run's: a list stream's read sent early
    (early_reads.py) may go while the conversations are fetched.
    """
    sent, _ = api.requests_by_endpoint()
    return sum(n for endpoint, n in sent.items() if endpoint.startswith("/conversations/"))


def _parts_sent(by_endpoint: dict[str, int]) -> dict[str, int]:
    """Requests sent per part of a conversation: detail, summary, recording."""
    parts = {"detail": 0, "summary": 0, "recording": 0}
    for endpoint, count in by_endpoint.items():
        pieces = endpoint.split("/")  # "", "conversations", id[, part]
        if len(pieces) < 3 or pieces[1] != "conversations":  # noqa: PLR2004
            continue
        part = "detail" if len(pieces) == 3 else pieces[3]  # noqa: PLR2004
        if part in parts:
            parts[part] += count
    return parts


class ProgressReporter:
    """Logs where the conversations sync is, every interval, until `finish`.

    Created before the listing (`total` None: `listing` hears of its pages) and told by
    `fetching` what the fetch is, or created for the fetch alone (`total` given).

    Args:
        api: The API client, for request counts, quota use and the pace.
        total: Conversations to fetch in this run (re-checks included); None while listing.
        parts: What the selected streams fetch per conversation (None: the detail).
        rechecks: How many of `total` are re-checks (fetched last).
        daily_quota: The token's daily conversation quota (None: not known).
        interval: Seconds between lines.
        clock: Monotonic clock; by default the pacer's, so the ETA is on the pace's time.
        timer: Write lines from a timer thread (False: only when `tick` is called).
    """

    def __init__(  # noqa: PLR0913 - what the stream knows, each named
        self,
        api: ApiClient,
        total: int | None = None,
        *,
        parts: FetchPlan | None = None,
        rechecks: int = 0,
        daily_quota: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] | None = None,
        timer: bool = True,
    ) -> None:
        self._api = api
        self._total = total
        self._parts = parts
        self._rechecks = rechecks
        self._daily_quota = daily_quota
        self._done = 0
        self._clock = clock or api.pacer.clock
        self._started = self._clock()
        #: Where the listing is (`ConversationLister` tells it).
        self.listing = ListingProgress()
        self._requests_at_run_start = api.stats.requests
        self._requests_at_start = _fetch_requests(api)
        self._quota_at_start = api.stats.conversations_touched
        self._sent_at_start = _parts_sent(api.requests_by_endpoint()[0])
        self._interval = PROGRESS_INTERVAL_SECONDS if interval is None else interval
        self._next_line = self._started + self._interval
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._timer = threading.Thread(target=self._every_interval, name="progress", daemon=True)
        if timer:
            self._timer.start()

    def fetching(self, total: int, *, rechecks: int = 0, parts: FetchPlan | None = None) -> None:
        """The listing is done: `total` conversations to fetch, `rechecks` of them re-checks.

        The fetch's lines count its own requests and quota from here, as before a listing.
        """
        api = self._api
        with self._lock:
            self._requests_at_start = _fetch_requests(api)
            self._quota_at_start = api.stats.conversations_touched
            self._sent_at_start = _parts_sent(api.requests_by_endpoint()[0])
            self._parts = parts if parts is not None else self._parts
            self._rechecks = rechecks
            self._total = total

    def advance(self, conversations: int) -> None:
        """Count finished conversations."""
        self._done += conversations

    def finish(self) -> None:
        """Stop the timer; log the closing line (none when the fetch never started)."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self._timer.is_alive():
            self._timer.join()
        if self._total is not None:
            LOGGER.info("%s", self.line(final=True))

    def tick(self) -> str | None:
        """Log a progress line if one is due by the clock; the line, or None."""
        now = self._clock()
        with self._lock:
            if now < self._next_line or self._stopped.is_set():
                return None
            following = self._next_line + self._interval
            self._next_line = following if following > now else now + self._interval
        line = self.line()
        LOGGER.info("%s", line)
        return line

    def _every_interval(self) -> None:
        while not self._stopped.wait(min(self._interval, TICK_SECONDS)):
            self.tick()

    def estimate(self) -> Estimate | None:
        """The work left (see the module's docstring) and the time it takes.

        Requests waiting for their slot go out for sure; a conversation's parts go one
        after another (detail, recording, summary), so a started conversation still
        needs the parts not asked for yet, and its summary where it has one. While
        listing, None until a page has covered some of the dates.
        """
        if self._total is None:
            return self._listing_estimate()
        return self._fetch_estimate(self._total)

    def _listing_estimate(self) -> Estimate | None:
        """Pages left and conversations to fetch, in proportion to the dates covered."""
        listing = self.listing
        share = listing.share_covered()
        if share is None:
            return None
        parts = self._parts
        with_detail = parts is None or parts.detail
        recording = parts is not None and parts.recording
        summary = with_detail and parts is not None and parts.summary
        per = float(with_detail) + float(recording) + float(summary)
        # The list pages so far (and the few list streams' reads sent early meanwhile).
        spent = self._api.stats.requests - self._requests_at_run_start
        pages_left = round(spent * (1 - share) / share)
        conversations = round(listing.listed / share)
        quota_left, quota_stops, fetchable, _ = self._quota(conversations, started=0)
        # When the quota stops the run, the request it refuses is sent too.
        requests_left = pages_left + round(fetchable * per) + quota_stops
        return Estimate(
            pages_left=pages_left,
            conversations_left=conversations,
            rechecks_left=0,
            requests_left=requests_left,
            per_conversation=per,
            seconds=self._seconds_for(requests_left),
            quota_left=quota_left,
            quota_stops=quota_stops,
        )

    def _quota(self, conversations_left: int, started: int) -> tuple[int | None, bool, int, int]:
        """(quota left, whether it stops the run, conversations that fit, refused requests).

        Conversations `started` whose answers are not counted yet take their share; those
        of them beyond the quota are refused (their first request is the quota's answer,
        their other parts are never asked). When the quota stops the run, one request is
        refused: one of those, or the next one sent.
        """
        if self._daily_quota is None:
            return None, False, conversations_left, 0
        touched = self._api.stats.conversations_touched
        answering = max(0, started - (touched - self._quota_at_start))
        quota_left = max(0, self._daily_quota - touched - answering)
        refused = max(0, touched + answering - self._daily_quota)
        quota_stops = conversations_left > quota_left
        return quota_left, quota_stops, min(conversations_left, quota_left), refused

    def _fetch_estimate(self, total: int) -> Estimate:
        """The fetch's work left: conversations not started, and parts of those started."""
        api, parts = self._api, self._parts
        sent_now, waiting_now = api.requests_by_endpoint()
        sent = {part: n - self._sent_at_start[part] for part, n in _parts_sent(sent_now).items()}
        waiting = _parts_sent(waiting_now)
        asked = {part: sent[part] + waiting[part] for part in sent}
        with_detail = parts is None or parts.detail
        recording = parts is not None and parts.recording
        summary = with_detail and parts is not None and parts.summary
        started = min(total, asked["detail"] if with_detail else asked["recording"])
        per = float(with_detail) + float(recording)
        started_parts_left = 0.0
        if recording and with_detail:
            started_parts_left += max(0, started - asked["recording"])
        if summary:
            # The summary is asked for once the part before it answered: the share of
            # those conversations that had one (a first guess of all, soon outweighed).
            decided = sent["recording"] if recording else sent["detail"]
            share = (asked["summary"] + SUMMARY_PRIOR) / (decided + SUMMARY_PRIOR)
            per += share
            started_parts_left += max(0.0, share * started - asked["summary"])
        conversations_left = total - started
        quota_left, quota_stops, fetchable, refused = self._quota(conversations_left, started)
        started_parts_left = max(0.0, started_parts_left - refused * (per - 1))
        requests_left = (
            sum(waiting.values())
            + round(fetchable * per + started_parts_left)
            + (quota_stops and not refused)
        )
        return Estimate(
            conversations_left=conversations_left,
            rechecks_left=min(self._rechecks, conversations_left),
            requests_left=requests_left,
            per_conversation=per,
            seconds=self._seconds_for(requests_left),
            quota_left=quota_left,
            quota_stops=quota_stops,
        )

    def _seconds_for(self, requests: int) -> float:
        """At the token's pace, or at the pace measured in this run when that is slower.

        Answers slower than the pace (latency above what the parallel requests cover,
        retries) show in the measured pace once enough requests were sent to trust it.
        It is measured from the reporter's start, the listing and a burst included: a
        burst's requests took their slots of the pace, so the pause after it is theirs,
        and the request being waited for counts too, so a run kept to the pace never
        measures slower than it.
        """
        # Every request of the run took a slot of the pace: the list pages, a burst and
        # the list streams' reads sent early among them.
        sent = self._api.stats.requests - self._requests_at_run_start
        measured = None
        if sent >= MEASURED_PACE_AFTER:
            measured = (self._clock() - self._started) / (sent + 1)
        return self._api.pacer.seconds_until_sent(requests, measured)

    def _parts_named(self) -> str:
        parts = self._parts
        if parts is None:
            return "detail"
        named = [
            name
            for name, wanted in (
                ("detail", parts.detail),
                ("recording", parts.recording),
                ("summary", parts.summary),
            )
            if wanted
        ]
        return " + ".join(named)

    def line(self, *, final: bool = False) -> str:
        """The progress line."""
        stats = self._api.stats
        spent = _fetch_requests(self._api) - self._requests_at_start
        quota = stats.conversations_touched - self._quota_at_start
        done = self._done
        elapsed = self._clock() - self._started
        if final:
            total = self._total or 0
            per_conversation = spent / done if done else 0.0
            return (
                f"conversations done: {done}/{total} "
                f"({100 * done / max(total, 1):.0f}%), {spent} requests "
                f"({per_conversation:.2f}/conversation), quota used this run: {quota}, "
                f"elapsed {elapsed:.0f} s"
            )
        left = self.estimate()
        if self._total is None or left is None:
            return self._listing_line(left, spent, elapsed)
        rechecks = f", {left.rechecks_left} of them re-checks" if left.rechecks_left else ""
        head = (
            f"conversations: {done}/{self._total} ({100 * done / max(self._total, 1):.0f}%), "
            f"{spent} requests, quota used this run: {quota}, elapsed {elapsed:.0f} s; left: "
            f"{left.conversations_left} conversations{rechecks}, about {left.requests_left} "
            f"requests ({self._parts_named()}: {left.per_conversation:.2f} a conversation), "
            f"ETA {left.seconds:.0f} s at {self._api.pacer.requests_per_minute}/min"
        )
        return self._with_quota(head, left)

    def _listing_line(self, left: Estimate | None, spent: int, elapsed: float) -> str:
        """The line while listing: "listing" alone until a page gives a first estimate."""
        listing = self.listing
        since = f" since {listing.start.date().isoformat()}" if listing.start else ""
        if left is None:
            return (
                f"listing conversations{since}: {listing.pages} pages, {spent} requests, "
                f"elapsed {elapsed:.0f} s; ETA once a page has listed some of the dates"
            )
        share = listing.share_covered() or 0.0
        head = (
            f"listing conversations{since}: {listing.pages} pages, {listing.listed} listed, "
            f"{100 * share:.0f}% of the dates, {spent} requests, elapsed {elapsed:.0f} s; "
            f"left: about {left.pages_left} pages, then about {left.conversations_left} "
            f"conversations, about {left.requests_left} requests in all ({self._parts_named()}: "
            f"{left.per_conversation:.2f} a conversation), "
            f"ETA {left.seconds:.0f} s at {self._api.pacer.requests_per_minute}/min"
        )
        return self._with_quota(head, left)

    def _with_quota(self, head: str, left: Estimate) -> str:
        """The line with what the daily quota says about the run."""
        if left.quota_left is None:
            return head
        if left.quota_stops:
            return (
                f"{head}, when the daily quota stops the run: at most {left.quota_left} of the "
                f"{left.conversations_left} conversations left fit in today's quota "
                f"({self._daily_quota}); the next run after the reset fetches the rest"
            )
        return f"{head}; quota left today: at most {left.quota_left}"

"""The run's one-off reads, sent early: each stream takes its answer when the SDK reaches it.

The SDK syncs streams one after another, so `departments`, `teams`, `users` and
`webhook_deliveries` (one GET each) would wait until the conversations are done and
then go one by one, each a round trip with nothing else in flight. Here they are sent
as soon as `GET /me` has answered and a state's account was checked, alongside the
conversations path (its listing), each from a thread of its own, through the run's one
client and pacer: the rate limit, Retry-After, retries and every other rule of a
request hold for them. Each stream then takes its answer, or the error it met, when the
SDK reaches it, so the records, their order and where an error ends the run (a 403's
warning, a 404's line) are those of a run that reads one stream after another.

Why only after `/me`: a rejected token must cost one request and nothing more, and a
state of another account must stop the run before anything else is sent; so no read
starts before `/me` has proven both. A run that never reads `/me` (only list streams
selected) reads each list in its stream's turn, as before. Only what a selected stream
reads is sent, each path once: the requests are the same, only earlier.

What differs from one stream after another: a run that ends early (an error in the
conversations) has sent the reads of the streams it did not reach; a read that spends
its retries on a dead API stops the requests of the conversations too, as any request
that gives up does; a token revoked while they are in flight ends the run at the next
request with the same 401 line, which may then name a list endpoint. The ledger's and
the progress lines' request counts leave out the reads no stream has taken yet. The
threads are daemons: a run that ends does not wait for them.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

    from tap_conversations.client import ApiClient

#: The most reads sent early in one run (the connection pool keeps a connection each).
MAX_EARLY_READS = 4


@dataclass
class _Read:
    """One early GET: its answer (or error), and how many requests it took."""

    answer: Future[dict[str, Any]] = field(default_factory=Future)
    requests: int = 0


class EarlyReads:
    """GETs started ahead of the stream that reads them; each answer taken once.

    Args:
        api: The run's API client.
    """

    def __init__(self, api: ApiClient) -> None:
        self._api = api
        self._lock = threading.Lock()
        self._started = False
        #: Reads sent and not taken yet, by path.
        self._ahead: dict[str, _Read] = {}

    def start(self, paths: Iterable[str]) -> None:
        """Send `GET path` for each path now, each from its own thread; once per run.

        Raises:
            ValueError: More paths than MAX_EARLY_READS.
        """
        unique = list(dict.fromkeys(paths))
        if len(unique) > MAX_EARLY_READS:
            msg = f"at most {MAX_EARLY_READS} early reads, not {len(unique)}"
            raise ValueError(msg)
        with self._lock:
            if self._started:
                return
            self._started = True
            self._ahead = {path: _Read() for path in unique}
            started = list(self._ahead.items())
        for path, read in started:
            threading.Thread(
                target=self._send, args=(path, read), name="early-read", daemon=True
            ).start()

    def answer(self, path: str) -> dict[str, Any]:
        """The answer of `GET path`: the early one (waited for), else a GET sent now.

        Each early answer is taken once: a second call for the same path sends a GET.

        Raises:
            TapConversationsError: What the GET met (a 403, a 404, retries spent, ...),
                raised here, in the stream that reads it.
        """
        with self._lock:
            read = self._ahead.pop(path, None)
        if read is None:
            return self._api.get(path)
        return read.answer.result()

    def sent_ahead(self) -> int:
        """Requests the reads not taken yet sent (retries included), once they are done.

        What a count of the run's requests so far leaves out to be what a run reading
        one stream after another counts at this point (the ledger's). Waits for those
        reads: the streams that take them would wait for them anyway.
        """
        with self._lock:
            ahead = list(self._ahead.values())
        for read in ahead:
            read.answer.exception()  # waits; an error is its stream's to raise
        return sum(read.requests for read in ahead)

    def _send(self, path: str, read: _Read) -> None:
        try:
            payload = self._api.get(path)
        except Exception as error:  # noqa: BLE001  # raised by `answer`, in its stream
            read.requests = self._api.pacer.taken_by_this_thread()  # before it is seen done
            read.answer.set_exception(error)
        else:
            read.requests = self._api.pacer.taken_by_this_thread()
            read.answer.set_result(payload)

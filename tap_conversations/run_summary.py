"""The one line that ends a sync: what it delivered, what it cost, what is still open."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tap_conversations.client import ClientStats


@dataclass
class RunSummary:
    """Counts kept during a sync, for its closing line."""

    started: float = field(default_factory=time.monotonic)
    records: Counter[str] = field(default_factory=Counter)
    #: Conversations still processing after the run (None: conversations not synced).
    pending: int | None = None

    def count(self, stream: str) -> None:
        """Count one record emitted on `stream`."""
        self.records[stream] += 1

    def line(self, stats: ClientStats) -> str:
        """E.g. `Sync done in 12 s: 91 conversations; records: conversations 91, …`."""
        per_stream = ", ".join(f"{name} {count}" for name, count in sorted(self.records.items()))
        pending = "" if self.pending is None else f"; {self.pending} still processing"
        return (
            f"Sync done in {time.monotonic() - self.started:.0f} s: "
            f"{self.records.get('conversations', 0)} conversations; "
            f"records: {per_stream or 'none'}; {stats.requests} requests; "
            f"quota used: {stats.conversations_touched} conversations{pending}."
        )

"""The `tap-conversations` executable: the tap imported with the collector paused, then run.

The SDK's own template points the executable at `TapX.cli` directly. Here one step comes
first: importing singer_sdk and its dependencies makes some 90 000 objects the cyclic
collector tracks, and no garbage, and the collector, left on, runs some 140 times while
they are made: 60-90 ms of the start (the median time from `exec` to the first request
over 20 starts fell from 570 to 496 ms on scripts/benchmark.py's machine, 2026-11-27).
Paused for the imports and frozen once they are done, those objects are also left out
of every collection during the sync.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tap_conversations.tap import TapConversations


def import_tap() -> type[TapConversations]:
    """The tap's class, imported with the collector paused; what the import made, frozen."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        from tap_conversations.tap import TapConversations  # noqa: PLC0415  # see above
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    return TapConversations


def main() -> None:
    """Run the tap's command line: a sync, discovery, `--about`, `--test`."""
    import_tap().cli()

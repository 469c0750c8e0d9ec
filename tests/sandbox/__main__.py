# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Run the sandbox standalone: ``python -m tests.sandbox --port 8765``.

The first stdout line is exactly ``sandbox: <base URL> token=<token>``; the server
then runs until SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from tests.sandbox.server import Sandbox

if TYPE_CHECKING:
    from types import FrameType


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.sandbox", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--conversations", type=int, default=120)
    p.add_argument("--rate-limit", type=int, default=60, help="requests per window per token")
    p.add_argument("--rate-window-seconds", type=float, default=60.0)
    p.add_argument("--daily-quota", type=int, default=1000, help="unique conversations/day")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--error-every", type=int, default=0)
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument("--truncate-rate", type=float, default=0.0)
    p.add_argument("--html-rate", type=float, default=0.0)
    p.add_argument("--non-json-rate", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--rate-limited-rate", type=float, default=0.0)
    return p


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM.

    Returns:
        The exit code (0).
    """
    args = _parser().parse_args(argv)
    sb = Sandbox(
        seed=args.seed,
        conversations=args.conversations,
        rate_limit=args.rate_limit,
        rate_window_seconds=args.rate_window_seconds,
        daily_quota=args.daily_quota,
        latency_ms=args.latency_ms,
        port=args.port,
        host=args.host,
    )
    f = sb.faults
    f.error_rate, f.error_every = args.error_rate, args.error_every
    f.slow_rate, f.slow_seconds = args.slow_rate, args.slow_seconds
    f.truncate_rate, f.html_rate = args.truncate_rate, args.html_rate
    f.non_json_rate, f.drop_rate = args.non_json_rate, args.drop_rate
    f.rate_limited_rate = args.rate_limited_rate
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sb.start()
    sys.stdout.write(f"sandbox: {sb.base_url} token={sb.token}\n")
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

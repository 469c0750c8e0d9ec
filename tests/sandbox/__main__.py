# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Run the sandbox standalone: ``python -m tests.sandbox --port 8765``.

The first stdout line is exactly ``sandbox: <base URL> token=<token>``; each
``--add-token`` then prints ``token: <token> scopes=<a,b> include_recordings=<true|false>``
on a line of its own. The server runs until SIGINT/SIGTERM and exits 0.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import TYPE_CHECKING

from tests.sandbox.server import Sandbox
from tests.sandbox.state import ALL_SCOPES

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
    p.add_argument(
        "--add-token",
        action="append",
        default=[],
        type=_token_spec,
        metavar="SCOPES",
        help=(
            "make one more token (repeatable): comma-separated scopes, or 'all' "
            f"({', '.join(ALL_SCOPES)}); add 'include_recordings' to turn that token "
            "setting on, e.g. 'all' (recordings scope, setting off) or "
            "'conversations,recordings,include_recordings'"
        ),
    )
    return p


#: The pseudo-scope of --add-token that turns the token's include_recordings on.
INCLUDE_RECORDINGS = "include_recordings"


def _token_spec(value: str) -> tuple[tuple[str, ...], bool]:
    """(scopes, include_recordings) from an --add-token value."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    include_recordings = INCLUDE_RECORDINGS in names
    names = [name for name in names if name != INCLUDE_RECORDINGS]
    scopes = ALL_SCOPES if names == ["all"] else tuple(dict.fromkeys(names))
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        msg = f"unknown scopes {unknown}; known: all, {', '.join(ALL_SCOPES)}, {INCLUDE_RECORDINGS}"
        raise argparse.ArgumentTypeError(msg)
    return scopes, include_recordings


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
    for scopes, include_recordings in args.add_token:
        token = sb.add_token(scopes=scopes, include_recordings=include_recordings)
        sys.stdout.write(
            f"token: {token} scopes={','.join(scopes)} "
            f"include_recordings={str(include_recordings).lower()}\n"
        )
    sys.stdout.flush()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sb.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

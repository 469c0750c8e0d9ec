"""Replay generated account histories against the sandbox and check the invariant.

    .venv/bin/python scripts/simulate.py --seeds 500 [--first 0] [--runs 12]

Each seed is one history (tests/simulation.py): a month of arrivals, faults that heal,
stops, changed selections and filters, on a clock the sandbox and the tap share. A
history that breaks the invariant is shrunk (steps and events dropped while it still
breaks it) and printed with its seed; the exit code is the number of failing seeds
(capped at 100). CI runs a fixed set of 50 (tests/test_simulation.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.simulation import Replay, generate, shrink


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--first", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--runs", type=int, default=12, help="tap runs per history (default 12)")
    parser.add_argument("--no-shrink", action="store_true", help="print failures as generated")
    parser.add_argument(
        "--real-signals",
        action="store_true",
        help="run the real executable, stopped by SIGTERM/SIGKILL (about 10 s a history)",
    )
    args = parser.parse_args()
    started = time.monotonic()
    failed = []
    for seed in range(args.first, args.first + args.seeds):
        history = generate(seed, args.runs, real_signals=args.real_signals)
        violations = Replay(history).play()
        if not violations:
            continue
        failed.append(seed)
        small = history if args.no_shrink else shrink(history)
        print(f"FAILED seed {seed}: {Replay(small).play()[:3] or violations[:3]}")
        print(small.render(), flush=True)
    print(
        f"{args.seeds - len(failed)} of {args.seeds} histories hold the invariant "
        f"({time.monotonic() - started:.0f} s); failing seeds: {failed or 'none'}"
    )
    return min(len(failed), 100)


if __name__ == "__main__":
    sys.exit(main())

# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Fault soak: a whole sync against the sandbox with every fault knob on at once.

5xx answers, slow answers past a short request timeout, dropped connections, truncated
bodies, HTML error pages, non-JSON bodies and spurious 429s are all injected at once.
The sync must end complete and correct (exact record ids against the sandbox's truth,
no duplicates); the figures printed are the faults met, the tap's retries and the
extra time against a clean run of the same data:

    .venv/bin/python scripts/fault_soak.py                 # 150 conversations
    .venv/bin/python scripts/fault_soak.py --conversations 400 --seed 3

tests/test_reliability.py runs `run_soak(SoakSettings.small())`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tap_conversations.tap import TapConversations  # noqa: E402
from tests.harness import catalog_selecting, tap_config  # noqa: E402
from tests.sandbox import Sandbox  # noqa: E402

#: Streams checked record by record against the sandbox's truth.
STREAMS = ("conversations", "transcripts", "insights", "summaries", "recordings", "users")


@dataclass(frozen=True)
class SoakSettings:
    """One soak: data size, fault rates (shares of requests) and the tap's settings."""

    conversations: int = 150
    seed: int = 7
    error_rate: float = 0.035
    slow_rate: float = 0.015
    slow_seconds: float = 2.0
    truncate_rate: float = 0.035
    html_rate: float = 0.035
    non_json_rate: float = 0.035
    drop_rate: float = 0.035
    rate_limited_rate: float = 0.015
    request_timeout_seconds: int = 1
    max_parallel_requests: int = 4

    @classmethod
    def small(cls) -> SoakSettings:
        """The test's version: same rates, less data, shorter slow answers."""
        return cls(conversations=50, slow_seconds=1.5)

    @property
    def fault_share(self) -> float:
        """The share of requests that meet a fault."""
        return (
            self.error_rate
            + self.slow_rate
            + self.truncate_rate
            + self.html_rate
            + self.non_json_rate
            + self.drop_rate
            + self.rate_limited_rate
        )


@dataclass
class RunFigures:
    """What one sync produced and cost."""

    seconds: float
    records: dict[str, list[Any]]
    requests: int
    retries: int
    error: str | None = None


@dataclass
class SoakReport:
    """The soak's outcome: correctness and figures."""

    settings: SoakSettings
    clean: RunFigures
    faulty: RunFigures
    faults: dict[str, int]
    retry_after_violations: int
    mismatches: list[str] = field(default_factory=list)

    @property
    def retries(self) -> int:
        """Retries the tap made in the faulty run."""
        return self.faulty.retries

    @property
    def complete(self) -> bool:
        """The faulty run ended without error and with exactly the truth."""
        return self.faulty.error is None and not self.mismatches

    def describe(self) -> str:
        """The figures, one per line."""
        s = self.settings
        met = ", ".join(f"{kind} {n}" for kind, n in self.faults.items() if n)
        extra = self.faulty.seconds - self.clean.seconds
        lines = [
            (
                f"fault soak: {s.conversations} conversations, seed {s.seed}, "
                f"{100 * s.fault_share:.1f}% of requests faulted, request timeout "
                f"{s.request_timeout_seconds} s, {s.max_parallel_requests} parallel"
            ),
            f"  result: {'COMPLETE and exact' if self.complete else 'FAILED'}"
            + (f" ({self.faulty.error})" if self.faulty.error else ""),
            f"  faults met: {sum(self.faults.values())} ({met or 'none'})",
            f"  retries by the tap: {self.faulty.retries}",
            f"  requests: {self.faulty.requests} (clean run: {self.clean.requests})",
            (
                f"  time: {self.faulty.seconds:.1f} s (clean run: {self.clean.seconds:.1f} s, "
                f"extra {extra:.1f} s)"
            ),
            f"  requests during a running Retry-After: {self.retry_after_violations}",
        ]
        lines += [f"  mismatch: {m}" for m in self.mismatches]
        return "\n".join(lines)


def _sync(sandbox: Sandbox, settings: SoakSettings) -> RunFigures:
    config = tap_config(
        sandbox,
        request_timeout_seconds=settings.request_timeout_seconds,
        max_parallel_requests=settings.max_parallel_requests,
    )
    tap = TapConversations(config=config, catalog=catalog_selecting(config, STREAMS))
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8")
    error: str | None = None
    started = time.monotonic()
    with contextlib.redirect_stdout(stdout):
        try:
            tap.sync_all()
        except Exception as exc:  # noqa: BLE001  # reported, not raised
            error = f"{type(exc).__name__}: {exc}"
        finally:
            stdout.flush()
            tap.api.close()
    seconds = time.monotonic() - started
    records: dict[str, list[Any]] = {stream: [] for stream in STREAMS}
    for line in raw.getvalue().decode("utf-8").splitlines():
        message = json.loads(line)
        if message["type"] == "RECORD" and message["stream"] in records:
            records[message["stream"]].append(message["record"])
    return RunFigures(seconds, records, tap.api.stats.requests, tap.api.stats.retries, error)


def _truth(sandbox: Sandbox) -> dict[str, list[str]]:
    ids = [c["id"] for c in sandbox.listed_conversations()]
    return {
        "conversations": ids,
        "transcripts": [c for c in ids if sandbox.transcript(c) is not None],
        "insights": [i["id"] for c in ids for i in sandbox.insights(c)],
        "summaries": [c for c in ids if sandbox.summary(c) is not None],
        "recordings": ids,
        "users": [u["id"] for u in sandbox.users()],
    }


def _keys(stream: str, records: list[dict[str, Any]]) -> list[str]:
    key = "id" if stream in {"conversations", "insights", "users"} else "conversation_id"
    return [record[key] for record in records]


def _compare(truth: dict[str, list[str]], run: RunFigures) -> list[str]:
    problems = []
    for stream, expected in truth.items():
        got = _keys(stream, run.records[stream])
        duplicates = [k for k, n in Counter(got).items() if n > 1]
        if duplicates:
            problems.append(f"{stream}: {len(duplicates)} duplicate keys")
        missing = set(expected) - set(got)
        unexpected = set(got) - set(expected)
        if missing or unexpected:
            problems.append(f"{stream}: {len(missing)} missing, {len(unexpected)} unexpected")
    return problems


def run_soak(settings: SoakSettings) -> SoakReport:
    """A clean sync, then the same data with every fault on; compare both to the truth."""
    seed, size = settings.seed, settings.conversations
    with Sandbox(seed=seed, conversations=size, rate_limit=100_000) as clean_sandbox:
        clean = _sync(clean_sandbox, settings)
    with Sandbox(seed=seed, conversations=size, rate_limit=100_000) as sandbox:
        f = sandbox.faults
        f.error_rate, f.slow_rate, f.slow_seconds = (
            settings.error_rate,
            settings.slow_rate,
            settings.slow_seconds,
        )
        f.truncate_rate, f.html_rate = settings.truncate_rate, settings.html_rate
        f.non_json_rate, f.drop_rate = settings.non_json_rate, settings.drop_rate
        f.rate_limited_rate = settings.rate_limited_rate
        faulty = _sync(sandbox, settings)
        truth = _truth(sandbox)
        report = SoakReport(
            settings=settings,
            clean=clean,
            faulty=faulty,
            faults=sandbox.counters.faults_injected,
            retry_after_violations=sandbox.counters.retry_after_violations(),
        )
    report.mismatches = _compare(truth, faulty)
    if clean.error is not None or _compare(truth, clean):
        report.mismatches.append(f"the CLEAN run was wrong too: {clean.error}")
    return report


def main(argv: list[str] | None = None) -> int:
    """Run one soak and print its figures; exit 1 unless complete and exact."""
    defaults = SoakSettings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=defaults.conversations)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--parallel", type=int, default=defaults.max_parallel_requests)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every fault rate by this"
    )
    args = parser.parse_args(argv)
    scale = args.scale
    settings = replace(
        defaults,
        conversations=args.conversations,
        seed=args.seed,
        max_parallel_requests=args.parallel,
        error_rate=defaults.error_rate * scale,
        slow_rate=defaults.slow_rate * scale,
        truncate_rate=defaults.truncate_rate * scale,
        html_rate=defaults.html_rate * scale,
        non_json_rate=defaults.non_json_rate * scale,
        drop_rate=defaults.drop_rate * scale,
        rate_limited_rate=defaults.rate_limited_rate * scale,
    )
    report = run_soak(settings)
    print(report.describe())
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())

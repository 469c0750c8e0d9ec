"""scripts/demo_log_summary.py: the demo's meltano log in a few lines, failures in full."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent

T = "2026-11-27T12:16:06Z"
LOG = "".join(
    f"{T} {line}\n"
    for line in (
        "[info     ] meltano      Meltano 4.4.1, Python 3.11.7",
        "[info     ] tap-conversations tap-conversations v0.1.0",
        "[warning  ] tap-conversations conversations: 1 conversations had no summary yet",
        "[info     ] tap-conversations Sync done in 3 s: 91 conversations; 280 requests.",
        "[info     ] target-postgres INSERT INTO tap_conversations.users ...",
        (
            "[info     ] target-postgres Reader 'target-postgres' completed processing 590 lines "
            "of input (10 schemas, 566 records)."
        ),
        "[info     ] dbt-postgres \x1b[0m12:16:20  44 of 49 START test not_null_x ..... [RUN]",
        "[info     ] dbt-postgres \x1b[0m12:16:20  Finished running 4 table models, 41 tests.",
        "[info     ] dbt-postgres \x1b[0m12:16:20  Done. PASS=55 WARN=0 ERROR=0 TOTAL=55",
    )
)


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "demo_log_summary", ROOT / "scripts" / "demo_log_summary.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_is_summed_up_in_a_line_per_plugin_and_its_warnings() -> None:
    assert _module().summarize(LOG, failed=False) == [
        "  tap-conversations  WARNING: conversations: 1 conversations had no summary yet",
        "  tap-conversations  Sync done in 3 s: 91 conversations; 280 requests.",
        (
            "  target-postgres    Reader 'target-postgres' completed processing 590 lines of "
            "input (10 schemas, 566 records)."
        ),
        "  dbt-postgres       Finished running 4 table models, 41 tests.",
        "  dbt-postgres       Done. PASS=55 WARN=0 ERROR=0 TOTAL=55",
    ]


def test_a_failed_run_shows_the_logs_last_lines() -> None:
    failed = LOG + f"{T} [error    ] dbt-postgres Database Error in model x\n"
    lines = _module().summarize(failed, failed=True)
    assert "  dbt-postgres       ERROR: Database Error in model x" in lines
    assert "  … the log's last 40 lines:" in lines
    assert lines[-1] == f"  | {T} [error    ] dbt-postgres Database Error in model x"

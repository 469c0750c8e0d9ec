"""Generate the README's settings and streams tables from the code.

    python scripts/readme_tables.py          # rewrite the tables in README.md
    python scripts/readme_tables.py --check  # exit 1 if README.md is out of date

The settings table is the one `tap-conversations --about --format markdown` prints;
the streams table comes from each stream's declarations (key, scope, cost); the
benchmark's tables (figures, results, instructions) are the ones measured in
docs/BENCHMARK.md (`scripts/benchmark.py`).
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from pathlib import Path
from typing import Any

from tap_conversations.streams import STREAM_TYPES
from tap_conversations.tap import TapConversations

README = Path(__file__).resolve().parent.parent / "README.md"
BENCHMARK = README.parent / "docs" / "BENCHMARK.md"


def settings_table() -> str:
    """The Settings table of `--about --format markdown`."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        TapConversations.print_about("markdown")
    about = out.getvalue()
    match = re.search(r"## Settings\n\n(\|.*?)\n\n", about + "\n\n", re.DOTALL)
    if match is None:
        msg = "no Settings table in --about output"
        raise RuntimeError(msg)
    return match.group(1).strip()


def streams_table() -> str:
    """One row per stream, from the stream classes."""
    rows = [
        "| stream | key | replication | scope | requests | selected by default |",
        "|:--|:--|:--|:--|:--|:--|",
    ]
    for declared in STREAM_TYPES:
        # Class-level reads: some attributes are SDK properties on the class.
        stream_type: Any = declared
        parent = stream_type.parent_stream_type
        replication_key = stream_type.replication_key  # a str, or the SDK's property
        if isinstance(replication_key, str):
            replication = f"incremental on `{replication_key}`"
        elif parent is not None:
            replication = f"child of {parent.name}"
        else:
            replication = "full table"
        rows.append(
            f"| {stream_type.name} | {', '.join(stream_type.primary_keys or [])} "
            f"| {replication} | {stream_type.scope or '(any token)'} | {stream_type.cost} "
            f"| {'yes' if stream_type.selected_by_default else 'no'} |"
        )
    return "\n".join(rows)


def benchmark_table(name: str) -> str:
    """A table of docs/BENCHMARK.md (what `scripts/benchmark.py` measured), by its markers."""
    text = BENCHMARK.read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- {name}-table:start -->\n(.*?\n)<!-- {name}-table:end -->", text, re.DOTALL
    )
    if match is None:
        msg = f"docs/BENCHMARK.md lacks the {name}-table markers"
        raise RuntimeError(msg)
    return match.group(1).strip()


def _replacement(table: str) -> Any:  # noqa: ANN401  # re's callback type
    def replace(match: re.Match[str]) -> str:
        return match.group(1) + table + "\n" + match.group(2)

    return replace


def render(text: str) -> str:
    """README text with every table replaced by a freshly generated one."""
    tables = (
        ("settings", settings_table()),
        ("streams", streams_table()),
        ("figures", benchmark_table("figures")),
        ("results", benchmark_table("results")),
        ("instructions", benchmark_table("instructions")),
    )
    for name, table in tables:
        pattern = re.compile(
            rf"(<!-- {name}-table:start -->\n)(?:.*?\n)?(<!-- {name}-table:end -->)", re.DOTALL
        )
        if not pattern.search(text):
            msg = f"README.md lacks the {name}-table markers"
            raise RuntimeError(msg)
        text = pattern.sub(_replacement(table), text)
    return text


def main() -> int:
    """Rewrite or check README.md."""
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print("README.md tables are out of date: run python scripts/readme_tables.py")
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

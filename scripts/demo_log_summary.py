"""The demo's `meltano run` log, summarized: a few lines a person reads, the file named.

    .venv/bin/python scripts/demo_log_summary.py output/demo-meltano.log [--failed]

Shows, per plugin, the line that sums up its part (the tap's `Sync done`, the loader's
`completed processing`, dbt's `Finished running` and `Done. PASS=`), and every warning
and error line of any plugin in full. With --failed (meltano exited non-zero), the log's
last lines as well. The full log stays in the file.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

#: A Meltano log line: `<time> [<level>] <plugin or meltano> <message>`.
LINE = re.compile(r"^\S+ \[(?P<level>\w+)\s*\] (?P<name>\S+)\s+(?P<message>.*)$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
#: Per plugin, the messages that sum up its part of the run.
SUMMARY = {
    "tap-conversations": re.compile(r"^Sync done in "),
    "target-postgres": re.compile(r"completed processing \d+ lines of input"),
    "dbt-postgres": re.compile(r"(Finished running .*|Done\. PASS=.*)$"),
}
SHOWN_CHARS = 240
TAIL_LINES = 40


def summarize(text: str, *, failed: bool) -> list[str]:
    """The summary's lines."""
    out: list[str] = []
    lines = [ANSI.sub("", line) for line in text.splitlines()]
    for raw in lines:
        match = LINE.match(raw)
        if match is None:
            continue
        level, name, message = match["level"], match["name"], match["message"].strip()
        dbt_time = re.match(r"^\d\d:\d\d:\d\d\s+", message)
        if dbt_time:
            message = message[dbt_time.end() :]
        pattern = SUMMARY.get(name)
        wanted = pattern is not None and pattern.search(message)
        if level in {"warning", "error", "critical"} or wanted:
            long = not wanted and len(message) > SHOWN_CHARS
            shown = message[:SHOWN_CHARS] + " …" if long else message
            mark = "" if wanted and level == "info" else f"{level.upper()}: "
            out.append(f"  {name:<18} {mark}{shown}")
    if failed:
        out.append(f"  … the log's last {TAIL_LINES} lines:")
        out += [f"  | {line}" for line in lines[-TAIL_LINES:]]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--failed", action="store_true")
    args = parser.parse_args()
    text = args.log.read_text(encoding="utf-8", errors="replace")
    print("\n".join(summarize(text, failed=args.failed)), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What the demo loaded, table by table, next to what the sandbox says the token may see.

    .venv/bin/python scripts/demo_report.py --database-url URL --seed 7 --conversations 120

The truth comes from the sandbox's own data (same seed and size, so the same ids and
relative dates), never from the tap. Exits 1 when a table differs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.sandbox import Sandbox  # the repository root, added above

SCHEMA = "tap_conversations"
#: The headline: transform/analyses/talk_share_by_role.sql, on the demo's schema.
TALK_SHARE_BY_ROLE = """
    WITH shares AS (
        SELECT conversation_id, speaker_role, sum(talk_share) AS talk_share
        FROM analytics.fct_conversation_speakers
        WHERE talk_share IS NOT NULL
        GROUP BY conversation_id, speaker_role
    ),
    conversations AS (SELECT count(DISTINCT conversation_id) AS n FROM shares)
    SELECT s.speaker_role AS role, count(*) AS conversations,
           round(sum(s.talk_share) / max(c.n), 3) AS talk_share
    FROM shares AS s CROSS JOIN conversations AS c
    GROUP BY s.speaker_role ORDER BY talk_share DESC"""
#: What the models give, as the demo prints them and offers them to paste: (title, SQL).
MODEL_QUERIES = (
    (
        "talk share per user, their longest monologue (dbt: analytics.fct_user_talk):",
        (
            "SELECT user_name, conversations, round(talk_share, 3) AS talk_share, "
            "round(longest_monologue_seconds, 1) AS longest_monologue_s "
            "FROM analytics.fct_user_talk ORDER BY talk_share DESC"
        ),
    ),
    (
        "the longest monologues (dbt: analytics.fct_conversations):",
        (
            "SELECT left(title, 32) AS title, user_name, speaker_count, "
            "round(longest_monologue_seconds, 1) AS longest_monologue_s "
            "FROM analytics.fct_conversations WHERE has_transcript "
            "ORDER BY longest_monologue_seconds DESC LIMIT 3"
        ),
    ),
    (
        "insights per day, the last 7 days with any (dbt: analytics.fct_insights_per_day):",
        (
            "SELECT conversation_day, sum(insight_count) AS insights, "
            "coalesce(sum(insight_count) FILTER (WHERE insight_type = 'kpi'), 0) AS kpi_insights "
            "FROM analytics.fct_insights_per_day GROUP BY 1 ORDER BY 1 DESC LIMIT 7"
        ),
    ),
)


def truth(sandbox: Sandbox) -> dict[str, int]:
    """Rows each table must hold: what the demo token may see through the API."""
    ids = [c["id"] for c in sandbox.listed_conversations()]
    return {
        "account": 1,
        "conversations": len(ids),
        "departments": len(sandbox.departments()),
        "insights": sum(len(sandbox.insights(c)) for c in ids),
        "recordings": len(ids),
        "summaries": sum(1 for c in ids if sandbox.summary(c) is not None),
        "teams": len(sandbox.teams()),
        "transcripts": sum(1 for c in ids if sandbox.transcript(c) is not None),
        "users": len(sandbox.users()),
        "webhook_deliveries": len(sandbox.webhook_deliveries()),
    }


def show(cursor: psycopg.Cursor[Any], title: str, sql: str) -> None:
    cursor.execute(sql)
    names = [d.name for d in cursor.description or ()]
    # One line per row: titles can hold line breaks and tabs.
    rows = [tuple(" ".join(str(v).split()) for v in row) for row in cursor.fetchall()]
    widths = [max(len(n), *(len(str(r[i])) for r in rows)) for i, n in enumerate(names)]
    print(f"\n{title}")
    print("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--conversations", type=int)
    parser.add_argument(
        "--print-queries",
        action="store_true",
        help="print the models' queries, one a line (for a psql command to paste), and exit",
    )
    args = parser.parse_args()
    if args.print_queries:
        for _, sql in MODEL_QUERIES:
            print(sql)
        return 0
    if args.database_url is None or args.seed is None or args.conversations is None:
        parser.error("--database-url, --seed and --conversations are required")
    sandbox = Sandbox(seed=args.seed, conversations=args.conversations)
    expected = truth(sandbox)
    conninfo = args.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        print(f"{'table':<22}{'rows':>8}{'expected':>10}")
        print("-" * 40)
        wrong = []
        for table, rows_expected in sorted(expected.items()):
            cursor.execute(f'SELECT count(*) FROM {SCHEMA}."{table}"')  # noqa: S608  # constants
            (rows,) = cursor.fetchone() or (0,)
            print(
                f"{table:<22}{rows:>8}{rows_expected:>10}{'' if rows == rows_expected else '  <-'}"
            )
            if rows != rows_expected:
                wrong.append(table)
        print(
            f"\nThe sandbox holds {args.conversations} conversations over 40 days; the API lists "
            f"the last 30 days only, so the token may see {expected['conversations']}."
        )
        if wrong:
            print(f"MISMATCH in {', '.join(wrong)}: a row was lost or duplicated.")
            return 1
        print("Every table holds exactly what the sandbox says the token may see.")
        show(
            cursor,
            "newest conversations (department and user are jsonb columns):",
            f"""SELECT date, medium, left(title, 40) AS title,
                       department ->> 'name' AS department, "user" ->> 'name' AS "user",
                       cardinality(participants) AS participants
                FROM {SCHEMA}.conversations ORDER BY date DESC LIMIT 5""",  # noqa: S608
        )
        show(
            cursor,
            "who talks: each speaker role's share of a conversation's talk time, averaged over "
            "the conversations with a transcript (dbt: analytics.fct_conversation_speakers):",
            TALK_SHARE_BY_ROLE,
        )
        print(
            "  user: the account's member who held the conversation; customer, host, guest: "
            "the listed\n  participants' roles; unidentified: a speaker label that is neither "
            "(a diarization label\n  such as 'Speaker 2', or no speaker)."
        )
        for title, sql in MODEL_QUERIES:
            show(cursor, title, sql)
    return 0


if __name__ == "__main__":
    sys.exit(main())

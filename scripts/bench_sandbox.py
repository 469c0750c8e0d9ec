# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Benchmark the sandbox API: requests/s of small keep-alive GETs.

Starts ``python -m tests.sandbox`` in a subprocess (rate limit effectively off),
hammers one endpoint (default ``/me``) from several client threads, each on its own
keep-alive connection, and prints requests/s. A benchmark, not a test:

    .venv/bin/python scripts/bench_sandbox.py --threads 4 --seconds 5
"""

from __future__ import annotations

import argparse
import http.client
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def _worker(
    target: tuple[str, int, str],
    token: str,
    deadline: float,
    results: list[tuple[int, int]],
) -> None:
    host, port, path = target
    conn = http.client.HTTPConnection(host, port, timeout=10)
    headers = {"Authorization": f"Bearer {token}"}
    ok = bad = 0
    while time.perf_counter() < deadline:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status == 200:  # noqa: PLR2004 - HTTP OK
            ok += 1
        else:
            bad += 1
    conn.close()
    results.append((ok, bad))


def main() -> int:
    """Run the benchmark and print the result.

    Returns:
        0 when every request answered 200, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--path", default="/me", help="path under the base URL")
    args = parser.parse_args()

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.sandbox",
            "--port",
            "0",
            "--rate-limit",
            "1000000000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE) guarantees it
        first = proc.stdout.readline().strip()  # "sandbox: <base URL> token=<token>"
        base_url, token = first.removeprefix("sandbox: ").split(" token=")
        split = urlsplit(base_url)
        host, port = split.hostname or "127.0.0.1", split.port or 80
        path = split.path + args.path
        results: list[tuple[int, int]] = []
        start = time.perf_counter()
        deadline = start + args.seconds
        threads = [
            threading.Thread(target=_worker, args=((host, port, path), token, deadline, results))
            for _ in range(args.threads)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ok = sum(r[0] for r in results)
    bad = sum(r[1] for r in results)
    print(
        f"GET {args.path}: {ok + bad} requests in {elapsed:.2f} s with {args.threads} "
        f"keep-alive threads = {(ok + bad) / elapsed:,.0f} requests/s ({bad} non-200)"
    )
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""The Dagster definitions run in this process, without a daemon or a web server.

    python -m orchestrate.local register [KEY ...]       # partitions: these, or the sensor's
    python -m orchestrate.local materialize KEY [KEY ...]  # one in-process run per account
    python -m orchestrate.local tick [--at ISO-TIME]     # what the schedule would request

With DAGSTER_HOME set, the instance there keeps partitions, runs and materialisations
between calls (its dagster.yaml: orchestrate/dagster.yaml); without it, each call uses
a throwaway instance. Each command prints one JSON object per line; `materialize` exits
1 when an account's run failed. The tests drive the definitions through this module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

from dagster import (
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    SensorResult,
    build_schedule_context,
    build_sensor_context,
)

from orchestrate.definitions import (
    ACCOUNTS_NAME,
    MeltanoProject,
    account_directories,
    daily_accounts,
    defs,
    sync_accounts,
)
from orchestrate.meltano_runs import check_key


def _instance() -> DagsterInstance:
    return DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()


def _plain(value: object) -> object:
    """A metadata value as JSON can hold it."""
    inner = getattr(value, "value", value)
    return inner if isinstance(inner, (str, int, float, bool, type(None))) else str(inner)


def register(instance: DagsterInstance, keys: list[str]) -> list[str]:
    """Add partitions for `keys`, or for the sensor's new account directories."""
    if not keys:
        with build_sensor_context(
            instance=instance, resources={"meltano": MeltanoProject()}
        ) as ctx:
            result = account_directories(ctx)
        if isinstance(result, SensorResult):
            for request in result.dynamic_partitions_requests or []:
                keys.extend(getattr(request, "partition_keys", []) or [])
    keys = [check_key(key) for key in keys]
    new = [key for key in keys if not instance.has_dynamic_partition(ACCOUNTS_NAME, key)]
    if new:
        instance.add_dynamic_partitions(ACCOUNTS_NAME, new)
    return new


def summarize(key: str, result: ExecuteInProcessResult) -> dict[str, Any]:
    """One account's run as a JSON object: success, verdict, metadata, retries."""
    events = result.all_events
    retries = sum(1 for e in events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY)
    summary: dict[str, Any] = {
        "account": key,
        "run_id": result.run_id,
        "success": result.success,
        "retries": retries,
        "metadata": {},
    }
    for materialization in result.asset_materializations_for_node("conversations"):
        summary["metadata"] = {k: _plain(v) for k, v in materialization.metadata.items()}
    for failure in result.get_step_failure_events():
        data = failure.step_failure_data
        summary["error"] = data.error.message if data.error else ""
        if data.user_failure_data is not None:
            summary["error"] = data.user_failure_data.description or summary["error"]
            summary["metadata"] = {k: _plain(v) for k, v in data.user_failure_data.metadata.items()}
    return summary


def materialize(instance: DagsterInstance, keys: list[str]) -> list[dict[str, Any]]:
    """One in-process run of the sync job per account (registered first if new)."""
    register(instance, list(keys))
    job = defs.resolve_job_def(sync_accounts.name)
    results = []
    for key in keys:
        result = job.execute_in_process(
            partition_key=key, instance=instance, raise_on_error=False, tags={"account": key}
        )
        results.append(summarize(key, result))
    return results


def tick(instance: DagsterInstance, at: dt.datetime) -> dict[str, Any]:
    """The schedule's evaluation at `at`: the accounts it requests runs for."""
    with build_schedule_context(instance=instance, scheduled_execution_time=at) as context:
        result = daily_accounts(context)
    if isinstance(result, list):
        return {
            "requested": [r.partition_key for r in result],
            "run_keys": [r.run_key for r in result],
        }
    return {"requested": [], "skipped": getattr(result, "skip_message", str(result))}


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="python -m orchestrate.local", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("register").add_argument("keys", nargs="*")
    commands.add_parser("materialize").add_argument("keys", nargs="+")
    ticking = commands.add_parser("tick")
    ticking.add_argument("--at", type=dt.datetime.fromisoformat, default=None)
    args = parser.parse_args(argv)
    instance = _instance()
    if args.command == "register":
        print(json.dumps({"registered": register(instance, list(args.keys))}))  # noqa: T201
        return 0
    if args.command == "materialize":
        results = materialize(instance, args.keys)
        for result in results:
            print(json.dumps(result))  # noqa: T201
        return 0 if all(r["success"] for r in results) else 1
    at = args.at or dt.datetime.now(dt.timezone.utc)
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.timezone.utc)
    print(json.dumps(tick(instance, at)))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Dagster definitions: one partition per account, one `meltano run` per partition.

    dagster dev -m orchestrate.definitions          # UI, daemon, schedule and sensor
    python -m orchestrate.local materialize acme    # the same run in-process, no daemon

* `conversations_accounts`: dynamic partitions, one per account key. The sensor
  `account_directories` adds one for each new directory in CONVERSATIONS_ACCOUNTS_DIR
  (never removes one: a missing mount must not delete history).
* `conversations`: the asset an account's run materialises, i.e. its tables in the
  schema `conversations_<key>`. One run per account and partition:
  `meltano run --state-id-suffix=<key> tap-conversations target-postgres`, with the
  account's token from its directory (orchestrate/meltano_runs.py) and the state in
  the shared backend the worker's MELTANO_DATABASE_URI names.
* `daily_accounts`: a run request per account after the quota's reset (00:30 UTC),
  skipping an account whose last run was stopped by a quota that has not reset yet.
* Retries: a transient failure is retried 3 times with exponential backoff from
  5 min, with jitter; a run the quota stopped is a success (not retried; the next
  scheduled run resumes it); a run that failed after the quota, or on a setting, a
  state of another account or a rejected token, fails without retry.
* Limits: orchestrate/dagster.yaml caps runs in progress and allows one per account.
"""

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Backoff,
    ConfigurableResource,
    DagsterInstance,
    Definitions,
    DynamicPartitionsDefinition,
    Failure,
    Jitter,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    RunRequest,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    asset,
    define_asset_job,
    schedule,
    sensor,
)
from pydantic import Field

from orchestrate.meltano_runs import (
    AccountError,
    RunOutcome,
    Verdict,
    account_settings,
    list_accounts,
    meltano_command,
    run_account,
    run_environment,
    schema_for,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS_NAME = "conversations_accounts"
ACCOUNTS = DynamicPartitionsDefinition(name=ACCOUNTS_NAME)
ASSET_KEY = AssetKey("conversations")
#: After the quota's reset at UTC midnight, so that every daily run starts with a full one.
DAILY_CRON = os.environ.get("CONVERSATIONS_SCHEDULE_CRON", "30 0 * * *")
RETRIES = RetryPolicy(
    max_retries=3, delay=300, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
#: Longest one account's run may take before SIGTERM (the tap saves its state first).
RUN_TIMEOUT_SECONDS = 6 * 3600


def _default_meltano() -> str:
    return (
        os.environ.get("MELTANO_BIN")
        or shutil.which("meltano")
        or str(PROJECT_ROOT / ".venv" / "meltano" / "bin" / "meltano")
    )


class MeltanoProject(ConfigurableResource):
    """Where the Meltano project, its `meltano` and the accounts' settings are."""

    project_dir: str = Field(
        default_factory=lambda: os.environ.get("MELTANO_PROJECT_ROOT", str(PROJECT_ROOT)),
        description="The Meltano project (a clone of this repository; no state in it).",
    )
    meltano_bin: str = Field(
        default_factory=_default_meltano, description="The meltano executable."
    )
    accounts_dir: str = Field(
        default_factory=lambda: os.environ.get("CONVERSATIONS_ACCOUNTS_DIR", ""),
        description="One directory per account key, one file per TAP_CONVERSATIONS_* variable.",
    )
    timeout_seconds: int = Field(default=RUN_TIMEOUT_SECONDS)

    def accounts_path(self) -> Path:
        """The accounts directory (CONVERSATIONS_ACCOUNTS_DIR)."""
        if not self.accounts_dir:
            msg = "Set CONVERSATIONS_ACCOUNTS_DIR (one directory per account) or accounts_dir."
            raise Failure(msg, allow_retries=False)
        return Path(self.accounts_dir)


def _metadata(key: str, outcome: RunOutcome) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "account": key,
        "schema": schema_for(key),
        "verdict": outcome.verdict.value,
        "exit_code": outcome.returncode,
        "seconds": round(outcome.seconds, 1),
        "quota_exhausted": outcome.quota_seen,
        "summary": outcome.summary or "",
    }
    if outcome.quota_seen:
        hours = outcome.quota_resets_in_hours
        if hours is None:  # the line without its hours: the next UTC midnight
            now = dt.datetime.now(dt.timezone.utc)
            resets = dt.datetime.combine(now.date(), dt.time(), dt.timezone.utc)
            resets += dt.timedelta(days=1)
        else:
            resets = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=hours)
        metadata["quota_resets_at"] = MetadataValue.timestamp(resets.timestamp())
    return metadata


@asset(
    key=ASSET_KEY,
    partitions_def=ACCOUNTS,
    retry_policy=RETRIES,
    kinds={"meltano", "postgres"},
    description=(
        "One account's conversations, transcripts, insights, ... in the schema "
        "conversations_<account>, loaded by `meltano run --state-id-suffix=<account> "
        "tap-conversations target-postgres`."
    ),
)
def conversations(context: AssetExecutionContext, meltano: MeltanoProject) -> MaterializeResult:
    """Sync one account (the partition) with its own token, state id and schema."""
    key = context.partition_key
    try:
        settings = account_settings(meltano.accounts_path(), key)
        command = meltano_command(meltano.meltano_bin, key)
    except AccountError as error:
        raise Failure(str(error), allow_retries=False) from None
    env = run_environment(key, settings, os.environ)
    context.log.info("Account %s: %s (schema %s)", key, " ".join(command[1:]), schema_for(key))
    outcome = run_account(
        command,
        env,
        Path(meltano.project_dir),
        on_line=context.log.info,
        timeout_seconds=meltano.timeout_seconds,
    )
    metadata = _metadata(key, outcome)
    verdict = outcome.verdict
    if verdict is Verdict.QUOTA:
        context.log.warning(
            "Account %s: the daily quota stopped the run; its state is saved and the next "
            "run after the reset resumes there (not retried now).",
            key,
        )
    if verdict.succeeded:
        return MaterializeResult(metadata=metadata)
    tail = "\n".join(outcome.tail[-20:])
    if verdict is Verdict.FAILED_AFTER_QUOTA:
        msg = (
            f"Account {key}: failed after the daily quota was spent; not retried before the reset."
        )
    elif verdict is Verdict.PERMANENT:
        msg = f"Account {key}: {outcome.permanent_line}"
    else:
        msg = f"Account {key}: meltano exited {outcome.returncode}; retried with backoff."
    description = f"{msg}\n{tail}"
    raise Failure(description, metadata=metadata, allow_retries=verdict.retry_now)


sync_accounts = define_asset_job(
    "conversations_sync",
    selection=[conversations],
    partitions_def=ACCOUNTS,
    description="One account's sync: one run per partition.",
)


def quota_resets_at(instance: DagsterInstance, key: str) -> dt.datetime | None:
    """When the quota that stopped `key`'s last run resets, if its last run was so stopped."""
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=ASSET_KEY, asset_partitions=[key]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    value = records[0].asset_materialization.metadata.get("quota_resets_at")
    if value is None or not isinstance(value.value, (int, float)):
        return None
    return dt.datetime.fromtimestamp(value.value, dt.timezone.utc)


@schedule(
    job=sync_accounts,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    description="Every account once a day, after the quota's reset at UTC midnight.",
)
def daily_accounts(context: ScheduleEvaluationContext) -> list[RunRequest] | SkipReason:
    """A run request per account, but not for one whose quota has not reset yet."""
    now = context.scheduled_execution_time
    requests = []
    for key in context.instance.get_dynamic_partitions(ACCOUNTS_NAME):
        resets = quota_resets_at(context.instance, key)
        if resets is not None and resets > now:
            context.log.info("Account %s: quota resets at %s; skipped.", key, resets.isoformat())
            continue
        requests.append(
            RunRequest(
                run_key=f"{key}:{now:%Y-%m-%dT%H:%M}",
                partition_key=key,
                tags={"account": key},
            )
        )
    return requests or SkipReason("No account is due (none registered, or all wait for a quota).")


@sensor(
    job=sync_accounts,
    minimum_interval_seconds=300,
    description="Adds a partition for each new account directory in CONVERSATIONS_ACCOUNTS_DIR.",
)
def account_directories(
    context: SensorEvaluationContext, meltano: MeltanoProject
) -> SensorResult | SkipReason:
    """Register new accounts; never remove one (do that by hand, on purpose)."""
    keys, refused = list_accounts(meltano.accounts_path())
    for name in refused:
        context.log.warning("Directory %r is not a usable account key; ignored.", name)
    known = set(context.instance.get_dynamic_partitions(ACCOUNTS_NAME))
    new = [key for key in keys if key not in known]
    if not new:
        return SkipReason("No new account directory.")
    return SensorResult(dynamic_partitions_requests=[ACCOUNTS.build_add_request(new)])


defs = Definitions(
    assets=[conversations],
    jobs=[sync_accounts],
    schedules=[daily_accounts],
    sensors=[account_directories],
    resources={"meltano": MeltanoProject()},
)

"""A simulated month of an account's history, and the invariant checked after every run.

Example tests cannot keep up with the ways an account's history can go, so this module
generates histories from a seed (as FoundationDB's simulation and Jepsen's generated
histories do), replays each against the sandbox on a clock the sandbox and the tap
share, runs the tap in-process between events, and after every run checks one
invariant:

    every row the server holds for the token (every selected stream, inside the 30
    days and the filters) is in the loaded tables (upserted by key), or a warning
    names it (its id, or for a tie group its date), or the state says it is still
    pending within its budget;

and two rules of the quota: re-checks of pending conversations spend at most the
planner's share of a day's quota, and come after every new conversation of the run.

A history is a list of `Step`s, each a clock advance, events at the source, and one
tap run (its streams, filters, the form its state is handed over in, and where its
output is cut to model a stop). Histories are plain data, so a failing one is
shrunk by dropping steps and events while it still fails, and printed.

What the generator covers and what it does not is listed in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import random
import re
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tap_conversations import client as client_module
from tap_conversations.bookmarks import PROCESSING_ALLOWANCE
from tap_conversations.clock import utc_now
from tap_conversations.planner import recheck_budget
from tap_conversations.removals import unpack_id
from tap_conversations.settings import HISTORY_DAYS
from tap_conversations.tap import TapConversations
from tests.harness import Warehouse, catalog_selecting
from tests.helpers import TAP_EXE, cli_env
from tests.sandbox import Sandbox

if TYPE_CHECKING:
    from collections.abc import Iterator

#: Conversation streams a run may select (transcript_segments only repeats transcripts).
PART_STREAMS = ("transcripts", "insights", "summaries", "recordings")
#: Streams every run selects beside its part streams.
ALWAYS = ("conversations", "removed_conversations", "sync_ledger")
#: How often the runs of a history sweep for removals, by seed (the rng's draws stay as
#: they were, so a seed's history does not change with this setting).
SWEEP_HOURS = (1, 24, 168)
#: Summary re-reads of the last days, by seed (0: off), the same way.
REREAD_DAYS = (0, 2, 0, 7)
#: The share of steps where a person edits a summary in the app.
EDIT_SHARE = 0.3
MEDIUMS = ("call", "video", "email", "chat", "live")
START = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.timezone.utc)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class SimClock:
    """The simulated now, shared by the sandbox and the tap; it moves only between runs."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


class RealClock(SimClock):
    """The real clock, for histories whose runs are real processes (real signals)."""

    def __init__(self) -> None:
        super().__init__(utc_now())

    def __call__(self) -> dt.datetime:
        self.now = utc_now()
        return self.now

    def advance(self, delta: dt.timedelta) -> None:  # noqa: ARG002 - time passes by itself
        self()


# --- a history as data -------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One change at the source. `key`s name conversations by the order they were added."""

    kind: str
    key: int = -1
    args: tuple[tuple[str, Any], ...] = ()

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)

    def __str__(self) -> str:
        parts = [f"#{self.key}"] if self.key >= 0 else []
        parts += [f"{k}={v!r}" for k, v in self.args]
        return f"{self.kind}({', '.join(parts)})"


@dataclass(frozen=True)
class RunSpec:
    """One tap run: what it selects, how its state arrives, where its output is cut."""

    streams: tuple[str, ...]
    mediums: tuple[str, ...] = ()
    state_form: str = "value"
    #: Keep this share of the output lines (a stop); None: the run ends on its own.
    cut: float | None = None
    #: With real signals: the signal that stops the run, after `kill_after` STATE lines
    #: that hold the conversations bookmark (1: after the first chunk's).
    signal: str | None = None
    kill_after: int = 0

    def __str__(self) -> str:
        parts = [",".join(self.streams)]
        if self.mediums:
            parts.append(f"mediums={','.join(self.mediums)}")
        if self.state_form != "value":
            parts.append(f"state as {self.state_form}")
        if self.cut is not None:
            parts.append(f"cut at {self.cut:.0%}")
        if self.signal is not None:
            parts.append(f"SIG{self.signal} after {self.kill_after} bookmark STATE lines")
        return " ".join(parts)


@dataclass(frozen=True)
class Step:
    advance: dt.timedelta
    events: tuple[Event, ...]
    run: RunSpec


@dataclass(frozen=True)
class History:
    seed: int
    late_data_window_hours: int
    daily_quota: int
    steps: tuple[Step, ...]
    #: The runs are real processes on the real clock, stopped by real signals.
    real_signals: bool = False

    @property
    def removal_sweep_hours(self) -> int:
        return SWEEP_HOURS[self.seed % len(SWEEP_HOURS)]

    @property
    def summary_reread_days(self) -> int:
        return REREAD_DAYS[self.seed % len(REREAD_DAYS)]

    def render(self) -> str:
        lines = [
            (
                f"seed {self.seed}: late_data_window_hours={self.late_data_window_hours}, "
                f"daily quota {self.daily_quota}, removal_sweep_hours={self.removal_sweep_hours}, "
                f"summary_reread_days={self.summary_reread_days}"
            )
        ]
        elapsed = dt.timedelta()
        for number, step in enumerate(self.steps):
            elapsed += step.advance
            events = "; ".join(map(str, step.events)) or "nothing"
            lines.append(f"  run {number} at +{elapsed}: {events} -> run {step.run}")
        return "\n".join(lines)


def generate(seed: int, runs: int = 12, *, real_signals: bool = False) -> History:
    """A random history: a month of arrivals, faults that heal, stops and changed wishes."""
    rng = random.Random(seed)
    # Edits draw from their own generator: the rest of a seed's history stays as it was.
    edits = random.Random(seed * 7919 + 1)
    window = rng.choice((1, 6, 24))
    quota = rng.choice((1000, 1000, 60, 25))
    schedule = rng.choice(("hourly", "daily", "irregular", "sparse"))
    total = dt.timedelta(days=HISTORY_DAYS)
    keys = 0
    steps = []
    for number in range(runs):
        if schedule == "hourly":
            advance = dt.timedelta(hours=rng.choice((1, 1, 2, 5)))
        elif schedule == "daily":
            advance = dt.timedelta(days=1, minutes=rng.randrange(-30, 30))
        elif schedule == "sparse":  # weeks pass: conversations age out of the 30 days
            advance = dt.timedelta(hours=rng.randrange(48, 120))
        else:
            advance = dt.timedelta(minutes=rng.randrange(5, 3 * 24 * 60))
        advance = min(advance, total / runs * 3)
        events: list[Event] = []
        for _ in range(rng.randrange(0, 5)):
            event, keys = _random_event(rng, keys, window)
            if event is not None:
                events.append(event)
        if keys and edits.random() < EDIT_SHARE:
            events.append(Event("edit", edits.randrange(keys)))
        last = number == runs - 1
        streams = (*ALWAYS, *sorted(rng.sample(PART_STREAMS, rng.randrange(0, 5))))
        run = RunSpec(
            streams=streams,
            mediums=() if rng.random() < 0.7 else tuple(sorted(rng.sample(MEDIUMS, 2))),
            state_form=rng.choice(("value", "value", "message", "singer_state")),
            cut=None if last or rng.random() < 0.75 else round(rng.random(), 2),
        )
        steps.append(Step(advance, tuple(events), run))
    # The last run is clean: no fault pending, a new day's quota, nothing cut.
    if real_signals:
        steps = [_with_real_signal(rng, step) for step in steps]
    steps.append(
        Step(
            dt.timedelta(hours=1),
            (Event("heal"),),
            replace(steps[-1].run, cut=None, signal=None),
        )
    )
    return History(seed, window, quota, tuple(steps), real_signals)


def _with_real_signal(rng: random.Random, step: Step) -> Step:
    """A step for a real process: no waits in retries it cannot skip, a real stop."""
    events = tuple(
        e for e in step.events if not (e.kind == "fail" and e.arg("status") in (429, 503))
    )
    run = replace(step.run, cut=None)
    if step.run.cut is not None:
        run = replace(run, signal=rng.choice(("TERM", "KILL")), kill_after=1)
    return replace(step, events=events, run=run)


def _random_event(  # noqa: PLR0911 - one return per kind of event
    rng: random.Random, keys: int, window: int
) -> tuple[Event | None, int]:
    """One event; conversations get consecutive keys."""
    roll = rng.random()
    if roll < 0.45 or keys == 0:
        # A conversation: now, listed late inside the window, or dated ahead.
        when = rng.choice(("now", "now", "late", "ahead"))
        offset = {
            "now": -rng.randrange(0, 600),
            "late": -rng.randrange(60, int(window * 3600 * 0.9)),
            "ahead": rng.randrange(60, 7200),
        }[when]
        args = {
            "offset": offset,
            "medium": rng.choice(MEDIUMS),
            "processed": rng.random() < 0.7,
            "summary": rng.random() < 0.85,
            "transcript": rng.random() < 0.85,
            "owner": rng.choice(("some", "some", "some", "none", "retired")),
        }
        return Event("add", keys, tuple(sorted(args.items()))), keys + 1
    if roll < 0.52:
        # A burst at one instant, beyond a page, some reachable by no filter.
        size = rng.randrange(26, 40)
        args = {"size": size, "offset": -rng.randrange(0, 600), "one_medium": rng.random() < 0.5}
        return Event("burst", keys, tuple(sorted(args.items()))), keys + size
    key = rng.randrange(keys)
    if roll < 0.62:
        return Event("process", key, (("webhook", rng.random() < 0.6),)), keys
    if roll < 0.80:
        endpoint = rng.choice(("detail", "detail", "summary", "transcript", "recording"))
        status = rng.choice((404, 404, 503, 429))
        args = {
            "endpoint": endpoint,
            "times": rng.randrange(1, 3),
            "status": status,
            "retry_after": rng.choice((None, 0)) if status == 429 else None,
        }
        return Event("fail", key, tuple(sorted(args.items()))), keys
    if roll < 0.85:
        return Event("answer_as", key, (("other", rng.randrange(keys)),)), keys
    if roll < 0.92:
        return Event("remove", key), keys
    return Event("quota_day"), keys


# --- replaying a history -----------------------------------------------------------


@dataclass
class RunResult:
    """What one run wrote, up to its cut, and what it logged."""

    messages: list[dict[str, Any]]
    warnings: list[str]
    error: str | None
    cut: bool

    @property
    def state(self) -> dict[str, Any] | None:
        states = [m["value"] for m in self.messages if m["type"] == "STATE"]
        return states[-1] if states else None

    @property
    def stopped_by_quota(self) -> bool:
        return any("Stopped with" in w for w in self.warnings)

    @property
    def complete(self) -> bool:
        return not self.cut and self.error is None and not self.stopped_by_quota


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Replay:
    """A history replayed: the sandbox, the warehouse, and the state passed along."""

    history: History
    clock: SimClock = field(default_factory=lambda: SimClock(START))
    warehouse: Warehouse = field(default_factory=Warehouse)
    state: dict[str, Any] | None = None
    #: Conversation ids by key (None: never added because its event was shrunk away).
    ids: dict[int, str] = field(default_factory=dict)
    named: set[str] = field(default_factory=set)
    #: Conversations whose summary was edited after they were last emitted: the loaded
    #: row may hold the old text until a re-read (summary_reread_days) emits them again.
    edited_since_loaded: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    #: Runs that were stopped (cut or signalled) before they ended.
    stops: int = 0
    #: The state the run being checked started from.
    state_before: dict[str, Any] | None = None

    def play(self) -> list[str]:
        if self.history.real_signals:
            self.clock = RealClock()
        with _fast_retries(), Sandbox(conversations=0, clock=self.clock) as sb:
            sb.set_rate_limit(1_000_000)
            sb.set_daily_quota(self.history.daily_quota)
            self._setup(sb)
            for number, step in enumerate(self.history.steps):
                self.clock.advance(step.advance)
                for event in step.events:
                    self._apply(sb, event)
                result = self._run(sb, step.run)
                self.stops += result.cut
                self._check(sb, number, step.run, result)
                if self.violations:
                    break
            if sb.server_errors:
                self.violations.append(f"sandbox handler errors: {sb.server_errors[:1]}")
        return self.violations

    def _setup(self, sb: Sandbox) -> None:
        # A department switched off and a user who left: listed by no filter.
        self.retired_department = sb.departments()[0]["id"]
        self.retired_user = sb.users()[0]["id"]
        sb.set_department_enabled(self.retired_department, enabled=False)
        sb.set_user_active(self.retired_user, active=False)
        self.departments = [d["id"] for d in sb.departments()]
        self.users = [u["id"] for u in sb.users()]

    def _apply(self, sb: Sandbox, event: Event) -> None:  # noqa: C901, PLR0912 - one branch per kind
        kind = event.kind
        if kind == "add":
            self.ids[event.key] = self._add(sb, event, self.clock.now)
        elif kind == "burst":
            date = self.clock.now + dt.timedelta(seconds=event.arg("offset"))
            for n in range(event.arg("size")):
                medium = "call" if event.arg("one_medium") else MEDIUMS[n % len(MEDIUMS)]
                owner = ("some", "some", "none", "retired")[n % 4]
                self.ids[event.key + n] = self._conversation(
                    sb, date, medium=medium, owner=owner, n=n
                )
        elif kind == "heal":
            sb.set_daily_quota(1_000_000)
            sb.new_day()
        elif kind == "quota_day":
            sb.new_day()
        else:
            cid = self.ids.get(event.key)
            if cid is None or cid in sb.removed_ids():
                return
            if kind == "process":
                if not sb.is_processed(cid):
                    sb.set_processed(cid, processed=True, webhook=event.arg("webhook"))
            elif kind == "fail":
                sb.fail_next(
                    cid,
                    event.arg("endpoint"),
                    times=event.arg("times"),
                    status=event.arg("status"),
                    retry_after=event.arg("retry_after"),
                )
            elif kind == "answer_as":
                other = self.ids.get(event.arg("other"))
                if other is not None and other != cid and other not in sb.removed_ids():
                    sb.answer_as(cid, other)
            elif kind == "remove":
                sb.remove(cid)
            elif kind == "edit" and sb.summary(cid) is not None:
                sb.edit_summary(cid, f"Edited at {self.clock.now:%Y-%m-%d %H:%M}.")
                self.edited_since_loaded.add(cid)

    def _add(self, sb: Sandbox, event: Event, now: dt.datetime) -> str:
        date = now + dt.timedelta(seconds=event.arg("offset"))
        overrides: dict[str, Any] = {}
        if not event.arg("summary"):
            overrides["summary"] = None
        if not event.arg("transcript"):
            overrides["transcript"] = None
        return self._conversation(
            sb,
            date,
            medium=event.arg("medium"),
            owner=event.arg("owner"),
            n=event.key,
            processed=event.arg("processed"),
            **overrides,
        )

    def _conversation(  # noqa: PLR0913 - a conversation's generated traits
        self,
        sb: Sandbox,
        date: dt.datetime,
        *,
        medium: str,
        owner: str,
        n: int,
        processed: bool = True,
        **overrides: Any,
    ) -> str:
        if owner == "none":
            department, user = None, None
        elif owner == "retired":
            department, user = self.retired_department, self.retired_user
        else:
            department = self.departments[n % len(self.departments)]
            user = self.users[n % len(self.users)]
        return sb.add_conversation(
            date=date,
            processed=processed,
            medium=medium,
            department_id=department,
            user_id=user,
            **overrides,
        )

    def _config(self, sb: Sandbox, run: RunSpec) -> dict[str, Any]:
        config: dict[str, Any] = {
            "api_token": sb.token,
            "api_url": sb.base_url,
            "max_requests_per_minute": 100_000,
            "late_data_window_hours": self.history.late_data_window_hours,
            "daily_conversation_quota": self.history.daily_quota,
            "removal_sweep_hours": self.history.removal_sweep_hours,
            "summary_reread_days": self.history.summary_reread_days,
        }
        if run.mediums:
            config["mediums"] = list(run.mediums)
        return config

    def _handed_over(self, form: str) -> dict[str, Any] | None:
        if self.state is None:
            return None
        if form == "message":
            return {"type": "STATE", "value": self.state}
        if form == "singer_state":
            return {"singer_state": self.state}
        return self.state

    def _run(self, sb: Sandbox, run: RunSpec) -> RunResult:
        if self.history.real_signals:
            return self._run_process(sb, run)
        config = self._config(sb, run)
        catalog = catalog_selecting(config, run.streams)
        handler = _Warnings()
        logger = logging.getLogger("tap_conversations")
        logger.addHandler(handler)
        raw = io.BytesIO()
        stdout = io.TextIOWrapper(raw, encoding="utf-8")
        error = None
        try:
            tap = TapConversations(
                config=config, state=self._handed_over(run.state_form), catalog=catalog
            )
            tap.clock = self.clock
            with contextlib.redirect_stdout(stdout):
                try:
                    tap.sync_all()
                finally:
                    stdout.flush()
                    tap.api.close()
        except Exception as exc:  # noqa: BLE001 - a failed run is part of the history
            error = f"{type(exc).__name__}: {exc}"
        finally:
            logger.removeHandler(handler)
        lines = [line for line in raw.getvalue().decode("utf-8").splitlines() if line.strip()]
        cut = run.cut is not None
        if cut:
            lines = lines[: int(len(lines) * (run.cut or 0))]
        messages = [json.loads(line) for line in lines]
        return RunResult(messages, handler.lines, error, cut)

    def _run_process(self, sb: Sandbox, run: RunSpec) -> RunResult:
        """The real executable, stopped by a real signal after `kill_after` bookmark STATEs."""
        workdir = Path(tempfile.mkdtemp(prefix="simulation-"))
        # Paced (50 ms a request), so that a signal sent on the first chunk's STATE line
        # lands while the run still has work: a stop, not a race with its end.
        config = {**self._config(sb, run), "max_requests_per_minute": 1200}
        (workdir / "config.json").write_text(json.dumps(config))
        (workdir / "catalog.json").write_text(json.dumps(catalog_selecting(config, run.streams)))
        command = [TAP_EXE, "--config", "config.json", "--catalog", "catalog.json"]
        state = self._handed_over(run.state_form)
        if state is not None:
            (workdir / "state.json").write_text(json.dumps(state))
            command += ["--state", "state.json"]
        # A window with room for one request per pace slot: no X-RateLimit-Remaining to
        # burst on, so the run keeps to its pace.
        sb.set_rate_limit(1, window_seconds=0.05)
        with (workdir / "stderr.txt").open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - our own executable
                command, cwd=workdir, stdout=subprocess.PIPE, stderr=stderr, env=cli_env()
            )
            assert process.stdout is not None
            lines = []
            bookmarks = 0
            for raw in process.stdout:
                lines.append(raw.decode("utf-8", errors="replace"))
                bookmarks += b'"type":"STATE"' in raw and b'"replication_key_value":"' in raw
                if run.signal is not None and bookmarks == run.kill_after:
                    process.send_signal(getattr(signal, f"SIG{run.signal}"))
                    lines += [raw.decode("utf-8", errors="replace") for raw in process.stdout]
                    break
            returncode = process.wait(timeout=120)
        sb.set_rate_limit(1_000_000)
        messages = []
        for line in lines:
            with contextlib.suppress(ValueError):  # a line a SIGKILL cut in half
                messages.append(json.loads(line))
        logged = (workdir / "stderr.txt").read_text(encoding="utf-8", errors="replace")
        shutil.rmtree(workdir, ignore_errors=True)
        stopped = returncode != 0 and run.signal is not None
        error = None if returncode == 0 or stopped else f"exit {returncode}: {logged[-500:]}"
        return RunResult(messages, logged.splitlines(), error, cut=stopped)

    # --- the invariant -------------------------------------------------------------

    def _check(self, sb: Sandbox, number: int, run: RunSpec, result: RunResult) -> None:
        before = self.state
        self.state_before = before
        pending_before = set(_pending(before))
        loaded_before = self.warehouse.ids("conversations")
        # A target commits at a STATE: what follows the last one is not confirmed.
        confirmed = _until_last_state(result.messages)
        self.warehouse.load_messages(confirmed)
        self.edited_since_loaded -= {
            m["record"]["id"]
            for m in confirmed
            if m["type"] == "RECORD" and m["stream"] == "conversations"
        }
        if result.state is not None:
            self.state = result.state
        for line in result.warnings:
            if "no longer fetched again" in line or "answered another conversation" in line:
                self.named.update(_UUID.findall(line))
        self._check_recheck_rules(number, result, pending_before, loaded_before)
        if result.error is not None and "StateError" in result.error:
            self.violations.append(f"run {number}: refused its own state: {result.error}")
        self._check_removals_found(sb, number, confirmed)
        if not result.complete:
            return
        self._check_rows(sb, number, run, result)
        self._check_none_removed_still_loaded(sb, number)

    def _check_removals_found(
        self, sb: Sandbox, number: int, confirmed: list[dict[str, Any]]
    ) -> None:
        """A removal names a conversation the server removed, loaded, and not aged out."""
        floor = self.clock.now - dt.timedelta(days=HISTORY_DAYS)
        removed = set(sb.removed_ids())
        for message in confirmed:
            if message["type"] != "RECORD" or message["stream"] != "removed_conversations":
                continue
            cid = message["record"]["conversation_id"]
            if cid not in removed:
                self.violations.append(f"run {number}: {cid} called removed, but it exists")
            elif _parse(sb.conversation_detail(cid)["date"]) < floor:
                self.violations.append(f"run {number}: {cid} aged out, but was called removed")
            elif cid not in self.warehouse.ids("conversations"):
                self.violations.append(f"run {number}: {cid} called removed, never loaded")

    def _check_none_removed_still_loaded(self, sb: Sandbox, number: int) -> None:
        """After a whole sweep, the state keeps no removed id on a day the sweep compared."""
        state = _conversations_state(self.state)
        removals = state.get("removals") or {}
        if removals.get("swept_at") is None or _parse(removals["swept_at"]) != self.clock.now:
            return
        edge = self.clock.now - dt.timedelta(days=HISTORY_DAYS - 1)
        first_day = edge.date() + dt.timedelta(days=edge.time() != dt.time(0))
        unproven = {date[:10] for date in state.get("unproven_ties") or ()}
        removed = {cid.replace("-", "") for cid in sb.removed_ids()}
        for day, packed in (removals.get("loaded") or {}).items():
            if dt.date.fromisoformat(day) < first_day or day in unproven:
                continue
            for token in packed.split():
                cid = unpack_id(token).replace("-", "")
                if cid in removed:
                    self.violations.append(
                        f"run {number}: a whole sweep kept removed {cid} as loaded"
                    )

    def _check_recheck_rules(
        self, number: int, result: RunResult, pending_before: set[str], loaded_before: set[str]
    ) -> None:
        """Re-checks come after every new conversation; re-checks and re-reads keep budget.

        Conversations loaded before are left out of the order: fetched again, they are a
        backfill (by date, among the new) or a re-read (last), which a cut output cannot
        tell apart; tests/test_summary_rereads.py pins the re-reads' place.
        """
        order = [
            m["record"]["id"]
            for m in result.messages
            if m["type"] == "RECORD" and m["stream"] == "conversations"
        ]
        new_positions = [
            i for i, cid in enumerate(order) if cid not in pending_before | loaded_before
        ]
        recheck_positions = [i for i, cid in enumerate(order) if cid in pending_before]
        if new_positions and recheck_positions and min(recheck_positions) < max(new_positions):
            self.violations.append(f"run {number}: a re-check was fetched before a new one")
        state = (result.state or {}).get("bookmarks", {}).get("conversations", {})
        day = self.clock.now.date().isoformat()
        budget = recheck_budget(self.history.daily_quota)
        for key in ("rechecks", "summary_rereads"):
            spent = state.get(key) or {}
            if spent.get("day") == day and spent.get("spent", 0) > budget:
                self.violations.append(
                    f"run {number}: {spent['spent']} {key} on {day}, budget {budget}"
                )

    def _check_rows(self, sb: Sandbox, number: int, run: RunSpec, result: RunResult) -> None:
        state = (self.state or {}).get("bookmarks", {}).get("conversations", {})
        pending = state.get("pending") or {}
        now = self.clock.now
        for cid, entry in pending.items():
            date = _parse(entry["date"])
            if date < now - dt.timedelta(days=HISTORY_DAYS) or (
                _parse(entry["checked"]) - date >= PROCESSING_ALLOWANCE
            ):
                self.violations.append(f"run {number}: {cid} pending beyond its budget")
        self._check_ledger(sb, number, run, result, pending)
        warned_dates = " ".join(result.warnings)
        for item in sb.listed_conversations():
            cid = item["id"]
            if run.mediums and item["medium"] not in run.mediums:
                continue
            if cid in pending or cid in self.named or item["date"] in warned_dates:
                continue
            for problem in self._row_problems(sb, cid, run.streams):
                self.violations.append(f"run {number}: conversation {cid} ({problem})")

    def _check_ledger(  # noqa: C901 - the ledger's every count, checked against the truth
        self,
        sb: Sandbox,
        number: int,
        run: RunSpec,
        result: RunResult,
        pending: dict[str, Any],
    ) -> None:
        """The ledger's counts equal what the server lists and what the state holds."""
        rows = {
            m["record"]["row_key"]: m["record"]
            for m in result.messages
            if m["type"] == "RECORD" and m["stream"] == "sync_ledger"
        }
        if "sync_ledger" not in run.streams:
            return
        if "run" not in rows:
            self.violations.append(f"run {number}: no ledger row for the run")
            return
        listed_from = rows["run"]["listed_from"]
        # Tie instants an earlier run could not prove are listed again, below the start too.
        tie_dates = set(_conversations_state(self.state_before).get("unproven_ties") or ())
        truth: dict[str, int] = {}
        extra: dict[str, int] = {}
        for item in sb.listed_conversations():
            if run.mediums and item["medium"] not in run.mediums:
                continue
            day = item["date"][:10]
            if _parse(item["date"]) >= _parse(listed_from):
                truth[day] = truth.get(day, 0) + 1
            elif item["date"] in tie_dates:
                extra[day] = extra.get(day, 0) + 1
        pending_by_day: dict[str, int] = {}
        for entry in pending.values():
            pending_by_day[entry["date"][:10]] = pending_by_day.get(entry["date"][:10], 0) + 1
        for day in set(truth) | set(extra):
            row = rows.get(day)
            listed = row["listed"] if row else 0
            ties = row["unproven_tie_instants"] if row else 0
            count = truth.get(day, 0)
            low = count if not ties else 0  # a tie instant lists what filters reach
            if not low <= listed <= count + extra.get(day, 0):
                self.violations.append(
                    f"run {number}: the ledger lists {listed} on {day}, the server {count}"
                )
        self._check_ledger_removals(number, result, rows)
        for day, count in pending_by_day.items():
            row = rows.get(day) or {}
            in_ledger = sum(v for k, v in row.items() if k.startswith("pending_"))
            if in_ledger != count:
                self.violations.append(
                    f"run {number}: the ledger has {in_ledger} pending on {day}, the state {count}"
                )

    def _check_ledger_removals(
        self, number: int, result: RunResult, rows: dict[str, dict[str, Any]]
    ) -> None:
        """The ledger counts, per day and in all, the removals the run emitted."""
        removals: dict[str, int] = {}
        for message in result.messages:
            if message["type"] == "RECORD" and message["stream"] == "removed_conversations":
                day = message["record"]["conversation_day"]
                removals[day] = removals.get(day, 0) + 1
        counted = {
            key: row["removed"] for key, row in rows.items() if key != "run" and row["removed"]
        }
        if counted != removals or rows["run"]["removed"] != sum(removals.values()):
            self.violations.append(
                f"run {number}: the ledger counts removals {counted}, the run emitted {removals}"
            )

    def _row_problems(  # noqa: C901 - one block per stream
        self, sb: Sandbox, cid: str, streams: tuple[str, ...]
    ) -> Iterator[str]:
        wh = self.warehouse
        detail = sb.conversation_detail(cid)
        if "conversations" in streams:
            row = wh.get("conversations", cid)
            if row is None:
                yield "conversations row missing"
            elif row.get("summary") != detail["summary"] and cid not in self.edited_since_loaded:
                yield "conversations row holds an old summary"
        if "transcripts" in streams:
            truth = sb.transcript(cid)
            row = wh.get("transcripts", cid)
            if (row is None) != (truth is None):
                yield f"transcripts row {'missing' if row is None else 'not expected'}"
            elif row is not None and truth is not None and row["segments"] != truth["segments"]:
                yield "transcripts row differs"
        if "insights" in streams:
            loaded = {r["id"] for r in wh.rows("insights") if r["conversation_id"] == cid}
            if loaded != {i["id"] for i in sb.insights(cid)}:
                yield "insights differ"
        if "summaries" in streams:
            truth = sb.summary(cid)
            row = wh.get("summaries", cid)
            if (row is None) != (truth is None):
                yield f"summaries row {'missing' if row is None else 'not expected'}"
            elif (
                row is not None
                and truth is not None
                and (row["summary"], row["updated_at"]) != (truth["summary"], truth["updated_at"])
                and cid not in self.edited_since_loaded
            ):
                yield "summaries row holds an old summary"
        if "recordings" in streams and wh.get("recordings", cid) is None:
            yield "recordings row missing"


def _conversations_state(state: dict[str, Any] | None) -> dict[str, Any]:
    return (state or {}).get("bookmarks", {}).get("conversations", {}) or {}


def _pending(state: dict[str, Any] | None) -> dict[str, Any]:
    return ((state or {}).get("bookmarks", {}).get("conversations", {}) or {}).get("pending") or {}


def _until_last_state(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max((i for i, m in enumerate(messages) if m["type"] == "STATE"), default=-1)
    return messages[: last + 1]


def _parse(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


@contextlib.contextmanager
def _fast_retries() -> Iterator[None]:
    """Retries wait milliseconds instead of seconds; what they decide stays the same."""
    names = ("TRANSIENT_BASE_SECONDS", "DEFAULT_RETRY_AFTER_SECONDS", "MAX_RATE_LIMIT_WAIT_SECONDS")
    saved = {name: getattr(client_module, name) for name in names}
    for name in names:
        setattr(client_module, name, 0.001)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(client_module, name, value)


# --- running and shrinking -----------------------------------------------------------


def simulate(seed: int, runs: int = 12, *, real_signals: bool = False) -> list[str]:
    """Replay the history of `seed`; the violations of the invariant (empty: it holds)."""
    return Replay(generate(seed, runs, real_signals=real_signals)).play()


def shrink(history: History, budget: int = 40) -> History:
    """A smaller history that still violates the invariant: steps, then events, dropped."""
    attempts = 0

    def fails(candidate: History) -> bool:
        nonlocal attempts
        attempts += 1
        return bool(Replay(candidate).play())

    current = history
    changed = True
    while changed and attempts < budget:
        changed = False
        for index in range(len(current.steps) - 1):
            steps = current.steps[:index] + current.steps[index + 1 :]
            candidate = replace(current, steps=steps)
            if attempts < budget and fails(candidate):
                current, changed = candidate, True
                break
        if changed:
            continue
        for index, step in enumerate(current.steps):
            for drop in range(len(step.events)):
                events = step.events[:drop] + step.events[drop + 1 :]
                steps = (
                    *current.steps[:index],
                    replace(step, events=events),
                    *current.steps[index + 1 :],
                )
                candidate = replace(current, steps=steps)
                if attempts < budget and fails(candidate):
                    current, changed = candidate, True
                    break
            if changed:
                break
    return current

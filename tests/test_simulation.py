"""The simulation: 50 generated account histories, the invariant after every run.

See tests/simulation.py for the model and the invariant, and docs/ARCHITECTURE.md for
what the generator covers and what it does not. `scripts/simulate.py --seeds N` runs
more; a failing seed is printed with a shrunk history that reproduces it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.simulation import Replay, RunResult, generate, shrink

if TYPE_CHECKING:
    from tests.sandbox import Sandbox
    from tests.simulation import RunSpec

#: A fixed set, so that CI is deterministic; the script runs any other.
CI_SEEDS = range(1000, 1050)


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_every_row_is_loaded_named_or_pending(seed: int) -> None:
    history = generate(seed)
    violations = Replay(history).play()
    if violations:
        small = shrink(history, budget=15)
        pytest.fail(
            f"seed {seed} breaks the invariant: {violations[:3]}\n"
            f"shrunk history:\n{small.render()}\n"
            f"reproduce: .venv/bin/python scripts/simulate.py --first {seed} --seeds 1",
            pytrace=False,
        )


@pytest.mark.parametrize("seed", [2000, 2002])
def test_histories_with_real_processes_and_real_signals(seed: int) -> None:
    """The runs are the real executable, stopped by SIGTERM or SIGKILL at a seeded line."""
    history = generate(seed, runs=6, real_signals=True)
    replay = Replay(history)
    violations = replay.play()
    assert not violations, f"seed {seed} (real signals): {violations[:3]}\n{history.render()}"
    assert replay.stops >= 1, "no run was stopped by its signal"


def test_the_generator_covers_every_kind_of_event_and_run() -> None:
    """The 50 histories hold every event kind, stops, each state form and filter changes."""
    histories = [generate(seed) for seed in CI_SEEDS]
    kinds = {event.kind for h in histories for step in h.steps for event in step.events}
    assert kinds == {
        "add",
        "burst",
        "process",
        "fail",
        "answer_as",
        "remove",
        "edit",
        "quota_day",
        "heal",
    }
    runs = [step.run for h in histories for step in h.steps]
    assert {run.state_form for run in runs} == {"value", "message", "singer_state"}
    assert sum(run.cut is not None for run in runs) >= 50
    assert sum(bool(run.mediums) for run in runs) >= 50
    failures = {
        (event.arg("endpoint"), event.arg("status"))
        for h in histories
        for step in h.steps
        for event in step.events
        if event.kind == "fail"
    }
    assert {("detail", 404), ("summary", 404), ("recording", 404), ("detail", 503)} <= failures
    assert {h.daily_quota for h in histories} >= {25, 1000}
    assert {h.late_data_window_hours for h in histories} == {1, 6, 24}
    assert {h.removal_sweep_hours for h in histories} == {1, 24, 168}
    assert {h.summary_reread_days for h in histories} == {0, 2, 7}


def test_a_shrunk_history_still_breaks_what_the_original_broke() -> None:
    """The shrinker keeps only what reproduces a failure (here: a planted violation)."""
    history = generate(1000)

    class Planted(Replay):
        """No tap runs; a violation whenever the history removes a conversation."""

        def _run(self, sb: Sandbox, run: RunSpec) -> RunResult:  # noqa: ARG002
            return RunResult(messages=[], warnings=[], error=None, cut=False)

        def _check(self, sb: Sandbox, number: int, run: RunSpec, result: RunResult) -> None:  # noqa: ARG002
            if any(e.kind == "remove" for step in self.history.steps for e in step.events):
                self.violations.append("planted: a removal happened")

    from tests import simulation  # noqa: PLC0415

    original = simulation.Replay
    simulation.Replay = Planted  # type: ignore[misc]
    try:
        small = shrink(history, budget=60)
    finally:
        simulation.Replay = original  # type: ignore[misc]
    events = [e for step in small.steps for e in step.events]
    assert [e.kind for e in events] == ["remove"]
    assert len(small.steps) < len(history.steps)

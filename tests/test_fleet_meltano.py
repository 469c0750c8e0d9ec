# Copyright 2026 tap-conversations contributors. SPDX-License-Identifier: Apache-2.0
"""Many accounts through one plugin definition, with the state in a shared backend.

Real parts only: the `meltano` CLI on the project's meltano.yml, target-postgres into a
real PostgreSQL, two sandbox accounts (different seeds, so different account ids,
users, conversations), and Meltano's system database on the same PostgreSQL
(``MELTANO_DATABASE_URI=postgresql+psycopg://...``), which every project directory
shares. Each account is one run of the same definition:

    TAP_CONVERSATIONS_API_TOKEN=<its token> TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA=<its schema> \\
      meltano run --state-id-suffix=<account> tap-conversations target-postgres
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.fleet import (
    DETAIL,
    Fleet,
    fleet_fixture,  # noqa: F401 - the `fleet` fixture
    fresh_clone,
    schema_rows,
    state_id,
    tap_env,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from tests.sandbox import Sandbox


def test_one_definition_two_accounts_each_with_its_state_and_schema(
    fleet: Fleet, sandbox_factory: Callable[..., Sandbox]
) -> None:
    """Two accounts, one plugin: each state holds its account, each schema its rows.

    Then a mix-up, account B's token with account A's state id and schema: the run ends
    with the tap's StateError line and exit 2, and nothing of B lands in A's schema
    (the tap refuses the state before any stream is synced).
    """
    accounts = {
        "acme": (sandbox_factory(seed=7, conversations=40), "conversations_acme"),
        "globex": (sandbox_factory(seed=8, conversations=30), "conversations_globex"),
    }
    ids = {key: sb.account()["id"] for key, (sb, _) in accounts.items()}
    assert ids["acme"] != ids["globex"]

    for key, (sb, schema) in accounts.items():
        fleet.run(
            "run",
            f"--state-id-suffix={key}",
            "tap-conversations",
            "target-postgres",
            extra_env={**tap_env(sb.base_url, sb.token), **fleet.target_env(schema)},
        )

    loaded = {}
    with fleet.connect() as conn:
        for key, (sb, schema) in accounts.items():
            rows = schema_rows(conn, schema)
            assert rows["account"] == {ids[key]}
            assert rows["conversations"] == {c["id"] for c in sb.listed_conversations()}
            assert rows["users"] == {u["id"] for u in sb.users()}
            loaded[key] = rows
    for key in accounts:
        stored = fleet.stored_state(state_id(key))
        assert stored is not None, f"no state for {key}"
        bookmark = stored["bookmarks"]["conversations"]
        assert bookmark["account_id"] == ids[key], f"{key}'s state holds another account"
    state_a = fleet.state(state_id("acme"))  # as meltano reads it from the shared backend
    assert state_a == fleet.stored_state(state_id("acme"))

    # --- the mix-up: globex's token, acme's state id and schema -------------------
    globex, _ = accounts["globex"]
    globex.counters.reset()
    mixed = fleet.run(
        "run",
        "--state-id-suffix=acme",
        "tap-conversations",
        "target-postgres",
        extra_env={
            **tap_env(globex.base_url, globex.token),
            **fleet.target_env(accounts["acme"][1]),
        },
        check=False,
    )
    output = mixed.stderr + mixed.stdout
    assert mixed.returncode != 0, "a run with another account's state must fail"
    assert f"The state was written for account {ids['acme']}, but the token reads account " in (
        output
    ), output[-3000:]
    assert globex.counters.requests(DETAIL, 200) == 0, "no conversation was fetched"
    with fleet.connect() as conn:
        for key, (_, schema) in accounts.items():
            assert schema_rows(conn, schema) == loaded[key], f"{schema} changed in the mix-up"
    after = fleet.stored_state(state_id("acme"))
    assert after is not None
    # The SDK echoes the state it was given before refusing it; its bookmark is intact.
    assert after["bookmarks"]["conversations"] == state_a["bookmarks"]["conversations"], (
        "acme's state changed in the mix-up"
    )


def test_a_fresh_worker_resumes_from_the_shared_backend(
    fleet: Fleet, sandbox_factory: Callable[..., Sandbox], tmp_path: Path
) -> None:
    """First sync in one project directory, the next in a fresh clone: nothing twice.

    The clone shares nothing with the first directory but the system database (no
    `.meltano/`, no `meltano.db`): its `meltano install` builds its own plugin venvs,
    and its run reads the state the first directory's run stored.
    """
    sb = sandbox_factory(seed=9, conversations=50)
    run_env = {**tap_env(sb.base_url, sb.token), **fleet.target_env("conversations_initech")}
    fleet.run(
        "run",
        "--state-id-suffix=initech",
        "tap-conversations",
        "target-postgres",
        extra_env=run_env,
    )
    listed = sb.listed_conversations()
    assert sb.counters.requests(DETAIL, 200) == len(listed)

    worker = fresh_clone(tmp_path / "worker")
    fleet.run("install", "tap-conversations", "target-postgres", project=worker)
    new = sb.add_conversation()
    sb.counters.reset()
    fleet.run(
        "run",
        "--state-id-suffix=initech",
        "tap-conversations",
        "target-postgres",
        project=worker,
        extra_env=run_env,
    )
    assert sb.counters.requests(DETAIL, 200) == 1, "only the new conversation is fetched"
    assert sb.counters.requests(DETAIL) == 1
    assert not (worker / ".meltano" / "meltano.db").exists(), "the state is not local"
    with fleet.connect() as conn:
        rows = schema_rows(conn, "conversations_initech")
    assert rows["conversations"] == {c["id"] for c in listed} | {new}
    bookmark = fleet.state(state_id("initech"), project=worker)["bookmarks"]["conversations"]
    assert bookmark["account_id"] == sb.account()["id"]

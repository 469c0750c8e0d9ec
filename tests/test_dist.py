"""The release files, built and tried as a user would (scripts/check_dist.py).

The sdist and the wheel are built (the wheel from the sdist) and checked with
`twine check --strict` once; then, for each Python in ``$DIST_PYTHONS`` (default
"3.10 3.13": the oldest supported and the newest the demo runs on), the wheel is
installed into a clean venv, `tap-conversations --about` names its version, and a sync
against the sandbox loads exactly the conversations the sandbox lists.

A Python is found on PATH or through `pyenv prefix`; with ``CI=true`` a missing one
fails the test, elsewhere it skips.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import check_dist
from tests.postgres import unavailable

if TYPE_CHECKING:
    from tests.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = os.environ.get("DIST_PYTHONS", "3.10 3.13").split()


@pytest.fixture(scope="module")
def venvs(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | Exception]:
    """The wheel installed for every Python at once (pip waits on the index, mostly)."""
    base = tmp_path_factory.mktemp("venvs")

    def install(version: str) -> Path | Exception:
        try:
            return Path(check_dist.install(wheel, check_dist.find_python(version), base / version))
        except check_dist.DistError as error:
            return error  # raised by the test of this version

    with ThreadPoolExecutor(max_workers=len(PYTHONS)) as pool:
        return dict(zip(PYTHONS, pool.map(install, PYTHONS), strict=True))


@pytest.mark.parametrize("python_version", PYTHONS)
def test_wheel_installs_in_a_clean_venv_and_syncs_the_sandbox(
    venvs: dict[str, Path | Exception], python_version: str, sandbox: Sandbox, tmp_path: Path
) -> None:
    bin_dir = venvs[python_version]
    if isinstance(bin_dir, Exception):
        if str(bin_dir).startswith("no Python"):
            unavailable(str(bin_dir))
        raise bin_dir
    assert (bin_dir / f"python{python_version}").exists()

    about = check_dist.about(bin_dir)
    assert about["name"] == "tap-conversations"
    assert about["version"] == check_dist.project_version()

    config = {
        "api_url": sandbox.base_url,
        "api_token": sandbox.token,
        "max_requests_per_minute": 100_000,
    }
    messages = check_dist.sync(bin_dir, config, tmp_path)
    records = [m for m in messages if m["type"] == "RECORD"]
    assert {m["record"]["id"] for m in records if m["stream"] == "conversations"} == {
        c["id"] for c in sandbox.listed_conversations()
    }
    assert {m["record"]["id"] for m in records if m["stream"] == "users"} == {
        u["id"] for u in sandbox.users()
    }
    assert messages[-1]["type"] == "STATE"


CHANGELOG = """# Changelog

## [Unreleased]

## [1.2.0] - 2026-12-01

### Fixed

- Something.

## [1.1.0] - 2026-11-01

- Older.
"""


def test_release_tag_must_match_the_version_and_a_dated_changelog_section() -> None:
    notes = check_dist.release_notes("v1.2.0", "1.2.0", CHANGELOG)
    assert notes == "### Fixed\n\n- Something."
    assert check_dist.release_notes("v1.1.0", "1.1.0", CHANGELOG) == "- Older."
    with pytest.raises(check_dist.DistError, match=r"tag v1\.2\.1 does not match .* 1\.2\.0"):
        check_dist.release_notes("v1.2.1", "1.2.0", CHANGELOG)
    with pytest.raises(check_dist.DistError, match=r"no section '## \[1\.3\.0\] - YYYY-MM-DD'"):
        check_dist.release_notes("v1.3.0", "1.3.0", CHANGELOG)


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_changelog_and_licence() -> None:
    """Unreleased first, then dated releases newest first, none past pyproject's version."""
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## (.*)$", changelog, re.MULTILINE)
    assert headings[0] == "[Unreleased]"
    released = []
    for heading in headings[1:]:
        match = re.fullmatch(r"\[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}", heading)
        assert match, f"not a dated release heading: {heading!r}"
        released.append(match.group(1))
    assert released == sorted(released, key=_key, reverse=True)
    if released:
        assert _key(check_dist.project_version()) >= _key(released[0])
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "Apache-2.0"' in pyproject
    assert 'license-files = ["LICENSE"]' in pyproject

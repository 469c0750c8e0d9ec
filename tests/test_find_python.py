"""`PYTHON=` for the scripts: a command, a path or a version (pyenv's), else what to set.

`scripts/find_python.sh` is what setup.sh (and so demo.sh and test.sh) runs on PYTHON.
A fake pyenv on PATH stands for a machine where 3.99 is installed but not active: its
`python3.99` shim fails, as pyenv's does ("pyenv: python3.99: command not found").
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "find_python.sh"
WHAT_TO_SET = (
    "  Set PYTHON to a Python >= 3.10 as a command (PYTHON=python3.12), a path\n"
    "  (PYTHON=/usr/bin/python3.12) or a version (PYTHON=3.12 or PYTHON=3.12.1), found with\n"
    "  pyenv or as pythonX.Y on PATH.\n"
)


def find(want: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(  # noqa: S603  # our own script
        ["bash", str(SCRIPT), want],  # noqa: S607
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


@pytest.fixture
def fake_pyenv(tmp_path: Path) -> str:
    """A PATH with a pyenv that has 3.99.1 installed, not active, and its failing shim."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    prefix = tmp_path / "versions" / "3.99.1"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    (bin_dir / "pyenv").write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == prefix && ( "$2" == 3.99 || "$2" == 3.99.1 ) ]]; then\n'
        f"  echo {prefix}; exit 0\n"
        "fi\n"
        'if [[ "$1" == versions ]]; then echo 3.99.1; exit 0; fi\n'
        'echo "pyenv: version \\`$2\' not installed" >&2; exit 1\n',
        encoding="utf-8",
    )
    (bin_dir / "python3.99").write_text(
        '#!/usr/bin/env bash\necho "pyenv: python3.99: command not found" >&2; exit 127\n',
        encoding="utf-8",
    )
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    return f"{bin_dir}:/usr/bin:/bin"


def test_a_command_or_path_that_runs_is_taken_as_is() -> None:
    result = find(sys.executable)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{sys.executable}\n"


@pytest.mark.parametrize("want", ["3.99", "3.99.1", "python3.99"])
def test_a_pyenv_version_is_found_even_when_not_active(fake_pyenv: str, want: str) -> None:
    result = find(want, fake_pyenv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("/versions/3.99.1/bin/python")


@pytest.mark.parametrize("want", ["3.98", "python3.98", "pythn3"])
def test_anything_else_says_what_to_set(fake_pyenv: str, want: str) -> None:
    result = find(want, fake_pyenv)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"PYTHON={want} does not run a Python here.\n" + WHAT_TO_SET + "  pyenv has: 3.99.1 \n"
    )


def test_a_python_older_than_3_10_says_so(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text(
        '#!/usr/bin/env bash\n[[ "$1" == --version ]] && { echo "Python 3.9.18"; exit 0; }\n'
        'case "$2" in *version_info*) exit 1;; esac\nexit 0\n',
        encoding="utf-8",
    )
    old.chmod(0o755)
    result = find(str(old), "/usr/bin:/bin")
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"PYTHON={old} is Python 3.9.18; this project needs Python >= 3.10.\n" + WHAT_TO_SET
    )


def test_the_readme_claims_only_pythons_the_workflow_tests() -> None:
    """README's range: its lowest is requires-python's, each version in it is in CI."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    claimed = re.search(r"any Python from 3\.(\d+) to 3\.(\d+)", readme)
    assert claimed is not None
    low, high = int(claimed.group(1)), int(claimed.group(2))
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">=3.{low}"' in pyproject
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    matrix = re.search(r"python-version: \[(.*?)\]", workflow)
    assert matrix is not None
    tested = {int(v.strip().strip("\"'").split(".")[1]) for v in matrix.group(1).split(",")}
    assert set(range(low, high + 1)) <= tested

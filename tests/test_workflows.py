"""The GitHub workflows: actions pinned by commit SHA, no persisted credentials, least privilege.

The workflows cannot run here; these checks keep them to the rules a reviewer would
check by hand, and keep the release workflow's twine the one scripts/check_dist.py uses.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return loaded


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def test_every_action_is_pinned_by_commit_sha_with_its_version() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "release.yml"}
    for path in WORKFLOWS:
        text = path.read_text(encoding="utf-8")
        for line in text.splitlines():
            if "uses:" not in line:
                continue
            match = re.search(r"uses: (\S+)\s+# v\d+\.\d+\.\d+$", line)
            assert match, f"{path.name}: not pinned with a version comment: {line.strip()}"
            assert PINNED.match(match.group(1)), f"{path.name}: {line.strip()}"
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for action, sha in re.findall(r"uses: ([\w.-]+/[\w.-]+)@([0-9a-f]{40})", path.read_text()):
            pins.setdefault(action, set()).add(sha)
    assert all(len(shas) == 1 for shas in pins.values()), pins


def test_checkouts_keep_no_credentials_and_permissions_are_declared() -> None:
    for path in WORKFLOWS:
        workflow = _load(path)
        assert "permissions" in workflow, f"{path.name}: no top-level permissions"
        for step in _steps(workflow):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, path.name


def test_release_workflow_publishes_with_trusted_publishing_from_a_checked_tag() -> None:
    release = _load(ROOT / ".github" / "workflows" / "release.yml")
    # PyYAML reads the key `on` as True.
    triggers: dict[Any, Any] = dict(release)
    assert triggers[True]["push"]["tags"] == ["v*"]
    assert release["permissions"] == {}
    jobs = release["jobs"]
    assert jobs["check"]["permissions"] == {"contents": "read"}
    assert jobs["publish"]["permissions"] == {"id-token": "write"}
    assert jobs["publish"]["environment"]["name"] == "pypi"
    assert jobs["publish"]["needs"] == "check"
    assert jobs["github"]["permissions"] == {"contents": "write"}
    check_runs = "\n".join(step.get("run", "") for step in jobs["check"]["steps"])
    assert 'scripts/check_dist.py tag "$GITHUB_REF_NAME"' in check_runs
    assert "scripts/check_dist.py build" in check_runs
    assert "--python 3.10 --python 3.13" in check_runs
    publish_runs = "\n".join(step.get("run", "") for step in jobs["publish"]["steps"])
    tools = (ROOT / "scripts" / "check_dist.py").read_text(encoding="utf-8")
    twine = re.search(r'"(twine==[\d.]+)"', tools)
    assert twine
    assert f'"{twine.group(1)}"' in publish_runs
    assert "twine upload --non-interactive" in publish_runs
    assert "password" not in publish_runs.lower()
    assert "secrets." not in (ROOT / ".github" / "workflows" / "release.yml").read_text()


def test_ci_builds_and_tries_the_release_files() -> None:
    ci = _load(ROOT / ".github" / "workflows" / "ci.yml")
    runs = "\n".join(step.get("run", "") for step in ci["jobs"]["dist"]["steps"])
    assert "scripts/check_dist.py build" in runs
    assert "--python 3.10 --python 3.13" in runs


def test_dependabot_updates_actions_and_python_dependencies() -> None:
    config = _load(ROOT / ".github" / "dependabot.yml")
    assert {u["package-ecosystem"] for u in config["updates"]} == {"github-actions", "pip"}
    pip = next(u for u in config["updates"] if u["package-ecosystem"] == "pip")
    # Every file that pins a Python dependency: pyproject.toml and Dagster's requirements.
    assert pip["directories"] == ["/", "/orchestrate"]
    assert (ROOT / "orchestrate" / "requirements.txt").is_file()

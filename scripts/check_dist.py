"""Build the release files and try them as a user would: what CI and the release workflow run.

    python scripts/check_dist.py build [--outdir dist]
        sdist, then the wheel from that sdist (python -m build), `twine check --strict`,
        and their contents (LICENSE, the tap's package, no tests) and version.
    python scripts/check_dist.py tag vX.Y.Z
        the tag is `v` + pyproject.toml's version, and CHANGELOG.md has a dated section
        `## [X.Y.Z] - YYYY-MM-DD` for it; prints that section (the release notes).
    python scripts/check_dist.py try --wheel dist/*.whl --python 3.10 [--python 3.13 ...]
        for each Python: a clean venv, `pip install` the wheel (dependencies from the
        package index), `tap-conversations --about --format json`, and a short sync
        against the sandbox (tests/sandbox, started from this checkout).

Standard library only, any Python >= 3.10: the build tools go into a venv of their own,
pinned below. A Python is a path, a command on PATH, or a version that `pyenv prefix`
knows (pyenv's shims are not used: they fail for a version that is not selected).
tests/test_dist.py runs both on Python 3.10 and 3.13 (DIST_PYTHONS) in the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: The build frontend and the metadata checker, pinned (the release workflow uses these).
BUILD_TOOLS = ("build==1.6.1", "twine==7.0.0")
DIST_NAME = "tap_conversations"
#: Files the sdist must carry besides the package: a user building from it gets them.
SDIST_FILES = ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml")
TIMEOUT_SECONDS = 600
#: What would let a venv's Python import the checkout (or another tree) instead of what
#: the wheel installed: a test run with PYTHONPATH=$PWD would otherwise try the checkout.
LEAKY_VARIABLES = ("PYTHONPATH", "PYTHONHOME")


class DistError(RuntimeError):
    """A release file is wrong, or a step of trying it failed."""


def run(*args: str | Path, cwd: Path | None = None) -> str:
    """Run a command; return its stdout; raise DistError with its output on failure.

    Every command here runs a venv's Python (the build tools', or one the wheel went
    into), so none sees the variables that would reach outside it (`venv_env`).
    """
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-40:])
        msg = f"{' '.join(map(str, args))} exited {result.returncode}:\n{tail}"
        raise DistError(msg)
    return result.stdout


def project_version() -> str:
    """The version pyproject.toml declares (the one source of the version)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    match = re.search(r'^version = "([^"]+)"$', text, re.MULTILINE)
    if match is None:
        msg = "pyproject.toml declares no static version"
        raise DistError(msg)
    return match.group(1)


def release_notes(tag: str, version: str, changelog: str) -> str:
    """The CHANGELOG section of the version a release tag names; DistError if none.

    Args:
        tag: The git tag, `vX.Y.Z`.
        version: pyproject.toml's version.
        changelog: CHANGELOG.md's text.
    """
    if tag != f"v{version}":
        msg = f"tag {tag} does not match pyproject.toml's version {version} (tag v{version})"
        raise DistError(msg)
    heading = re.compile(rf"^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$", re.MULTILINE)
    match = heading.search(changelog)
    if match is None:
        msg = f"CHANGELOG.md has no section '## [{version}] - YYYY-MM-DD'"
        raise DistError(msg)
    rest = changelog[match.end() :]
    following = re.search(r"^## ", rest, re.MULTILINE)
    notes = rest[: following.start() if following else len(rest)].strip()
    if not notes:
        msg = f"CHANGELOG.md's section for {version} is empty"
        raise DistError(msg)
    return notes


def find_python(spec: str) -> Path:
    """An interpreter from a path, a command, or a version pyenv has installed."""
    if "/" in spec:
        return Path(spec)
    if re.fullmatch(r"\d+\.\d+(\.\d+)?", spec):
        if shutil.which("pyenv"):
            result = subprocess.run(
                ["pyenv", "prefix", spec],  # noqa: S607 - pyenv from PATH
                capture_output=True,
                text=True,
                check=False,
            )
            minor = ".".join(spec.split(".")[:2])
            candidate = Path(result.stdout.strip()) / "bin" / f"python{minor}"
            if result.returncode == 0 and candidate.is_file():
                return candidate
        spec = f"python{spec}"
    found = shutil.which(spec)
    if found is None or "/shims/" in found:
        msg = f"no Python {spec} here (on PATH, or installed with pyenv)"
        raise DistError(msg)
    return Path(found)


def venv_env() -> dict[str, str]:
    """This process's environment without the variables that reach outside a venv."""
    return {key: value for key, value in os.environ.items() if key not in LEAKY_VARIABLES}


def new_venv(python: Path, path: Path) -> Path:
    """A clean venv (pip only, no system site-packages); its python."""
    run(python, "-m", "venv", path)
    return path / "bin" / "python"


def build(outdir: Path) -> tuple[Path, Path]:
    """Build the sdist, the wheel from it, check both; return (sdist, wheel)."""
    outdir.mkdir(parents=True, exist_ok=True)
    for old in outdir.glob(f"{DIST_NAME}-*"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="tap-conversations-build-tools-") as tools_dir:
        tools = new_venv(Path(sys.executable), Path(tools_dir))
        run(tools, "-m", "pip", "install", "-q", "--disable-pip-version-check", *BUILD_TOOLS)
        # Without --sdist/--wheel, build makes the sdist and then the wheel from it, so
        # the wheel proves the sdist is complete.
        run(tools, "-m", "build", "--outdir", outdir, ROOT)
        files = sorted(outdir.glob(f"{DIST_NAME}-*"))
        run(tools, "-m", "twine", "check", "--strict", *files)
    version = project_version()
    sdist = outdir / f"{DIST_NAME}-{version}.tar.gz"
    wheel = outdir / f"{DIST_NAME}-{version}-py3-none-any.whl"
    if sorted([sdist, wheel]) != files:
        msg = f"expected {sdist.name} and {wheel.name}, built {[f.name for f in files]}"
        raise DistError(msg)
    check_wheel(wheel)
    check_sdist(sdist)
    return sdist, wheel


def check_wheel(wheel: Path) -> None:
    """The wheel holds the package and the licence, and no tests or scripts."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names}
    dist_info = f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"
    if tops != {DIST_NAME, dist_info}:
        msg = f"{wheel.name} holds {sorted(tops)}; expected only {DIST_NAME}/ and {dist_info}/"
        raise DistError(msg)
    if f"{dist_info}/licenses/LICENSE" not in names:
        msg = f"{wheel.name} lacks {dist_info}/licenses/LICENSE"
        raise DistError(msg)
    if f"{DIST_NAME}/tap.py" not in names:
        msg = f"{wheel.name} lacks {DIST_NAME}/tap.py"
        raise DistError(msg)


def check_sdist(sdist: Path) -> None:
    """The sdist carries the licence, README, changelog and the package."""
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    missing = [name for name in (*SDIST_FILES, f"{DIST_NAME}/tap.py") if name not in names]
    if missing:
        msg = f"{sdist.name} lacks {missing}"
        raise DistError(msg)


def install(wheel: Path, python: Path, venv_dir: Path) -> Path:
    """The wheel installed into a clean venv of `python`; the venv's bin directory.

    Checks that the venv imports the tap from its own site-packages.
    """
    venv_python = new_venv(python, venv_dir)
    run(venv_python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)
    where = run(
        venv_python,
        "-c",
        f"import {DIST_NAME}; print({DIST_NAME}.__file__)",
        cwd=venv_python.parent,
    ).strip()
    if not Path(where).resolve().is_relative_to(venv_dir.resolve()):
        msg = f"the venv imports {DIST_NAME} from {where}, not from the installed wheel"
        raise DistError(msg)
    return venv_python.parent


def about(bin_dir: Path) -> dict[str, object]:
    """`tap-conversations --about --format json` from an installed venv."""
    parsed: dict[str, object] = json.loads(
        run(bin_dir / "tap-conversations", "--about", "--format", "json", cwd=bin_dir)
    )
    return parsed


def sync(bin_dir: Path, config: dict[str, object], workdir: Path) -> list[dict[str, Any]]:
    """A sync of `conversations` and `users` from an installed venv; its messages."""
    config_file = workdir / "config.json"
    config_file.write_text(json.dumps(config), encoding="utf-8")
    catalog = json.loads(
        run(bin_dir / "tap-conversations", "--config", config_file, "--discover", cwd=workdir)
    )
    for stream in catalog["streams"]:
        selected = stream["tap_stream_id"] in {"conversations", "users"}
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = selected
    catalog_file = workdir / "catalog.json"
    catalog_file.write_text(json.dumps(catalog), encoding="utf-8")
    out = run(
        bin_dir / "tap-conversations",
        "--config",
        config_file,
        "--catalog",
        catalog_file,
        cwd=workdir,
    )
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def try_wheel(wheel: Path, python_spec: str) -> None:
    """Install the wheel with one Python, run --about and a sync against the sandbox."""
    python = find_python(python_spec)
    with tempfile.TemporaryDirectory(prefix="tap-conversations-try-") as tmp:
        work = Path(tmp)
        bin_dir = install(wheel, python, work / "venv")
        described = about(bin_dir)
        if described.get("version") != project_version():
            msg = f"--about says version {described.get('version')}, not {project_version()}"
            raise DistError(msg)
        # The sandbox from this checkout, on the installed venv's Python (it needs
        # `requests`, which the tap depends on); the tap itself runs from the venv.
        sandbox = subprocess.Popen(
            [
                str(bin_dir / "python"),
                "-m",
                "tests.sandbox",
                "--port",
                "0",
                "--conversations",
                "40",
                "--rate-limit",
                "100000",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            first = sandbox.stdout.readline() if sandbox.stdout else ""
            match = re.match(r"sandbox: (\S+) token=(\S+)", first)
            if match is None:
                msg = f"the sandbox did not start: {first!r}"
                raise DistError(msg)
            config = {
                "api_url": match.group(1),
                "api_token": match.group(2),
                "max_requests_per_minute": 100000,
            }
            messages = sync(bin_dir, config, work)
        finally:
            sandbox.terminate()
            sandbox.wait(timeout=30)
        records = [m for m in messages if m.get("type") == "RECORD"]
        streams = {m["stream"] for m in records}
        if streams != {"conversations", "users"} or messages[-1].get("type") != "STATE":
            msg = f"the sync gave records of {sorted(streams)} and ended with {messages[-1]}"
            raise DistError(msg)
        count = sum(1 for m in records if m["stream"] == "conversations")
        print(f"Python {python_spec}: installed, --about ok, synced {count} conversations")


def main(argv: list[str] | None = None) -> int:
    """Build, or try built wheels."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build and check sdist and wheel")
    build_parser.add_argument("--outdir", type=Path, default=ROOT / "dist")
    tag_parser = commands.add_parser("tag", help="check a release tag, print its notes")
    tag_parser.add_argument("tag")
    try_parser = commands.add_parser("try", help="install a wheel and sync the sandbox")
    try_parser.add_argument("--wheel", type=Path, required=True)
    try_parser.add_argument("--python", action="append", required=True, dest="pythons")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            sdist, wheel = build(args.outdir)
            print(f"built and checked {sdist.name} and {wheel.name} in {args.outdir}")
        elif args.command == "tag":
            changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
            print(release_notes(args.tag, project_version(), changelog))
        else:
            for python_spec in args.pythons:
                try_wheel(args.wheel.resolve(), python_spec)
    except DistError as error:
        print(f"check_dist: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

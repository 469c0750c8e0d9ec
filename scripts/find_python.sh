#!/usr/bin/env bash
# Print the Python interpreter PYTHON names, or say clearly what PYTHON should be.
#
#   bash scripts/find_python.sh python3.13     # a command on PATH
#   bash scripts/find_python.sh /usr/bin/python3
#   bash scripts/find_python.sh 3.13           # a version: pyenv's, or python3.13 on PATH
#   bash scripts/find_python.sh 3.13.0
#
# A version (3.13, 3.13.0, also python3.13 when that command does not run, as a pyenv shim
# for a version that is not active does not) is looked up with `pyenv prefix`, then as
# pythonX.Y on PATH with the same version. The interpreter must be Python >= 3.10.
# Exit 0 with its path or command on stdout; exit 1 with what to set on stderr.
set -uo pipefail

want="${1:-python3}"

runs() { "$1" -c 'import sys' >/dev/null 2>&1; }

resolve() {
    local version prefix candidate
    if runs "$want"; then
        printf '%s\n' "$want"
        return 0
    fi
    [[ "$want" =~ ^(python)?([0-9]+\.[0-9]+)(\.[0-9]+)?$ ]] || return 1
    version="${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
    candidate="python${BASH_REMATCH[2]}"
    if command -v pyenv >/dev/null 2>&1 && prefix="$(pyenv prefix "$version" 2>/dev/null)" &&
        runs "$prefix/bin/python"; then
        printf '%s\n' "$prefix/bin/python"
        return 0
    fi
    if runs "$candidate" &&
        [[ "$("$candidate" -c 'import platform; print(platform.python_version())')." == "$version."* ]]; then
        printf '%s\n' "$candidate"
        return 0
    fi
    return 1
}

what_to_set() {
    echo "  Set PYTHON to a Python >= 3.10 as a command (PYTHON=python3.12), a path"
    echo "  (PYTHON=/usr/bin/python3.12) or a version (PYTHON=3.12 or PYTHON=3.12.1), found with"
    echo "  pyenv or as pythonX.Y on PATH."
    if command -v pyenv >/dev/null 2>&1; then
        echo "  pyenv has: $(pyenv versions --bare 2>/dev/null | tr '\n' ' ')"
    fi
}

if ! python="$(resolve)"; then
    {
        echo "PYTHON=$want does not run a Python here."
        what_to_set
    } >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)'; then
    {
        echo "PYTHON=$want is $("$python" --version 2>&1); this project needs Python >= 3.10."
        what_to_set
    } >&2
    exit 1
fi
printf '%s\n' "$python"

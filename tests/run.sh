#!/usr/bin/env bash
# Install alseg with its test dependencies into a virtual environment and run the test suite.
#
#   bash tests/run.sh [pytest arguments...]
#
# The environment is cached outside the clone, keyed by a hash of the dependency lists in
# pyproject.toml (and the Python version): ${ALSEG_CI_CACHE:-~/.cache/alseg-ci}/venv-<hash>.
# It is created on first use (torch and the rest from the package registry, about 5 GB) and
# reused while the dependencies do not change; the editable install of alseg itself is refreshed
# on every run, so the cached environment always imports this clone's code.
# ALSEG_VENV=/path/to/venv uses an existing environment instead (only the refresh is done).
#
# The SLURM test (tests/test_slurm.py) needs root and Debian's slurm/munge packages (.ci/run
# installs them); without them it is skipped and the reason printed.
# The Label Studio test (tests/test_labelstudio_server.py) needs Label Studio's own environment,
# ${ALSEG_CI_CACHE:-~/.cache/alseg-ci}/labelstudio-<version> (tests/labelstudio_env.py): made here on
# first use (about 1 GB from the package registry), unless ALSEG_SKIP_LABELSTUDIO=1.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
python="${PYTHON:-python3}"

if [[ -n "${ALSEG_VENV:-}" ]]; then
    venv="$ALSEG_VENV"
else
    key="$("$python" - <<'PY'
import hashlib, json, sys
try:
    import tomllib
    project = tomllib.load(open("pyproject.toml", "rb"))["project"]
    deps = {k: project.get(k) for k in ("dependencies", "optional-dependencies", "requires-python")}
except ModuleNotFoundError:  # Python < 3.11: hash the whole file
    deps = open("pyproject.toml").read()
blob = json.dumps({"deps": deps, "python": sys.version_info[:2]}, sort_keys=True)
print(hashlib.sha256(blob.encode()).hexdigest()[:16])
PY
)"
    cache="${ALSEG_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/alseg-ci}"
    venv="$cache/venv-$key"
    mkdir -p "$cache"
    # one installer at a time per cache (concurrent runs on one machine)
    exec 9>"$cache/.lock"
    command -v flock >/dev/null && flock 9
    if [[ ! -f "$venv/.complete" ]]; then
        echo "tests/run.sh: creating $venv (dependencies changed or first run)"
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --upgrade pip "setuptools>=77" wheel
        "$venv/bin/python" -m pip install --quiet -e ".[test]"
        touch "$venv/.complete"   # written last: a half-built environment is rebuilt next time
    fi
fi

# Point the (cached) environment's editable install at this clone; no network needed.
"$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
command -v flock >/dev/null && flock -u 9 2>/dev/null || true

# Label Studio's own environment (never alseg's: it pins Django, numpy, ...); the test finds it.
if [[ "${ALSEG_SKIP_LABELSTUDIO:-}" != 1 ]]; then
    if ls_venv="$("$python" tests/labelstudio_env.py)"; then
        export ALSEG_LABELSTUDIO_VENV="$ls_venv"
    else
        echo "tests/run.sh: no Label Studio environment; tests/test_labelstudio_server.py will not run" >&2
    fi
fi

# Snakemake's jobs (local and SLURM) start `python -m snakemake` from PATH.
export PATH="$venv/bin:$PATH"
export VIRTUAL_ENV="$venv"

set +e
python -m pytest -q -rs "$@"
rc=$?
set -e
if [[ $rc -eq 5 ]]; then
    echo "tests/run.sh: pytest collected no tests" >&2
    exit 1
fi
exit $rc

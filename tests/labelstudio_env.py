"""Label Studio's own virtual environment for tests/test_labelstudio_server.py, made once and cached.

    python3 tests/labelstudio_env.py      # creates it if needed, prints its path

Label Studio pins many packages (Django, numpy, ...) that would fight alseg's, so it never joins
alseg's dependencies: it lives in ``${ALSEG_CI_CACHE:-~/.cache/alseg-ci}/labelstudio-<version>``
(``ALSEG_LABELSTUDIO_VENV`` names another). Creating it installs ``label-studio==VERSION`` from the
package registry (about 1 GB, a minute or two) and migrates a template database once
(``template-data/``, about 40 s), which every test server copies instead of migrating anew.
``.complete`` is written last: a half-made environment is made again next time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The Label Studio release the tests drive.
VERSION = "1.23.2"
TEMPLATE = "template-data"
DATABASE = "label_studio.sqlite3"


def cache_root() -> Path:
    """The CI cache folder tests/run.sh uses too."""
    if os.environ.get("ALSEG_CI_CACHE"):
        return Path(os.environ["ALSEG_CI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alseg-ci"


def venv_path() -> Path:
    """Where the Label Studio environment is (or will be)."""
    named = os.environ.get("ALSEG_LABELSTUDIO_VENV")
    return Path(named) if named else cache_root() / f"labelstudio-{VERSION}"


def is_ready(venv: Path) -> bool:
    return (venv / ".complete").is_file() and (venv / "bin" / "label-studio").is_file()


def quiet_env(data_dir: Path) -> dict[str, str]:
    """The environment of a Label Studio process that keeps its data in ``data_dir`` and calls no one
    (no version check against the registry, no analytics), without the caller's Python settings."""
    inherited = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {
        **inherited,
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
    }


def _run(cmd: list[str], **kwargs) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, **kwargs)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {done.returncode}):\n{tail}")


def create(venv: Path, python: str = sys.executable) -> None:
    """Make the environment at ``venv`` (if not ready), one maker at a time per cache folder."""
    import fcntl

    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / ".labelstudio.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_ready(venv):
            return
        print(f"labelstudio_env: creating {venv} (label-studio=={VERSION})", file=sys.stderr)
        started = time.monotonic()
        shutil.rmtree(venv, ignore_errors=True)
        _run([python, "-m", "venv", str(venv)])
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run([*pip, "--upgrade", "pip"])
        _run([*pip, f"label-studio=={VERSION}"])
        installed = time.monotonic()
        # `label-studio version` applies the migrations to an empty data dir and exits
        template = venv / TEMPLATE
        with tempfile.TemporaryDirectory() as home:  # it writes ~/.config/label-studio/: not the caller's
            _run([str(venv / "bin" / "label-studio"), "version"], env={**quiet_env(template), "HOME": home},
                 cwd=venv)
        (template / ".env").unlink(missing_ok=True)  # its secret key: each server makes its own
        if not (template / DATABASE).is_file():
            raise RuntimeError(f"`label-studio version` left no {DATABASE} in {template}")
        (venv / ".complete").write_text(VERSION + "\n")
        print(f"labelstudio_env: installed in {installed - started:.0f} s, database migrated in "
              f"{time.monotonic() - installed:.0f} s", file=sys.stderr)


def main() -> int:
    venv = venv_path()
    try:
        create(venv)
    except (OSError, RuntimeError) as err:
        print(f"labelstudio_env: cannot create {venv}: {err}", file=sys.stderr)
        return 1
    print(venv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

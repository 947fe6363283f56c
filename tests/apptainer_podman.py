"""A stand-in ``apptainer`` that runs each ``apptainer exec`` in a podman container (test double).

Apptainer cannot be installed on this Debian (it needs glibc 2.38), so tests/test_container.py puts this
first on PATH as ``apptainer`` to run ``snakemake --sdm apptainer`` for real: Snakemake builds its
``apptainer exec --home H --bind A:B --pwd P IMAGE sh -c CMD`` lines as for a cluster, and this runs them
as ``podman run`` with the same mounts, working folder, user and ``SINGULARITYENV_``/``APPTAINERENV_``
variables. The "image file" Snakemake names holds the podman image's name. Every call is appended to the
file named by ``ALSEG_APPTAINER_LOG``, as the JSON list of the podman command.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

FLAGS = {"--quiet", "--silent", "--nv", "--cleanenv", "--containall", "--writable-tmpfs", "--no-home"}


def podman_command(args: list[str]) -> list[str]:
    """The ``podman run`` line for the arguments of ``apptainer exec``."""
    home, workdir, mounts = os.getcwd(), None, []
    while args and args[0].startswith("-"):
        option = args.pop(0)
        if option in FLAGS:
            continue
        value = args.pop(0)
        if option == "--home":
            home = value.split(":")[0]
        elif option in ("--bind", "-B"):
            for spec in value.split(","):
                source, _, target = spec.partition(":")
                mounts.append(f"{source}:{target or source}")
        elif option == "--pwd":
            workdir = value
        else:
            sys.exit(f"apptainer stand-in: unsupported option {option}")
    image_file, command = args[0], args[1:]
    image = Path(image_file).read_text().strip()
    env = [f"--env={key.split('ENV_', 1)[1]}={value}" for key, value in os.environ.items()
           if key.startswith(("SINGULARITYENV_", "APPTAINERENV_"))]
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    runtime = ["--runtime", "runc"] if shutil.which("runc") else []
    return ["podman", *runtime, "run", "--rm", "--init", "--network=none", f"--ulimit=nofile={nofile}:{nofile}",
            "--ulimit=nproc=32768:32768", f"--user={os.getuid()}:{os.getgid()}", f"--volume={home}:{home}",
            f"--env=HOME={home}", *[f"--volume={m}" for m in mounts], f"--workdir={workdir or os.getcwd()}",
            *env, image, *command]


def main(args: list[str]) -> int:
    if args == ["--version"]:
        print("apptainer version 1.3.4")
        return 0
    args = [a for a in args if a not in ("--quiet", "--silent")]
    if not args or args[0] != "exec":
        sys.exit(f"apptainer stand-in: only exec and --version, not {args[:1]}")
    command = podman_command(args[1:])
    log = os.environ.get("ALSEG_APPTAINER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(command) + "\n")
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

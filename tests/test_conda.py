"""``--use-conda``: the environment Snakemake makes from envs/alseg.yaml installs alseg itself (no PYTHONPATH).

No conda channel is reachable from this machine, so a stand-in ``conda`` plays conda's part for Snakemake:
``env create`` makes a virtual environment that sees this interpreter's packages (the dependencies, never
alseg) and ``activate`` puts it first on PATH. Everything else is Snakemake's own: it runs
envs/alseg.post-deploy.sh in the new environment, then each job in it. What the stand-in cannot show is
that conda resolves envs/alseg.yaml itself; tests/test_profiles.py keeps its list equal to pyproject.toml's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import REPO

TINY = REPO / "tests" / "configs" / "tiny.yaml"

CONDA = """#!{python}
import json, subprocess, sys, venv
from pathlib import Path
args = sys.argv[1:]
if args == ["--version"]:
    print("conda 24.11.3")
elif args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": "{root}", "platform": "linux-64", "envs_dirs": []}}))
elif args[:2] == ["config", "--get"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}, "rc_path": ""}}))
elif args[:2] == ["env", "create"]:
    prefix = Path(args[args.index("--prefix") + 1].strip('"'))
    venv.create(prefix, with_pip=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    for bundled in site.glob("setuptools*"):   # envs/alseg.yaml asks for a newer one: the dependencies' own
        subprocess.run(["rm", "-rf", str(bundled)], check=True)
    (site / "dependencies.pth").write_text("{site_packages}\\n")   # the dependencies, not alseg
elif args[0] == "clean":
    pass
else:
    sys.exit(f"conda stand-in: unexpected arguments {{args}}")
"""

ACTIVATE = """# conda stand-in's activate: put the environment first on PATH and record it
export PATH="$1/bin:$PATH"
echo "$1" >> "{log}"
"""


def stand_in_conda(root: Path) -> Path:
    """Write the stand-in's ``bin/conda`` and ``bin/activate`` under ``root``; returns the activation log."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    log = root / "activations.log"
    conda = bin_dir / "conda"
    conda.write_text(CONDA.format(python=sys.executable, root=root, site_packages=sysconfig.get_paths()["purelib"]))
    conda.chmod(0o755)
    (bin_dir / "activate").write_text(ACTIVATE.format(log=log))
    return log


def test_use_conda_installs_alseg_into_the_environment(tmp_path):
    log = stand_in_conda(tmp_path / "conda")
    workdir = tmp_path / "run"
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(tmp_path / "conda" / "bin"), env["PATH"]])
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(TINY), "--config", "round=0", "--cores", "2", "--use-conda",
           "--conda-prefix", str(tmp_path / "envs"), "results/random/round_0/metrics.json"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"

    environments = [path for path in (tmp_path / "envs").iterdir() if path.is_dir() and not path.name.startswith(".")]
    assert len(environments) == 1, environments   # one environment for every rule
    python = environments[0] / "bin" / "python"
    found = subprocess.run([str(python), "-c", "import alseg; print(alseg.__file__)"], capture_output=True,
                           text=True, env=env, check=True).stdout.strip()
    assert Path(found).is_relative_to(REPO / "src"), found   # installed by envs/alseg.post-deploy.sh
    activated = log.read_text().split()
    assert activated and set(activated) == {str(environments[0])}   # the post-deploy script and every job
    assert len(activated) >= 3   # post-deploy, prepare_dataset, train, metrics
    assert (workdir / "results" / "random" / "round_0" / "metrics.json").is_file()


def test_the_post_deploy_script_needs_the_snakefiles_source(tmp_path):
    """Run outside Snakemake, the script stops with a message saying what is missing."""
    env = {key: value for key, value in os.environ.items() if key != "ALSEG_SOURCE"}
    done = subprocess.run(["bash", str(REPO / "envs" / "alseg.post-deploy.sh")], capture_output=True, text=True,
                          env=env, check=False)
    assert done.returncode != 0 and "ALSEG_SOURCE is not set" in done.stderr

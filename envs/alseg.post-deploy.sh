#!/usr/bin/env bash
# Snakemake runs this inside the environment it has just made from envs/alseg.yaml (--use-conda):
# it installs alseg itself, editable, from the checkout whose Snakefile exported ALSEG_SOURCE, so the
# jobs import this checkout's package with no PYTHONPATH (docs/containers.md, "Conda").
set -euo pipefail
source="${ALSEG_SOURCE:?ALSEG_SOURCE is not set: the Snakefile sets it; create the environment through snakemake --use-conda}"
python -m pip install --quiet --no-deps --no-build-isolation --editable "$source"

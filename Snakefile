"""alseg: active learning for semantic segmentation.

    snakemake --cores 8 --config round=10

runs rounds 0..10 of every experiment in config.yaml and compares them (see README.md);

    snakemake --cores 8 --configfile my.yaml

runs those of my.yaml instead: config.yaml is read only when no --configfile is given (README.md, "Your data").
"""

import os
import sys

from snakemake.utils import min_version

from alseg.config import ConfigError, resolve_config, wildcard_pattern

# The round chain is a deep recursion for Snakemake's DAG builder (fails near 480 rounds without this).
sys.setrecursionlimit(20000)
min_version("9.0")


# The default config only without the user's own: Snakemake would merge --configfile over it, and the
# default experiments would run too. workflow.overwrite_configfiles holds the --configfile paths.
# Beside the Snakefile, so that `--directory` (the container's working folder) finds it too.
if not workflow.overwrite_configfiles:

    configfile: f"{workflow.basedir}/config.yaml"


try:
    CFG = resolve_config(config)
except ConfigError as error:
    sys.exit(f"alseg: {error}")

report: "workflow/report/workflow.rst"


# For envs/alseg.post-deploy.sh: with --use-conda, each new environment installs alseg from this checkout.
os.environ.update(ALSEG_SOURCE=workflow.basedir)

# Every job's image under `--sdm apptainer` (docs/containers.md); unused otherwise.
container: CFG["container"]



include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/superpixel.smk"
include: "rules/round.smk"
include: "rules/report.smk"


rule all:
    input:
        expand(f"{RESULTS}/{{exp}}/learning_curve.csv", exp=EXPERIMENTS),
        [file for exp in EXPERIMENTS for r in experiment_rounds(exp) for file in plan.inference_files(CFG, exp, r)],
        COMPARISON["table"],
        COMPARISON["plot"],
        unit_round_targets(),
    default_target: True

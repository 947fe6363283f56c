# Shared names and input functions. CFG is the validated config (alseg.config.resolve_config); what each
# step reads comes from alseg.plan, which asks the experiment's query unit.

import binascii
from base64 import b64decode
from pathlib import Path

from snakemake.exceptions import WorkflowError

from alseg import __version__ as CODE_VERSION
from alseg import plan
from alseg.config import experiment_last_round
from alseg.human import HUMAN_ANSWERS, human_answers_input

RESULTS = CFG["results"]
EXPERIMENTS = CFG["experiments"]
LAST_ROUND = CFG["round"]


def experiment_rounds(exp):
    """Rounds 0..last of experiment ``exp``: ``round``, or its own ``last_round`` where smaller."""
    return range(experiment_last_round(LAST_ROUND, EXPERIMENTS[exp]) + 1)


def unit_round_targets():
    """Files of every round that the units' own rules make (superpixel overlays), for rule all."""
    return [f for exp in EXPERIMENTS for f in plan.extra_round_targets(CFG, exp, experiment_rounds(exp))]


# By default a model job claims all of Snakemake's cores, so model jobs run one at a time (right for
# big models). `model_threads: k` gives each k threads and lets Snakemake run several side by side:
# faster for small models on a few cores (BENCHMARKS.md, section 6). Each job uses at most the cores
# it may run on (alseg.model_job.limit_threads), with passive OpenMP threads.
try:
    MODEL_THREADS = CFG["model_threads"] or workflow.cores
except WorkflowError:  # cluster execution has no --cores: every job gets its own allocation
    MODEL_THREADS = 8


# Strict wildcards: without them Snakemake also tries negative rounds and unknown experiments.
wildcard_constraints:
    exp=wildcard_pattern(list(EXPERIMENTS)),
    r="0|[1-9][0-9]*",
    k="[1-9][0-9]*",
    dataset=wildcard_pattern(list(CFG["datasets"])),


def wc_round(wc):
    return int(wc.r)


def from_plan(plan_function):
    """Input (for unpack) or params function of a round's step: what alseg.plan says it reads."""
    return lambda wc: plan_function(CFG, wc.exp, wc_round(wc))


def round_output(name):
    return f"{RESULTS}/{{exp}}/round_{{r}}/{name}"


def round_log(step):
    return f"{RESULTS}/{{exp}}/round_{{r}}/logs/{step}.log"


def is_human(wc):
    return plan.is_human(CFG, wc.exp)


def human_answers_file(wc):
    """Input function of answer_queries: in a human experiment, the person's round_<r>/human_answers.csv
    if it exists when the run is planned. No rule makes it, so Snakemake never deletes or regenerates it;
    while it is missing, the step stops with the commands that answer the round. Stops the run when
    answers.csv holds a person's answers but human_answers.csv is missing (alseg.human)."""
    if not is_human(wc):
        return {}
    found = human_answers_input(f"{RESULTS}/{wc.exp}/round_{wc.r}")
    return {"human": found[0]} if found else {}


def answer_inputs(wc):
    return {**plan.answer_inputs(CFG, wc.exp, wc_round(wc)), **human_answers_file(wc)}


def kept_if_answered(input_function):
    """Input function wrapper for query selection: once a person has answered round r of a human
    experiment (its human_answers.csv exists), the round's inputs are ancient, so that retraining
    earlier rounds (an edited answer, a code update) never chooses other queries than those answered."""

    def wrapped(wc):
        files = input_function(wc)
        if not (is_human(wc) and Path(f"{RESULTS}/{wc.exp}/round_{wc.r}/{HUMAN_ANSWERS}").is_file()):
            return files
        return {name: ancient(path) for name, path in files.items()}

    return wrapped


def query_version(wc):
    # Human experiments: no code version, so that a code update never chooses the queries of an
    # answered round again (kept_if_answered); they change only with the query settings.
    return "human: queries kept across code versions" if is_human(wc) else CODE_VERSION


def release_whole_outputs(marker_dir=".snakemake/incomplete"):
    """Let "rerun the same command" resume a killed run without --rerun-incomplete.

    Every output is written atomically (temporary name, then rename), so an output that exists is whole.
    A job killed between its rename and Snakemake recording success leaves such a file marked
    incomplete (marker: base64 of the path, Snakemake's file persistence), and Snakemake would refuse
    to start. Markers of missing files are harmless and kept.
    """
    for marker in Path(marker_dir).rglob("*"):
        if not marker.is_file():
            continue
        try:
            target = b64decode("".join(marker.relative_to(marker_dir).parts)).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            continue
        if target.startswith(RESULTS) and Path(target).exists():  # files, and whole folders (overlays)
            marker.unlink()


release_whole_outputs()

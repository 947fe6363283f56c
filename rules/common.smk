# Shared names and input functions. CFG is the validated config (alseg.config.resolve_config).

import binascii
from base64 import b64decode
from pathlib import Path

from snakemake.exceptions import WorkflowError

from alseg import __version__ as CODE_VERSION
from alseg.config import experiment_last_round
from alseg.human import HUMAN_ANSWERS, human_answers_input

RESULTS = CFG["results"]
EXPERIMENTS = CFG["experiments"]
LAST_ROUND = CFG["round"]


def experiment_rounds(exp):
    """Rounds 0..last of experiment ``exp``: ``round``, or its own ``last_round`` where smaller."""
    return range(experiment_last_round(LAST_ROUND, EXPERIMENTS[exp]) + 1)


# By default a model job claims all of Snakemake's cores, so model jobs run one at a time (right for
# big models). `model_threads: k` gives each k threads and lets Snakemake run several side by side:
# faster for small models on a few cores (BENCHMARKS.md, section 6). Each job uses at most the cores
# it may run on (alseg.steps.limit_threads), with passive OpenMP threads.
try:
    MODEL_THREADS = CFG["model_threads"] or workflow.cores
except WorkflowError:  # cluster execution has no --cores: every job gets its own allocation
    MODEL_THREADS = 8


# Strict wildcards: without them Snakemake also tries negative rounds and unknown experiments.
wildcard_constraints:
    exp=wildcard_pattern(list(EXPERIMENTS)),
    r="0|[1-9][0-9]*",
    dataset=wildcard_pattern(list(CFG["datasets"])),


def round_file(name):
    """Input function: ``name`` in the current round's folder."""
    return lambda wc: f"{RESULTS}/{wc.exp}/round_{wc.r}/{name}"


def previous_round_file(name):
    """Input function: ``name`` in round r-1's folder; nothing in round 0."""

    def previous(wc):
        r = int(wc.r)
        return [] if r == 0 else f"{RESULTS}/{wc.exp}/round_{r - 1}/{name}"

    return previous


def dataset_file(wc):
    return f"{RESULTS}/datasets/{EXPERIMENTS[wc.exp]['dataset']}.h5"


def settings(*keys):
    """Params function: only the experiment settings a step reads, so that changing one setting
    reruns only the steps (and experiments) that depend on it."""

    def pick(wc):
        experiment = EXPERIMENTS[wc.exp]
        return {key: experiment[key] for key in keys}

    return pick


def query_settings(wc):
    # Round 0 is random whatever the strategy: changing the strategy keeps round 0's files.
    experiment = EXPERIMENTS[wc.exp]
    keys = ["unit", "seed", "initial_budget", "dataset"]
    if int(wc.r) > 0:
        keys += ["strategy", "budget"]
    chosen = {key: experiment[key] for key in keys}
    chosen["acquisition"] = dict(experiment["acquisition"])
    if int(wc.r) == 0:
        chosen["acquisition"] = {"query_void": experiment["acquisition"]["query_void"]}
    # binary and full: round 0 is the initial set; later rounds depend on the selection's settings
    if experiment["unit"] in ("binary", "full"):
        chosen["initial"] = experiment["initial"]
        if int(wc.r) > 0:
            chosen["binary"] = experiment["binary"]
    return chosen


def model_settings(wc):
    # What training, evaluation and inference read; acquisition settings other than MC dropout
    # (which changes the dump) do not retrain.
    experiment = EXPERIMENTS[wc.exp]
    chosen = {key: experiment[key] for key in ("seed", "model", "training", "unit", "strategy", "inference")}
    chosen["acquisition"] = {"mc_passes": experiment["acquisition"]["mc_passes"]}
    if experiment["unit"] == "binary":  # the weights of the answer losses
        chosen["binary"] = {"loss": experiment["binary"]["loss"]}
    if experiment["unit"] == "superpixel":  # sieving of the training labels
        chosen["superpixel"] = {
            key: experiment["superpixel"][key] for key in ("sieve", "sieve_min_size", "sieve_points")
        }
    return chosen


def is_human(wc):
    return EXPERIMENTS[wc.exp]["oracle"]["kind"] == "human"


def human_answers_file(wc):
    """Input function of answer_queries: in a human experiment, the person's round_<r>/human_answers.csv
    if it exists when the run is planned. No rule makes it, so Snakemake never deletes or regenerates it;
    while it is missing, the step stops with the commands that answer the round. Stops the run when
    answers.csv holds a person's answers but human_answers.csv is missing (alseg.human)."""
    if not is_human(wc):
        return []
    found = human_answers_input(f"{RESULTS}/{wc.exp}/round_{wc.r}")
    return found[0] if found else []


def answer_settings(wc):
    # Simulated: seed, error rate and costs (``kind`` left out, so that results from before it existed
    # are kept). Human: a person's answers depend on no setting.
    experiment = EXPERIMENTS[wc.exp]
    if is_human(wc):
        return {"oracle": {"kind": "human"}}
    chosen = {key: experiment[key] for key in ("seed", "oracle", "costs")}
    chosen["oracle"] = {key: value for key, value in experiment["oracle"].items() if key != "kind"}
    return chosen


def kept_if_answered(input_function):
    """Input function wrapper for query selection: once a person has answered round r of a human
    experiment (its human_answers.csv exists), the round's inputs are ancient, so that retraining
    earlier rounds (an edited answer, a code update) never chooses other queries than those answered."""

    def wrapped(wc):
        files = input_function(wc)
        if not (is_human(wc) and Path(f"{RESULTS}/{wc.exp}/round_{wc.r}/{HUMAN_ANSWERS}").is_file()):
            return files
        return ancient(files) if isinstance(files, str) else [ancient(f) for f in files]

    return wrapped


def query_version(wc):
    # Human experiments: no code version, so that a code update never chooses the queries of an
    # answered round again (kept_if_answered); they change only with the query settings.
    return "human: queries kept across code versions" if is_human(wc) else CODE_VERSION


def round0_twin_file(name):
    """Input function: ``name`` of the round-0 twin's round 0 (alseg.config.round0_twins), whose model
    this experiment's round 0 reuses when the training is the same; nothing otherwise."""

    def twin(wc):
        other = CFG["round0_twins"].get(wc.exp)
        return f"{RESULTS}/{other}/round_0/{name}" if other and int(wc.r) == 0 else []

    return twin


def warm_start_model(wc):
    r = int(wc.r)
    if r == 0 or not EXPERIMENTS[wc.exp]["training"]["warm_start"]:
        return []
    return f"{RESULTS}/{wc.exp}/round_{r - 1}/model.pt"


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

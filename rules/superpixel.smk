# The superpixel unit's own stages (alseg.units.superpixel): the base superpixels of a dataset, computed
# once per setting and shared by every experiment and round, and PNG overlays of a few images per round.
# Its selection, answers, labels and training go through the generic rules of round.smk.

from alseg.units.superpixel.files import SETTING_PATTERN

SUPERPIXEL_EXPERIMENTS = [name for name, e in EXPERIMENTS.items() if e["unit"] == "superpixel"]


rule superpixels:
    """Base superpixels of a dataset's pool, once per setting (seeds-<pixels per superpixel> or oracle)."""
    input:
        f"{RESULTS}/datasets/{{dataset}}.h5",
    output:
        f"{RESULTS}/datasets/{{dataset}}.superpixels-{{spx}}.h5",
    wildcard_constraints:
        spx=SETTING_PATTERN,
    params:
        version=CODE_VERSION,
    threads: 8
    log:
        f"{RESULTS}/datasets/logs/{{dataset}}.superpixels-{{spx}}.log",
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/superpixels.py"


rule superpixel_overlays:
    """PNG overlays of a few images per round: base and merged boundaries, queried regions, sieved pixels."""
    localrule: True
    input:
        dataset=lambda wc: plan.dataset_file(CFG, wc.exp),
        superpixels=lambda wc: plan.resource_files(CFG, wc.exp)["superpixels"],
        regions=round_output("regions.npz"),
        labels=round_output("labels.npz"),
        sieve_model=lambda wc: plan.train_inputs(CFG, wc.exp, wc_round(wc)).get("previous_model", []),
    output:
        directory(round_output("overlays")),
    wildcard_constraints:
        exp=wildcard_pattern(SUPERPIXEL_EXPERIMENTS) if SUPERPIXEL_EXPERIMENTS else "(?!)",
    params:
        settings=lambda wc: {key: EXPERIMENTS[wc.exp][key] for key in ("superpixel", "inference")},
        version=CODE_VERSION,
    log:
        round_log("superpixel_overlays"),
    conda:
        "../envs/alseg.yaml"
    script:
        "../scripts/superpixel_overlays.py"

# Names and input functions of superpixel experiments (unit: superpixel), for rules/superpixel.smk and
# the rules of round.smk (answers, labels and the model take the extra inputs below; they are empty for
# other units).

SUPERPIXEL_EXPERIMENTS = [name for name, e in EXPERIMENTS.items() if e["unit"] == "superpixel"]
# A pattern that matches no experiment name when there is no superpixel experiment.
SUPERPIXEL_EXP_PATTERN = wildcard_pattern(SUPERPIXEL_EXPERIMENTS) if SUPERPIXEL_EXPERIMENTS else "(?!)"


def is_superpixel(wc):
    return EXPERIMENTS[wc.exp]["unit"] == "superpixel"


def superpixel_file(wc):
    """Input function: the experiment's base superpixel file; nothing for other units."""
    if not is_superpixel(wc):
        return []
    experiment = EXPERIMENTS[wc.exp]
    settings = experiment["superpixel"]
    setting = "oracle" if settings["method"] == "oracle" else f"seeds-{settings['pixels_per_superpixel']}"
    return f"{RESULTS}/datasets/{experiment['dataset']}.superpixels-{setting}.h5"


def superpixel_regions_file(wc):
    """Input function: the round's regions.npz (superpixel experiments only)."""
    return round_file("regions.npz")(wc) if is_superpixel(wc) else []


def sieve_model_file(wc):
    """Input function: round r-1's model, which sieves round r's training labels (rounds >= 1)."""
    if not is_superpixel(wc) or not EXPERIMENTS[wc.exp]["superpixel"]["sieve"]:
        return []
    return previous_round_file("model.pt")(wc)


def superpixel_inference_file(wc):
    """Input function: round r-1's dump when selection scores or merges (rounds >= 1)."""
    experiment = EXPERIMENTS[wc.exp]
    if experiment["strategy"] == "random" and not experiment["superpixel"]["merge"]:
        return []
    return previous_round_file("inference.h5")(wc)


def superpixel_query_settings(wc):
    # Round 0 is random base superpixels whatever the strategy and merging: changing those keeps
    # round 0's files.
    experiment = EXPERIMENTS[wc.exp]
    settings = experiment["superpixel"]
    chosen = {key: experiment[key] for key in ("unit", "seed", "initial_budget", "dataset")}
    chosen["superpixel"] = {key: settings[key] for key in ("method", "pixels_per_superpixel")}
    if int(wc.r) > 0:
        chosen.update(strategy=experiment["strategy"], budget=experiment["budget"])
        chosen["superpixel"].update(
            {key: settings[key] for key in ("merge", "eps", "merge_fraction", "class_share")}
        )
    return chosen


def superpixel_overlay_targets():
    """Overlay folders of every round of every superpixel experiment (for rule all)."""
    return [
        f"{RESULTS}/{exp}/round_{r}/overlays"
        for exp in SUPERPIXEL_EXPERIMENTS
        for r in experiment_rounds(exp)
        if EXPERIMENTS[exp]["superpixel"]["overlays"] > 0
    ]

"""The built-in defaults of every experiment setting: the papers' settings, each in one place.

``alseg.config`` merges the config's ``defaults`` and each experiment over :data:`BUILTIN_DEFAULTS`;
training (:mod:`alseg.train`) and augmentation (:mod:`alseg.augment`) take their own defaults from here.
"""

from __future__ import annotations

from typing import Any

#: PixelPick's CamVid training augmentation. The single source: ``alseg.augment`` imports it.
AUGMENT_DEFAULTS: dict[str, Any] = {
    "scale": [0.5, 2.0],
    "crop": None,
    "flip": True,
    "color_jitter": 0.3,
    "grayscale": 0.1,
    "blur": 0.1,
}

#: The official PixelPick CamVid schedule (README, "Models and training"). The single source: ``alseg.train`` imports
#: it (all keys but ``warm_start``, which the workflow decides).
TRAINING_DEFAULTS: dict[str, Any] = {
    "epochs": 50,
    "batch_size": 4,
    "lr": 5e-4,
    "backbone_lr": 5e-5,
    "weight_decay": 2e-4,
    "milestones": [20, 40],
    "gamma": 0.1,
    "val_every": 1,
    "iterations_per_epoch": None,
    "warm_start": False,
    "amp": True,
    "device": "auto",
    "gpus": 1,
    "loader_threads": 2,
    "eval_batch_size": 8,
    "augment": AUGMENT_DEFAULTS,
}

#: Superpixel experiments (``unit: superpixel``; docs/superpixels.md). These defaults are the plain
#: superpixel baseline "SP" (Cai et al.): SEEDS at 256 px per superpixel, no merging, no sieving; the
#: merge and sieve values are the official Adaptive Superpixel ones (eps 0.1, Kneedle on 20 points of
#: regions of >= 512 px).
SUPERPIXEL_DEFAULTS: dict[str, Any] = {
    "method": "seeds",
    "pixels_per_superpixel": 256,
    "merge": False,
    "eps": 0.1,
    "merge_fraction": 1.0,
    "sieve": False,
    "sieve_min_size": 512,
    "sieve_points": 20,
    "class_share": "region",
    "overlays": 4,
}

#: Binary experiments (``unit: binary``; docs/binary_queries.md): the paper's C_max, alpha and lambda;
#: HiGHS (the ``highspy`` dependency) as the LP solver, since PuLP 4 no longer bundles CBC; the answer
#: losses' weights and log-sum-exp sharpness (``alseg.binary_loss``): r = 20 rather than the function's 5,
#: measured by benchmarks/binary_answer_losses.py (docs/binary_queries.md).
BINARY_DEFAULTS: dict[str, Any] = {
    "c_max": 5,
    "alpha": 1.0,
    "lambda": 1.0,
    "solver": "highs",
    "time_limit": None,
    "confidence_scaling": "minmax",
    "loss": {"absent_weight": 1.0, "presence_weight": 1.0, "lse_r": 20.0},
}

#: Image tags (``unit: tags``; docs/tags.md): the candidate pool of the ``diverse`` strategy (this many times
#: the budget, the most uncertain images), and the image-level answer losses, as the binary unit's.
TAGS_DEFAULTS: dict[str, Any] = {"candidates": 4, "loss": dict(BINARY_DEFAULTS["loss"])}

#: Seconds per answer from the papers (README, "Configuration"; docs/binary_queries.md, docs/tags.md): PixelPick's user study, 1.42 s per pixel; a binary
#: answer 3 s (the middle of the Binary Feedback study's 2-4 s); a full-image mask (``costs.image``, the
#: dense initial set of binary experiments) 468 s = 7.8 min, the low end of the 7.8-37.5 min range, so
#: that the saving of cheap queries is not overstated (our images are smaller than those of the studies);
#: an image's tags 1 s per class of the dataset (Bearman et al., ECCV 2016: 20 s per PASCAL VOC image of 20
#: classes) and a click per class marked plus the submit.
BUILTIN_DEFAULTS: dict[str, Any] = {
    "unit": "pixel",
    "strategy": "margin",
    "budget": 10,
    "initial_budget": None,
    "seed": 0,
    "last_round": None,
    "model": {"name": "small_unet", "dropout": 0.1, "weights": None},
    "training": TRAINING_DEFAULTS,
    "acquisition": {"top_percent": 5.0, "mc_passes": 0, "mc_mode": "mean_softmax", "query_void": False},
    "oracle": {"kind": "simulated", "error_rate": 0.0},
    "costs": {"pixel": {"clicks": 1, "seconds": 1.42}, "superpixel": {"clicks": 1, "seconds": 2.0},
              "binary": {"clicks": 1, "seconds": 3.0}, "image": {"clicks": 1, "seconds": 468.0},
              "tags": {"clicks": 1, "seconds_per_class": 1.0}},
    "superpixel": SUPERPIXEL_DEFAULTS,
    "binary": BINARY_DEFAULTS,
    "tags": TAGS_DEFAULTS,
    "initial": {"kind": "pixels", "per_image": 10, "images": None},
    "inference": {"batch_size": 8, "device": "auto", "shards": 1},
}

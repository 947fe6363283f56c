"""Round 0 trained once: which experiments share it (config) and when two trainings are the same (digest).

The workflow side (the second experiment copies the first's model, and share_round0: false trains it in
each) is in tests/test_workflow.py.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from conftest import REPO

from alseg.config import resolve_config, round0_twins
from alseg.model_job import training_digest


def config(**experiments) -> dict:
    base = yaml.safe_load((REPO / "tests" / "configs" / "tiny.yaml").read_text())
    base["experiments"] = experiments
    return base


def test_experiments_differing_only_from_round_1_on_share_the_first_one_s_round_0():
    cfg = resolve_config(config(
        margin={"strategy": "margin"},
        random={"strategy": "random", "budget": 9, "initial_budget": 5},  # round 0: 5 per image, as margin
        entropy={"strategy": "entropy", "seed": 1},                       # other seed: other labels
        bigger={"strategy": "entropy", "budget": 9},                      # round 0: 9 per image
        wider={"strategy": "margin", "model": {"width": 16}},
        longer={"strategy": "margin", "training": {"epochs": 3}},
        warm={"strategy": "margin", "training": {"warm_start": True}},    # only from round 1 on
        warm_short={"strategy": "margin", "training": {"warm_start": {"epochs": 1}}},   # so is its schedule
        sp={"unit": "superpixel", "strategy": "class_balanced", "superpixel": {"sieve": False}},
        sp_s={"unit": "superpixel", "strategy": "class_balanced", "superpixel": {"sieve": True, "merge": True}},
        sp_big={"unit": "superpixel", "strategy": "class_balanced", "superpixel": {"pixels_per_superpixel": 64}},
        person={"strategy": "margin", "oracle": {"kind": "human"}},
        noisy={"strategy": "margin", "oracle": {"error_rate": 0.1}},
        full={"unit": "full"},
        full_again={"unit": "full"},
        binary={"unit": "binary", "strategy": "greedy", "initial": {"kind": "pixels", "per_image": 5}},
        binary_lp={"unit": "binary", "strategy": "lp", "initial": {"kind": "pixels", "per_image": 3}},
        binary_rr={"unit": "binary", "strategy": "rr", "initial": {"kind": "pixels", "per_image": 3}},
        dense={"unit": "binary", "strategy": "greedy", "initial": {"kind": "dense", "images": 3}},
        dense_ee={"unit": "binary", "strategy": "ee", "initial": {"kind": "dense", "images": 3}},
    ))
    assert cfg["round0_twins"] == {"random": "margin", "warm": "margin", "warm_short": "margin", "sp_s": "sp",
                                   "binary": "margin",
                                   "binary_rr": "binary_lp", "dense_ee": "dense"}


def test_share_round0_false_shares_nothing():
    both = config(margin={"strategy": "margin"}, random={"strategy": "random"})
    assert resolve_config(both)["round0_twins"] == {"random": "margin"}
    assert resolve_config({**both, "share_round0": False})["round0_twins"] == {}
    assert round0_twins({}) == {}


def test_training_digest_changes_with_any_setting_or_datum():
    settings = {"model": {"name": "small_unet", "width": 8}, "training": {"epochs": 2}, "seed": 7}
    arrays = {"image": np.array([0, 1], np.int32), "class": np.array([3, 4], np.int16),
              "answers": np.zeros(0, np.int8), "pool": np.zeros((2, 4, 4, 3), np.uint8)}
    digest = training_digest(settings, arrays)
    assert digest == training_digest(dict(reversed(list(settings.items()))), dict(reversed(list(arrays.items()))))
    assert len(digest) == 40 and int(digest, 16) >= 0
    changed_settings = copy.deepcopy(settings)
    changed_settings["training"]["epochs"] = 3
    changes = [
        (changed_settings, arrays),
        ({**settings, "seed": 8}, arrays),
        (settings, {**arrays, "class": np.array([3, 5], np.int16)}),
        (settings, {**arrays, "class": np.array([3, 4], np.int32)}),        # same values, other dtype
        (settings, {**arrays, "pool": np.zeros((2, 4, 3, 4), np.uint8)}),   # same bytes, other shape
        (settings, {**arrays, "answers": np.ones(1, np.int8)}),
        (settings, {k: v for k, v in arrays.items() if k != "answers"}),
    ]
    digests = {training_digest(s, a) for s, a in changes}
    assert digest not in digests and len(digests) == len(changes)


@pytest.mark.parametrize("dtype", [np.bool_, np.float16, np.int64])
def test_training_digest_reads_every_dtype_and_non_contiguous_arrays(dtype):
    a = np.arange(24).reshape(4, 6).astype(dtype)
    assert training_digest({}, {"a": a[:, ::2]}) == training_digest({}, {"a": np.ascontiguousarray(a[:, ::2])})


def test_training_digest_of_images_on_disk_is_the_digest_of_the_loaded_images(tmp_path, monkeypatch):
    """Read a few images at a time (here 2 of 5 per part), the pool gives the digest it gives in memory."""
    import h5py

    from alseg import model_job
    from alseg.data import ImagesOnDisk

    images = np.random.default_rng(0).integers(0, 256, (5, 4, 6, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "pool.h5", "w") as h5:
        h5.create_dataset("train/images", data=images, chunks=(1, 4, 6, 3))
    monkeypatch.setattr(model_job, "_DIGEST_CHUNK_BYTES", 2 * 4 * 6 * 3)
    on_disk = ImagesOnDisk(tmp_path / "pool.h5", "train")
    points = {"y": np.arange(3)}
    assert training_digest({"seed": 1}, {"pool": on_disk, **points}) == training_digest({"seed": 1}, {"pool": images,
                                                                                                    **points})
    images[4, 3, 5, 2] ^= 1  # the last part counts too
    assert training_digest({}, {"pool": on_disk}) != training_digest({}, {"pool": images})

"""The steps of superpixel experiments, without Snakemake: base superpixels, selection and its side file,
the dominant-label oracle, the label store, training pixels with sieving, the inference group, overlays,
and clear errors for bad files."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from alseg.acquire.superpixel_stats import superpixel_stats_from_probs
from alseg.config import ConfigError, deep_merge, resolve_config
from alseg.data import load_split, prepare_dataset
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.inference_file import (
    InferenceFileError,
    create_superpixel_group,
    read_superpixel_fields,
    write_superpixel_rows,
)
from alseg.labels import LabelStore, load_labels, record_round_cost, save_labels
from alseg.steps import answer_queries, select_queries, update_labels
from alseg.superpixels import SuperpixelFileError, read_superpixels
from alseg.units import Job
from alseg.units import labelled_pixels as store_labelled_pixels
from alseg.units.superpixel.files import (
    RegionsFileError,
    compute_base_superpixels,
    load_regions,
    parse_superpixel_setting,
    superpixel_file_name,
)
from alseg.units.superpixel.labels import add_superpixel_answers, asked_superpixels, labelled_pixels, superpixel_labels
from alseg.units.superpixel.overlays import overlay_images, write_superpixel_overlays
from alseg.units.superpixel.sieving import superpixel_training_targets

N, H, W, C = 6, 32, 32, 8


def experiment(**superpixel) -> dict:
    return deep_merge(BUILTIN_DEFAULTS, {
        "unit": "superpixel", "strategy": "class_balanced", "budget": 5, "initial_budget": 6,
        "model": {"name": "small_unet", "width": 4, "dropout": 0.0},
        "superpixel": {"pixels_per_superpixel": 16, "sieve_min_size": 16, "sieve_points": 10, **superpixel},
    })


@pytest.fixture(scope="module")
def pool(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("spx")
    dataset = root / "synthetic.h5"
    prepare_dataset({"kind": "synthetic", "seed": 0, "n_train": N, "n_val": 2, "n_test": 2, "height": H,
                     "width": W}, dataset)
    superpixels = root / superpixel_file_name("synthetic", {"method": "seeds", "pixels_per_superpixel": 16})
    compute_base_superpixels(dataset, "seeds", 16, superpixels, workers=2)
    return {"root": root, "dataset": dataset, "superpixels": superpixels,
            "maps": read_superpixels(superpixels), "split": load_split(dataset, "train")}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fake_inference(path: Path, maps, probs: np.ndarray, model: str = "m0") -> None:
    """An inference dump holding only the /superpixel group, from given (N, C, H, W) probabilities."""
    stats, mean_prob = superpixel_stats_from_probs(probs, maps.labels, maps.counts)
    with h5py.File(path, "w") as h5:
        create_superpixel_group(h5, maps.num_superpixels, probs.shape[1])
        write_superpixel_rows(h5, 0, {"pixel_count": stats.pixel_count, "uncertainty_sum": stats.uncertainty_sum,
                                      "pred_counts": stats.pred_counts, "mean_prob": mean_prob})
        h5.attrs["model"] = model


def smooth_probs(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(N, C, 4, 4)).repeat(8, axis=2).repeat(8, axis=3) * 3
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def select_superpixel_queries(dataset, superpixels, exp, r, queries, regions, labels=None, inference=None):
    """The selection step as the rules call it for a superpixel experiment."""
    return select_queries(dataset, exp, r, queries, superpixels=superpixels, regions=regions, labels=labels,
                          inference=inference)


def training_points(pool, store, exp, r, sieve_model=None):
    """The superpixel unit's training targets, as the train step asks for them."""
    job = Job(pool["dataset"], exp, r, {"superpixels": pool["superpixels"], "previous_model": sieve_model})
    targets = superpixel_training_targets(store, job)
    return targets.points.points(), targets.record


def run_round(pool, exp, r, previous=None, inference=None):
    d = pool["root"] / f"{id(exp)}_round_{r}"
    d.mkdir(exist_ok=True)
    q = select_superpixel_queries(pool["dataset"], pool["superpixels"], exp, r, d / "queries.csv", d / "regions.npz",
                                  labels=previous, inference=inference)
    answer_queries(pool["dataset"], d / "queries.csv", exp, r, d / "answers.csv", superpixels=pool["superpixels"],
                   regions=d / "regions.npz")
    update_labels(pool["dataset"], d / "queries.csv", d / "answers.csv", r, d / "labels.npz", previous=previous,
                  regions=d / "regions.npz")
    return d, q


def test_setting_names() -> None:
    seeds, oracle = {"method": "seeds", "pixels_per_superpixel": 256}, {"method": "oracle", "pixels_per_superpixel": 256}
    assert superpixel_file_name("camvid", seeds) == "camvid.superpixels-seeds-256.h5"
    assert superpixel_file_name("camvid", oracle) == "camvid.superpixels-oracle.h5"
    assert parse_superpixel_setting("seeds-64") == ("seeds", 64)
    assert parse_superpixel_setting("oracle") == ("oracle", 0)
    with pytest.raises(ValueError, match="unknown superpixel setting"):
        parse_superpixel_setting("slic-3")


def test_base_superpixels_cover_the_pool(pool) -> None:
    maps = pool["maps"]
    assert maps.labels.shape == (N, H, W) and maps.attrs["method"] == "seeds"
    assert maps.num_superpixels == int(maps.counts.sum()) and maps.counts.min() > 1


def test_round_0_random_queries_and_side_file(pool) -> None:
    exp = experiment()
    d, q = run_round(pool, exp, 0)
    assert q == 6
    rows = read_csv(d / "queries.csv")
    assert {r["unit"] for r in rows} == {"superpixel"} and {r["strategy"] for r in rows} == {"random"}
    assert all(r["score"] == "" and r["y"] == "" and r["class"] == "" for r in rows)
    regions = load_regions(d / "regions.npz", q)
    np.testing.assert_array_equal(regions.parent, np.arange(pool["maps"].num_superpixels))  # no merge in round 0
    np.testing.assert_array_equal([int(r["superpixel"]) for r in rows], regions.query_region)
    pixels = np.bincount(regions.base_query, weights=regions.base_pixels, minlength=q)
    np.testing.assert_array_equal([int(r["pixels"]) for r in rows], pixels)
    # the dominant ground-truth label, void not voting
    maps, masks = pool["maps"], pool["split"].masks
    answers = {r["query_id"]: r["answer"] for r in read_csv(d / "answers.csv")}
    for k, row in enumerate(rows):
        i = int(row["image_index"])
        inside = np.isin(maps.labels[i].astype(np.int64) + maps.offsets[i], regions.members()[int(row["superpixel"])])
        truth = masks[i][inside]
        truth = truth[truth != 255]
        expected = str(np.bincount(truth, minlength=C).argmax()) if truth.size else "skip"
        assert answers[row["query_id"]] == expected, k
    answer_rows = read_csv(d / "answers.csv")
    assert {r["clicks"] for r in answer_rows} == {"1.0"} and {r["seconds"] for r in answer_rows} == {"2.0"}
    store = load_labels(d / "labels.npz")
    assert store.clicks == q and store["superpixel_id"].size == regions.base_id.size
    answered = store["superpixel_class"] >= 0
    assert store_labelled_pixels(store) == int(store["superpixel_pixels"][answered].sum())


def test_rounds_never_ask_a_base_superpixel_twice_and_labels_accumulate(pool) -> None:
    exp = experiment(merge=True, eps=0.3)
    d0, _ = run_round(pool, exp, 0)
    inference = pool["root"] / "inference_0.h5"
    fake_inference(inference, pool["maps"], smooth_probs(0))
    d1, q1 = run_round(pool, exp, 1, previous=d0 / "labels.npz", inference=inference)
    r0, r1 = load_regions(d0 / "regions.npz"), load_regions(d1 / "regions.npz")
    assert q1 == 5
    assert np.intersect1d(r0.base_id, r1.base_id).size == 0
    assert np.any(r1.parent != np.arange(r1.parent.size))  # merged
    # every query's bases belong to its region and were never asked before
    np.testing.assert_array_equal(r1.parent[r1.base_id], r1.query_region[r1.base_query])
    rows = read_csv(d1 / "queries.csv")
    assert {r["strategy"] for r in rows} == {"class_balanced"} and {r["model"] for r in rows} == {"m0"}
    assert [int(r["rank"]) for r in rows] == list(range(5))
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    s0, s1 = load_labels(d0 / "labels.npz"), load_labels(d1 / "labels.npz")
    np.testing.assert_array_equal(s1["superpixel_id"][: s0["superpixel_id"].size], s0["superpixel_id"])  # cumulative
    assert s1.clicks == s0.clicks + 5 and set(s1["superpixel_round"].tolist()) == {0, 1}
    # a third round asks none of the bases of rounds 0 and 1
    d2, _ = run_round(pool, exp, 2, previous=d1 / "labels.npz", inference=inference)
    r2 = load_regions(d2 / "regions.npz")
    assert np.intersect1d(r2.base_id, np.concatenate([r0.base_id, r1.base_id])).size == 0


def test_a_strategy_needs_the_previous_dump(pool) -> None:
    d0, _ = run_round(pool, experiment(), 0)
    with pytest.raises(ValueError, match="needs the previous round's inference dump"):
        select_superpixel_queries(pool["dataset"], pool["superpixels"], experiment(), 1, d0 / "q.csv",
                                  d0 / "r.npz", labels=d0 / "labels.npz")


def test_exhausted_pool_is_a_clear_error(pool) -> None:
    exp = experiment()
    exp["initial_budget"] = 10_000
    d, q = run_round(pool, exp, 0)  # asks every base superpixel (fewer than asked for)
    assert q == pool["maps"].num_superpixels
    exp["strategy"] = "random"
    with pytest.raises(ValueError, match="were asked before round 1"):
        select_superpixel_queries(pool["dataset"], pool["superpixels"], exp, 1, d / "q1.csv", d / "r1.npz",
                                  labels=d / "labels.npz")


def test_training_points_are_the_pixels_of_answered_regions(pool) -> None:
    exp = experiment()
    d, _ = run_round(pool, exp, 0)
    store = load_labels(d / "labels.npz")
    points, record = training_points(pool, store, exp, 0)
    maps = pool["maps"]
    label, _ = superpixel_labels(store, maps.num_superpixels)
    expected = label[maps.labels.astype(np.int64) + maps.offsets[:-1, None, None]]
    assert len(points) == int((expected >= 0).sum()) == store_labelled_pixels(store)
    np.testing.assert_array_equal(points.cls, expected[points.image, points.y, points.x])
    assert record["sieve"] is False and record["sieved_share"] == 0 and record["training_pixels"] == len(points)
    assert 0 <= record["label_noise"] <= 1
    # void pixels that receive a label count as wrong in label_noise, not in label_noise_non_void
    truth = pool["split"].masks[points.image, points.y, points.x]
    assert record["label_noise"] == pytest.approx(np.mean(points.cls != truth))  # a void truth never matches
    assert record["label_noise"] >= record["label_noise_non_void"] - 1e-12
    assert record["label_noise_before_sieve"] == record["label_noise"]


def test_sieving_drops_low_confidence_pixels_with_the_previous_model(pool, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from alseg.models import build_model, save_model

    exp = experiment(sieve=True, merge=True, eps=0.3)
    d0, _ = run_round(pool, exp, 0)
    inference = tmp_path / "inference.h5"
    fake_inference(inference, pool["maps"], smooth_probs(1))
    d1, _ = run_round(pool, exp, 1, previous=d0 / "labels.npz", inference=inference)
    torch.manual_seed(0)
    model_path = tmp_path / "model.pt"
    save_model(model_path, build_model(exp["model"], C), exp["model"], C)
    store = load_labels(d1 / "labels.npz")
    with pytest.raises(ValueError, match="needs round 0's model"):
        training_points(pool, store, exp, 1)
    points, record = training_points(pool, store, exp, 1, sieve_model=model_path)
    assert record["sieve"] is True and record["sieved_regions"] >= 1
    assert record["training_pixels"] + record["sieved_out_pixels"] == record["labelled_pixels"]
    assert record["labelled_pixels"] == store_labelled_pixels(store)
    assert len(points) == record["training_pixels"] and 0 < record["sieved_share"] < 1
    json.dumps(record)  # goes to train_log.json
    # built a part of the labelled images at a time (whole inference batches): the same labels and record
    small_batches = {**exp, "inference": {**exp["inference"], "batch_size": 2}}
    job = Job(pool["dataset"], small_batches, 1, {"superpixels": pool["superpixels"], "previous_model": model_path})
    whole, parts = (superpixel_training_targets(store, job, part_images=n) for n in (None, 2))
    assert whole.points.images.size > 2 and whole.points.masks.dtype == np.uint8
    np.testing.assert_array_equal(whole.points.masks, parts.points.masks)
    assert {**whole.record, "sieve_seconds": 0} == {**parts.record, "sieve_seconds": 0}
    # round 0 is never sieved
    _, record0 = training_points(pool, load_labels(d0 / "labels.npz"), exp, 0, sieve_model=model_path)
    assert record0["sieve"] is False
    # overlays: the images with most queries, sieved pixels drawn from the same verdict
    out = d1 / "overlays"
    written = write_superpixel_overlays(pool["dataset"], pool["superpixels"], d1 / "regions.npz", d1 / "labels.npz",
                                        {**exp, "superpixel": {**exp["superpixel"], "overlays": 2}}, 1, out,
                                        sieve_model=model_path)
    assert len(written) == 2 and all(p.is_file() and p.stat().st_size > 1000 for p in written)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)


def test_overlay_images_prefers_images_with_more_queries() -> None:
    np.testing.assert_array_equal(overlay_images(np.array([3, 1, 3, 2, 1, 3]), 2), [1, 3])
    np.testing.assert_array_equal(overlay_images(np.array([5, 4]), 4), [4, 5])
    assert overlay_images(np.array([], dtype=np.int64), 3).size == 0


def test_inference_dump_holds_superpixel_statistics(pool, tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from alseg.infer import write_inference
    from alseg.models import build_model

    torch.manual_seed(0)
    model = build_model({"name": "small_unet", "width": 4, "dropout": 0.0}, C)
    out = tmp_path / "inference.h5"
    write_inference(out, model, pool["split"].images, C, batch_size=4, device="cpu", groups=("superpixel",),
                    superpixels=pool["maps"])
    with h5py.File(out) as h5:  # what the superpixel unit reads, only
        assert list(h5) == ["superpixel"] and h5.attrs["model"]
    fields = read_superpixel_fields(out)
    maps = pool["maps"]
    assert fields["mean_prob"].shape == (maps.num_superpixels, C)
    np.testing.assert_array_equal(fields["pixel_count"], np.bincount(
        (maps.labels.astype(np.int64) + maps.offsets[:-1, None, None]).ravel()))
    np.testing.assert_allclose(fields["mean_prob"].sum(axis=1), 1, atol=1e-4)
    assert fields["pred_counts"].sum() == N * H * W and fields["pred_counts"].dtype == np.int32
    plain = tmp_path / "plain.h5"
    write_inference(plain, model, pool["split"].images, C, batch_size=4, device="cpu")
    with pytest.raises(InferenceFileError, match="plain.h5.*no /superpixel"):
        read_superpixel_fields(plain)
    with pytest.raises(ValueError, match="superpixel group of an inference dump needs the base superpixels"):
        write_inference(plain, model, pool["split"].images, C, groups=("superpixel",))


def test_bad_superpixel_files_are_named(pool, tmp_path) -> None:
    exp = experiment()
    wrong = tmp_path / "wrong.superpixels-seeds-16.h5"
    other = tmp_path / "other.h5"
    prepare_dataset({"kind": "synthetic", "seed": 0, "n_train": N, "n_val": 1, "n_test": 1, "height": 24,
                     "width": 32}, other)
    compute_base_superpixels(other, "seeds", 16, wrong)
    with pytest.raises(SuperpixelFileError, match="wrong.superpixels-seeds-16.h5.*shape"):
        select_superpixel_queries(pool["dataset"], wrong, exp, 0, tmp_path / "q.csv", tmp_path / "r.npz")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(SuperpixelFileError, match="corrupt.h5"):
        select_superpixel_queries(pool["dataset"], corrupt, exp, 0, tmp_path / "q.csv", tmp_path / "r.npz")
    assert not (tmp_path / "q.csv").exists() and not (tmp_path / "r.npz").exists()
    # a dump made with other superpixels
    d0, _ = run_round(pool, exp, 0)
    stale = tmp_path / "stale.h5"
    maps = read_superpixels(pool["superpixels"])
    maps.labels = maps.labels.copy()
    maps.labels[0] = 0
    with h5py.File(stale, "w") as h5:
        create_superpixel_group(h5, maps.num_superpixels, C)
        write_superpixel_rows(h5, 0, {"pixel_count": np.ones(maps.num_superpixels)})
    with pytest.raises(InferenceFileError, match="stale.h5.*other base superpixels"):
        select_superpixel_queries(pool["dataset"], pool["superpixels"], experiment(), 1, tmp_path / "q.csv",
                                  tmp_path / "r.npz", labels=d0 / "labels.npz", inference=stale)


def test_bad_regions_file_is_named(pool, tmp_path) -> None:
    d, q = run_round(pool, experiment(), 0)
    broken = tmp_path / "regions.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(RegionsFileError, match="regions.npz.*corrupt"):
        load_regions(broken)
    with pytest.raises(RegionsFileError, match="queries.csv has 99"):
        load_regions(d / "regions.npz", 99)


def test_label_store_superpixel_records() -> None:
    s0 = add_superpixel_answers(LabelStore(), 0, [4, 5, 9], [0, 0, 1], [2, -1], [10, 20, 30])
    assert store_labelled_pixels(s0) == 30  # query 0 (class 2) covers 4 and 5; query 1 skipped
    np.testing.assert_array_equal(s0["superpixel_class"], [2, 2, -1])
    with pytest.raises(ValueError, match="already asked"):
        add_superpixel_answers(s0, 1, [9], [0], [1], [5])
    with pytest.raises(ValueError, match="twice"):
        add_superpixel_answers(s0, 1, [1, 1], [0, 0], [1], [5, 5])
    s1 = add_superpixel_answers(s0, 1, [1], [0], [3], [7])
    assert store_labelled_pixels(s1) == 37 and s0["superpixel_id"].size == 3
    np.testing.assert_array_equal(asked_superpixels(s1, 10), np.isin(np.arange(10), [1, 4, 5, 9]))
    label, region = superpixel_labels(s1, 10)
    assert label.tolist() == [-1, 3, -1, -1, 2, 2, -1, -1, -1, -1]
    assert region.tolist() == [-1, 1, -1, -1, 0, 0, -1, -1, -1, -1]
    with pytest.raises(ValueError, match="another superpixel file"):
        asked_superpixels(s1, 5)


def test_label_store_round_trip_and_old_stores(tmp_path) -> None:
    store = record_round_cost(add_superpixel_answers(LabelStore(), 0, [3], [0], [1], [12]), 0, "estimated", clicks=1)
    save_labels(tmp_path / "labels.npz", store)
    back = load_labels(tmp_path / "labels.npz")
    assert store_labelled_pixels(back) == 12 and back["superpixel_query"].tolist() == [0] and back.clicks == 1
    # a store written before the superpixel arrays existed reads as having none
    with np.load(tmp_path / "labels.npz") as data:
        old = {k: data[k] for k in data.files if not k.startswith("superpixel_")}
    np.savez(tmp_path / "old.npz", **old)
    assert load_labels(tmp_path / "old.npz")["superpixel_id"].size == 0


def test_labelled_pixels_of_some_images(pool) -> None:
    store = add_superpixel_answers(LabelStore(), 0, [0, int(pool["maps"].offsets[2])], [0, 1], [1, 2], [1, 1])
    maps = read_superpixels(pool["superpixels"], images=np.array([2, 3]))
    pixels = labelled_pixels(store, maps)
    assert set(pixels.image.tolist()) == {2} and set(pixels.cls.tolist()) == {2}
    assert len(pixels) == int((maps.labels[0] == 0).sum())


def test_config_checks_the_strategy_of_the_unit() -> None:
    config = {"round": 1, "datasets": {"s": {"kind": "synthetic"}},
              "experiments": {"sp": {"dataset": "s", "unit": "superpixel", "strategy": "margin"}}}
    with pytest.raises(ConfigError, match="'margin' is not a strategy of unit 'superpixel'"):
        resolve_config(config)
    config["experiments"]["sp"]["strategy"] = "uncertainty"
    config["experiments"]["sp"]["superpixel"] = {"method": "slic"}
    with pytest.raises(ConfigError, match="superpixel/method"):
        resolve_config(config)
    config["experiments"]["sp"]["superpixel"] = {"merge": True, "sieve": True}
    merged = resolve_config(config)["experiments"]["sp"]
    assert merged["superpixel"]["eps"] == 0.1 and merged["costs"]["superpixel"]["clicks"] == 1


def test_people_see_the_merged_region_each_query_asks(pool) -> None:
    """alseg annotate --regions <base superpixel file>: with the round's regions.npz beside queries.csv, a
    query's region is the part of its merged region it asks, not only its seed superpixel."""
    from alseg.queries import read_queries
    from alseg.units.superpixel import UNIT

    exp = experiment(merge=True, eps=0.3)
    d0, _ = run_round(pool, exp, 0)
    inference = pool["root"] / "inference_people.h5"
    fake_inference(inference, pool["maps"], smooth_probs(0))
    d1, q1 = run_round(pool, exp, 1, previous=d0 / "labels.npz", inference=inference)
    source = UNIT.region_source(d1 / "queries.csv", pool["superpixels"])
    table, members, maps = read_queries(d1 / "queries.csv"), load_regions(d1 / "regions.npz").members(), pool["maps"]
    assert max(len(m) for m in members.values()) > 1  # some query asks a merged region
    for k in range(q1):
        i, region = int(table["image_index"][k]), int(table["superpixel"][k])
        expected = np.isin(maps.labels[i].astype(np.int64) + maps.offsets[i], members[region])
        np.testing.assert_array_equal(source(i, region), expected)
    assert UNIT.region_source(d1 / "queries.csv", None) is None


@pytest.mark.parametrize("strategy, superpixel", [
    ("class_balanced", {"merge": True, "eps": 0.3}),
    ("class_balanced", {"merge": True, "eps": 0.3, "merge_fraction": 0.5, "class_share": "pixel"}),
    ("uncertainty", {"merge": False}),
    ("random", {"merge": True, "eps": 0.2}),
])
def test_selection_in_chunks_of_images_is_the_whole_pools(pool, monkeypatch, strategy, superpixel) -> None:
    """Merging, candidates and class shares a chunk of images at a time (bounded memory) choose the same
    queries and write the same regions as over the whole pool at once."""
    import alseg.units.base
    import alseg.units.superpixel.select

    exp = deep_merge(experiment(**superpixel), {"strategy": strategy})
    d0, _ = run_round(pool, exp, 0)
    inference = pool["root"] / "inference_chunks.h5"
    fake_inference(inference, pool["maps"], smooth_probs(3))
    written, maps_read = {}, []
    monkeypatch.setattr(Job, "pool", property(lambda job: pytest.fail("selection loaded the whole pool")))
    read_maps = alseg.units.superpixel.select.read_pool_superpixels
    monkeypatch.setattr(alseg.units.superpixel.select, "read_pool_superpixels",
                        lambda path, shape, images: maps_read.append(images) or read_maps(path, shape, images))
    for name, chunk_pixels in (("whole", 1 << 30), ("chunks", 2 * H * W)):
        maps_read.clear()
        monkeypatch.setattr(alseg.units.base, "CHUNK_PIXELS", chunk_pixels)
        out = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=pool["root"]))  # a new folder per parametrisation
        select_superpixel_queries(pool["dataset"], pool["superpixels"], exp, 1, out / "queries.csv",
                                  out / "regions.npz", labels=d0 / "labels.npz", inference=inference)
        written[name] = out
    # the chunks' label maps only, and only to merge
    assert maps_read == [slice(0, 0)] + ([slice(0, 2), slice(2, 4), slice(4, 6)] if superpixel["merge"] else [])
    assert (written["whole"] / "queries.csv").read_bytes() == (written["chunks"] / "queries.csv").read_bytes()
    whole, chunks = (load_regions(written[name] / "regions.npz") for name in ("whole", "chunks"))
    for name in ("parent", "query_region", "query_image", "base_id", "base_query", "base_pixels"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunks, name), err_msg=name)
    if superpixel["merge"]:
        assert np.any(whole.parent != np.arange(whole.parent.size))

"""The compact pixel group of the inference dump (alseg.pixel_dump): pixel selection from it writes the same
queries.csv, byte for byte, as selection from the whole float16 maps that the dump held before."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from alseg import pixel_dump, steps
from alseg.acquire.pixel import eligible_pixels, select_pixels, strategy_scores
from alseg.config import deep_merge
from alseg.data import dataset_info, load_split
from alseg.data.prepared import prepare_dataset
from alseg.defaults import BUILTIN_DEFAULTS
from alseg.infer import write_inference
from alseg.inference_file import InferenceDump, InferenceFileError, write_file_attrs
from alseg.labels import load_labels, save_labels
from alseg.mc_dropout import official_model, summed_passes
from alseg.models import build_model, model_checksum
from alseg.pixel_dump import PixelDumpWriter, read_pixel_candidates
from alseg.queries import QUERY_COLUMNS, query_table, write_table
from alseg.units import Job
from alseg.units.pixel import UNIT, asked_mask

N, H, W, C = 9, 24, 40, 5
MODEL = {"name": "small_unet", "width": 8, "levels": 2, "dropout": 0.1}
STRATEGIES = ("least_confidence", "margin", "entropy")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "synthetic.h5"
    prepare_dataset({"kind": "synthetic", "seed": 1, "n_train": N, "n_val": 2, "n_test": 2, "height": H, "width": W},
                    path)
    return path


@pytest.fixture(scope="module")
def round0(dataset, tmp_path_factory) -> Path:
    """Round 0's label store: 12 random pixels per image, asked and answered through the steps."""
    folder = tmp_path_factory.mktemp("round_0")
    exp = experiment()
    steps.select_queries(dataset, UNIT.select_settings(exp, 0), 0, folder / "queries.csv")
    steps.answer_queries(dataset, folder / "queries.csv", exp, 0, folder / "answers.csv")
    steps.update_labels(dataset, folder / "queries.csv", folder / "answers.csv", 0, folder / "labels.npz")
    return folder / "labels.npz"


def experiment(**override) -> dict:
    base = deep_merge(BUILTIN_DEFAULTS, {"dataset": "synthetic", "unit": "pixel", "budget": 6, "initial_budget": 12})
    return deep_merge(base, override)


def confident_model(official: bool) -> torch.nn.Module:
    """A random small U-Net with larger weights than its init's: a softmax from uniform to certain, as a
    model in training."""
    torch.manual_seed(4)
    model = build_model(official_model(MODEL) if official else MODEL, C).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.normal_(0.0, 0.2)
    return model


def write_dump(path: Path, dataset: Path, labels: Path, exp: dict, model: torch.nn.Module, passes: int = 0,
               mode: str = "mean_softmax", monkeypatch=None) -> dict[str, np.ndarray]:
    """Round 0's dump as the model job writes it; returns the whole per-pixel fields it saw (float32)."""
    seen: dict[str, list[np.ndarray]] = {"top1": [], "top2": [], "entropy": []}
    original = PixelDumpWriter.write

    def recording(self, start, fields):
        for name in seen:
            seen[name].append(np.array(fields[name]))
        original(self, start, fields)

    monkeypatch.setattr(PixelDumpWriter, "write", recording)
    job = Job(dataset, {"unit": "pixel", "seed": 0, "dump": UNIT.dump_settings(exp, 0)}, 0, {})
    write_inference(path, model, job.pool.images, C, batch_size=4, mc_passes=passes, mc_mode=mode, seed=3,
                    groups=("pixel", "image"), log=lambda line: None,
                    **UNIT.dump_request(job, load_labels(labels), (0, len(job.stems))))
    monkeypatch.setattr(PixelDumpWriter, "write", original)
    return {name: np.concatenate(parts) for name, parts in seen.items()}


def whole_map_queries(out: Path, dataset: Path, labels: Path, exp: dict, maps: dict[str, np.ndarray],
                      attrs: dict) -> None:
    """queries.csv of round 1 as selection wrote it from whole float16 maps (the dump before issue 15)."""
    settings = UNIT.select_settings(exp, 1)
    job = Job(dataset, settings, 1, {"labels": labels})
    info, store = dataset_info(dataset), load_labels(labels)
    fields = {name: values.astype(np.float16) for name, values in maps.items()}
    score_map, priority = strategy_scores(settings["strategy"], fields, summed_passes(attrs))
    eligible = eligible_pixels(asked_mask(store, H, W, 0, N), load_split(dataset, "train").masks, info.ignore_index,
                               settings["acquisition"]["query_void"])
    seed = job.seed("select_queries")
    sel = select_pixels(priority, eligible, settings["budget"], settings["acquisition"]["top_percent"],
                        np.random.default_rng(seed))
    table = query_table(1, sel.image, job.stems, "pixel", settings["strategy"], seed, str(attrs["model"]), y=sel.y,
                        x=sel.x, score=score_map[sel.image, sel.y, sel.x].astype(np.float64), rank=sel.rank,
                        pixels=np.ones(sel.size, dtype=np.int64))
    write_table(out, table, QUERY_COLUMNS)


@pytest.mark.parametrize("mode", ["mean_softmax", "official"])
@pytest.mark.parametrize("query_void", [False, True])
@pytest.mark.parametrize("top_percent", [5.0, 0.0, 30.0])
def test_queries_are_those_of_the_whole_maps(tmp_path, dataset, round0, monkeypatch, mode, query_void, top_percent):
    """For margin, least confidence and entropy; one deterministic pass or PixelPick's official MC dropout
    (whose score is T times the per-pass means, which can tie values a single pass keeps apart); void
    pixels asked or not; PixelPick's 5 %, plain top-k, a wide pool."""
    import alseg.units.base

    monkeypatch.setattr(alseg.units.base, "CHUNK_PIXELS", 4 * H * W)  # selection reads 3 chunks of the pool
    official = mode == "official"
    exp = experiment(acquisition={"query_void": query_void, "top_percent": top_percent})
    dump = tmp_path / "inference.h5"
    maps = write_dump(dump, dataset, round0, exp, confident_model(official), 3 if official else 0, mode, monkeypatch)
    with InferenceDump(dump) as opened:
        attrs = opened.attrs
        kept = sum(opened.files[0][f"pixel/{s}/index"].shape[0] for s in STRATEGIES)
    assert kept < 0.6 * N * H * W * len(STRATEGIES) or top_percent == 30  # a share of the pixels, not all
    for strategy in STRATEGIES:
        exp_s = deep_merge(exp, {"strategy": strategy})
        steps.select_queries(dataset, UNIT.select_settings(exp_s, 1), 1, tmp_path / "new.csv", labels=round0,
                             inference=dump)
        whole_map_queries(tmp_path / "old.csv", dataset, round0, exp_s, maps, attrs)
        assert (tmp_path / "new.csv").read_bytes() == (tmp_path / "old.csv").read_bytes(), strategy


@pytest.mark.parametrize("query_void", [False, True])
def test_random_queries_in_chunks_are_those_of_the_whole_pool(tmp_path, dataset, round0, monkeypatch, query_void):
    import alseg.units.base

    exp = experiment(strategy="random", acquisition={"query_void": query_void})
    for name, chunk_pixels in (("whole", 1 << 30), ("chunks", 2 * H * W)):
        monkeypatch.setattr(alseg.units.base, "CHUNK_PIXELS", chunk_pixels)
        for r, labels in ((0, None), (1, round0)):
            steps.select_queries(dataset, UNIT.select_settings(exp, r), r, tmp_path / f"{name}{r}.csv", labels=labels)
    for r in (0, 1):
        assert (tmp_path / f"whole{r}.csv").read_bytes() == (tmp_path / f"chunks{r}.csv").read_bytes()


def test_selection_reads_the_pool_a_chunk_at_a_time(tmp_path, dataset, round0, monkeypatch):
    """Bounded memory: no selection loads the pool (its images and masks); random reads the masks of a chunk
    at a time, the others read no mask at all."""
    import alseg.units.base
    import alseg.units.pixel

    exp = experiment()
    dump = tmp_path / "inference.h5"
    write_dump(dump, dataset, round0, exp, confident_model(False), monkeypatch=monkeypatch)
    monkeypatch.setattr(alseg.units.base, "CHUNK_PIXELS", 2 * H * W)
    monkeypatch.setattr(Job, "pool", property(lambda job: pytest.fail("selection loaded the whole pool")))
    reads: list[tuple[int, int]] = []
    load_masks = alseg.units.pixel.load_masks
    monkeypatch.setattr(alseg.units.pixel, "load_masks",
                        lambda path, split, start, stop: reads.append((start, stop)) or load_masks(path, split, start,
                                                                                                  stop))
    for strategy in STRATEGIES:
        steps.select_queries(dataset, UNIT.select_settings(deep_merge(exp, {"strategy": strategy}), 1), 1,
                             tmp_path / "q.csv", labels=round0, inference=dump)
    assert reads == []
    steps.select_queries(dataset, UNIT.select_settings(deep_merge(exp, {"strategy": "random"}), 1), 1,
                         tmp_path / "q.csv", labels=round0)
    assert reads == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 9)]


def test_a_dump_of_other_labels_or_a_narrower_draw_is_refused(tmp_path, dataset, round0, monkeypatch):
    dump = tmp_path / "inference.h5"
    write_dump(dump, dataset, round0, experiment(), confident_model(False), monkeypatch=monkeypatch)
    settings = UNIT.select_settings(experiment(), 1)
    with pytest.raises(InferenceFileError, match="inference.h5: its pixel candidates were chosen among other"):
        steps.select_queries(dataset, settings, 1, tmp_path / "q.csv", labels=None, inference=dump)
    with pytest.raises(InferenceFileError, match="cover draws of budget 6 from the top 5.0 %, this selection asks 7"):
        steps.select_queries(dataset, {**settings, "budget": 7}, 1, tmp_path / "q.csv", labels=round0, inference=dump)
    void = deep_merge(settings, {"acquisition": {"query_void": True}})
    with pytest.raises(InferenceFileError, match="other eligible pixels"):
        steps.select_queries(dataset, void, 1, tmp_path / "q.csv", labels=round0, inference=dump)
    narrower = deep_merge(settings, {"budget": 3, "acquisition": {"top_percent": 2.0}})
    steps.select_queries(dataset, narrower, 1, tmp_path / "q.csv", labels=round0, inference=dump)  # covered


def test_an_old_dump_or_one_without_candidates_is_refused(tmp_path, dataset, round0):
    old = tmp_path / "old.h5"
    with h5py.File(old, "w") as h5:  # the layout before issue 15: whole float16 maps
        for name in ("top1", "top2", "entropy"):
            h5[f"pixel/{name}"] = np.zeros((N, H, W), np.float16)
        h5.attrs["model"] = "m"
    settings = UNIT.select_settings(experiment(), 1)
    with pytest.raises(InferenceFileError, match="old.h5: an inference dump of an earlier alseg .*delete the dump"):
        steps.select_queries(dataset, settings, 1, tmp_path / "q.csv", labels=round0, inference=old)
    other = tmp_path / "binary.h5"
    with h5py.File(other, "w") as h5:
        h5["image/class_presence"] = np.zeros((N, C), np.float32)
    with pytest.raises(InferenceFileError, match="binary.h5: inference dump has no pixel candidates of 'margin'"):
        steps.select_queries(dataset, settings, 1, tmp_path / "q.csv", labels=round0, inference=other)


def test_shard_files_read_as_one_dump(tmp_path, dataset, round0, monkeypatch):
    """Two files of consecutive images (as sharded inference will write them) read as the whole dump."""
    whole = tmp_path / "inference.h5"
    exp = experiment()
    maps = write_dump(whole, dataset, round0, exp, confident_model(False), monkeypatch=monkeypatch)
    job = Job(dataset, {"unit": "pixel", "seed": 0, "dump": UNIT.dump_settings(exp, 0)}, 0, {})
    request = UNIT.dump_request(job, load_labels(round0), (0, N))["pixels"]
    shards = []
    for start, stop in ((4, N), (0, 4)):
        shards.append(tmp_path / f"shard_{start}.h5")
        with h5py.File(shards[-1], "w") as h5:
            writer = PixelDumpWriter(h5, request, stop - start, H, W, first_image=start)
            writer.write(start, {name: values[start:stop] for name, values in maps.items()})
            write_file_attrs(h5, start, stop, {"model": "m", "shards": 2})
    with InferenceDump(whole) as one, InferenceDump(shards) as two:
        assert two.num_images == N and [p.name for p in two.paths] == ["shard_0.h5", "shard_4.h5"]
        for strategy in STRATEGIES:
            for start, stop in ((0, N), (2, 7), (4, 5)):
                a, b = (read_pixel_candidates(d, strategy, start, stop) for d in (one, two))
                for name in ("eligible", "cover", "nan", "offsets", "index"):
                    np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
                assert a.first_image == b.first_image == start
                for name in a.fields:
                    np.testing.assert_array_equal(a.fields[name], b.fields[name])
    with pytest.raises(InferenceFileError, match="do not hold consecutive images"):
        InferenceDump(shards[:1]).__enter__()


def test_the_dump_keeps_the_draws_pool_and_counts_the_eligible_pixels(tmp_path, dataset, round0, monkeypatch):
    """PixelPick's 5 %: each strategy keeps about 5 % of an image's eligible pixels (with the ties at the cut);
    bytes per pixel at CamVid size are measured by benchmarks/inference_io.py."""
    dump = tmp_path / "inference.h5"
    write_dump(dump, dataset, round0, experiment(), confident_model(False), monkeypatch=monkeypatch)
    with h5py.File(dump) as h5:
        eligible, cover = h5["pixel/eligible"][()], h5["pixel/cover"][()]
        kept = {s: np.diff(h5[f"pixel/{s}/offsets"][()]) for s in STRATEGIES}
    masks = load_split(dataset, "train").masks
    np.testing.assert_array_equal(eligible, (masks != dataset_info(dataset).ignore_index).sum(axis=(1, 2)) - 12)
    np.testing.assert_array_equal(cover, np.ceil(0.05 * eligible))
    for strategy, count in kept.items():
        assert (count >= cover).all() and count.sum() < 1.5 * cover.sum(), strategy


def test_asked_digest_ignores_order():
    a = pixel_dump.asked_digest(np.array([1, 0, 2]), np.array([3, 4, 5]), np.array([6, 7, 8]))
    b = pixel_dump.asked_digest(np.array([0, 2, 1]), np.array([4, 5, 3]), np.array([7, 8, 6]))
    assert a == b != pixel_dump.asked_digest(np.array([0]), np.array([4]), np.array([7]))


def test_the_audit_checks_the_candidates_against_the_rounds_labels(tmp_path, dataset, round0, monkeypatch):
    from alseg.audit.files import Experiment
    from alseg.audit.models import _check_dump

    exp = experiment()
    folder = tmp_path / "results" / "px" / "round_0"
    folder.mkdir(parents=True)
    shutil.copyfile(round0, folder / "labels.npz")
    model = confident_model(False)
    write_dump(folder / "inference.h5", dataset, round0, exp, model, monkeypatch=monkeypatch)
    with h5py.File(folder / "inference.h5", "a") as h5:
        h5.attrs["round"] = 0
    audited = Experiment("px", {"results": str(tmp_path / "results"), "experiments": {"px": exp}}, [0])
    found: list = []
    _check_dump(audited, 0, model_checksum(model), found)
    assert found == []
    store = load_labels(round0)
    save_labels(folder / "labels.npz", store.updated(**{k: store[k][1:] for k in ("asked_image", "asked_y", "asked_x")}))
    _check_dump(Experiment("px", {**audited.config, "experiments": {"px": {**exp, "budget": 4}}}, [0]), 0,
                model_checksum(model), found)
    assert [f.where for f in found] == ["pixel candidates"] * 2
    assert "other eligible pixels" in found[0].message and "the config asks 4 from the top 5.0 %" in found[1].message


def test_selection_memory_does_not_grow_with_the_pool(tmp_path, monkeypatch):
    """Peak memory (numpy and Python allocations, tracemalloc) of pixel selection on a pool of 48 images of
    128 x 128 with chunks of 4 images: under a byte per pool pixel, where whole maps took 15 (masks, asked,
    eligible, two float16 fields, two float32 scores) and the pool's images 4 more."""
    import tracemalloc

    import alseg.units.base

    n, h, w = 48, 128, 128
    data = tmp_path / "pool.h5"
    prepare_dataset({"kind": "synthetic", "seed": 2, "n_train": n, "n_val": 1, "n_test": 1, "height": h, "width": w},
                    data)
    exp = experiment(initial_budget=10, budget=10)
    steps.select_queries(data, UNIT.select_settings(exp, 0), 0, tmp_path / "q0.csv")
    steps.answer_queries(data, tmp_path / "q0.csv", exp, 0, tmp_path / "a0.csv")
    steps.update_labels(data, tmp_path / "q0.csv", tmp_path / "a0.csv", 0, tmp_path / "labels.npz")
    write_dump(tmp_path / "inference.h5", data, tmp_path / "labels.npz", exp, confident_model(False),
               monkeypatch=monkeypatch)
    monkeypatch.setattr(alseg.units.base, "CHUNK_PIXELS", 4 * h * w)
    for strategy in ("margin", "random"):
        settings = UNIT.select_settings(deep_merge(exp, {"strategy": strategy}), 1)
        tracemalloc.start()
        steps.select_queries(data, settings, 1, tmp_path / "q1.csv", labels=tmp_path / "labels.npz",
                             inference=tmp_path / "inference.h5")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < n * h * w, (strategy, peak / (n * h * w))

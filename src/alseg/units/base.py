"""The query-unit interface: everything a unit of annotation decides, in one class per unit.

A query unit is the kind of question a person answers: the class of a pixel (``pixel``), the dominant
class of a region (``superpixel``), "is class c in image i?" (``binary``), the classes present in an image
(``tags``), or a whole mask (``full``, the fully supervised reference). The workflow's steps
(:mod:`alseg.steps`, :mod:`alseg.model_job`) and rules are generic: they ask a unit. A unit plays two parts:

- the **experiment's unit** (the config's ``unit:``) chooses the round's queries and says what each step
  of its experiments reads: settings (so that a changed setting reruns exactly the steps that read it),
  files of the dataset, the previous round's dump or model, its side files;
- the **unit of a query row** (``queries.csv``'s ``unit``) answers its queries as the simulated annotator,
  adds the answers to the label store, turns what it stored into training targets, checks a person's
  answers and shows its queries on the annotation page and in Label Studio. The two usually coincide, but
  a binary experiment's round 0 asks pixel (or whole-image) queries: those rows are the pixel unit's.

``docs/architecture.md`` ("Adding a query unit") walks through a new unit.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from alseg.data import DatasetInfo, ImagesOnDisk, dataset_info, load_masks, load_rows, load_split
from alseg.data.prepared import load_stems
from alseg.labels import LabelStore, load_labels
from alseg.queries import SKIP, Table
from alseg.seeds import step_seed

if TYPE_CHECKING:
    from alseg.data import Split
    from alseg.points import DenseLabels, PointLabels
    from alseg.regions import RegionSource

PathLike = str | os.PathLike[str]
Settings = Mapping[str, Any]


#: Pool pixels per chunk of images that selection steps read at a time: they hold a chunk's per-pixel arrays
#: (masks, eligible pixels, superpixel maps: a few bytes per pixel), never the whole pool's (BENCHMARKS.md,
#: section 10)
CHUNK_PIXELS = 1 << 25

#: Pool images up to this size (bytes) are held in memory while a model trains on them; a larger pool is read
#: one sample at a time from the prepared file (a few ms per CamVid image), so that neither one train job
#: nor each of k ranks holds it (docs/architecture.md, "Memory")
POOL_IN_MEMORY_BYTES = 4 << 30

#: How a missing file of a step is named in its error
_FILES = {"labels": "round {previous}'s label store (labels.npz)",
          "inference": "round {previous}'s inference dump (inference.h5)",
          "previous_model": "round {previous}'s model (model.pt)"}


def _paths(value: PathLike | Sequence[PathLike]) -> Path | list[Path]:
    """A step's file as a path, or its files (a dump in shards) as a list of paths."""
    return Path(value) if isinstance(value, (str, os.PathLike)) else [Path(v) for v in value]


class Job:
    """One step of one round of an experiment: the dataset, the settings the step reads, its files.

    Parameters
    ----------
    dataset : path
        The prepared dataset (its ``train`` split is the pool).
    settings : mapping
        The experiment settings this step reads (the rule's params), not the whole experiment.
    round_index : int
    files : mapping of str to path, optional
        The step's named files (None values are left out): ``labels`` (round r-1's store), ``inference``
        (round r-1's dump: one file, or a list of its shard files), ``previous_model`` (round r-1's model),
        the dataset-level files of the unit (``superpixels``) and its side files (``regions``; written by
        selection, read by the later steps).
    """

    def __init__(self, dataset: PathLike, settings: Settings, round_index: int,
                 files: Mapping[str, PathLike | Sequence[PathLike] | None] | None = None) -> None:
        self.dataset = Path(dataset)
        self.settings = settings
        self.round_index = int(round_index)
        self.files = {name: _paths(path) for name, path in (files or {}).items() if path}

    @cached_property
    def info(self) -> DatasetInfo:
        return dataset_info(self.dataset)

    @cached_property
    def pool(self) -> Split:
        """The pool (``train`` split) in memory: images and masks."""
        return load_split(self.dataset, "train")

    @cached_property
    def stems(self) -> list[str]:
        """The names of the pool images (read without their pixels unless the pool is loaded)."""
        if "pool" in self.__dict__:
            return self.pool.stems
        return load_stems(self.dataset, "train")

    @property
    def pool_shape(self) -> tuple[int, int, int]:
        """The pool's (N, H, W), without reading its pixels."""
        return len(self.stems), self.info.height, self.info.width

    def pool_images(self) -> np.ndarray | ImagesOnDisk:
        """The pool images (N, H, W, 3): the loaded pool's when it is loaded, else read a slice at a time from
        the file (a step over part of the pool, an inference shard, never holds the rest)."""
        return self.pool.images if "pool" in self.__dict__ else ImagesOnDisk(self.dataset, "train")

    @cached_property
    def training_images(self) -> np.ndarray | ImagesOnDisk:
        """The pool images (N, H, W, 3) that a model trains on: the loaded pool's when it is loaded, the images
        alone in memory when they fit :data:`POOL_IN_MEMORY_BYTES`, else read one sample at a time from
        the file. The same bytes in every case, so the same training."""
        if "pool" in self.__dict__:
            return self.pool.images
        on_disk = ImagesOnDisk(self.dataset, "train")
        return on_disk[:] if on_disk.nbytes <= POOL_IN_MEMORY_BYTES else on_disk

    def pool_masks(self, start: int, stop: int) -> np.ndarray:
        """The masks of pool images ``start .. stop`` (uint8 (stop - start, H, W)), from the loaded pool or
        the file."""
        return self.pool.masks[start:stop] if "pool" in self.__dict__ else load_masks(self.dataset, "train", start,
                                                                                     stop)

    def masks_of(self, images: np.ndarray) -> np.ndarray:
        """The masks of the pool images ``images`` (int (D,)), in that order: uint8 (D, H, W), from the loaded
        pool or read from the file (those rows only, never the whole pool's masks)."""
        images = np.asarray(images, dtype=np.int64)
        if "pool" in self.__dict__:
            return self.pool.masks[images]
        return load_rows(self.dataset, "train", "masks", images)

    def images_of(self, images: np.ndarray) -> np.ndarray:
        """The pool images ``images`` (int (D,)), in that order: uint8 (D, H, W, 3), as :meth:`masks_of`."""
        images = np.asarray(images, dtype=np.int64)
        if "pool" in self.__dict__:
            return self.pool.images[images]
        return load_rows(self.dataset, "train", "images", images)

    def masks_at(self, image_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The masks of the distinct pool images of ``image_index`` (int (Q,)), uint8 (D, H, W), and each
        entry's row among them, int64 (Q,): ``masks[rows]`` is the pool's ``masks[image_index]``, read without
        the other images (what a simulated annotator looks at)."""
        images, rows = np.unique(np.asarray(image_index, dtype=np.int64), return_inverse=True)
        return self.masks_of(images), rows.reshape(-1)

    def image_chunks(self, chunk_pixels: int | None = None) -> list[tuple[int, int]]:
        """Consecutive (start, stop) ranges of pool images of about ``chunk_pixels`` pixels each (default
        :data:`CHUNK_PIXELS`; one image at least): what a step that streams the pool holds at a time."""
        pixels = CHUNK_PIXELS if chunk_pixels is None else chunk_pixels
        per_chunk = max(1, pixels // max(self.info.height * self.info.width, 1))
        n = len(self.stems)
        return [(start, min(start + per_chunk, n)) for start in range(0, n, per_chunk)]

    def file(self, name: str) -> Path:
        """The step's file ``name``; a clear error when the rule did not give it."""
        path = self._given(name)
        if isinstance(path, list):
            raise ValueError(f"round {self.round_index}: {name!r} is {len(path)} files, where one was expected")
        return path

    def optional_file(self, name: str) -> Path | None:
        return self.file(name) if name in self.files else None

    def dump(self) -> list[Path]:
        """Round r-1's inference dump: its file, or its shard files (:class:`alseg.inference_file.InferenceDump`
        and the dump's readers take either); a clear error when the rule did not give it."""
        path = self._given("inference")
        return path if isinstance(path, list) else [path]

    def optional_dump(self) -> list[Path] | None:
        return self.dump() if "inference" in self.files else None

    def _given(self, name: str) -> Path | list[Path]:
        if name not in self.files:
            what = _FILES.get(name, "its {name!r} file").format(previous=self.round_index - 1, name=name)
            raise ValueError(f"round {self.round_index}: this step of a {self.settings.get('unit', '?')} experiment "
                             f"needs {what} (an input of its rule), which it was not given")
        return self.files[name]

    def seed(self, step: str) -> int:
        """The seed of ``step`` in this round (:func:`alseg.seeds.step_seed`)."""
        return step_seed(int(self.settings["seed"]), self.round_index, step)

    def previous_store(self) -> LabelStore:
        """Round r-1's label store (``labels``), or an empty store in round 0."""
        path = self.optional_file("labels")
        return load_labels(path) if path is not None else LabelStore()


@dataclass(frozen=True)
class SimulatedAnswers:
    """The simulated annotator's answers to some queries of a round.

    Attributes
    ----------
    answer : ndarray of object (str), shape (Q,)
        As written in ``answers.csv`` (a class id, ``yes``/``no``, ``mask``, ... or ``skip``).
    summary : str
        What happened, for the job log (skipped queries, simulated errors, ...).
    """

    answer: np.ndarray
    summary: str = ""


@dataclass
class TrainingTargets:
    """What one unit's part of the label store contributes to training.

    Attributes
    ----------
    points : PointLabels, DenseLabels or None
        Labelled pixels (image, y, x, class), or whole images labelled by their masks.
    answers : ndarray of int8, shape (N, C), or None
        Image-level answers: +1 the class is in the image, -1 it is not, 0 unknown
        (:mod:`alseg.binary_loss`).
    answer_loss : dict or None
        The weights of the image-level losses (``absent_weight``, ``presence_weight``, ``lse_r``).
    record : dict
        Goes to ``train_log.json`` under the unit's name (what was trained on, for the audit).
    """

    points: PointLabels | DenseLabels | None = None
    answers: np.ndarray | None = None
    answer_loss: dict[str, float] | None = None
    record: dict[str, Any] = field(default_factory=dict)


class QueryUnit(ABC):
    """A unit of annotation: subclass it in a module of :mod:`alseg.units` that sets ``UNIT = YourUnit()``.

    Class attributes
    ----------------
    name : str
        The config's ``unit:``.
    row_unit : str
        ``queries.csv``'s ``unit`` of the queries it asks (the fully supervised ``full`` asks ``image``).
    strategies : tuple of str
        The ``strategy`` values it accepts.
    side_files : dict of str to str
        Files its selection writes beside ``queries.csv`` and its later steps read: name -> file name.
    store_arrays : dict of str to dtype
        The 1-D arrays it keeps in the label store (names start with a prefix of its own).
    page_script : str or None
        The file (beside the unit's module) of its view on the annotation page; None: not answered there.
    region_resource : str or None
        The resource (:meth:`resources`) that holds the regions its queries name, which people see
        outlined (``alseg annotate --regions FILE``, :meth:`region_source`); None: its queries have none.
    labelstudio_name : str or None
        The name of the Label Studio control that answers its queries (None: not answered there).
    dump_groups : tuple of str
        The groups of ``inference.h5`` its selection reads (``pixel``, ``image``, ``superpixel``); what
        the model job needs to write them beyond the model comes from :meth:`dump_request`.
    """

    name: ClassVar[str]
    row_unit: ClassVar[str]
    strategies: ClassVar[tuple[str, ...]]
    side_files: ClassVar[dict[str, str]] = {}
    store_arrays: ClassVar[dict[str, Any]] = {}
    page_script: ClassVar[str | None] = None
    region_resource: ClassVar[str | None] = None
    labelstudio_name: ClassVar[str | None] = None
    dump_groups: ClassVar[tuple[str, ...]] = ()

    # -- the config ----------------------------------------------------------------------------------

    def complete(self, experiment: dict[str, Any], entry: Mapping[str, Any]) -> None:  # noqa: B027 (optional)
        """Set what the unit implies in a merged experiment (``entry``: the config's own entry)."""

    def config_problems(self, experiment: Mapping[str, Any]) -> list[str]:
        """Problems of a merged experiment beyond the schema, as ``<key>: <what is wrong>``."""
        return []

    def round0_key(self, experiment: Mapping[str, Any]) -> Any:
        """What decides round 0's queries, for experiments that could share round 0's model; None: never share."""
        return None

    # -- what each step reads (the rules' inputs and params) -----------------------------------------

    def asks(self, experiment: Mapping[str, Any], round_index: int) -> tuple[str, ...]:
        """The row units of the queries it asks in round ``round_index`` (their answers' costs apply)."""
        return (self.row_unit,)

    @abstractmethod
    def select_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        """The settings :meth:`select` reads in round ``round_index`` (the selection rule's params)."""

    def train_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        """The unit's settings that training reads, beyond the model, schedule and seed."""
        return {}

    def resources(self, experiment: Mapping[str, Any]) -> dict[str, str]:
        """Files of the dataset its steps read (computed once, shared by experiments): name -> file name
        in ``results/datasets/``."""
        return {}

    def select_reads_dump(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        """Whether selection reads round r-1's inference dump."""
        return False

    def train_reads_previous_model(self, experiment: Mapping[str, Any], round_index: int) -> bool:
        """Whether training reads round r-1's model (sieving the labels with it, for example)."""
        return False

    def dump_settings(self, experiment: Mapping[str, Any], round_index: int) -> dict[str, Any]:
        """The settings that round ``round_index``'s dump reads beyond the model (what round r + 1's selection
        will draw, e.g.): the model job's params hold them as ``dump``. Empty by default."""
        return {}

    def dump_request(self, job: Job, store: LabelStore, images: tuple[int, int]) -> dict[str, Any]:
        """Keyword arguments of :func:`alseg.infer.write_inference` that its :attr:`dump_groups` need (the
        base superpixels, the draws the pixel group covers). ``job``: the model job of round r (its settings
        hold :meth:`dump_settings` as ``dump``); ``store``: round r's label store, which the model was
        trained on; ``images``: the pool images (start, stop) the dump or shard covers, all that the request
        needs to hold. Empty by default."""
        return {}

    def extra_outputs(self, experiment: Mapping[str, Any]) -> tuple[str, ...]:
        """More files (or folders) of every round, made by rules of its own (superpixel overlays)."""
        return ()

    # -- selection ---------------------------------------------------------------------------------------

    @abstractmethod
    def select(self, job: Job) -> Table:
        """Choose round ``job.round_index``'s queries (and write the side files); return the query table."""

    # -- the queries of its rows -----------------------------------------------------------------------

    @abstractmethod
    def answer(self, job: Job, queries: Table, rng: np.random.Generator) -> SimulatedAnswers:
        """Answer its ``queries`` from the ground truth, as the simulated annotator (``oracle`` settings)."""

    @abstractmethod
    def answer_cost(self, answers: np.ndarray, costs: Mapping[str, Any], num_classes: int
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The estimated (clicks, seconds) of each answer (float64 (Q,)) from the configured ``costs``."""

    @abstractmethod
    def add_answers(self, store: LabelStore, job: Job, queries: Table, answers: np.ndarray) -> LabelStore:
        """A new store with its answered ``queries`` of this round added (costs are the caller's)."""

    def asked_items(self, job: Job, queries: Table, answers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What its answered ``queries`` asked about, for checking that nothing is asked twice (``alseg audit``).

        This default: the whole image of each query.

        Returns
        -------
        keys : ndarray of int64, shape (M, 3)
            One row per item: (image, y, x) of a pixel, (image, base superpixel, -1) of a region,
            (image, class, -1) of a yes/no question, (image, -1, -1) of a whole image.
        query : ndarray of int64, shape (M,)
            The query (row of ``queries``) that asked each. A skipped query that the unit may ask again
            asked nothing.
        """
        return image_keys(queries["image_index"]), np.arange(len(queries["query_id"]))

    def labelled_pixels(self, store: LabelStore) -> int:
        """Pixels its part of the store labels with a class."""
        return 0

    def known_pairs(self, store: LabelStore, num_images: int, num_classes: int) -> np.ndarray | None:
        """(N, C) bool: the (image, class) pairs whose presence its part of the store tells; None: none."""
        return None

    def training_targets(self, store: LabelStore, job: Job) -> TrainingTargets | None:
        """What its part of the store gives training (None: nothing)."""
        return None

    # -- people --------------------------------------------------------------------------------------

    @abstractmethod
    def answer_hint(self, class_range: str) -> str:
        """What an answer to one of its queries looks like (for messages)."""

    @abstractmethod
    def answer_problem(self, answer: str, num_classes: int, class_range: str) -> str | None:
        """Why ``answer`` (not empty, not ``skip``) does not answer one of its queries; None if it does."""

    def answered_clicks(self, answer: str) -> int:
        """The clicks a person's answer took (the annotation page records it)."""
        return 1

    def query_problem(self, query: Mapping[str, Any], height: int, width: int, num_classes: int) -> str | None:
        """Why a query row does not fit a pool of images of ``height`` x ``width`` (None: it fits)."""
        return None

    def page_query(self, query: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
        """What the annotation page needs of a query beyond its id and image."""
        return {}

    def region_source(self, queries_path: Path, regions: Path | None, key: str | None = None
                      ) -> RegionSource | None:
        """Where the page and Label Studio find the region of each query of ``queries_path`` (the file of
        ``--regions FILE``, its dataset ``key``); None: its queries have no region."""
        return None

    def labelstudio_control(self, classes: Sequence[str], image: str, labels: Sequence[str]) -> list[str]:
        """The lines of the Label Studio labelling config that answer its queries (a control named
        :attr:`labelstudio_name` on the image ``image``; ``labels``: the ``<Label>`` lines of the classes, the
        unanswered mark and ``skip``, for a labels control)."""
        raise ValueError(f"{self.name} queries are not answered in Label Studio")

    def labelstudio_question(self, query: Mapping[str, Any], classes: Sequence[str]) -> str:
        """The instruction shown above the image of a task."""
        return ""

    def labelstudio_prediction(self, query: Mapping[str, Any], shape: tuple[int, int], region: np.ndarray | None
                               ) -> list[tuple[str, dict[str, Any]]]:
        """What places the query on its image of ``shape`` (H, W), as (result type, value) pairs; the export
        adds the unanswered label. ``region``: the query's region mask (units with regions). None by default."""
        return []

    def labelstudio_answer(self, labels: set[str], classes: Sequence[str]) -> str:
        """The answer of a task from the labels or choices of its annotation."""
        if len(labels) > 1:
            return " + ".join(sorted(labels))
        answer = next(iter(labels), "")
        return str(list(classes).index(answer)) if answer in classes else answer


def class_answer_problem(answer: str, unit: str, num_classes: int, class_range: str) -> str | None:
    """Why ``answer`` is not a class id of the dataset (the answer of pixel and region queries)."""
    if answer.isdigit() and int(answer) < num_classes:
        return None
    if answer.isdigit():
        return f"answer {answer!r} is not a class id of the dataset ({class_range}) or skip"
    hint = f" (yes/no answers binary queries, not {unit} ones)" if answer in ("yes", "no") else ""
    return f"answer {answer!r} is not a class id in {class_range} or skip{hint}"


def image_keys(image: np.ndarray, a: np.ndarray | int = -1, b: np.ndarray | int = -1) -> np.ndarray:
    """(image, a, b) rows of :meth:`QueryUnit.asked_items` (int64 (M, 3))."""
    image = np.asarray(image, dtype=np.int64).reshape(-1)
    return np.column_stack([image, np.broadcast_to(a, image.shape), np.broadcast_to(b, image.shape)]).astype(np.int64)


def class_answers(answers: np.ndarray) -> np.ndarray:
    """Class-id answers as int64, -1 for ``skip`` (already validated)."""
    return np.array([int(a) if a != SKIP else -1 for a in answers], dtype=np.int64)


def class_id_strings(classes: np.ndarray) -> np.ndarray:
    """Answers as written: class ids, ``skip`` where the class is negative (object (Q,))."""
    return np.array([str(int(a)) if a >= 0 else SKIP for a in classes], dtype=object)


def fixed_cost(answers: np.ndarray, cost: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Every answer costs ``cost["clicks"]`` and ``cost["seconds"]`` (float64 (Q,) each)."""
    q = len(answers)
    return np.full(q, float(cost["clicks"])), np.full(q, float(cost["seconds"]))

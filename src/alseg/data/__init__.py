"""Datasets: adapters for source layouts, class tables, validation, the synthetic generator and the prepared HDF5.

Typical use::

    prepare_dataset({"kind": "camvid", "root": "data/camvid", "resize": [180, 240]}, "camvid.h5")
    info = dataset_info("camvid.h5")
    pool = load_split("camvid.h5", "train")

No module of this package imports torch.
"""

from alseg.data.adapters import (
    KINDS,
    SourceDataset,
    SourceItem,
    normalise_spec,
    open_source,
)
from alseg.data.classes import (
    CAMVID_CLASSES,
    CAMVID_IGNORE_INDEX,
    CITYSCAPES_CLASSES,
    CITYSCAPES_LABEL_TO_TRAIN_ID,
    IGNORE_INDEX,
    VOC_CLASSES,
)
from alseg.data.errors import DatasetError
from alseg.data.prepared import (
    DatasetInfo,
    ImagesOnDisk,
    Split,
    dataset_info,
    load_masks,
    load_rows,
    load_split,
    prepare_dataset,
)
from alseg.data.splits import SPLITS
from alseg.data.synthetic import (
    SYNTHETIC_CLASSES,
    SYNTHETIC_IGNORE_INDEX,
    make_synthetic,
    write_folder_dataset,
)

__all__ = [
    "CAMVID_CLASSES",
    "CAMVID_IGNORE_INDEX",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABEL_TO_TRAIN_ID",
    "IGNORE_INDEX",
    "KINDS",
    "SPLITS",
    "SYNTHETIC_CLASSES",
    "SYNTHETIC_IGNORE_INDEX",
    "VOC_CLASSES",
    "DatasetError",
    "DatasetInfo",
    "ImagesOnDisk",
    "SourceDataset",
    "SourceItem",
    "Split",
    "dataset_info",
    "load_masks",
    "load_rows",
    "load_split",
    "make_synthetic",
    "normalise_spec",
    "open_source",
    "prepare_dataset",
    "write_folder_dataset",
]

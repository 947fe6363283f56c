"""Datasets: adapters for synthetic, CamVid, Cityscapes, VOC and generic folders, and the prepared file."""

from alseg.data.errors import DatasetError
from alseg.data.prepared import (
    CAMVID_CLASSES,
    CITYSCAPES_CLASSES,
    VOC_CLASSES,
    DatasetInfo,
    Split,
    dataset_info,
    load_split,
    prepare_dataset,
    read_dataset,
)
from alseg.data.synthetic import SYNTHETIC_CLASSES, make_synthetic, write_folder_dataset

__all__ = [
    "CAMVID_CLASSES", "CITYSCAPES_CLASSES", "VOC_CLASSES", "SYNTHETIC_CLASSES", "DatasetError",
    "DatasetInfo", "Split", "dataset_info", "load_split", "prepare_dataset", "read_dataset",
    "make_synthetic", "write_folder_dataset",
]

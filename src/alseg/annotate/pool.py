"""Pool images of a prepared dataset, read one at a time and encoded as PNG for the page."""

from __future__ import annotations

import functools
import io
import os
import threading
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from alseg.data import DatasetError, DatasetInfo, dataset_info


class PoolImages:
    """The ``train`` split's images of a prepared dataset (the pool), read lazily.

    Parameters
    ----------
    dataset : str or PathLike
        A prepared dataset (``results/datasets/<name>.h5``).
    """

    def __init__(self, dataset: str | os.PathLike[str]) -> None:
        self.path = Path(dataset)
        self.info: DatasetInfo = dataset_info(self.path)
        self.count = self.info.sizes["train"]
        self._lock = threading.Lock()
        self.array = functools.lru_cache(maxsize=32)(self._read)
        self.png = functools.lru_cache(maxsize=64)(self._encode)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of every image."""
        return self.info.height, self.info.width

    def _read(self, index: int) -> np.ndarray:
        """Image ``index`` of the pool: uint8 (H, W, 3)."""
        if not 0 <= index < self.count:
            raise DatasetError(f"{self.path}: the pool has {self.count} images, no image {index}")
        try:
            with self._lock, h5py.File(self.path, "r") as h5:
                return np.asarray(h5["train"]["images"][index])
        except (OSError, KeyError) as err:
            raise DatasetError(f"{self.path}: cannot read pool image {index} ({err})") from err

    def _encode(self, index: int) -> bytes:
        """Image ``index`` as PNG bytes (lossless, fast compression)."""
        buffer = io.BytesIO()
        Image.fromarray(self.array(index)).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()

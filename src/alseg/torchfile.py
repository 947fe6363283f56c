"""Read the weights of a ``torch.save`` file with numpy only, and checksum a state dict.

``alseg audit`` checks every round's ``model.pt`` without importing torch (seconds instead of a torch
start-up per process). A ``torch.save`` file is a zip archive: ``<name>/data.pkl`` is a pickle whose tensors
refer to raw storages stored as ``<name>/data/<key>``. The unpickler here admits only the few globals a
state dict of dense CPU tensors uses and rebuilds each tensor as a numpy array; anything else is refused,
so a file is never executed. The model checksum (:func:`weights_checksum`) is defined here once; the
torch side (:func:`alseg.models.state_dict_checksum`) feeds it the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike[str]

#: torch storage class -> (numpy dtype of its bytes, torch dtype name as ``str(tensor.dtype)`` prints it)
_STORAGES = {
    "FloatStorage": (np.float32, "torch.float32"),
    "DoubleStorage": (np.float64, "torch.float64"),
    "HalfStorage": (np.float16, "torch.float16"),
    "BFloat16Storage": (np.uint16, "torch.bfloat16"),
    "LongStorage": (np.int64, "torch.int64"),
    "IntStorage": (np.int32, "torch.int32"),
    "ShortStorage": (np.int16, "torch.int16"),
    "CharStorage": (np.int8, "torch.int8"),
    "ByteStorage": (np.uint8, "torch.uint8"),
    "BoolStorage": (np.bool_, "torch.bool"),
}


class TorchFileError(ValueError):
    """A file that is not a readable ``torch.save`` archive of plain data and dense tensors."""


@dataclass(frozen=True)
class StoredTensor:
    """A tensor read from a torch file: its torch dtype name and its values (C-contiguous)."""

    dtype: str
    array: np.ndarray


@dataclass(frozen=True)
class _StorageType:
    name: str


def _rebuild_tensor(storage: tuple[np.ndarray, str], offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_ignored: Any) -> StoredTensor:
    values, dtype = storage
    itemsize = values.dtype.itemsize
    if size and (offset + sum((n - 1) * s for n, s in zip(size, stride) if n > 0) >= values.size):
        raise TorchFileError(f"a tensor of shape {tuple(size)} reaches past its storage of {values.size} values")
    view = np.lib.stride_tricks.as_strided(values[offset:], shape=tuple(size),
                                           strides=tuple(s * itemsize for s in stride))
    return StoredTensor(dtype, np.array(view, order="C"))  # ascontiguousarray would make a 0-d tensor 1-d


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self._archive, self._prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise TorchFileError(f"holds {module}.{name}, which is not plain data or a dense tensor")

    def persistent_load(self, pid: Any) -> tuple[np.ndarray, str]:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], _StorageType)):
            raise TorchFileError(f"unknown storage reference {pid!r}")
        np_dtype, torch_dtype = _STORAGES[pid[1].name]
        raw = self._archive.read(f"{self._prefix}data/{pid[2]}")
        return np.frombuffer(raw, dtype=np.dtype(np_dtype).newbyteorder("<")), torch_dtype


def read_torch_file(path: PathLike) -> Any:
    """The object saved in a ``torch.save`` (zip format) file, with tensors as :class:`StoredTensor`.

    Raises
    ------
    FileNotFoundError
    TorchFileError
        Not a zip-format torch file, a big-endian one, or one holding other objects than plain data
        (dicts, lists, numbers, strings) and dense tensors; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
            if len(pickles) != 1:
                raise TorchFileError("has no data.pkl (not a torch.save file)")
            prefix = pickles[0][: -len("data.pkl")]
            if f"{prefix}byteorder" in archive.namelist() and archive.read(f"{prefix}byteorder") != b"little":
                raise TorchFileError("is big-endian")
            with archive.open(pickles[0]) as f:
                return _Unpickler(f, archive, prefix).load()
    except TorchFileError as err:
        raise TorchFileError(f"{path}: {err}") from None
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as err:
        raise TorchFileError(f"{path}: cannot read it as a torch file (corrupt or another format): {err}") from err


def weights_checksum(entries: Iterable[tuple[str, str, tuple[int, ...], bytes]]) -> str:
    """First 16 hex characters of sha256 over (name, torch dtype name, shape, raw bytes) of each tensor,
    in name order: the model checksum of ``queries.csv``, ``inference.h5`` and ``metrics.json``."""
    digest = hashlib.sha256()
    for key, dtype, shape, raw in sorted(entries, key=lambda entry: entry[0]):
        digest.update(f"{key}|{dtype}|{tuple(shape)}|".encode())
        digest.update(raw)
    return digest.hexdigest()[:16]


def stored_weights_checksum(state: Mapping[str, StoredTensor]) -> str:
    """:func:`weights_checksum` of a state dict read by :func:`read_torch_file`."""
    return weights_checksum((key, t.dtype, t.array.shape, t.array.tobytes()) for key, t in state.items())


def model_file_checksum(path: PathLike) -> str:
    """:func:`weights_checksum` of the weights in an alseg ``model.pt`` (its ``state_dict``), read without torch."""
    payload = read_torch_file(path)
    try:
        return stored_weights_checksum(payload["state_dict"])
    except (KeyError, TypeError, AttributeError) as err:
        raise TorchFileError(f"{path}: not an alseg model file: {err}") from None

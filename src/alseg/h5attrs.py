"""The codec of HDF5 attributes that alseg files share (``superpixels.h5``, ``inference.h5``).

HDF5 stores strings and numbers, not lists, dicts or None: those are written as JSON text and read back.
Numpy scalars come back as Python numbers, bytes as str.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np


def _attr_value(value: Any) -> Any:
    """HDF5-storable form of an attribute: lists/dicts/None as JSON text, numpy scalars as Python."""
    if isinstance(value, (list, tuple, dict)) or value is None:
        return json.dumps(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decode_attr(value: Any) -> Any:
    """Inverse of :func:`_attr_value`: JSON text back to lists/dicts/None, numpy scalars to Python."""
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if isinstance(value, str):
        if value[:1] in ("[", "{") or value == "null":
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                return value
        return value
    if isinstance(value, np.generic):
        return value.item()
    return value

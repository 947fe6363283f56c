"""The query units, by name: every module or package of :mod:`alseg.units` that defines ``UNIT``.

A unit is found, not listed: adding ``alseg/units/<name>.py`` with ``UNIT = <a QueryUnit>`` makes the config's
``unit: <name>`` work everywhere (docs/architecture.md, "Adding a query unit"). The interface is
:class:`alseg.units.base.QueryUnit`.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np

from alseg.labels import LabelStore, declare_arrays
from alseg.units.base import Job, QueryUnit, SimulatedAnswers, TrainingTargets


def _discover() -> dict[str, QueryUnit]:
    found: dict[str, QueryUnit] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        unit = getattr(importlib.import_module(f"{__name__}.{module.name}"), "UNIT", None)
        if unit is None:
            continue
        if not isinstance(unit, QueryUnit):
            raise TypeError(f"alseg.units.{module.name}.UNIT is not a QueryUnit")
        if unit.name in found:
            raise ValueError(f"two query units are named {unit.name!r}")
        found[unit.name] = unit
        declare_arrays(unit.store_arrays)
    return found


#: Every query unit by its config name (``unit:``), in the order of their module names.
UNITS: dict[str, QueryUnit] = _discover()
#: The unit of each ``unit`` value of ``queries.csv``.
ROW_UNITS: dict[str, QueryUnit] = {unit.row_unit: unit for unit in UNITS.values()}


def unit_named(name: str) -> QueryUnit:
    """The unit of an experiment's ``unit:`` setting."""
    try:
        return UNITS[str(name)]
    except KeyError:
        raise ValueError(f"unknown query unit {name!r}; the units are {', '.join(UNITS)}") from None


def unit_of_row(row_unit: str) -> QueryUnit:
    """The unit of a query row (``queries.csv``'s ``unit`` column)."""
    try:
        return ROW_UNITS[str(row_unit)]
    except KeyError:
        raise ValueError(f"unknown query unit {row_unit!r} in a query table; the units are "
                         f"{', '.join(ROW_UNITS)}") from None


def labelled_pixels(store: LabelStore) -> int:
    """Pixels the store labels with a class, over every unit's part of it."""
    return sum(unit.labelled_pixels(store) for unit in UNITS.values())


def known_pairs(store: LabelStore, num_images: int, num_classes: int) -> np.ndarray:
    """(N, C) bool: the (image, class) pairs whose presence some part of the store already tells."""
    known = np.zeros((num_images, num_classes), dtype=bool)
    for unit in UNITS.values():
        part = unit.known_pairs(store, num_images, num_classes)
        if part is not None:
            known |= part
    return known


__all__ = ["ROW_UNITS", "UNITS", "Job", "QueryUnit", "SimulatedAnswers", "TrainingTargets", "known_pairs",
           "labelled_pixels", "unit_named", "unit_of_row"]
